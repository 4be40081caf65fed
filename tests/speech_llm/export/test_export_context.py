"""Export of a projector with context layers (the real-speech model's: a VocabProjector whose transformer layers
stream under the chunk mask with their own keys and values) and ``decode.nonblank_cap`` in the runtime: the
exported projector step equals the torch chunk step (caches, offsets and non-blank mass; float32, max abs diff
1e-4), and the onnxruntime recogniser writes the torch Recognizer's tokens, text and word times with the context
layers' window unlimited or of one chunk, with the cap on, for random block sizes and batched streams."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import onnxruntime as ort
import pytest
import torch
from runtime_testutil import UTTERANCES, audio, decode_config, feed, same, whisper_config

import speech_runtime
from speech_common.export_dir import INT8_PARTS
from speech_llm.decoding.recognizer import Recognizer
from speech_llm.export import export_recognizer
from speech_llm.export.onnx_export import MANIFEST

ATOL = 1e-4
CAP = {"nonblank_cap": 0.5, "nonblank_slack": 1}
"""Tight enough that the cap binds on the tiny random model (its CTC head calls nearly every vector a token)."""


@pytest.fixture(scope="module", params=[-1, 1], ids=["unlimited", "window1"])
def context(request, tiny_llm_dir, whisper_dir, one_thread, tmp_path_factory):
    """(torch Recognizer with the cap, its export dir): two context layers, left context unlimited or one chunk."""
    from speech_llm.model.build import build_speech_llm

    cfg = whisper_config(tiny_llm_dir, whisper_dir, "projector.context_layers=2", "projector.context_heads=2",
                         f"projector.context_left_chunks={request.param}", "projector.context_dropout=0.0")
    torch.manual_seed(7)
    model, tok = build_speech_llm(cfg, adapters=False)
    rec = Recognizer(model.eval(), tok, decode_config(**CAP))
    return rec, export_recognizer(rec, tmp_path_factory.mktemp("onnx") / "context", int8=True, int8_parts=INT8_PARTS)


def test_projector_chunk_equals_torch(context):
    """Batched streams at different offsets over left-padded caches; tokens, non-blank mass and every cache slot."""
    rec, d = context
    proj = rec.model.projector
    layers, heads, dim = len(proj.context), proj.num_heads, proj.net[-1].out_features
    g = torch.Generator().manual_seed(3)
    stacked = torch.randn(2, 2, proj.net[0].in_features, generator=g)
    state = {"offset": torch.tensor([6, 2]), "att_k": torch.randn(layers, 2, heads, 6, dim // heads, generator=g),
             "att_v": torch.randn(layers, 2, heads, 6, dim // heads, generator=g)}
    with torch.no_grad():
        h, new = proj._context_chunk(proj.net(stacked), state, window=False)
        tokens, mass = proj.mix(h), proj.nonblank(h)
    sess = ort.InferenceSession(str(d / "projector.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(["tokens", "nonblank", "att_k_out", "att_v_out"],
                   {"stacked": stacked.numpy(), **{k: v.numpy() for k, v in state.items()}})
    for a, b in zip(got, (tokens, mass, new["att_k"], new["att_v"])):
        assert a.shape == tuple(b.shape) and float(np.abs(a - b.numpy()).max()) < ATOL
    assert got[2].shape[3] == 6 + 2                       # every slot: the runtime keeps its window
    m = json.loads((d / MANIFEST).read_text())["projector"]
    assert m["context"] == {"layers": 2, "heads": 2, "head_dim": dim // 2, "left_chunks": proj.left_chunks}
    assert m["nonblank"] is True


@pytest.mark.parametrize("seconds,seed", UTTERANCES[:3])
def test_one_stream_random_blocks(context, seconds, seed):
    rec, d = context
    x = audio(seconds, seed)
    same(*feed(rec, [x], seed=seed), *feed(speech_runtime.load_recognizer(d, threads=1), [x], seed=seed + 100))


def test_batched_streams(context):
    rec, d = context
    xs = [audio(s, seed) for s, seed in UTTERANCES]
    same(*feed(rec, xs, seed=5), *feed(speech_runtime.load_recognizer(d, threads=1), xs, seed=6))


def test_the_cap_binds_and_can_be_lifted(context):
    """Not a vacuous comparison: with the cap the model writes fewer tokens than without it, in both runtimes, and
    the runtime override nonblank_cap=0 gives the torch recognizer's uncapped text."""
    rec, d = context
    free = Recognizer(rec.model, rec.tokenizer, replace(rec.config, nonblank_cap=0.0))
    x = audio(2.3, 0)
    _, capped = feed(rec, [x], fixed=1600)
    free_streams, uncapped = feed(free, [x], fixed=1600)
    assert len(capped[0].text.split()) < len(uncapped[0].text.split())
    rt = speech_runtime.load_recognizer(d, threads=1, overrides={"nonblank_cap": 0.0})
    same(free_streams, uncapped, *feed(rt, [x], fixed=1600))


def test_int8_runtime_decodes(context):
    _, d = context
    streams, results = feed(speech_runtime.load_recognizer(d, int8=True), [audio(2.3, 0)], fixed=1600)
    assert results[0].finished and streams[0].trace
