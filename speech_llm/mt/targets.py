"""Word-level wait-k training targets for simultaneous text translation (DESIGN.md §2, the paper's policy).

Wait-k: target word ``j`` (1-based) is written once ``min(k + j - 1, n)`` of the ``n`` source words are
read (:func:`words_read`); reading word ``n`` also brings the source end marker
(:class:`~speech_llm.mt.framing.SourceGroups`).

Rows and visibility. The LLM input is ``[bos] + tokens[:-1]`` with ``tokens = word 1 .. word m, eos``;
row ``t`` predicts ``tokens[t]``. The rule, stated per **input** token (the row of each input token sees
what was read when that token was fed)::

    the bos row and the rows of the tokens of word j    see  prompt + min(k + j - 1, n) words
    the last row (the one predicting eos)               sees the whole source

Stated per predicted token (the "shift by one"): the row predicting a continuation token of word ``j``
sees word ``j``'s source; the row predicting the *first* token of word ``j + 1`` — the token with the
leading space — still sees word ``j``'s source; eos is predicted from the whole source. The first token of
a word is thus written with the previous word's visibility: the decoder learns that word ``j`` is complete
only when it writes that token, then reads one more source word before feeding it. This is the text form of
the ``<wait>`` rule of the speech targets (:mod:`speech_llm.lm.targets`): the token that closes a group is
written with that group's source and fed with the next one — it is what lets the incremental decoder
(:mod:`speech_llm.mt.decode`) forward every token exactly once and still compute exactly this training
forward. The decoder never writes eos before the whole source is read, hence eos sees all of it.

Example: prompt of 2 tokens, source words of 1, 2 and 1 tokens plus a 1-token end marker
(``ends = [2, 3, 5, 7]``), target words ``A1 A2 | B1 | C1`` (B1, C1 with a leading space), ``k = 1``::

    input     <bos>  A1   A2   B1   C1
    label      A1    A2   B1   C1  <eos>
    word        1     1    1    2    3
    visible     3     3    3    5    7        (ends[1], ends[1], ends[1], ends[2], whole source)

Batch mode (``k = None``): every row sees the whole source — the same as any ``k >= n``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from speech_llm.lm.targets import Target
from speech_llm.mt.framing import SourceGroups


def check_k(k: int | None) -> int | None:
    """Validate a wait-k lag: an integer >= 1, or ``None`` for batch mode."""
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise ValueError(f"k must be an integer >= 1 (or None for batch mode), got {k!r}")
    return k


def words_read(j: int, k: int | None, num_words: int) -> int:
    """Source words read when target word ``j`` (1-based) is written: ``min(k + j - 1, n)`` (``n`` if batch)."""
    check_k(k)
    return num_words if k is None else min(k + j - 1, num_words)


def wait_k_target(source: SourceGroups, word_tokens: Sequence[Sequence[int]], k: int | None, *, bos_id: int,
                  eos_id: int, add_eos: bool = True) -> Target:
    """Input ids, labels and per-row source visibility of one pair (see the module docstring).

    Args:
        source: the tokenized source (:func:`~speech_llm.mt.framing.source_groups`).
        word_tokens: token ids of each target word, in order (the first word without a leading space).
        k: the wait-k lag, or ``None`` for batch mode.
        bos_id, eos_id: target framing tokens.
        add_eos: end the target with eos (False for a decoder output cut by its token budget).

    Returns:
        :class:`~speech_llm.lm.targets.Target` with lists of equal length ``T`` (the number of target tokens,
        eos included). ``T = 0`` when there are no words and no eos.
    """
    n = source.num_words
    tokens: list[int] = []
    visible: list[int] = []
    for j, word in enumerate(word_tokens, start=1):
        seen = source.ends[words_read(j, k, n)]
        tokens += list(word)
        visible += [seen] * len(word)
    if add_eos:
        tokens.append(eos_id)
        visible.append(source.ends[n])
    if not tokens:
        return Target(input_ids=[], labels=[], source_visible=[])
    # visible[i] is for the row whose *input* is token i of [bos] + tokens (bos belongs to word 1):
    row_visible = [visible[0]] + visible[:-1] if word_tokens else list(visible)
    if add_eos:
        row_visible[-1] = source.ends[n]
    return Target(input_ids=[bos_id] + tokens[:-1], labels=tokens, source_visible=row_visible)


def collate_targets(sources: Sequence[SourceGroups], targets: Sequence[Target],
                    device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Pad a batch for :meth:`~speech_llm.lm.group_lm.GroupStreamingLM.forward`.

    Returns:
        source_ids (B, S) (padded with 0), source_lens (B,), input_ids (B, T) (padded with 0),
        labels (B, T) (padded with -100), target_lens (B,), source_visible (B, T) (padded with 0).
    """
    if len(sources) != len(targets) or not sources:
        raise ValueError(f"need as many targets as sources (>= 1), got {len(sources)} and {len(targets)}")
    b = len(sources)
    s_max = max(len(s.ids) for s in sources)
    t_max = max(1, max(len(t.labels) for t in targets))
    out = {
        "source_ids": torch.zeros(b, s_max, dtype=torch.long),
        "source_lens": torch.tensor([len(s.ids) for s in sources]),
        "input_ids": torch.zeros(b, t_max, dtype=torch.long),
        "labels": torch.full((b, t_max), -100, dtype=torch.long),
        "target_lens": torch.tensor([len(t.labels) for t in targets]),
        "source_visible": torch.zeros(b, t_max, dtype=torch.long),
    }
    for i, (s, t) in enumerate(zip(sources, targets)):
        out["source_ids"][i, :len(s.ids)] = torch.tensor(s.ids)
        n = len(t.labels)
        if n:
            out["input_ids"][i, :n] = torch.tensor(t.input_ids)
            out["labels"][i, :n] = torch.tensor(t.labels)
            out["source_visible"][i, :n] = torch.tensor(t.source_visible)
    return {name: x.to(device) for name, x in out.items()}
