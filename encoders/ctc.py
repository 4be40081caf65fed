"""CTC head on encoder frames: loss, greedy decoding, and word-level forced alignment.

Forced alignment (:func:`align_words`) uses :func:`torchaudio.functional.forced_align` to find the best
CTC path of a known transcript through the emissions, then reads each word's first and last token span
off that path. Times are encoder frame indices times ``frame_shift_s``: a word occupying frames
``[s, e)`` gets ``(s * frame_shift_s, e * frame_shift_s)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchaudio
from torch import nn

from speech_common.errors import UserError


class AlignmentError(UserError, ValueError):
    """The transcript cannot be aligned: unknown units, or too many units for the frames."""


class CTCHead(nn.Module):
    """Linear projection of encoder frames to CTC log-probabilities over ``vocab_size`` units."""

    def __init__(self, d_model: int, vocab_size: int, blank: int = 0) -> None:
        super().__init__()
        if not 0 <= blank < vocab_size:
            raise ValueError(f"blank={blank} is outside the vocabulary of size {vocab_size}")
        self.proj = nn.Linear(d_model, vocab_size)
        self.vocab_size = vocab_size
        self.blank = blank

    def forward(self, enc_out: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> log_probs (B, T, V) (float32)."""
        return F.log_softmax(self.proj(enc_out).float(), dim=-1)

    def loss(self, enc_out: torch.Tensor, enc_lens: torch.Tensor, targets: torch.Tensor,
             target_lens: torch.Tensor) -> torch.Tensor:
        """CTC loss summed over each utterance and averaged over the batch.

        Args:
            enc_out: (B, T, D) encoder frames; enc_lens: (B,) real lengths.
            targets: (B, L) unit ids padded with anything; target_lens: (B,).
        """
        log_probs = self(enc_out).transpose(0, 1)  # (T, B, V)
        loss = F.ctc_loss(log_probs, targets, enc_lens, target_lens, blank=self.blank, reduction="sum",
                          zero_infinity=True)
        return loss / enc_out.size(0)

    def greedy_decode(self, log_probs: torch.Tensor, lens: torch.Tensor) -> list[list[int]]:
        """Best path per frame, repeats merged, blanks removed. log_probs (B, T, V), lens (B,)."""
        return greedy_decode(log_probs, lens, self.blank)


def greedy_decode(log_probs: torch.Tensor, lens: torch.Tensor, blank: int = 0) -> list[list[int]]:
    """(B, T, V) log-probs, (B,) lengths -> one unit-id list per utterance."""
    best = log_probs.argmax(dim=-1).tolist()
    hyps = []
    for path, n in zip(best, lens.tolist()):
        hyp, prev = [], None
        for unit in path[:n]:
            if unit != prev and unit != blank:
                hyp.append(unit)
            prev = unit
        hyps.append(hyp)
    return hyps


def min_frames(units: list[int]) -> int:
    """Fewest CTC frames that can hold ``units``: one per unit plus a blank between repeats."""
    return len(units) + sum(a == b for a, b in zip(units, units[1:]))


def align_words(log_probs: torch.Tensor, word_token_ids: list[list[int]], frame_shift_s: float,
                blank: int = 0) -> list[tuple[float, float]]:
    """Word start/end times (seconds) of a transcript in one utterance's CTC emissions.

    Args:
        log_probs: (T, V) CTC log-probabilities of one utterance (no padding).
        word_token_ids: the transcript, one list of unit ids per word (each non-empty).
        frame_shift_s: seconds per frame of ``log_probs`` (``encoder.frame_shift_s``).
        blank: the blank id.

    Returns:
        one ``(start_s, end_s)`` per word, from the first frame of its first unit to the end of the last
        frame of its last unit.

    Raises:
        AlignmentError (a UserError and a ValueError): an empty word, a unit id outside the vocabulary
        or equal to blank, or a transcript too long for the frames.
    """
    if log_probs.dim() != 2:
        raise ValueError(f"align_words: log_probs must be (T, V), got shape {tuple(log_probs.shape)}")
    num_frames, vocab = log_probs.shape
    units: list[int] = []
    for w, word in enumerate(word_token_ids):
        if len(word) == 0:
            raise AlignmentError(f"align_words: word {w} has no units")
        for u in word:
            if not 0 <= u < vocab or u == blank:
                raise AlignmentError(f"align_words: word {w} holds unit id {u}, which is not in the "
                                     f"vocabulary (ids 0..{vocab - 1}, blank={blank})")
        units.extend(word)
    if not units:
        return []
    needed = min_frames(units)
    if needed > num_frames:
        raise AlignmentError(f"align_words: transcript of {len(units)} units needs at least {needed} frames "
                             f"(one per unit, a blank between repeats), the emissions have {num_frames}")
    targets = torch.tensor([units], dtype=torch.int32, device=log_probs.device)
    path, scores = torchaudio.functional.forced_align(log_probs.float().unsqueeze(0), targets, blank=blank)
    spans = torchaudio.functional.merge_tokens(path[0], scores[0].exp(), blank=blank)
    if len(spans) != len(units):  # merge_tokens gives one span per unit of the path
        raise RuntimeError(f"forced alignment gave {len(spans)} spans for {len(units)} units")
    times, first = [], 0
    for word in word_token_ids:
        start, end = spans[first].start, spans[first + len(word) - 1].end
        times.append((start * frame_shift_s, end * frame_shift_s))
        first += len(word)
    return times
