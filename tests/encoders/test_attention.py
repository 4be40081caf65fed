"""Masks of encoders.attention: the docstring examples, which the streaming equivalence tests rely on."""

import torch

from encoders.attention import cached_chunk_mask, chunk_attention_mask


def test_chunk_attention_mask_docstring_example():
    got = chunk_attention_mask(6, chunk_size=2, left_chunks=1).int().tolist()
    assert got == [[1, 1, 0, 0, 0, 0],
                   [1, 1, 0, 0, 0, 0],
                   [1, 1, 1, 1, 0, 0],
                   [1, 1, 1, 1, 0, 0],
                   [0, 0, 1, 1, 1, 1],
                   [0, 0, 1, 1, 1, 1]]


def test_cached_chunk_mask_docstring_example():
    """Right-aligned cache of 3 slots, 2 new frames: a stream at offset 1 has one real slot."""
    mask = cached_chunk_mask(torch.tensor([1, 5]), cached=3, new=2)
    assert mask.shape == (2, 1, 1, 5)
    assert mask[:, 0, 0].int().tolist() == [[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]]
    assert cached_chunk_mask(torch.tensor([0]), cached=0, new=3).int().tolist() == [[[[1, 1, 1]]]]
