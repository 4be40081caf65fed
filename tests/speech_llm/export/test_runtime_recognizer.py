"""The onnxruntime recogniser (speech_runtime) gives the torch Recognizer's tokens, text and word times:
any block sizes, batched streams, batch mode, read-ahead, other sample rates, a fixed attention window."""

from __future__ import annotations

import pytest
from runtime_testutil import UTTERANCES, audio, feed, same

import speech_runtime


@pytest.fixture(scope="module")
def runtime(export_dir):
    return speech_runtime.load_recognizer(export_dir, threads=1)


@pytest.mark.parametrize("seconds,seed", UTTERANCES)
def test_one_stream_random_blocks(torch_rec, runtime, seconds, seed):
    x = audio(seconds, seed)
    ref = feed(torch_rec, [x], seed=seed)
    got = feed(runtime, [x], seed=seed + 100)               # other block sizes than the reference's
    same(*ref, *got)


def test_text_is_word_like(torch_rec, runtime):
    """Not a vacuous comparison: the tiny LLM writes several words, chunk after chunk."""
    x = audio(2.3, 0)
    streams, results = feed(runtime, [x], seed=1)
    assert len(results[0].words) >= 2
    assert len({visible for _, visible in streams[0].trace}) > 3


def test_batched_streams(torch_rec, runtime):
    xs = [audio(s, seed) for s, seed in UTTERANCES]
    same(*feed(torch_rec, xs, seed=5), *feed(runtime, xs, seed=6))   # streams of different lengths, batched


def test_other_sample_rate(torch_rec, runtime):
    x = audio(1.7, 1, rate=8000)
    same(*feed(torch_rec, [x], rate=8000, seed=2), *feed(runtime, [x], rate=8000, seed=3))


def test_batch_mode_and_overrides(torch_rec, export_dir):
    from dataclasses import replace

    from speech_llm.decoding.recognizer import Recognizer

    ref_rec = Recognizer(torch_rec.model, torch_rec.tokenizer, replace(torch_rec.config, mode="batch"))
    rt = speech_runtime.load_recognizer(export_dir, overrides=["mode=\"batch\"", "endpoint.enabled=false"])
    assert rt.config.mode == "batch"
    x = audio(2.3, 0)
    same(*feed(ref_rec, [x], seed=1), *feed(rt, [x], seed=2))
    ref_rec = Recognizer(torch_rec.model, torch_rec.tokenizer, replace(torch_rec.config, chunk_ms=320,
                                                                       max_tokens_per_read=2))
    rt = speech_runtime.load_recognizer(export_dir, overrides={"chunk_ms": 320, "max_tokens_per_read": 2})
    same(*feed(ref_rec, [x], seed=1), *feed(rt, [x], seed=2))


def test_windowed_encoder_stack4_read_ahead(windowed_rec, windowed_export):
    rt = speech_runtime.load_recognizer(windowed_export)
    xs = [audio(2.9, 0), audio(1.3, 1)]
    same(*feed(windowed_rec, xs, seed=0), *feed(rt, xs, seed=4))


def test_int8_runtime_decodes(export_dir):
    rt = speech_runtime.load_recognizer(export_dir, int8=True)
    streams, results = feed(rt, [audio(2.3, 0)], fixed=1600)
    assert results[0].finished and streams[0].trace


def test_speech_llm_load_recognizer_hands_an_export_dir_to_the_runtime(export_dir):
    import speech_llm

    rec = speech_llm.load_recognizer(export_dir, overrides=["max_tokens_per_read=5", "quantize=int8",
                                                            "endpoint.silence_s=0.5"])
    assert isinstance(rec, speech_runtime.Recognizer) and rec.config.max_tokens_per_read == 5


def test_not_an_export_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="not an export dir"):
        speech_runtime.load_recognizer(tmp_path)


def test_trace_keeps_only_the_newest_tokens(runtime, monkeypatch):
    """Bounded state for streams of hours: the trace keeps the last TRACE_MAX_TOKENS tokens (as the torch Stream)."""
    from speech_runtime import recognizer as runtime_recognizer

    x = audio(2.3, 0)
    full, _ = feed(runtime, [x], fixed=1600)
    assert len(full[0].trace) > 5
    monkeypatch.setattr(runtime_recognizer, "TRACE_MAX_TOKENS", 5)
    short, results = feed(runtime, [x], fixed=1600)
    assert list(short[0].trace) == list(full[0].trace)[-5:]
    assert results[0].finished
