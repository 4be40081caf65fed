"""The one model assembly (speech_llm.model.build.build_speech_llm) and the framing it uses (speech_llm.lm.framing)."""

from __future__ import annotations

import pytest
import torch
from tiny_speech_llm import WAIT, tiny_config

from speech_common.errors import UserError
from speech_llm.lm.framing import make_tokens, source_group_ends
from speech_llm.model.build import build_speech_llm, chunk_frames, special_tokens


def test_source_group_ends_docstring_examples():
    assert source_group_ends(2, [4, 4, 2], 1) == [2, 6, 10, 12, 13]
    assert source_group_ends(2, [4, 4, 2], 1, end_with_last=True) == [2, 6, 10, 13]
    assert source_group_ends(3, [], 1) == [3, 4]                       # no unit: prompt, then the end marker


def test_assembly_from_the_config_alone(tiny_llm_dir):
    cfg = tiny_config(tiny_llm_dir)
    model, tok = build_speech_llm(cfg)
    # the production framing: the configured prompt (no bos in this tokenizer), eos as end marker and bos
    assert tok.decode(list(model.tokens.prompt_ids)) == cfg.llm.prompt.asr
    assert model.tokens.end_ids == (tok.eos_token_id,) and model.tokens.bos_id == tok.eos_token_id
    assert model.tokens.wait_id == tok.convert_tokens_to_ids(WAIT) and model.tokens == special_tokens(tok, cfg)
    # the encoder never draws its own chunk: the speech LLM always gives it the streaming chunk
    assert model.encoder.dynamic_chunk is False
    assert model.chunk_frames == chunk_frames(cfg) == 4 and model.projector.stack == cfg.projector.stack
    # what trains: the projector, the LoRA weights and the wait token's row(s); the encoder is frozen
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any(n.startswith("projector.") for n in trained) and any("lora_" in n for n in trained)
    assert any("trainable_tokens" in n for n in trained)
    assert not any(n.startswith("encoder.") for n in trained)
    plain, _ = build_speech_llm(cfg, adapters=False)                  # a merged model: no peft wrapper
    assert not any("lora_" in n for n, _ in plain.named_parameters())


def test_the_encoder_trains_when_it_is_not_frozen(tiny_llm_dir):
    from speech_llm.config import apply_overrides

    cfg = apply_overrides(tiny_config(tiny_llm_dir), ["train.llm.freeze_encoder=false"])
    model, _ = build_speech_llm(cfg)
    assert all(p.requires_grad for n, p in model.named_parameters() if n.startswith("encoder."))


def test_framing_errors_are_clear(tiny_llm_dir):
    from speech_llm.model.build import load_tokenizer

    tok = load_tokenizer(tiny_llm_dir)
    with pytest.raises(UserError, match="no '<unknown>' token"):
        make_tokens(tok, "Transcribe.", "<unknown>")
    with pytest.raises(UserError, match="prompt is empty and the tokenizer has no bos"):
        make_tokens(tok, "")
    cfg = tiny_config(tiny_llm_dir)
    with pytest.raises(UserError, match="unknown task 'dictate'"):
        special_tokens(tok, cfg, "dictate")


def test_a_missing_llm_is_a_user_error(tmp_path, tiny_llm_dir):
    from speech_llm.config import apply_overrides

    cfg = apply_overrides(tiny_config(tiny_llm_dir), [f"llm.path_or_name={tmp_path / 'nothing'}"])
    with pytest.raises(UserError, match="cannot load a tokenizer"):
        build_speech_llm(cfg)


@torch.no_grad()
def test_assembly_is_deterministic_under_a_seed(tiny_llm_dir):
    """Training depends on it: the same seed gives the same fresh projector and adapter."""
    cfg = tiny_config(tiny_llm_dir)
    states = []
    for _ in range(2):
        torch.manual_seed(3)
        model, _ = build_speech_llm(cfg)
        states.append({k: v.clone() for k, v in model.state_dict().items() if k.startswith("projector.")})
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


@torch.no_grad()
def test_prepare_for_inference_merges_lora_and_reduces_precision(tiny_llm_dir):
    """The decode-time model: LoRA and the trained token rows merged into plain weights (the same logits),
    bf16 weights, or torchao int8 linear layers (close logits, the same greedy tokens), quietly."""
    import copy
    import warnings

    from speech_llm.model.build import prepare_for_inference

    cfg = tiny_config(tiny_llm_dir)
    torch.manual_seed(0)
    model, _ = build_speech_llm(cfg)
    for name, p in model.glm.lm.named_parameters():   # a trained-looking adapter, not peft's zero init
        if "lora_B" in name:
            p.normal_(0, 0.05)
    model.eval()
    ids = torch.randint(0, 50, (2, 7))

    def logits(m):
        return m.glm.lm(input_ids=ids).logits.float()

    ref = logits(model)
    merged = prepare_for_inference(copy.deepcopy(model))
    assert not any("lora_" in n for n, _ in merged.named_parameters())
    assert torch.allclose(logits(merged), ref, atol=1e-5)
    assert prepare_for_inference(merged) is merged                        # a second identical call: nothing
    with pytest.raises(ValueError, match="already prepared"):
        prepare_for_inference(merged, "bfloat16")

    bf16 = prepare_for_inference(copy.deepcopy(model), "bfloat16")
    assert {p.dtype for p in bf16.glm.lm.parameters()} == {torch.bfloat16}
    assert (logits(bf16) - ref).abs().max() < 0.05 * ref.abs().max()

    with warnings.catch_warnings():
        warnings.simplefilter("error")                                    # torchao's notices are silenced
        int8 = prepare_for_inference(copy.deepcopy(model), quantize="int8")
        got = logits(int8)
    kinds = {type(m.weight).__name__ for m in int8.glm.lm.modules() if isinstance(m, torch.nn.Linear)}
    assert kinds and all("Quantized" in k or "Int8" in k for k in kinds), kinds
    assert torch.nn.functional.cosine_similarity(got.flatten(), ref.flatten(), dim=0) > 0.99
    assert (got.argmax(-1) == ref.argmax(-1)).float().mean() > 0.9
