"""Attention masks of the group-streaming LLM: the one home for who may attend to whom.

Boolean masks here use ``True`` = "may attend". :func:`to_additive` turns them into the float 4D masks
that Hugging Face models take (0 where allowed, the dtype's minimum elsewhere).

Training (:func:`streaming_mask`) works on one ``[source | target]`` sequence per utterance. Source rows
see earlier source only (causal), never target; target row ``t`` sees the first ``source_visible[t]``
source tokens and target tokens ``<= t``. Example with 3 source tokens ``s0 s1 s2``, 3 target tokens and
``source_visible = [1, 1, 3]`` (rows attend to columns)::

             s0 s1 s2 t0 t1 t2
        s0 [  1  0  0  0  0  0 ]
        s1 [  1  1  0  0  0  0 ]
        s2 [  1  1  1  0  0  0 ]
        t0 [  1  0  0  1  0  0 ]
        t1 [  1  0  0  1  1  0 ]
        t2 [  1  1  1  1  1  1 ]

Batch mode is ``source_visible = source_len`` for every target token (:func:`batch_visibility`). In a
padded batch, padded source and target slots are never attended to; a padded row attends to itself only
(so softmax stays finite; its output is never used).

Streaming (:func:`incremental_mask`) builds the rows of a block of new tokens against the KV cache, with
the same rule: a new source token sees cached *source* and earlier new source; a new target token sees
everything cached and earlier new target. Appending in this way reproduces the training mask exactly.
A block may mix kinds (``new_is_source`` (B, n)): the recognizer reads a chunk and feeds the pending
``<wait>`` token in ONE forward, ``[source x n][target]``: the source rows see cached source and earlier new
source, the target row sees everything (the new chunk included), exactly as if they came one after the
other. Slot kinds are per stream, ``cache_is_source`` (B, L): in a batch merged from separately decoded streams
the same cache slot can hold source in one stream, target in another, or nothing (padding). Example: two
streams, cache slots ``c0..c3`` (stream 0: ``s s t -``, stream 1: ``s t s s``; ``-`` = invalid), then a
new source block of 2 tokens, the second one padding for stream 0 (rows attend to columns)::

                    c0 c1 c2 c3 n0 n1
        stream 0 n0 [ 1  1  0  0  1  0 ]      target c2 and invalid c3 hidden
                 n1 [ 0  0  0  0  0  1 ]      padded row: itself only
        stream 1 n0 [ 1  0  1  1  1  0 ]      target c1 hidden
                 n1 [ 1  0  1  1  1  1 ]
"""

from __future__ import annotations

import torch


def lengths_to_valid(lens: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B,) lengths -> (B, max_len) bool, True at real (unpadded) positions."""
    return torch.arange(max_len, device=lens.device).unsqueeze(0) < lens.unsqueeze(1)


def batch_visibility(source_lens: torch.Tensor, target_len: int) -> torch.Tensor:
    """``source_visible`` for batch mode: every target token sees the whole source. Returns (B, T) long."""
    return source_lens.long().unsqueeze(1).expand(-1, target_len).clone()


def check_visibility(source_visible: torch.Tensor, source_lens: torch.Tensor,
                     target_lens: torch.Tensor) -> None:
    """Raise ``ValueError`` naming ``source_visible`` when it is negative or beyond a stream's source length
    (padded target positions are ignored)."""
    if source_visible.dim() != 2 or source_visible.size(0) != source_lens.size(0):
        raise ValueError(f"source_visible must have shape (B, T) with B={source_lens.size(0)}, "
                         f"got {tuple(source_visible.shape)}")
    real = lengths_to_valid(target_lens, source_visible.size(1))
    too_big = (source_visible > source_lens.unsqueeze(1)) & real
    if too_big.any():
        b, t = (int(i) for i in too_big.nonzero()[0])
        raise ValueError(f"source_visible[{b}, {t}] = {int(source_visible[b, t])} exceeds the source length "
                         f"{int(source_lens[b])} of batch element {b}")
    if ((source_visible < 0) & real).any():
        raise ValueError("source_visible must be >= 0")


def streaming_mask(source_lens: torch.Tensor, target_lens: torch.Tensor, source_visible: torch.Tensor,
                   source_len: int, target_len: int) -> torch.Tensor:
    """Training mask of a padded ``[source | target]`` batch (see the module docstring).

    Args:
        source_lens: (B,) real source lengths (<= source_len).
        target_lens: (B,) real target lengths (<= target_len).
        source_visible: (B, target_len) long, how many source tokens each target token may attend to.
        source_len: padded source length S.
        target_len: padded target length T.

    Returns:
        (B, S+T, S+T) bool, True = may attend.
    """
    check_visibility(source_visible, source_lens, target_lens)
    device = source_lens.device
    src_valid = lengths_to_valid(source_lens, source_len)  # (B, S)
    tgt_valid = lengths_to_valid(target_lens, target_len)  # (B, T)
    s_causal = torch.ones(source_len, source_len, dtype=torch.bool, device=device).tril()
    t_causal = torch.ones(target_len, target_len, dtype=torch.bool, device=device).tril()

    src_rows = torch.cat([
        s_causal.unsqueeze(0) & src_valid.unsqueeze(1),
        torch.zeros(source_lens.size(0), source_len, target_len, dtype=torch.bool, device=device),
    ], dim=2)  # (B, S, S+T)
    sees_src = torch.arange(source_len, device=device).view(1, 1, -1) < source_visible.unsqueeze(2)
    tgt_rows = torch.cat([
        sees_src & src_valid.unsqueeze(1),
        t_causal.unsqueeze(0) & tgt_valid.unsqueeze(1),
    ], dim=2)  # (B, T, S+T)
    mask = torch.cat([src_rows, tgt_rows], dim=1)
    return _self_for_padded_rows(mask, torch.cat([src_valid, tgt_valid], dim=1))


def incremental_mask(cache_valid: torch.Tensor, cache_is_source: torch.Tensor, new_valid: torch.Tensor,
                     new_is_source: bool | torch.Tensor) -> torch.Tensor:
    """Rows for a block of new tokens appended after a KV cache (the reference form; the session builds the
    same additive mask from per-slot templates with :func:`block_mask`).

    Args:
        cache_valid: (B, L) bool, cached slots holding a real token.
        cache_is_source: (B, L) bool (or (L,), shared by the batch), cached slots holding a source token.
        new_valid: (B, n) bool, new slots holding a real token.
        new_is_source: whether the new block is source (its rows then ignore target), or (B, n) bool per slot.

    Returns:
        (B, n, L+n) bool, True = may attend.
    """
    if cache_is_source.shape not in (cache_valid.shape, cache_valid.shape[1:]):
        raise ValueError(f"cache_is_source must have shape (B, L) = {tuple(cache_valid.shape)} or (L,), "
                         f"got {tuple(cache_is_source.shape)}")
    b, n = new_valid.shape
    kinds = torch.as_tensor(new_is_source, device=new_valid.device).expand(b, n)
    valid = torch.cat([cache_valid, new_valid], dim=1)
    is_source = torch.cat([cache_is_source.expand_as(cache_valid) & cache_valid, kinds & new_valid], dim=1)
    # a source row sees valid source columns, a target row every valid column; nothing later in the block
    cols = torch.where(kinds.unsqueeze(2), is_source.unsqueeze(1), valid.unsqueeze(1))   # (B, n, L+n)
    causal = torch.ones(n, n, dtype=torch.bool, device=new_valid.device).tril()
    cols[:, :, cache_valid.size(1):] &= causal
    return _self_for_padded_rows(cols, valid, row_offset=cache_valid.size(1))


def column_bias(valid: torch.Tensor, is_source: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Additive templates of new slots (B, n): for rows of target tokens (0 where the slot is valid) and of
    source tokens (0 where it is valid source); ``finfo(dtype).min`` elsewhere. :func:`block_mask` reads them."""
    low = torch.finfo(dtype).min
    zero = torch.zeros((), dtype=dtype, device=valid.device)
    return torch.where(valid, zero, low), torch.where(valid & is_source, zero, low)


def block_mask(bias_all: torch.Tensor, bias_src: torch.Tensor, new_valid: torch.Tensor,
               new_is_source: torch.Tensor) -> torch.Tensor:
    """The additive mask of a block of ``n`` new slots, from the templates of all ``L + n`` slots
    (:func:`column_bias`, kept append-only by the session, the new block's columns included).

    Equals ``to_additive(incremental_mask(...))`` for the real rows. A single target token (every write
    after the first) is a view of the template: nothing is built. A padded row of a multi-token block attends
    to its own slot only; a padded single-token row attends to the stream's valid slots (its output is never
    used and ``finfo.min`` keeps every softmax finite).

    Args:
        bias_all, bias_src: (B, L + n) float templates.
        new_valid, new_is_source: (B, n) bool.

    Returns:
        (B, 1, n, L + n) float.
    """
    b, n = new_valid.shape
    total = bias_all.size(1)
    if n == 1 and not bool(new_is_source.any()):
        return bias_all.view(b, 1, 1, total)
    rows = torch.where(new_is_source.unsqueeze(2), bias_src.unsqueeze(1), bias_all.unsqueeze(1)).clone()
    low = torch.finfo(rows.dtype).min
    later = torch.ones(n, n, dtype=torch.bool, device=rows.device).triu(1)
    rows[:, :, total - n:].masked_fill_(later, low)
    padded = ~new_valid
    if bool(padded.any()):
        rows.masked_fill_(padded.unsqueeze(2), low)
        idx = padded.nonzero()
        rows[idx[:, 0], idx[:, 1], total - n + idx[:, 1]] = 0
    return rows.unsqueeze(1)


def to_additive(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, Q, K) bool -> (B, 1, Q, K) float: 0 where allowed, ``finfo(dtype).min`` elsewhere."""
    out = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
    out.masked_fill_(~mask, torch.finfo(dtype).min)
    return out.unsqueeze(1)


def _self_for_padded_rows(mask: torch.Tensor, valid: torch.Tensor, row_offset: int = 0) -> torch.Tensor:
    """Let each padded row attend to its own slot only, so no row is fully masked (no NaN in softmax)."""
    n = mask.size(1)
    rows = torch.arange(n, device=mask.device)
    row_valid = valid[:, row_offset:row_offset + n]  # (B, n)
    mask = mask & row_valid.unsqueeze(2)
    mask[:, rows, rows + row_offset] |= ~row_valid
    return mask
