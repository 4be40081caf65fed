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


class VocabProjector(Projector):
    """A projector whose output lives in the LLM's own embedding space: stacked frames -> MLP -> ``h``, CTC
    logits over the LLM's vocabulary through its frozen input embedding matrix ``E`` (tied with the LM head in
    SmolLM2), and, for the LLM, the posterior-weighted embedding (LegoSLM's interface)::

        h      = MLP(stack(frames))                       (B, N, D_llm)
        logits = [h E_V^T, h b] / tau                     (B, N, |V| + 1)    b: the learned blank row
        out    = softmax(logits) [E_V; b]                 (B, N, D_llm)

    ``V`` is a subset of the vocabulary (``vocab_ids``; all of it by default) and blank is the last class.
    Every output vector is a convex mix of the LLM's own token embeddings (and the blank row), so the LLM
    reads something it already knows from the first step; pretrained with CTC (``speech-llm train --stage
    proj``), it starts aligned. Streaming is the base class's: each stack is projected once.

    Args:
        embedding: (V_all, D_llm) the LLM's input embedding matrix; held by reference (not saved with the
            projector's state: the LLM's checkpoint has it) and never trained here.
        vocab_ids: (|V|,) the token ids of the CTC classes (default all ``V_all``).
        temperature: ``tau``; lower makes the mix closer to the single most likely token.
    """

    def __init__(self, input_dim: int, embedding: torch.Tensor, stack: int = 4, hidden_dim: int | None = None,
                 vocab_ids: torch.Tensor | None = None, temperature: float = 1.0):
        llm_dim = embedding.size(1)
        super().__init__(input_dim, llm_dim, stack, hidden_dim)
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        ids = torch.arange(embedding.size(0)) if vocab_ids is None else vocab_ids.long().cpu()
        self.register_buffer("vocab_ids", ids)
        self.blank = nn.Parameter(torch.randn(llm_dim) * float(embedding.detach().float().std()))
        self.temperature = temperature
        self._embedding = [embedding]  # a list: a plain reference, not a registered parameter or buffer

    @property
    def blank_id(self) -> int:
        """The CTC blank's class index (the last one)."""
        return int(self.vocab_ids.numel())

    def classes(self) -> torch.Tensor:
        """(|V| + 1, D_llm): the embeddings of the CTC classes, blank row last."""
        emb = self._embedding[0]
        table = emb[self.vocab_ids.to(emb.device)].detach()
        return torch.cat([table.to(self.blank.dtype), self.blank.unsqueeze(0)])

    def hidden(self, x: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, D_enc), (B,) -> ``h`` (B, N, D_llm) before the vocabulary, lengths (B,)."""
        return super().forward(x, lens)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """``h`` (B, N, D_llm) -> CTC logits (B, N, |V| + 1), blank last."""
        return (h @ self.classes().t()) / self.temperature

    def mix(self, h: torch.Tensor) -> torch.Tensor:
        """``h`` -> the posterior-weighted embeddings (B, N, D_llm) the LLM reads."""
        table = self.classes()
        return torch.softmax(h @ table.t() / self.temperature, dim=-1) @ table

    def forward(self, x: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, out_lens = self.hidden(x, lens)
        return self.mix(h), out_lens

    def streaming_forward(self, x: torch.Tensor, state: torch.Tensor,
                          final: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        h, rest = super().streaming_forward(x, state, final)
        return (self.mix(h) if h.size(1) else h), rest
