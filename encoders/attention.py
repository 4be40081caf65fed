"""Chunk attention masks and rotary self-attention of the streaming Conformer.

Masks (``True`` = may attend). Encoder frames are grouped into chunks of ``chunk_size`` frames; a frame
sees every frame of its own chunk and of the ``left_chunks`` chunks before it (all earlier chunks when
``left_chunks < 0``), never a later chunk. Example, 6 frames, ``chunk_size=2, left_chunks=1``
(rows attend to columns)::

            0  1  2  3  4  5
        0 [ 1  1  0  0  0  0 ]
        1 [ 1  1  0  0  0  0 ]
        2 [ 1  1  1  1  0  0 ]
        3 [ 1  1  1  1  0  0 ]
        4 [ 0  0  1  1  1  1 ]
        5 [ 0  0  1  1  1  1 ]

``chunk_size <= 0`` is full attention. In a padded batch, padded frames are never attended to, and a
padded row attends to itself only (its output is not used, the softmax stays finite).

Positions: rotary embeddings (RoPE) from the absolute frame index since the start of the stream. The
attention score between two frames then depends only on their distance, so a limited left context and a
streaming cache (keys stored already rotated) give the same scores as the full forward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def chunk_attention_mask(num_frames: int, chunk_size: int, left_chunks: int = -1,
                         device: torch.device | None = None) -> torch.Tensor:
    """(num_frames, num_frames) bool chunk mask (see the module docstring)."""
    if chunk_size <= 0:
        return torch.ones(num_frames, num_frames, dtype=torch.bool, device=device)
    chunk = torch.arange(num_frames, device=device) // chunk_size
    mask = chunk.unsqueeze(0) <= chunk.unsqueeze(1)
    if left_chunks >= 0:
        mask &= chunk.unsqueeze(0) >= chunk.unsqueeze(1) - left_chunks
    return mask


def padded_chunk_mask(lens: torch.Tensor, num_frames: int, chunk_size: int | torch.Tensor,
                      left_chunks: int) -> torch.Tensor:
    """(B, 1, T, T) bool mask of a padded batch: chunk mask, no attention to padding, padded rows see
    themselves. ``chunk_size`` is one size for the batch or (B,) sizes, one per utterance (a size <= 0 is
    full attention for that utterance)."""
    device = lens.device
    valid = torch.arange(num_frames, device=device).unsqueeze(0) < lens.unsqueeze(1)  # (B, T)
    if isinstance(chunk_size, torch.Tensor) and chunk_size.dim() == 1:
        sizes = chunk_size.to(device).long()
        idx = torch.arange(num_frames, device=device).unsqueeze(0) // sizes.clamp(min=1).unsqueeze(1)  # (B, T)
        chunks = idx.unsqueeze(1) <= idx.unsqueeze(2)                                              # (B, T, T)
        if left_chunks >= 0:
            chunks &= idx.unsqueeze(1) >= idx.unsqueeze(2) - left_chunks
        chunks |= (sizes <= 0).view(-1, 1, 1)
    else:
        chunks = chunk_attention_mask(num_frames, int(chunk_size), left_chunks, device).unsqueeze(0)
    mask = chunks & valid.unsqueeze(1)
    mask |= torch.eye(num_frames, dtype=torch.bool, device=device)
    return mask.unsqueeze(1)


def cached_chunk_mask(offset: torch.Tensor, cached: int, new: int) -> torch.Tensor:
    """(B, 1, 1, C + T) bool mask of ``T`` new frames over a streaming cache of ``C`` right-aligned slots, of
    which the last ``min(offset, C)`` are real (the rest are padding of a younger stream); every new frame
    sees all real slots and all new frames (they are one chunk). Example, ``C=3``, ``T=2``, offsets
    ``[1, 5]``::

        stream 0  [ 0  0  1 | 1  1 ]
        stream 1  [ 1  1  1 | 1  1 ]
    """
    real = torch.arange(cached, device=offset.device).unsqueeze(0) >= (cached - offset.clamp_max(cached)).unsqueeze(1)
    return torch.cat([real, real.new_ones(offset.size(0), new)], dim=1)[:, None, None, :]


class RotaryEmbedding(nn.Module):
    """cos/sin tables of rotary position embeddings for absolute positions (angles in float64)."""

    def __init__(self, head_dim: int, base: float = 10000.0) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"rotary embeddings need an even head dimension, got {head_dim}")
        self.head_dim = head_dim
        self.base = base

    def forward(self, positions: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """positions (T,) or (B, T) long -> cos, sin of shape (T, Dh) or (B, 1, T, Dh), broadcastable to
        (B, H, T, Dh)."""
        half = self.head_dim // 2
        inv_freq = self.base ** (-torch.arange(half, dtype=torch.float64, device=positions.device) / half)
        angles = positions.to(torch.float64).unsqueeze(-1) * inv_freq  # (..., T, Dh/2)
        angles = torch.cat([angles, angles], dim=-1)
        if positions.dim() == 2:
            angles = angles.unsqueeze(1)
        return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate (B, H, T, Dh) by the angles in cos/sin (rotate-half convention)."""
    half = x.size(-1) // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


class RotarySelfAttention(nn.Module):
    """Multi-head self-attention with rotary positions and an optional key/value cache."""

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"d_model={d_model} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.head_dim = d_model // num_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor,
                k_cache: torch.Tensor | None = None, v_cache: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Attend from the T new frames to ``cache ++ new`` frames.

        Args:
            x: (B, T, D) new frames.
            cos, sin: rotary tables of the new frames' positions.
            mask: bool, broadcastable to (B, H, T, C + T); True = may attend.
            k_cache, v_cache: (B, H, C, Dh) keys (already rotated) and values of earlier frames, or None.

        Returns:
            out (B, T, D), and the keys and values of ``cache ++ new`` (B, H, C + T, Dh).
        """
        b, t, _ = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if k_cache is not None:
            k, v = torch.cat([k_cache, k], dim=2), torch.cat([v_cache, v], dim=2)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(b, t, self.num_heads * self.head_dim)), k, v
