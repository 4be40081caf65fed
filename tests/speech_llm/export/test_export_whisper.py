"""Export of a Whisper-encoder + VocabProjector speech LLM: the Whisper chunk step (caches as inputs and
outputs) and the vocab projector each equal their torch step (float32, max abs diff 1e-4), and the
onnxruntime recogniser writes the torch Recognizer's tokens, text and word times (random block sizes,
batched streams, another sample rate, batch mode)."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch
from runtime_testutil import UTTERANCES, WHISPER_POSITIONS, audio, feed, same

import speech_runtime
from speech_llm.export.onnx_export import MANIFEST, export_whisper_encoder

ATOL = 1e-4


def session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def max_diff(a, b) -> float:
    return float(np.abs(np.asarray(a) - np.asarray(b, dtype=np.float32)).max())


def random_states(enc, batch: int, cached: int, seed: int, max_offset: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    n, h, d = len(enc.layers), enc.num_heads, enc.output_dim
    return {"offset": torch.randint(0, max_offset, (batch,), generator=g),
            "att_k": torch.randn(n, batch, h, cached, d // h, generator=g),
            "att_v": torch.randn(n, batch, h, cached, d // h, generator=g),
            "mel": torch.randn(batch, 1, enc.input_dim, generator=g),
            "conv": torch.randn(batch, d, 1, generator=g)}


def run_chunk(sess, enc, feats: torch.Tensor, states: dict, final: bool) -> list[np.ndarray]:
    """The exported step as the runtime feeds it: a whole chunk's 2c + 1 features, or the final n and a zero row."""
    x = torch.cat([feats, feats.new_zeros(feats.size(0), 1, feats.size(2))], dim=1) if final else feats
    return sess.run(["frames", "att_k_out", "att_v_out", "mel_out", "conv_out"],
                    {"feats": x.numpy(), **{k: v.numpy() for k, v in states.items()}})


@pytest.mark.parametrize("batch,cached,num_feats,final", [
    (1, 0, 17, False), (3, 8, 17, False), (2, 5, 17, False),   # whole chunks of 8 frames (17 features)
    (1, 12, 16, True), (2, 3, 7, True), (1, 0, 1, True)])      # the final partial chunk: ceil(n / 2) frames
def test_whisper_chunk_equals_torch(whisper_rec, whisper_export, batch, cached, num_feats, final):
    """Offsets up to twice the position table (positions past it are clamped as in torch)."""
    enc = whisper_rec.model.encoder
    states = random_states(enc, batch, cached, seed=cached + num_feats, max_offset=2 * WHISPER_POSITIONS)
    feats = torch.randn(batch, num_feats, enc.input_dim, generator=torch.Generator().manual_seed(num_feats))
    with torch.no_grad():
        ref, new = enc._forward_chunk(feats, states, -1, final=final)
    got = run_chunk(session(whisper_export / "encoder.onnx"), enc, feats, states, final)
    assert got[0].shape == tuple(ref.shape) == (batch, (num_feats + 1) // 2 if final else 8, enc.output_dim)
    assert max_diff(got[0], ref) < ATOL
    assert max_diff(got[1], new["att_k"]) < ATOL and max_diff(got[2], new["att_v"]) < ATOL
    if not final:                                   # the caches of the next chunk (unchanged by a final one)
        assert max_diff(got[3], new["mel"]) < ATOL and max_diff(got[4], new["conv"]) < ATOL


def test_whisper_extended_positions_equal_torch(whisper_dir, tmp_path):
    """long_positions="extend": frames past the table take Whisper's sinusoids, in the graph too."""
    from encoders.whisper import WhisperStreamingEncoder

    enc = WhisperStreamingEncoder.from_pretrained(whisper_dir, long_positions="extend").eval()
    info = export_whisper_encoder(enc, 4, tmp_path / "enc.onnx")
    assert info["long_positions"] == "extend" and info["max_positions"] == WHISPER_POSITIONS
    states = random_states(enc, 2, 4, seed=0, max_offset=1)
    states["offset"] = torch.tensor([WHISPER_POSITIONS - 2, 3 * WHISPER_POSITIONS])
    feats = torch.randn(2, 9, enc.input_dim)
    with torch.no_grad():
        ref, _ = enc._forward_chunk(feats, states, -1)
        clamped = WhisperStreamingEncoder.from_pretrained(whisper_dir).eval()._forward_chunk(feats, states, -1)[0]
    assert float((ref - clamped).abs().max()) > 1e-2            # the scheme matters at these offsets
    got = run_chunk(session(tmp_path / "enc.onnx"), enc, feats, states, final=False)
    assert max_diff(got[0], ref) < ATOL


def test_vocab_projector_equals_torch(whisper_rec, whisper_export):
    """The posterior-weighted mix of token embeddings, also at the end of a stream (zero-padded stack)."""
    proj = whisper_rec.model.projector
    assert hasattr(proj, "mix")
    sess = session(whisper_export / "projector.onnx")
    x = torch.randn(2, 5, proj.net[0].in_features)
    with torch.no_grad():
        ref = proj.mix(proj.net(x))
    assert max_diff(sess.run(None, {"stacked": x.numpy()})[0], ref) < ATOL
    frames = torch.randn(1, 7, proj.net[0].in_features // proj.stack)  # 7 frames: one whole stack + 3 padded
    with torch.no_grad():
        ref, _ = proj.streaming_forward(frames, proj.init_state(1, frames.size(2)), final=True)
    stacked = np.concatenate([frames[0].numpy(), np.zeros((1, frames.size(2)), np.float32)]).reshape(1, 2, -1)
    got = sess.run(None, {"stacked": stacked})[0]
    assert max_diff(got, ref) < ATOL
    assert float(ref.std(dim=1).mean()) > 1e-3                # the mixes differ from token to token


def test_manifest_names_the_whisper_front_end_and_the_vocab_projector(whisper_rec, whisper_export):
    m = json.loads((whisper_export / MANIFEST).read_text())
    enc = whisper_rec.model.encoder
    assert m["frontend"] == {"type": "whisper_log_mel", "n_mels": 80, "ceiling": enc.log_mel_ceiling, "cmvn": None}
    assert m["encoder"]["type"] == "whisper" and m["encoder"]["chunk_frames"] == 8
    assert m["projector"]["kind"] == "vocab" and m["projector"]["stack"] == 4
    assert m["decode"]["chunk_ms"] == 160
    assert {"encoder", "projector", "llm"} <= set(m["int8"]) and m["int8"]["llm"] == "llm.int8.onnx"


@pytest.fixture(scope="module")
def runtime(whisper_export):
    return speech_runtime.load_recognizer(whisper_export, threads=1)


@pytest.mark.parametrize("seconds,seed", UTTERANCES)
def test_one_stream_random_blocks(whisper_rec, runtime, seconds, seed):
    x = audio(seconds, seed)
    same(*feed(whisper_rec, [x], seed=seed), *feed(runtime, [x], seed=seed + 100))


def test_text_follows_the_audio(runtime):
    """Not a vacuous comparison: words are written chunk after chunk, and other audio gives other text."""
    streams, results = feed(runtime, [audio(2.3, 0), audio(2.3, 2)], seed=1)
    assert len(results[0].words) >= 2
    assert len({visible for _, visible in streams[0].trace}) > 3
    assert streams[0].trace != streams[1].trace


def test_batched_streams_and_other_rate(whisper_rec, runtime):
    xs = [audio(s, seed) for s, seed in UTTERANCES]
    same(*feed(whisper_rec, xs, seed=5), *feed(runtime, xs, seed=6))
    x = audio(1.7, 1, rate=8000)
    same(*feed(whisper_rec, [x], rate=8000, seed=2), *feed(runtime, [x], rate=8000, seed=3))


def test_batch_mode(whisper_rec, whisper_export):
    from dataclasses import replace

    from speech_llm.decoding.recognizer import Recognizer

    ref = Recognizer(whisper_rec.model, whisper_rec.tokenizer, replace(whisper_rec.config, mode="batch"))
    rt = speech_runtime.load_recognizer(whisper_export, overrides={"mode": "batch"})
    x = audio(2.3, 0)
    same(*feed(ref, [x], seed=1), *feed(rt, [x], seed=2))


def test_int8_runtime_decodes(whisper_export):
    streams, results = feed(speech_runtime.load_recognizer(whisper_export, int8=True), [audio(2.3, 0)], fixed=1600)
    assert results[0].finished and streams[0].trace
