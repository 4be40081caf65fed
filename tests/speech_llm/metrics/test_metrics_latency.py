"""Streaming ASR latency against a hand-computed example (ideal and computation-aware clocks)."""

import pytest

from speech_llm.metrics.latency import RefWord, computation_aware_time, summarize_latency, utterance_latency

# utterance A: fed as fast as possible (realtime=False); "small" substitutes "BIG", "again" is inserted
REF_A = [RefWord("HELLO", 0.5, 0.9), RefWord("BIG", 1.0, 1.3), RefWord("WORLD", 1.4, 2.0)]
EMIT_A = [("Hello", 0.96, 0.10), ("small", 1.60, 0.20), ("world.", 2.5, 0.35), ("again", 2.5, 0.36)]
# utterance B: fed in real time (wall clock already on the audio timeline), with its own compute time
REF_B = [RefWord("YES", 0.2, 0.6)]
EMIT_B = [("yes", 0.64, 0.9)]


def _utt_a():
    return utterance_latency(EMIT_A, REF_A, duration=2.5, wall_time=0.40, input_end_wall_s=0.30)


def _utt_b():
    return utterance_latency(EMIT_B, REF_B, duration=1.0, wall_time=1.2, compute_s=0.3, realtime=True)


def test_computation_aware_clock():
    assert computation_aware_time(1.0, 0.25, realtime=False) == pytest.approx(1.25)   # SimulEval "elapsed"
    assert computation_aware_time(1.0, 1.10, realtime=True) == pytest.approx(1.10)


def test_single_utterance_by_hand():
    a = _utt_a()
    assert (a.matched, a.unmatched_hyp, a.unmatched_ref) == (3, 1, 0)
    # matched: hello (hit), small/BIG (substitution), world (hit); "again" (insertion) has no delay
    assert a.delays_ideal == pytest.approx((0.96 - 0.9, 1.60 - 1.3, 2.5 - 2.0))
    # computation-aware = audio_s + wall_s: 1.06, 1.80, 2.85
    assert a.delays_ca == pytest.approx((1.06 - 0.9, 1.80 - 1.3, 2.85 - 2.0))
    assert a.first_token_ideal == pytest.approx(0.96 - 0.5)
    assert a.first_token_ca == pytest.approx(1.06 - 0.5)
    assert a.finalization_ca == pytest.approx(0.10)
    assert a.rtf == pytest.approx(0.40 / 2.5)


def test_realtime_utterance():
    b = _utt_b()
    assert b.delays_ideal == pytest.approx((0.04,))
    assert b.delays_ca == pytest.approx((0.9 - 0.6,))
    assert b.first_token_ca == pytest.approx(0.9 - 0.2)
    assert b.finalization_ca == pytest.approx(1.2 - 1.0)   # no input_end_wall_s: input ends at duration
    assert b.rtf == pytest.approx(0.3)                     # compute_s, not the wall time


def test_corpus_summary_by_hand():
    s = summarize_latency([_utt_a(), _utt_b()])
    assert s.first_token_ideal == pytest.approx((0.46 + 0.44) / 2)
    assert s.first_token_ca == pytest.approx((0.56 + 0.70) / 2)
    # pooled word delays: ideal [0.06, 0.30, 0.50, 0.04], ca [0.16, 0.50, 0.85, 0.30]
    assert s.delay_mean_ideal == pytest.approx(0.225)
    assert s.delay_mean_ca == pytest.approx(0.4525)
    # p90, linear interpolation at rank 0.9 * 3 = 2.7 of the sorted values
    assert s.delay_p90_ideal == pytest.approx(0.30 + 0.7 * 0.20)
    assert s.delay_p90_ca == pytest.approx(0.50 + 0.7 * 0.35)
    assert s.finalization_ca == pytest.approx(0.15)
    assert s.rtf == pytest.approx((0.40 + 0.3) / (2.5 + 1.0))
    assert (s.matched_words, s.unmatched_hyp_words, s.unmatched_ref_words) == (4, 1, 0)
    d = s.as_dict()
    assert d["finalization_s"] == {"ideal": None, "computation_aware": pytest.approx(0.15)}


def test_split_word_and_deletion():
    ref = [RefWord("TWENTY", 0.0, 0.4), RefWord("ONE", 0.4, 0.7), RefWord("CATS", 0.8, 1.2)]
    u = utterance_latency([("twenty-one", 1.0, 0.05)], ref, duration=1.5, wall_time=0.1)
    # "twenty-one" normalises to two tokens, both written at 1.0 s; CATS is deleted
    assert u.delays_ideal == pytest.approx((0.6, 0.3))
    assert (u.matched, u.unmatched_hyp, u.unmatched_ref) == (2, 0, 1)


def test_without_alignment_or_output():
    u = utterance_latency(EMIT_A, None, duration=2.5, wall_time=0.4)
    assert u.first_token_ideal is None and u.delays_ideal == () and u.finalization_ca is None
    assert u.rtf == pytest.approx(0.16)
    silent = utterance_latency([], REF_B, duration=1.0, wall_time=1.1, realtime=True)
    assert silent.first_token_ca is None and silent.rtf is None and silent.unmatched_ref == 1
    s = summarize_latency([silent])
    assert s.delay_mean_ideal is None and s.delay_p90_ca is None and s.rtf is None
