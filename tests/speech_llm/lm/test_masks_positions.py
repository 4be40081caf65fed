"""Masks and group position IDs on small hand-checked examples."""

import pytest
import torch

from speech_llm.lm.masks import batch_visibility, incremental_mask, streaming_mask, to_additive
from speech_llm.lm.positions import source_position_ids, target_position_ids, training_position_ids


def test_streaming_mask_matches_docstring_example():
    mask = streaming_mask(torch.tensor([3]), torch.tensor([3]), torch.tensor([[1, 1, 3]]), 3, 3)[0]
    expected = torch.tensor([
        [1, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0],
        [1, 1, 1, 0, 0, 0],
        [1, 0, 0, 1, 0, 0],
        [1, 0, 0, 1, 1, 0],
        [1, 1, 1, 1, 1, 1],
    ], dtype=torch.bool)
    assert torch.equal(mask, expected)


def test_padded_batch_mask_hides_padding_and_keeps_padded_rows_finite():
    # stream 1 has 2 source and 1 target token, padded to 3 + 2
    vis = batch_visibility(torch.tensor([3, 2]), 2)
    assert vis.tolist() == [[3, 3], [2, 2]]
    mask = streaming_mask(torch.tensor([3, 2]), torch.tensor([2, 1]), vis, 3, 2)
    m1 = mask[1].int().tolist()
    assert m1 == [
        [1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [0, 0, 1, 0, 0],  # padded source row: itself only
        [1, 1, 0, 1, 0],
        [0, 0, 0, 0, 1],  # padded target row: itself only
    ]
    add = to_additive(mask, torch.float32)
    assert add.shape == (2, 1, 5, 5)
    assert add[1, 0, 3, 2] == torch.finfo(torch.float32).min and add[1, 0, 3, 0] == 0


def test_incremental_source_rows_ignore_cached_target():
    cache_valid = torch.tensor([[True, True, True, False]])
    cache_is_source = torch.tensor([True, False, True, True])
    src = incremental_mask(cache_valid, cache_is_source, torch.tensor([[True, True]]), new_is_source=True)
    tgt = incremental_mask(cache_valid, cache_is_source, torch.tensor([[True, False]]), new_is_source=False)
    assert src[0].int().tolist() == [[1, 0, 1, 0, 1, 0], [1, 0, 1, 0, 1, 1]]
    assert tgt[0].int().tolist() == [[1, 1, 1, 0, 1, 0], [0, 0, 0, 0, 0, 1]]


def test_group_position_ids():
    assert training_position_ids(3, 2, 0, 1).tolist() == [[0, 1, 2, 0, 1]]
    assert training_position_ids(2, 3, 1000, 2).tolist() == [[0, 1, 1000, 1001, 1002]] * 2
    valid = torch.tensor([[True, True, True], [True, False, False]])
    assert source_position_ids(torch.tensor([4, 7]), valid).tolist() == [[4, 5, 6], [7, 7, 7]]
    assert target_position_ids(torch.tensor([0, 2]), valid, 10).tolist() == [[10, 11, 12], [12, 12, 12]]
    with pytest.raises(ValueError, match="phi"):
        training_position_ids(2, 2, -3, 1)


def test_incremental_mask_per_stream_kinds_matches_docstring_example():
    cache_valid = torch.tensor([[True, True, True, False], [True, True, True, True]])
    cache_is_source = torch.tensor([[True, True, False, False], [True, False, True, True]])
    mask = incremental_mask(cache_valid, cache_is_source, torch.tensor([[True, False], [True, True]]), True)
    assert mask.int().tolist() == [
        [[1, 1, 0, 0, 1, 0], [0, 0, 0, 0, 0, 1]],
        [[1, 0, 1, 1, 1, 0], [1, 0, 1, 1, 1, 1]],
    ]
    with pytest.raises(ValueError, match="cache_is_source"):
        incremental_mask(cache_valid, cache_is_source[:, :3], torch.tensor([[True], [True]]), True)
