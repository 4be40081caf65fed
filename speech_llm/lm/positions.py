"""Group position IDs: the one home for how source and target tokens are numbered.

Group position encoding (GPE, Tong et al. 2025) gives source and target tokens position IDs from two
separate groups, each in its own arrival order:

    source tokens  s0 s1 s2 s3 s4          -> 0, 1, 2, 3, 4
    target tokens  t0 t1 t2                -> phi, phi+1, phi+2

RoPE is applied from these IDs unchanged. Because a source token's ID never depends on how much target
has been written (and vice versa), source that arrives late is appended to the KV cache without touching
anything already encoded. ``phi`` (the group start of the target) is an integer hyperparameter >= 0;
``phi = 0`` is the paper's default. With ``phi`` equal to the number of source tokens and all source read
before the first target token, the IDs are the ordinary ``0 .. L-1`` of a plain causal LM.
"""

from __future__ import annotations

import torch


def check_phi(phi: int) -> int:
    """Validate the target group start ``phi`` (an integer >= 0) and return it."""
    if isinstance(phi, bool) or not isinstance(phi, int) or phi < 0:
        raise ValueError(f"phi must be an integer >= 0, got {phi!r}")
    return phi


def source_position_ids(start: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Position IDs for a block of newly arrived source tokens.

    Args:
        start: (B,) long, number of source tokens each stream has read so far.
        valid: (B, n) bool, which of the ``n`` new slots hold a real token (padding is False).

    Returns:
        (B, n) long: ``start[b] + k`` for the k-th valid token of stream b; a padded slot repeats the ID of
        the last valid token before it (its value is irrelevant: padded slots are masked everywhere).
    """
    return _group_ids(start, valid)


def target_position_ids(start: torch.Tensor, valid: torch.Tensor, phi: int) -> torch.Tensor:
    """Position IDs for newly written target tokens: ``phi + start[b] + k`` (see source_position_ids).

    Args:
        start: (B,) long, number of target tokens each stream has written so far.
        valid: (B, m) bool, which of the ``m`` new slots hold a real token.
        phi: target group start (>= 0).

    Returns:
        (B, m) long.
    """
    return _group_ids(start, valid) + check_phi(phi)


def training_position_ids(source_len: int, target_len: int, phi: int, batch_size: int,
                          device: torch.device | None = None) -> torch.Tensor:
    """Position IDs of a padded ``[source | target]`` training sequence.

    Sources are right-padded to ``source_len`` and targets to ``target_len``; the target block always
    starts at ``phi`` whatever the true source length, exactly as in streaming.

    Example (``source_len=3, target_len=2, phi=0``)::

        [0, 1, 2, 0, 1]

    Returns:
        (B, source_len + target_len) long.
    """
    check_phi(phi)
    ids = torch.cat([torch.arange(source_len, device=device), phi + torch.arange(target_len, device=device)])
    return ids.unsqueeze(0).expand(batch_size, -1)


def _group_ids(start: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    counts = torch.cumsum(valid.long(), dim=1)  # (B, n): valid tokens up to and including slot k
    return start.long().unsqueeze(1) + (counts - 1).clamp(min=0)
