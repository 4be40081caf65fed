"""MLP projector: encoder frames -> LLM embeddings, stacking ``k`` consecutive frames into one token.

Streaming: frames arrive chunk by chunk; :meth:`Projector.streaming_forward` keeps the frames that do not
yet fill a stack of ``k`` in its state, so projecting chunk by chunk equals projecting the whole sequence
(each frame is projected once). At input end, ``final=True`` zero-pads and flushes the last partial stack,
as :meth:`Projector.forward` does for a sequence whose length is not a multiple of ``k``.
"""

from __future__ import annotations

import torch
from torch import nn


class Projector(nn.Module):
    """Stack ``stack`` frames (concatenate features) then Linear -> GELU -> Linear.

    Args:
        input_dim: encoder output dim D_enc.
        llm_dim: LLM hidden size D_llm.
        stack: frames per LLM token k.
        hidden_dim: width of the hidden layer (default: llm_dim).
    """

    def __init__(self, input_dim: int, llm_dim: int, stack: int = 2, hidden_dim: int | None = None):
        super().__init__()
        if stack < 1:
            raise ValueError(f"stack must be >= 1, got {stack}")
        self.stack = stack
        hidden_dim = hidden_dim or llm_dim
        self.net = nn.Sequential(nn.Linear(input_dim * stack, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, llm_dim))

    def output_lengths(self, lens: torch.Tensor) -> torch.Tensor:
        """Frame lengths (B,) -> token lengths (B,): ``ceil(len / k)``."""
        return (lens + self.stack - 1) // self.stack

    def forward(self, x: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, D_enc), (B,) -> (B, ceil(T/k), D_llm), (B,). Frames past ``lens`` are zeroed first."""
        valid = torch.arange(x.size(1), device=x.device).unsqueeze(0) < lens.unsqueeze(1)
        x = x * valid.unsqueeze(2).to(x.dtype)
        return self.net(self._stack(x)), self.output_lengths(lens)

    def init_state(self, batch_size: int, input_dim: int, device=None, dtype=None) -> torch.Tensor:
        """Empty carry-over state: (B, 0, D_enc) frames waiting for a full stack."""
        return torch.zeros(batch_size, 0, input_dim, device=device, dtype=dtype)

    def streaming_forward(self, x: torch.Tensor, state: torch.Tensor,
                          final: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """New frames (B, t, D_enc) -> (new tokens (B, n, D_llm), new state).

        Only whole stacks are emitted; the remainder is kept in the state until more frames arrive or
        ``final`` flushes it (zero-padded).
        """
        x = torch.cat([state, x], dim=1)
        n = x.size(1) if final else (x.size(1) // self.stack) * self.stack
        ready, rest = x[:, :n], x[:, n:]
        if ready.size(1) == 0:
            return x.new_zeros(x.size(0), 0, self.net[-1].out_features), rest
        return self.net(self._stack(ready)), rest

    def _stack(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        pad = (-t) % self.stack
        if pad:
            x = torch.cat([x, x.new_zeros(b, pad, d)], dim=1)
        return x.reshape(b, (t + pad) // self.stack, d * self.stack)
