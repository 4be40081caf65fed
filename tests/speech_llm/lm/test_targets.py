"""Streaming and batch targets: words, <wait> boundaries and per-row source visibility."""

import pytest

from speech_llm.lm.targets import assign_words_to_chunks, batch_target, streaming_target, target_word_ends

BOS, WAIT, EOS = 100, 101, 102


def test_docstring_example():
    t = streaming_target([[1], [2]], [1, 2], [6, 10], 11, bos_id=BOS, wait_id=WAIT, eos_id=EOS)
    assert t.labels == [1, WAIT, 2, WAIT, EOS]
    assert t.input_ids == [BOS, 1, WAIT, 2, WAIT]
    assert t.source_visible == [6, 6, 10, 10, 11]


def test_assign_words_with_lookahead_and_overflow():
    ends = [0.3, 0.64, 0.65, 1.9, 2.5]
    assert assign_words_to_chunks(ends, 0.64, 4) == [1, 1, 2, 3, 4]
    assert assign_words_to_chunks(ends, 0.64, 4, lookahead=1) == [2, 2, 3, 4, 5]
    assert assign_words_to_chunks(ends, 0.64, 3, lookahead=2) == [3, 3, 4, 4, 4]
    with pytest.raises(ValueError, match="lookahead"):
        assign_words_to_chunks(ends, 0.64, 4, lookahead=-1)


def test_multi_token_words_and_empty_chunks():
    # word A (2 tokens) in chunk 1, nothing in chunk 2, word B after the end
    t = streaming_target([[1, 2], [3]], [1, 4], [5, 8, 9], 10, bos_id=BOS, wait_id=WAIT, eos_id=EOS)
    assert t.labels == [1, 2, WAIT, WAIT, WAIT, 3, EOS]
    assert t.source_visible == [5, 5, 5, 8, 9, 10, 10]
    assert len(t.input_ids) == len(t.labels) == len(t.source_visible)


def test_batch_target_sees_everything():
    t = batch_target([[1, 2], [3]], 10, bos_id=BOS, eos_id=EOS)
    assert t.labels == [1, 2, 3, EOS] and t.input_ids == [BOS, 1, 2, 3]
    assert t.source_visible == [10] * 4


# --------------------------------------------------------------------------- translation: target word times

SRC = [0.5, 1.0, 1.5, 2.0]


def test_target_word_ends_docstring_examples_m_less_equal_and_greater_than_n():
    assert target_word_ends(SRC, 2) == [1.0, 2.0]                       # m < n: every other source word
    assert target_word_ends(SRC, 4) == SRC                              # m = n: one to one
    assert target_word_ends(SRC, 6) == [0.5, 1.0, 1.0, 1.5, 2.0, 2.0]   # m > n: some source words repeat
    assert target_word_ends(SRC, 1) == [2.0]                            # m = 1: waits for the whole source
    assert target_word_ends([0.7], 3) == [0.7, 0.7, 0.7]                # n = 1
    assert target_word_ends(SRC, 0) == []


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13])
@pytest.mark.parametrize("m", [1, 2, 3, 5, 8, 13, 21])
def test_target_word_ends_are_monotonic_proportional_and_end_on_the_last_source_word(n, m):
    src = [0.1 + 0.3 * i for i in range(n)]
    ends = target_word_ends(src, m)
    assert len(ends) == m
    assert ends == sorted(ends)                       # monotonic
    assert ends[-1] == src[-1]                        # last target word waits for the last source word
    for j, e in enumerate(ends):
        i = src.index(e)
        assert i / n < (j + 1) / m <= (i + 1) / n     # source word i is where target word j falls, in proportion


def test_target_word_ends_need_source_words():
    with pytest.raises(ValueError, match="source word"):
        target_word_ends([], 2)
    with pytest.raises(ValueError, match="num_target"):
        target_word_ends(SRC, -1)
