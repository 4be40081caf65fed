"""CTC head, greedy decoding and word-level forced alignment."""

import pytest
import torch

from encoders.ctc import AlignmentError, CTCHead, align_words, greedy_decode, min_frames
from speech_common.errors import UserError

SHIFT = 0.04


def _emissions(frame_labels: list[int], vocab: int, seed: int = 0) -> torch.Tensor:
    """(T, V) log-probs peaked on the given per-frame labels, with some noise."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(len(frame_labels), vocab, generator=g) * 0.5
    logits[torch.arange(len(frame_labels)), torch.tensor(frame_labels)] += 4.0
    return torch.log_softmax(logits, dim=-1)


def _layout(words: list[list[int]], seed: int):
    """Random frame layout: blanks (0) between words, each unit 1-3 frames, a blank between repeated units.
    Returns per-frame labels and each word's true (first frame, end frame)."""
    g = torch.Generator().manual_seed(seed)
    labels, bounds = [], []

    def rnd(lo, hi):
        return int(torch.randint(lo, hi + 1, (1,), generator=g))

    labels += [0] * rnd(0, 4)
    for word in words:
        start = len(labels)
        for i, unit in enumerate(word):
            if i > 0 and word[i - 1] == unit:
                labels.append(0)
            labels += [unit] * rnd(1, 3)
        bounds.append((start, len(labels)))
        labels += [0] * rnd(1, 5)
    return labels, bounds


@pytest.mark.parametrize("seed", range(5))
def test_forced_alignment_recovers_word_boundaries(seed):
    words = [[3, 4], [5], [6, 6, 7], [2, 8, 9, 1], [4]]
    labels, bounds = _layout(words, seed)
    times = align_words(_emissions(labels, vocab=10, seed=seed), words, SHIFT)
    assert len(times) == len(words)
    for (start, end), (s, e) in zip(times, bounds):
        assert abs(start - s * SHIFT) <= SHIFT + 1e-9
        assert abs(end - e * SHIFT) <= SHIFT + 1e-9
        assert start < end
    starts = [s for s, _ in times]
    assert starts == sorted(starts)


def test_forced_alignment_follows_the_transcript_not_the_argmax():
    # emissions say "3 4" in the first half and "5" later; aligning "5 3" must still place 5 before 3
    labels = [0, 3, 3, 0, 4, 4, 0, 0, 5, 5, 0, 0]
    times = align_words(_emissions(labels, vocab=6), [[5], [3]], SHIFT)
    assert times[0][1] <= times[1][0] + 1e-9


def test_forced_alignment_errors_are_clear():
    log_probs = _emissions([0, 3, 4, 0, 5, 0], vocab=6)
    with pytest.raises(AlignmentError, match="unit id 9.*not in the vocabulary"):
        align_words(log_probs, [[3], [9]], SHIFT)
    with pytest.raises(UserError, match="unit id 0"):  # blank is not a transcript unit
        align_words(log_probs, [[0]], SHIFT)
    with pytest.raises(ValueError, match="needs at least 7 frames.*have 6"):
        align_words(log_probs, [[3, 4, 5], [5, 1, 2]], SHIFT)
    with pytest.raises(AlignmentError, match="word 1 has no units"):
        align_words(log_probs, [[3], []], SHIFT)
    # repeats need a blank in between: 3 3 3 needs 5 frames, 6 are enough; 3 3 3 3 needs 7
    assert min_frames([3, 3, 3]) == 5
    assert len(align_words(log_probs, [[3, 3, 3]], SHIFT)) == 1
    with pytest.raises(AlignmentError, match="needs at least 7 frames"):
        align_words(log_probs, [[3, 3], [3, 3]], SHIFT)
    # exactly as many frames as units is enough
    assert len(align_words(log_probs, [[1, 2, 3], [4, 5, 1]], SHIFT)) == 2


def test_greedy_decode_collapses_repeats_and_blanks_within_lengths():
    labels = [[0, 3, 3, 0, 3, 4, 4, 0, 5], [2, 2, 0, 2, 1, 1, 1, 1, 1]]
    log_probs = torch.stack([_emissions(row, vocab=6, seed=i) for i, row in enumerate(labels)])
    assert greedy_decode(log_probs, torch.tensor([9, 4])) == [[3, 3, 4, 5], [2, 2]]
    head = CTCHead(8, vocab_size=6)
    assert head.greedy_decode(log_probs, torch.tensor([8, 9])) == [[3, 3, 4], [2, 2, 1]]


def test_ctc_head_shapes_and_loss():
    torch.manual_seed(0)
    head = CTCHead(16, vocab_size=7)
    enc = torch.randn(2, 20, 16)
    log_probs = head(enc)
    assert log_probs.shape == (2, 20, 7)
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(2, 20), atol=1e-5)
    targets = torch.tensor([[1, 2, 3], [4, 5, 0]])
    loss = head.loss(enc, torch.tensor([20, 12]), targets, torch.tensor([3, 2]))
    ref = torch.nn.functional.ctc_loss(log_probs.transpose(0, 1), targets, torch.tensor([20, 12]),
                                       torch.tensor([3, 2]), reduction="sum") / 2
    assert torch.allclose(loss, ref)
    # frames beyond enc_lens do not matter
    enc2 = enc.clone()
    enc2[1, 12:] = 100.0
    assert torch.allclose(head.loss(enc2, torch.tensor([20, 12]), targets, torch.tensor([3, 2])), loss)
    with pytest.raises(ValueError, match="blank"):
        CTCHead(16, vocab_size=7, blank=7)
