"""Append-only buffers for the group-streaming session: a KV cache that does not copy itself.

``transformers.DynamicCache`` grows with ``torch.cat`` at every forward, so each new token copies the whole
cache (O(L) per token, O(L^2) per stream). Group streaming only ever appends, so here every per-slot tensor
lives in a preallocated buffer that grows by doubling in blocks of :data:`BLOCK` slots: a forward writes
its new slots in place and the model sees a view of the filled part (amortised O(1) copying per slot).

* :class:`BlockCache` — a ``transformers.Cache`` of :class:`BlockLayer` (one per decoder layer), passed
  to the model as ``cache=``;
* :class:`GrowingBuffer` — the same for per-stream slot tensors ``(B, L)`` (slot validity, slot kind, the
  additive mask templates of :mod:`speech_llm.lm.masks`).

Usage:
    cache = BlockCache()
    out = lm(inputs_embeds=x, attention_mask=mask, position_ids=pos, cache=cache, use_cache=True)
    cache.layers[0].keys          # (B, H_kv, L, Dh): a view of the filled slots
"""

from __future__ import annotations

import torch
from transformers.cache_utils import Cache, DynamicLayer

BLOCK = 256
"""Slots allocated at a time (the first allocation, and the granularity of growth)."""


def _capacity(needed: int, current: int) -> int:
    grown = max(needed, 2 * current, BLOCK)
    return -(-grown // BLOCK) * BLOCK


class BlockLayer(DynamicLayer):
    """One decoder layer's keys and values, ``(B, H_kv, capacity, Dh)`` buffers filled from the left.

    ``keys`` / ``values`` are views of the filled slots, so everything that reads a ``DynamicLayer``
    (sequence length, mask sizes) works unchanged.
    """

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.device = key_states.device
        self.length = 0
        self._k = key_states.new_empty(*key_states.shape[:2], 0, key_states.shape[3])
        self._v = value_states.new_empty(*value_states.shape[:2], 0, value_states.shape[3])
        self.keys, self.values = self._k, self._v
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self.length + key_states.shape[-2]
        if end > self._k.shape[-2]:
            self._k = self._grow(self._k, end)
            self._v = self._grow(self._v, end)
        self._k[..., self.length:end, :] = key_states
        self._v[..., self.length:end, :] = value_states
        self.length = end
        self.keys, self.values = self._k[..., :end, :], self._v[..., :end, :]
        return self.keys, self.values

    def _grow(self, buf: torch.Tensor, needed: int) -> torch.Tensor:
        new = buf.new_empty(*buf.shape[:2], _capacity(needed, buf.shape[-2]), buf.shape[3])
        new[..., :self.length, :] = buf[..., :self.length, :]
        return new

    @property
    def capacity(self) -> int:
        return self._k.shape[-2] if self.is_initialized else 0


class BlockCache(Cache):
    """A ``transformers.Cache`` whose layers are :class:`BlockLayer` (created lazily, one per layer)."""

    def __init__(self):
        super().__init__(layer_class_to_replicate=BlockLayer)


class GrowingBuffer:
    """A ``(B, L)`` tensor that grows along L by appending columns into preallocated space.

    Args:
        batch_size, dtype, device: of the buffer.
        fill: the value of columns not written yet (never visible through :attr:`value`).
    """

    def __init__(self, batch_size: int, dtype: torch.dtype, device: torch.device, fill=0):
        self._buf = torch.full((batch_size, 0), fill, dtype=dtype, device=device)
        self._fill = fill
        self.length = 0

    @classmethod
    def of(cls, x: torch.Tensor, fill=0) -> GrowingBuffer:
        """A buffer holding ``x`` (B, L)."""
        out = cls(x.size(0), x.dtype, x.device, fill)
        out.append(x)
        return out

    @property
    def value(self) -> torch.Tensor:
        """(B, L) view of the filled columns."""
        return self._buf[:, :self.length]

    def append(self, cols: torch.Tensor) -> torch.Tensor:
        """Append ``cols`` (B, n); returns the new :attr:`value`."""
        end = self.length + cols.size(1)
        if end > self._buf.size(1):
            new = self._buf.new_full((self._buf.size(0), _capacity(end, self._buf.size(1))), self._fill)
            new[:, :self.length] = self._buf[:, :self.length]
            self._buf = new
        self._buf[:, self.length:end] = cols
        self.length = end
        return self.value
