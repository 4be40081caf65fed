"""Each exported step equals the torch step it was exported from (float32; tolerance: max abs diff 1e-4)."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

import speech_llm.decoding.recognizer
from speech_llm.export.onnx_export import MANIFEST, LMStep
from speech_runtime import recognizer as runtime_recognizer
from speech_runtime.models import block_mask, group_positions

ATOL = 1e-4


def session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def manifest(d):
    return json.loads((d / MANIFEST).read_text())


def max_diff(a, b) -> float:
    return float(np.abs(np.asarray(a) - np.asarray(b, dtype=np.float32)).max())


@pytest.mark.parametrize("batch,cached,num_feats", [(1, 0, 19), (3, 8, 19), (2, 5, 11), (1, 12, 7)])
def test_encoder_chunk_equals_torch(torch_rec, export_dir, batch, cached, num_feats):
    """Whole chunks (19 features = 4 frames) and final partial ones, any cache length and batch."""
    enc = torch_rec.model.encoder
    g = torch.Generator().manual_seed(cached)
    n, h, d = len(enc.layers), enc.num_heads, enc.output_dim
    feats = torch.randn(batch, num_feats, enc.input_dim, generator=g)
    offset = torch.randint(0, 30, (batch,), generator=g)
    att_k, att_v = (torch.randn(n, batch, h, cached, d // h, generator=g) for _ in range(2))
    conv = torch.randn(n, batch, d, enc.layers[0].conv.context, generator=g)
    with torch.no_grad():
        ref, new = enc._forward_chunk(feats, {"offset": offset, "att_k": att_k, "att_v": att_v, "conv": conv}, -1)
    got = session(export_dir / "encoder.onnx").run(None, {
        "feats": feats.numpy(), "offset": offset.numpy(), "att_k": att_k.numpy(), "att_v": att_v.numpy(),
        "conv": conv.numpy()})
    assert got[0].shape == tuple(ref.shape)
    for a, b in zip(got, [ref, new["att_k"], new["att_v"], new["conv"]]):
        assert max_diff(a, b) < ATOL


def test_projector_equals_torch(torch_rec, export_dir):
    proj = torch_rec.model.projector
    x = torch.randn(2, 5, proj.net[0].in_features)
    with torch.no_grad():
        ref = proj.net(x)
    got = session(export_dir / "projector.onnx").run(None, {"stacked": x.numpy()})[0]
    assert max_diff(got, ref) < ATOL


@pytest.mark.parametrize("batch,new,past", [(1, 1, 0), (2, 5, 0), (3, 1, 9), (2, 4, 6)])
def test_llm_step_equals_torch(torch_rec, export_dir, batch, new, past):
    """The LLM step with the runtime's masks and positions over a random cache (one stream padded)."""
    lm = torch_rec.model.glm.lm
    m = manifest(export_dir)["llm"]
    g = torch.Generator().manual_seed(new * 10 + past)
    cache_valid = torch.rand(batch, past, generator=g) < 0.8
    cache_src = torch.rand(batch, past, generator=g) < 0.5
    new_valid = np.ones((batch, new), bool)
    new_valid[-1, new - 1:] = new == 1 or batch == 1    # the last stream has a padded slot in multi-token blocks
    new_src = np.zeros((batch, new), bool)
    new_src[:, :-1] = True                              # [source x (n-1)][target]
    mask = block_mask(cache_valid.numpy(), cache_src.numpy(), new_valid, new_src)
    pos = group_positions(np.array([3] * batch), new_valid)
    embeds = torch.randn(batch, new, m["hidden_size"], generator=g)
    past_kv = [torch.randn(batch, m["num_kv_heads"], past, m["head_dim"], generator=g)
               for _ in range(2 * m["num_layers"])]
    with torch.no_grad():
        ref = LMStep(lm, m["num_layers"])(embeds, torch.from_numpy(pos), torch.from_numpy(mask), *past_kv)
    feed = {"inputs_embeds": embeds.numpy(), "position_ids": pos, "attention_mask": mask}
    feed.update({f"past_{k}_{i}": past_kv[2 * i + j].numpy() for i in range(m["num_layers"])
                 for j, k in enumerate(("key", "value"))})
    got = session(export_dir / "llm.onnx").run(None, feed)
    assert got[0].shape == (batch, m["vocab_size"])
    assert len(got) == len(ref)
    for a, b in zip(got, ref):
        assert max_diff(a, b) < ATOL


def test_runtime_mask_equals_the_session_mask():
    """The runtime's block mask is speech_llm.lm.masks.incremental_mask (the session's rule) for real rows."""
    from speech_llm.lm.masks import incremental_mask, to_additive

    g = torch.Generator().manual_seed(0)
    cache_valid, cache_src = torch.rand(3, 6, generator=g) < 0.7, torch.rand(3, 6, generator=g) < 0.5
    new_valid = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0]], dtype=torch.bool)
    new_src = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)
    ref = to_additive(incremental_mask(cache_valid, cache_src, new_valid, new_src), torch.float32).numpy()
    got = block_mask(cache_valid.numpy(), cache_src.numpy(), new_valid.numpy(), new_src.numpy())
    np.testing.assert_array_equal(got, ref)


def test_group_positions_equal_torch():
    from speech_llm.lm.positions import source_position_ids, target_position_ids

    valid = torch.tensor([[1, 1, 0], [1, 1, 1], [0, 0, 0]], dtype=torch.bool)
    start = torch.tensor([0, 4, 2])
    np.testing.assert_array_equal(group_positions(start.numpy(), valid.numpy()),
                                  source_position_ids(start, valid).numpy())
    np.testing.assert_array_equal(group_positions(start.numpy(), valid.numpy()) + 5,
                                  target_position_ids(start, valid, 5).numpy())


def test_plain_files(torch_rec, export_dir):
    """Tokens, embeddings, CMVN and the tokenizer (every id decodes as the torch side's tokenizer does)."""
    from tokenizers import Tokenizer

    m = manifest(export_dir)
    tk = torch_rec.model.tokens
    assert m["tokens"] == {"prompt_ids": list(tk.prompt_ids), "end_ids": list(tk.end_ids), "bos_id": tk.bos_id,
                           "eos_id": tk.eos_id, "wait_id": tk.wait_id}
    emb = np.load(export_dir / m["llm"]["embeddings"])
    np.testing.assert_array_equal(emb, torch_rec.model.glm.lm.get_input_embeddings().weight.numpy())
    cmvn = json.loads((export_dir / "cmvn.json").read_text())
    np.testing.assert_array_equal(np.float32(cmvn["mean"]), torch_rec.model.cmvn.mean.numpy())
    tok = Tokenizer.from_file(str(export_dir / "tokenizer.json"))
    hf = torch_rec.tokenizer
    for i in range(m["llm"]["vocab_size"]):
        assert tok.decode([i], skip_special_tokens=False) == hf.decode([i])
    ids = hf("the quick brown fox", add_special_tokens=False)["input_ids"]
    assert tok.decode(ids, skip_special_tokens=True) == hf.decode(ids, skip_special_tokens=True)
    assert m["decode"]["chunk_ms"] == 160 and m["encoder"]["chunk_frames"] == 4
    # one marker decides on every side: the torch loader hands this dir to the runtime, a dir without it is not one
    assert runtime_recognizer.is_export_dir(export_dir) and speech_llm.decoding.recognizer.is_export_dir(export_dir)
    assert not runtime_recognizer.is_export_dir(export_dir.parent)


def test_int8_models_are_smaller_and_close(export_dir):
    m = manifest(export_dir)
    for part in ("encoder", "projector", "llm"):
        assert (export_dir / m["int8"][part]).is_file()
    fp = session(export_dir / "projector.onnx")
    q = session(export_dir / m["int8"]["projector"])
    x = np.random.default_rng(0).standard_normal((1, 7, fp.get_inputs()[0].shape[2] or 64)).astype(np.float32)
    a, b = fp.run(None, {"stacked": x})[0], q.run(None, {"stacked": x})[0]
    assert np.abs(a - b).max() < 0.1 * np.abs(a).max()
