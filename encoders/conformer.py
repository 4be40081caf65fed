"""Chunked streaming Conformer encoder (U2-style): one masked forward for training, cached streaming for
inference, and the same output from both.

Architecture: :class:`~encoders.subsampling.Conv2dSubsampling` (×4, ×6 or ×8), then ``num_layers``
Conformer blocks::

    x = x + 1/2 FFN(LN(x))              macaron feed-forward (Swish)
    x = x + MHSA(LN(x))                 rotary positions, chunk attention mask (encoders.attention)
    x = x + Conv(LN(x))                 pointwise + GLU, causal depthwise conv, LN, Swish, pointwise
    x = x + 1/2 FFN(LN(x))
    x = LN(x)

Everything a frame sees is in its own chunk, in earlier chunks (at most ``left_chunks`` of them) or in
earlier frames (the causal convolution), so chunk-by-chunk streaming reproduces the masked forward.

Streaming states (:meth:`ConformerEncoder.init_states`) are a dict of plain tensors; ``B`` is the
number of streams, ``N`` layers, ``H`` heads, ``Dh`` head dim, ``K`` the conv kernel:

============  ======================  ==========================================================
key           shape                   meaning
============  ======================  ==========================================================
feats         (B, L, F)               features received but not yet consumed by the subsampling
offset        (B,)                    encoder frames emitted so far (rotary position of the next)
chunk_size    (B,)                    chunk size in encoder frames
left_chunks   (B,)                    left context in chunks (-1 = unlimited)
att_k, att_v  (N, B, H, C, Dh)        keys (rotated) and values of the last C frames, right-aligned;
                                      the last ``min(offset, C)`` slots are real. C is
                                      ``left_chunks * chunk_size``, or grows with the stream when
                                      the left context is unlimited.
conv          (N, B, D, K - 1)        the depthwise convolution's left context
============  ======================  ==========================================================

:func:`stack_states` batches streams (streams may be at different offsets; their ``feats`` buffers must
have the same length, which holds when every stream is fed the same block sizes, e.g. one chunk of
features per step after the first); :func:`unstack_states` splits them again. The chunk loop, the states
common to the streaming encoders and their stacking live in :mod:`encoders.streaming_state`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from encoders import streaming_state
from encoders.attention import RotaryEmbedding, RotarySelfAttention
from encoders.constants import FRAME_SHIFT_MS
from encoders.streaming_state import ChunkedStreamingEncoder, States
from encoders.subsampling import Conv2dSubsampling, subsampled_lengths


class FeedForward(nn.Sequential):
    """(B, T, D) -> (B, T, D): Linear, Swish, dropout, Linear, dropout."""

    def __init__(self, d_model: int, ffn_dim: int, dropout: float) -> None:
        super().__init__(nn.Linear(d_model, ffn_dim), nn.SiLU(), nn.Dropout(dropout),
                         nn.Linear(ffn_dim, d_model), nn.Dropout(dropout))


class CausalConvModule(nn.Module):
    """Conformer convolution module with a causal depthwise convolution (left context only)."""

    def __init__(self, d_model: int, kernel_size: int, dropout: float) -> None:
        super().__init__()
        self.context = kernel_size - 1
        self.pointwise_in = nn.Linear(d_model, 2 * d_model)
        self.depthwise = nn.Conv1d(d_model, d_model, kernel_size, groups=d_model)
        self.norm = nn.LayerNorm(d_model)
        self.pointwise_out = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, cache: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, D), cache (B, D, K-1) of the previous frames or None (zeros) -> (B, T, D), new cache."""
        y = F.glu(self.pointwise_in(x), dim=-1).transpose(1, 2)  # (B, D, T)
        if cache is None:
            y = F.pad(y, (self.context, 0))
        else:
            y = torch.cat([cache, y], dim=2)
        new_cache = y[:, :, y.size(2) - self.context:]
        y = self.norm(self.depthwise(y).transpose(1, 2))  # (B, T, D)
        y = self.pointwise_out(F.silu(y))
        return self.dropout(y), new_cache


class ConformerBlock(nn.Module):
    def __init__(self, d_model: int, num_heads: int, ffn_dim: int, conv_kernel: int, dropout: float) -> None:
        super().__init__()
        self.ff1_norm, self.ff1 = nn.LayerNorm(d_model), FeedForward(d_model, ffn_dim, dropout)
        self.att_norm, self.att = nn.LayerNorm(d_model), RotarySelfAttention(d_model, num_heads, dropout)
        self.conv_norm, self.conv = nn.LayerNorm(d_model), CausalConvModule(d_model, conv_kernel, dropout)
        self.ff2_norm, self.ff2 = nn.LayerNorm(d_model), FeedForward(d_model, ffn_dim, dropout)
        self.final_norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor,
                k_cache: torch.Tensor | None = None, v_cache: torch.Tensor | None = None,
                conv_cache: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, T, D) -> (B, T, D), keys/values of ``cache ++ x`` (B, H, C+T, Dh), new conv cache."""
        x = x + 0.5 * self.ff1(self.ff1_norm(x))
        y, k, v = self.att(self.att_norm(x), cos, sin, mask, k_cache, v_cache)
        x = x + self.dropout(y)
        y, conv_cache = self.conv(self.conv_norm(x), conv_cache)
        x = x + y
        x = x + 0.5 * self.ff2(self.ff2_norm(x))
        return self.final_norm(x), k, v, conv_cache


class ConformerEncoder(ChunkedStreamingEncoder):
    """Streaming Conformer: (B, T, F) fbank -> (B, T', D) encoder frames, ``T' ≈ T / subsampling``.

    Args:
        input_dim: feature dimension F (80 for fbank).
        d_model: model width D (= ``output_dim``).
        num_layers, num_heads: Conformer blocks and attention heads.
        subsampling: 4, 6 or 8.
        ffn_dim: feed-forward width (default 4 * d_model).
        conv_kernel: causal depthwise convolution kernel.
        dropout: dropout everywhere (attention weights included).
        dynamic_chunk: in training mode, ignore the ``chunk_size`` given to :meth:`forward` and draw one
            per batch: full attention with probability ``full_attention_prob``, else uniform in
            ``[1, max_dynamic_chunk]`` (WeNet's dynamic chunk training).
        dynamic_left_chunks: with ``dynamic_chunk``, also draw ``left_chunks`` uniformly in
            ``[0, max_left_chunks]`` (else the given ``left_chunks`` is used).
    """

    STATE_BATCH_DIM = {**streaming_state.COMMON_BATCH_DIM, "conv": 1}  # each key's batch dimension

    def __init__(self, input_dim: int, d_model: int, num_layers: int, num_heads: int, subsampling: int = 4,
                 ffn_dim: int | None = None, conv_kernel: int = 15, dropout: float = 0.1,
                 dynamic_chunk: bool = False, max_dynamic_chunk: int = 25, full_attention_prob: float = 0.5,
                 dynamic_left_chunks: bool = False, max_left_chunks: int = 8) -> None:
        super().__init__(dynamic_chunk, max_dynamic_chunk, full_attention_prob, dynamic_left_chunks, max_left_chunks)
        if conv_kernel < 1:
            raise ValueError(f"conv_kernel must be >= 1, got {conv_kernel}")
        self.input_dim = input_dim
        self.output_dim = d_model
        self.num_heads = num_heads
        self.subsampling_rate = subsampling
        self.embed = Conv2dSubsampling(input_dim, d_model, subsampling)
        self.embed_dropout = nn.Dropout(dropout)
        self.rotary = RotaryEmbedding(d_model // num_heads)
        self.layers = nn.ModuleList(
            ConformerBlock(d_model, num_heads, ffn_dim or 4 * d_model, conv_kernel, dropout)
            for _ in range(num_layers))

    @property
    def frame_shift_s(self) -> float:
        """Seconds between two encoder frames (0.04 for ×4 over 10 ms fbank)."""
        return self.subsampling_rate * FRAME_SHIFT_MS / 1000.0

    def output_lengths(self, feat_lens: torch.Tensor | int) -> torch.Tensor | int:
        """Encoder frames for feature lengths (B,) or int."""
        return subsampled_lengths(feat_lens, self.subsampling_rate)

    def make_frontend(self):
        """A new streaming front end that gives this encoder's features: Kaldi fbank
        (:class:`~encoders.frontend.StreamingFbank`; global CMVN, if any, is applied after it)."""
        from encoders.frontend import StreamingFbank

        return StreamingFbank()

    # ---------------------------------------------------------------- hooks of forward / _forward_chunk
    def _embed(self, feats: torch.Tensor, feat_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.embed_dropout(self.embed(feats))
        return x, self.output_lengths(feat_lens.to(x.device))

    def _embed_chunk(self, feats: torch.Tensor, states: States, final: bool) -> tuple[torch.Tensor, States]:
        # the subsampling drops features that do not fill its receptive field: nothing is cached
        return self.embed_dropout(self.embed(feats)), {}

    def _positions(self, x: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, tuple]:
        return x, self.rotary(positions, x.dtype)  # rotary (cos, sin), applied inside the attention

    def _layer_step(self, i: int, x: torch.Tensor, pos: tuple, mask: torch.Tensor,
                    states: States | None) -> tuple[torch.Tensor, States]:
        cos, sin = pos
        if states is None:
            x, _, _, _ = self.layers[i](x, cos, sin, mask)
            return x, {}
        x, k, v, conv = self.layers[i](x, cos, sin, mask, states["att_k"][i], states["att_v"][i], states["conv"][i])
        return x, {"att_k": k, "att_v": v, "conv": conv}

    # ---------------------------------------------------------------- streaming
    def init_states(self, batch_size: int, chunk_size: int, left_chunks: int = -1) -> States:
        """Empty states of ``batch_size`` new streams (see the module docstring)."""
        p = next(self.parameters())
        states = self._new_states(batch_size, chunk_size, left_chunks, p)
        conv_context = self.layers[0].conv.context if self.layers else 0
        states["conv"] = p.new_zeros(len(self.layers), batch_size, self.output_dim, conv_context)
        return states


# Module-level, as the encoders are used: ``stack_states(list_of_states)``, ``unstack_states(states)``.
stack_states = ConformerEncoder.stack_states
unstack_states = ConformerEncoder.unstack_states
