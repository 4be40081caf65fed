"""Decoder endpointing (endpoint.mode = "decoder"): segments end by what the model writes (sherpa-onnx's
rules 1-3), decided chunk by chunk; the energy gate only opens segments. What the model writes is scripted
at the Recognizer's decode step (scripted_writer.py) or comes from the tiny random-weight model."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
from endpoint_testutil import bursts, feed
from scripted_writer import ScriptedRecognizer
from tiny_speech_llm import make_speech_llm

from encoders.constants import SAMPLE_RATE
from speech_common.endpoint import decoder_end
from speech_llm.commands._decode_options import add_decode_arguments, decode_overrides
from speech_llm.config import DecodeConfig, EndpointConfig
from speech_llm.decoding.recognizer import Recognizer

CHUNK = 0.64     # the tiny model's chunk (16 encoder frames x 40 ms)


@pytest.fixture(scope="module")
def model_and_tok(tiny_llm_dir):
    return make_speech_llm(tiny_llm_dir, chunk_frames=16)


def config(**ep) -> DecodeConfig:
    return DecodeConfig(max_tokens_per_read=8, max_tokens_per_segment=60, endpoint=EndpointConfig(**ep))


def noise(seconds: float, db: float, seed: int = 0) -> np.ndarray:
    """White noise with an RMS level of ``db`` dBFS."""
    return (10 ** (db / 20) * np.random.default_rng(seed).standard_normal(round(seconds * SAMPLE_RATE))
            ).astype(np.float32)


def bounds(r) -> list[tuple[float, float, str]]:
    return [(round(g.start_s, 4), round(g.end_s, 4), g.reason) for g in r.segments]


def silent_writer(t: float) -> str:
    return ""


def test_decoder_end_rules():
    ep = EndpointConfig()                            # 2.4 / 1.2 / 20 s
    assert decoder_end(ep, 3, 3, False, CHUNK) is None           # 1.92 s without text: not yet
    assert decoder_end(ep, 4, 4, False, CHUNK) == "no_text"      # 2.56 s >= 2.4
    assert decoder_end(ep, 9, 1, True, CHUNK) is None            # one quiet chunk after text
    assert decoder_end(ep, 9, 2, True, CHUNK) == "silence"       # 1.28 s >= 1.2
    assert decoder_end(ep, 30, 0, True, CHUNK) is None           # 31 chunks = 19.84 s still fit in 20 s
    assert decoder_end(ep, 31, 0, True, CHUNK) == "max_length"
    assert decoder_end(EndpointConfig(rule2_silence_s=1.28), 5, 2, True, CHUNK) == "silence"   # exact: ends
    assert decoder_end(EndpointConfig(max_segment_s=0.1), 1, 0, True, CHUNK) == "max_length"  # at least 1 chunk


def test_rule1_ends_a_segment_with_no_text(model_and_tok):
    """Noise above the gate's threshold, the model writes only <wait>: each segment ends after 4 chunks
    (2.56 s >= 2.4 s), the gate reopens at once on the loud samples after it. The digital silence before
    the noise opens nothing; the first segment starts with the 0.3 s pre-roll."""
    rec = ScriptedRecognizer(*model_and_tok, config(), silent_writer)
    x = np.concatenate([np.zeros(SAMPLE_RATE, np.float32), noise(7.0, -30)])
    _, r = feed(rec, x)
    assert bounds(r) == [(0.7, 3.26, "no_text"), (3.26, 5.82, "no_text"), (5.82, 8.0, "end")]
    assert r.text == "" and all(t >= 0.7 for t, _ in rec.calls)


def test_rule2_ends_a_segment_after_text_then_waits(model_and_tok):
    """Words after chunks 4 and 6: three quiet chunks before any text do not end the segment (1.92 s < 2.4),
    one quiet chunk between words does not (0.64 < 1.2), two after the last word do (1.28 s): the segment
    ends at 8 x 0.64 = 5.12 s. The next one hears no words: rule 1 at 5.12 + 2.56 s."""
    words = {2.56: "the dog", 3.84: "one two"}
    rec = ScriptedRecognizer(*model_and_tok, config(), lambda t: words.get(t, ""))
    _, r = feed(rec, noise(9.0, -30))
    assert bounds(r) == [(0.0, 5.12, "silence"), (5.12, 7.68, "no_text"), (7.68, 9.0, "end")]
    assert r.segments[0].text == "the dog one two" and not r.segments[1].text
    assert [(w.word, w.audio_s) for w in r.segments[0].words] == \
        [("the", 2.56), ("dog", 2.56), ("one", 3.84), ("two", 3.84)]


def test_rule3_caps_a_segment_that_keeps_writing(model_and_tok):
    """Text after every chunk: a segment is as long as it can be without passing max_segment_s
    (floor(5 / 0.64) = 7 chunks = 4.48 s); each new segment starts a fresh LLM context."""
    rec = ScriptedRecognizer(*model_and_tok, config(max_segment_s=5.0), lambda t: "the")
    s, r = feed(rec, noise(10.0, -30))
    assert bounds(r) == [(0.0, 4.48, "max_length"), (4.48, 8.96, "max_length"), (8.96, 10.0, "end")]
    assert [len(g.words) for g in r.segments] == [7, 7, 2]       # 10 - 8.96 s: one whole chunk + the rest


def test_noise_above_the_threshold_no_longer_holds_a_segment_open(model_and_tok):
    """12 s of -35 dBFS noise (above the -40 dBFS gate), segments of at most 10 s: the energy rules keep a
    segment open until that cap; with the decoder rules, a model that writes nothing ends a segment every
    2.56 s."""
    x = noise(12.0, -35, seed=1)
    energy = ScriptedRecognizer(*model_and_tok, config(mode="energy", max_segment_s=10.0), silent_writer)
    _, r = feed(energy, x, sizes=(16000,))
    assert bounds(r) == [(0.0, 10.0, "max_length"), (10.0, 12.0, "end")]
    dec = ScriptedRecognizer(*model_and_tok, config(max_segment_s=10.0), silent_writer)
    _, r = feed(dec, x, sizes=(16000,))
    assert len(r.segments) == 5 and max(g.end_s - g.start_s for g in r.segments) == pytest.approx(2.56)
    assert all(g.reason == "no_text" for g in r.segments[:-1]) and r.segments[-1].reason == "end"


def test_read_ahead_chunks_do_not_count_as_non_speech(model_and_tok):
    """With 4 read-ahead chunks (2.56 s, more than rule 1's 2.4 s) the first write comes after chunk 5:
    rule 1 counts from there (chunks 5-8), so the segment ends at 8 chunks, not at 4."""
    cfg = config()
    cfg.read_ahead_chunks = 4
    rec = ScriptedRecognizer(*model_and_tok, cfg, silent_writer)
    _, r = feed(rec, noise(6.0, -30))
    assert bounds(r) == [(0.0, 5.12, "no_text"), (5.12, 6.0, "end")]


def test_boundaries_do_not_depend_on_block_sizes_or_decode_timing(model_and_tok):
    """Scripted (rules 1 and 2) and the random-weight model (its own writes; rule 3 at 3 s): the same
    segments, text and word times whatever the block sizes and however often decode runs; the samples a
    segment keeps for a restart stay within about a chunk (plus the block not decoded yet)."""
    words = {2.56: "the dog", 3.84: "one two", 8.32: "alice"}
    x = np.concatenate([noise(9.0, -30), bursts(seed=2)])
    rng = np.random.default_rng(5)
    recs = [ScriptedRecognizer(*model_and_tok, config(), lambda t: words.get(t, "")),
            Recognizer(*model_and_tok, config(max_segment_s=3.0))]
    for rec in recs:
        tails: list[int] = []
        _, ref = feed(rec, x, (1600,), tails=tails)
        assert len(ref.segments) >= 5
        assert max(tails) <= 2 * rec.chunk_samples + 1600
        for sizes, every in ((rng.integers(1, 9000, 40).tolist(), 1), ((len(x),), 1), ((700,), 7)):
            _, r = feed(rec, x, sizes, every)
            assert bounds(r) == bounds(ref)
            assert [(g.text, [(w.word, w.audio_s) for w in g.words]) for g in r.segments] == \
                [(g.text, [(w.word, w.audio_s) for w in g.words]) for g in ref.segments]
    assert {g.reason for g in ref.segments} >= {"max_length"}


def test_a_segment_the_rules_end_restarts_fresh(model_and_tok):
    """The random-weight model, rule 3 at 2 s (3 chunks) over loud audio: segment k of the whole input
    decodes exactly as the first segment of the input cut at its start (fresh encoder caches, fresh LLM
    context, its own prompt); only the times are shifted."""
    rec = Recognizer(*model_and_tok, config(max_segment_s=2.0))
    x = bursts([(0.0, 7.0)], seed=4)
    _, whole = feed(rec, x)
    starts = [g for g in whole.segments[1:] if g.start_s > 0]
    assert len(starts) >= 2
    for seg in starts[:2]:
        start = round(seg.start_s * SAMPLE_RATE)
        _, cut = feed(rec, x[start:])
        first = cut.segments[0]
        assert (first.end_s + seg.start_s, first.reason) == (pytest.approx(seg.end_s), seg.reason)
        assert [(w.word, round(w.audio_s + seg.start_s, 6)) for w in first.words] == \
            [(w.word, round(w.audio_s, 6)) for w in seg.words]


def test_batch_mode_ends_segments_by_energy(model_and_tok):
    """Batch decoding has no incremental output: the energy rules end its segments, whatever endpoint.mode."""
    from endpoint_testutil import EP, expected_samples

    ep = EndpointConfig(silence_s=EP.silence_s, max_segment_s=EP.max_segment_s, threshold_db=EP.threshold_db)
    assert ep.mode == "decoder"
    rec = Recognizer(*model_and_tok, DecodeConfig(mode="batch", max_tokens_per_segment=8, endpoint=ep))
    _, r = feed(rec, bursts())
    assert [(round(g.start_s * SAMPLE_RATE), round(g.end_s * SAMPLE_RATE), g.reason) for g in r.segments] == \
        expected_samples()


def test_command_line_options_reach_the_endpoint_config():
    p = argparse.ArgumentParser()
    add_decode_arguments(p)
    args = p.parse_args(["--endpoint-mode", "energy", "--endpoint-rule1-silence", "3.0",
                         "--endpoint-rule2-silence", "0.9", "--max-segment", "15"])
    assert decode_overrides(args) == ["endpoint.mode=energy", "endpoint.rule1_silence_s=3.0",
                                      "endpoint.rule2_silence_s=0.9", "endpoint.max_segment_s=15.0"]
