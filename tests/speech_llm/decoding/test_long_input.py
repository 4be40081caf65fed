"""Input of any length through the Recognizer: endpointing inside decoding, bounded state, caps that say so,
context carry-over. The model is the tiny random-weight SpeechLLM (text arbitrary but deterministic)."""

from __future__ import annotations

import gc

import numpy as np
import pytest
import torch
from endpoint_testutil import EP, bursts, expected_samples, feed
from tiny_speech_llm import make_speech_llm

from encoders.constants import SAMPLE_RATE
from speech_llm.config import DecodeConfig, EndpointConfig
from speech_llm.decoding.recognizer import Recognizer, _Segment


@pytest.fixture(scope="module")
def model_and_tok(tiny_llm_dir):
    return make_speech_llm(tiny_llm_dir, chunk_frames=16)


def make_rec(model_and_tok, **kw) -> Recognizer:
    cfg = dict(max_tokens_per_read=2, max_tokens_per_segment=16, endpoint=EP) | kw
    return Recognizer(*model_and_tok, DecodeConfig(**cfg))


def bounds(result) -> list[tuple[int, int, str]]:
    return [(round(g.start_s * SAMPLE_RATE), round(g.end_s * SAMPLE_RATE), g.reason) for g in result.segments]


def test_endpoint_rules_cut_segments_inside_the_recognizer(model_and_tok):
    """Trailing silence after speech ends a segment, a long burst is cut at max_segment_s, the silence
    between bursts opens no segment; each segment got its own LLM context."""
    rec = make_rec(model_and_tok)
    s, r = feed(rec, bursts(), [1600])
    assert bounds(r) == expected_samples()
    assert [g.index for g in r.segments] == [0, 1, 2, 3]
    assert r.text == " ".join(g.text for g in r.segments if g.text)
    assert not s.open and s.finished                  # every segment's state is gone


def test_boundaries_and_text_do_not_depend_on_block_sizes_or_decode_timing(model_and_tok):
    rec = make_rec(model_and_tok)
    x = bursts()
    _, ref = feed(rec, x, [1600])
    rng = np.random.default_rng(3)
    for sizes, every in ((rng.integers(1, 9000, 40).tolist(), 1), ([len(x)], 1), ([700], 7), ([3000], 1000)):
        s, r = feed(rec, x, sizes, every)
        assert bounds(r) == bounds(ref)
        assert [(g.text, [(w.word, w.audio_s) for w in g.words]) for g in r.segments] == \
            [(g.text, [(w.word, w.audio_s) for w in g.words]) for g in ref.segments]


def test_long_silence_and_noise_produce_no_text_and_no_state(model_and_tok):
    """30 minutes of digital silence and -60 dBFS noise: no segment opens, nothing is decoded, and the
    stream holds only a pre-roll, at the start as at the end."""
    rec = make_rec(model_and_tok, endpoint=EndpointConfig())
    s = rec.create_stream()
    rng = np.random.default_rng(0)
    minute = SAMPLE_RATE * 60
    held = []
    for m in range(30):
        x = np.zeros(minute, np.float32) if m % 2 else (1e-3 * rng.standard_normal(minute)).astype(np.float32)
        for i in range(0, minute, SAMPLE_RATE * 5):
            s.accept_waveform(SAMPLE_RATE, x[i:i + SAMPLE_RATE * 5])
            rec.decode(s)
        ep = s.endpointer
        held.append(len(ep._idle) + len(ep._carry))
    s.input_finished()
    rec.decode(s)
    r = rec.get_result(s)
    assert r.text == "" and r.segments == [] and not s.trace and s.duration_s == 30 * 60
    assert max(held) <= ep.preroll_len + ep.frame and held[0] == held[-1]


def test_state_stays_bounded_over_minutes_of_speech_and_pauses(model_and_tok):
    """About 5 minutes of bursts and pauses fed like a live stream: the KV cache never holds more than one
    segment, and no tensor, segment state or resident memory accumulates."""
    rec = make_rec(model_and_tok)
    clip = bursts()
    s = rec.create_stream()
    kv_max, samples = 0, []
    block = SAMPLE_RATE // 10
    for _ in range(24):
        for i in range(0, len(clip), block):
            s.accept_waveform(SAMPLE_RATE, clip[i:i + block])
            rec.decode(s)
            kv_max = max(kv_max, s.session.num_forwarded if s.session else 0)
        gc.collect()
        types = [type(o) for o in gc.get_objects()]     # type(), not isinstance(): no deprecation warnings
        samples.append((types.count(_Segment), sum(issubclass(t, torch.Tensor) for t in types), _rss_mb()))
    s.input_finished()
    rec.decode(s)
    assert s.duration_s >= 300 and len(s.segments) == 4 * 24
    assert all(n <= 1 for n, _, _ in samples)                # at most the open segment
    tensors = [t for _, t, _ in samples]
    assert max(tensors[1:]) <= tensors[1] + 20, tensors
    rss = [r for _, _, r in samples]
    assert max(rss[2:]) - rss[1] < 40, rss                   # MB
    m = rec.model
    tokens_per_segment = int(np.ceil(EP.max_segment_s / rec.token_s)) + rec.tokens_per_chunk + 2
    bound = m.prompt_len + tokens_per_segment + len(m.tokens.end_ids) + rec.config.max_tokens_per_segment
    assert 0 < kv_max <= bound


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def test_token_caps_are_per_segment_and_never_silent(model_and_tok):
    """A random model rarely writes eos: with a small cap every segment stops at it, and says so; each
    segment gets the whole cap again (the cap is per segment, not per stream)."""
    rec = make_rec(model_and_tok, max_tokens_per_segment=6)
    _, r = feed(rec, bursts(), [1600])
    assert len(r.segments) == 4 and r.truncated and all(g.truncated for g in r.segments)
    assert all(len(g.text.split()) >= 1 for g in r.segments)  # each segment wrote up to its own cap
    loose = make_rec(model_and_tok, max_tokens_per_segment=400, max_tokens_per_read=1)
    s, r2 = feed(loose, bursts(), [1600])
    eos = loose.model.tokens.eos_id
    assert [t for t, _ in s.trace].count(eos) == sum(not g.truncated for g in r2.segments)


def test_context_words_go_into_the_next_segments_prompt(model_and_tok, monkeypatch):
    rec0 = make_rec(model_and_tok)
    rec3 = make_rec(model_and_tok, context_words=3)
    seen = {}
    original = rec3._context

    def spy(seg):
        ids = original(seg)
        seen[seg.index] = (ids, [w.word for g in seg.stream.segments for w in g.words])
        return ids

    monkeypatch.setattr(rec3, "_context", spy)
    x = bursts()
    _, r0 = feed(rec0, x, [1600])
    _, r3 = feed(rec3, x, [5000])
    assert r3.segments[0].text == r0.segments[0].text        # the first segment has no context
    assert seen[0] == ([], [])
    for i in range(1, 4):
        ids, earlier = seen[i]
        # the context is the last 3 words of ALL earlier segments, known before this segment's first read
        assert earlier == [w.word for g in r3.segments[:i] for w in g.words]
        expected = rec3.tokenizer(" " + " ".join(earlier[-3:]), add_special_tokens=False)["input_ids"] \
            if earlier else []
        assert ids == expected
    assert any(seen[i][0] for i in range(1, 4))
