"""Streaming and batch targets: words, <wait> boundaries and per-row source visibility."""

import pytest

from speech_llm.targets import assign_words_to_chunks, batch_target, streaming_target

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
