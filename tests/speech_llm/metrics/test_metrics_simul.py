"""AL, LAAL, DAL, AP, StartOffset, EndOffset against hand-computed examples (SimulEval's definitions)."""

import pytest

from speech_llm.metrics.simul import (
    average_lagging,
    average_proportion,
    corpus_scores,
    differentiable_average_lagging,
    end_offset,
    length_adaptive_average_lagging,
    sentence_scores,
    start_offset,
)


def test_wait2_text_example():
    # |X| = 4 source words, wait-2: delays 2, 3, 4, 4; reference of 4 words
    d = [2, 3, 4, 4]
    # gamma = 1; tau = 3 (first delay reaching 4); ((2-0) + (3-1) + (4-2)) / 3
    assert average_lagging(d, 4, 4) == pytest.approx(2.0)
    assert length_adaptive_average_lagging(d, 4, 4) == pytest.approx(2.0)
    # d' = 2, 3, 4, 5 -> ((2-0) + (3-1) + (4-2) + (5-3)) / 4
    assert differentiable_average_lagging(d, 4) == pytest.approx(2.0)
    assert average_proportion(d, 4, 4) == pytest.approx(13 / 16)
    assert start_offset(d) == 2 and end_offset(d, 4) == 0


def test_hypothesis_longer_than_reference():
    # |X| = 4, 6 hypothesis words, reference of 3 words
    d = [1, 2, 2, 3, 4, 4]
    # AL: gamma = 3/4, tau = 5: (1+2+2+3+4 - (0+1+2+3+4) * 4/3) / 5 = (12 - 40/3) / 5
    al = average_lagging(d, 4, 3)
    assert al == pytest.approx(-4 / 15)
    # LAAL: gamma = max(6, 3)/4: (12 - 10 * 2/3) / 5
    laal = length_adaptive_average_lagging(d, 4, 3)
    assert laal == pytest.approx(16 / 15)
    assert laal != pytest.approx(al)
    # DAL uses the hypothesis length: step 2/3, d' = 1, 2, 8/3, 10/3, 4, 14/3
    assert differentiable_average_lagging(d, 4) == pytest.approx((53 / 3 - 10) / 6)
    # AP divides by the reference length (SimulEval), so it exceeds 1 here
    assert average_proportion(d, 4, 3) == pytest.approx(16 / 12)
    # without a reference length AL falls back to the hypothesis length and equals LAAL
    assert average_lagging(d, 4) == pytest.approx(laal)


def test_first_delay_beyond_source_length():
    # computation-aware delays of a 1000 ms utterance: the first word comes after the source ended
    d = [1200.0, 1500.0, 1600.0]
    assert average_lagging(d, 1000.0, 3) == pytest.approx(1200.0)
    assert length_adaptive_average_lagging(d, 1000.0, 3) == pytest.approx(1200.0)
    # step 1000/3: d' = 1200, 1533.3, 1866.7 -> (4600 - 1000) / 3
    assert differentiable_average_lagging(d, 1000.0) == pytest.approx(1200.0)
    assert average_proportion(d, 1000.0, 3) == pytest.approx(4300 / 3000)
    assert start_offset(d) == 1200.0
    assert end_offset(d, 1000.0) == pytest.approx(600.0)


def test_delays_that_never_reach_the_source_end():
    # tau = |Y| = 2; gamma = 2/5: ((1 - 0) + (2 - 2.5)) / 2
    assert average_lagging([1, 2], 5, 2) == pytest.approx(0.25)


def test_sentence_and_corpus_scores_skip_empty_hypotheses():
    a = sentence_scores([2, 3, 4, 4], 4, 4)
    b = sentence_scores([1, 2, 2, 3, 4, 4], 4, 3)
    assert a.AL == pytest.approx(2.0) and b.LAAL == pytest.approx(16 / 15)
    assert sentence_scores([], 4, 4) is None
    mean, n_empty = corpus_scores([a, None, b])
    assert n_empty == 1
    assert mean.AL == pytest.approx((2.0 - 4 / 15) / 2)
    assert mean.EndOffset == pytest.approx(0.0)
    assert corpus_scores([None]) == (None, 1)
    with pytest.raises(ValueError, match="empty"):
        average_lagging([], 4, 4)
