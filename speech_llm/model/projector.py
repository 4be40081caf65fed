"""MLP projector: encoder frames -> LLM embeddings, stacking ``k`` consecutive frames into one token.

Streaming: frames arrive chunk by chunk; :meth:`Projector.streaming_forward` keeps the frames that do not
yet fill a stack of ``k`` in its state, so projecting chunk by chunk equals projecting the whole sequence
(each frame is projected once). At input end, ``final=True`` zero-pads and flushes the last partial stack,
as :meth:`Projector.forward` does for a sequence whose length is not a multiple of ``k``.

Context (``context_layers > 0``): after the MLP, a few pre-norm transformer layers (rotary self-attention +
feed-forward) let each token see the tokens around it, under the chunk mask of the streaming encoder
(:func:`encoders.attention.padded_chunk_mask`: a token sees its own chunk of ``chunk_tokens`` tokens and the
``left_chunks`` chunks before it, never a later chunk). Streaming then carries the layers' keys and values
(the encoders' state layout, :mod:`encoders.streaming_state`) and emits tokens a whole chunk at a time, so
chunk-by-chunk output equals the masked full forward, and every token is still projected once.
"""

from __future__ import annotations

import torch
from torch import nn

from encoders.attention import RotaryEmbedding, RotarySelfAttention, cached_chunk_mask, padded_chunk_mask
from encoders.streaming_state import COMMON_BATCH_DIM, stack_states, unstack_states


class ContextLayer(nn.Module):
    """Pre-norm transformer layer: rotary self-attention, then a GELU feed-forward (``2 x`` width)."""

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0):
        super().__init__()
        self.norm_att, self.norm_ffn = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.att = RotarySelfAttention(dim, num_heads, dropout)
        self.ffn = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor,
                k_cache: torch.Tensor | None = None, v_cache: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, T, D) -> (B, T, D), and the keys / values of ``cache ++ new`` (B, H, C + T, Dh)."""
        y, k, v = self.att(self.norm_att(x), cos, sin, mask, k_cache, v_cache)
        x = x + self.drop(y)
        return x + self.drop(self.ffn(self.norm_ffn(x))), k, v


class Projector(nn.Module):
    """Stack ``stack`` frames (concatenate features) then Linear -> GELU -> Linear.

    Args:
        input_dim: encoder output dim D_enc.
        llm_dim: LLM hidden size D_llm.
        stack: frames per LLM token k.
        hidden_dim: width of the hidden layer (default: llm_dim).
        context_layers: transformer layers after the MLP (0: none, each token is its own stack only).
        context_heads: their attention heads (``llm_dim`` must divide into an even head dim).
        chunk_tokens: their chunk in tokens (the streaming chunk's encoder frames / ``stack``); <= 0 is full
            attention (not streamable).
        left_chunks: chunks of left context they see (< 0: all).
        dropout: dropout in the context layers (training only).
    """

    def __init__(self, input_dim: int, llm_dim: int, stack: int = 2, hidden_dim: int | None = None,
                 context_layers: int = 0, context_heads: int = 4, chunk_tokens: int = 0, left_chunks: int = -1,
                 dropout: float = 0.0):
        super().__init__()
        if stack < 1:
            raise ValueError(f"stack must be >= 1, got {stack}")
        if context_layers < 0:
            raise ValueError(f"context_layers must be >= 0, got {context_layers}")
        self.stack = stack
        hidden_dim = hidden_dim or llm_dim
        self.net = nn.Sequential(nn.Linear(input_dim * stack, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, llm_dim))
        self.chunk_tokens, self.left_chunks = chunk_tokens, left_chunks
        self.context = nn.ModuleList(ContextLayer(llm_dim, context_heads, dropout) for _ in range(context_layers))
        if context_layers:
            self.num_heads = context_heads
            self.rotary = RotaryEmbedding(llm_dim // context_heads)
            self.context_norm = nn.LayerNorm(llm_dim)

    def output_lengths(self, lens: torch.Tensor) -> torch.Tensor:
        """Frame lengths (B,) -> token lengths (B,): ``ceil(len / k)``."""
        return (lens + self.stack - 1) // self.stack

    def forward(self, x: torch.Tensor, lens: torch.Tensor,
                chunk_tokens: int | torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, D_enc), (B,) -> (B, ceil(T/k), D_llm), (B,). Frames past ``lens`` are zeroed first.
        ``chunk_tokens``: the context layers' chunk (one size, or (B,) sizes; default the projector's)."""
        valid = torch.arange(x.size(1), device=x.device).unsqueeze(0) < lens.unsqueeze(1)
        x = x * valid.unsqueeze(2).to(x.dtype)
        out, out_lens = self.net(self._stack(x)), self.output_lengths(lens)
        if self.context and out.size(1):
            chunk = self.chunk_tokens if chunk_tokens is None else chunk_tokens
            mask = padded_chunk_mask(out_lens, out.size(1), chunk, self.left_chunks)
            cos, sin = self.rotary(torch.arange(out.size(1), device=out.device), out.dtype)
            for layer in self.context:
                out, _, _ = layer(out, cos, sin, mask)
            out = self.context_norm(out)
        return out, out_lens

    def init_state(self, batch_size: int, input_dim: int, device=None, dtype=None,
                   chunk_tokens: int | None = None) -> torch.Tensor | dict[str, torch.Tensor]:
        """Empty carry-over state: (B, 0, D_enc) frames waiting for a full stack. With context layers, a dict
        in the encoders' layout (:mod:`encoders.streaming_state`): ``feats`` (the frames waiting for a whole
        chunk), ``offset``, ``chunk_size`` (``chunk_tokens``, default the projector's), ``left_chunks``,
        ``att_k`` / ``att_v`` (layers, B, heads, cached tokens, head dim)."""
        feats = torch.zeros(batch_size, 0, input_dim, device=device, dtype=dtype)
        if not self.context:
            return feats
        chunk = self.chunk_tokens if chunk_tokens is None else chunk_tokens
        if chunk <= 0:
            raise ValueError(f"streaming the projector's context layers needs chunk_tokens >= 1, got {chunk}")
        dim = self.net[-1].out_features
        cache = self.left_chunks * chunk if self.left_chunks >= 0 else 0
        kv = torch.zeros(len(self.context), batch_size, self.num_heads, cache, dim // self.num_heads,
                         device=device, dtype=dtype)
        long = dict(dtype=torch.long, device=device)
        return {"feats": feats, "offset": torch.zeros(batch_size, **long),
                "chunk_size": torch.full((batch_size,), chunk, **long),
                "left_chunks": torch.full((batch_size,), self.left_chunks, **long), "att_k": kv, "att_v": kv.clone()}

    def stack_states(self, states: list) -> torch.Tensor | dict[str, torch.Tensor]:
        """One batched state from single-stream states (equal numbers of waiting frames)."""
        if not self.context:
            return torch.cat(states)
        return stack_states(states, COMMON_BATCH_DIM)

    def unstack_states(self, state) -> list:
        """Per-stream states (batch 1 each) from a batched state."""
        if not self.context:
            return [state[b:b + 1] for b in range(state.size(0))]
        return unstack_states(state, COMMON_BATCH_DIM)

    def streaming_forward(self, x: torch.Tensor, state,
                          final: bool = False) -> tuple[torch.Tensor, torch.Tensor | dict[str, torch.Tensor]]:
        """New frames (B, t, D_enc) -> (new tokens (B, n, D_llm), new state).

        Only whole stacks are emitted (with context layers: whole chunks of ``chunk_size`` tokens); the rest
        is kept in the state until more frames arrive or ``final`` flushes it (zero-padded).
        """
        if self.context:
            return self._streaming_context(x, state, final)
        x = torch.cat([state, x], dim=1)
        n = x.size(1) if final else (x.size(1) // self.stack) * self.stack
        ready, rest = x[:, :n], x[:, n:]
        if ready.size(1) == 0:
            return x.new_zeros(x.size(0), 0, self.net[-1].out_features), rest
        return self.net(self._stack(ready)), rest

    def _streaming_context(self, x: torch.Tensor, state: dict[str, torch.Tensor],
                           final: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        chunk = int(state["chunk_size"][0])
        step = chunk * self.stack
        buf = torch.cat([state["feats"], x.to(state["feats"].dtype)], dim=1)
        state, outs = dict(state), []
        while buf.size(1) >= step or (final and buf.size(1)):
            n = min(step, buf.size(1))
            out, state = self._context_chunk(self.net(self._stack(buf[:, :n])), state)
            outs.append(out)
            buf = buf[:, n:]
        state["feats"] = buf
        if not outs:
            return x.new_zeros(x.size(0), 0, self.net[-1].out_features), state
        return torch.cat(outs, dim=1), state

    def _context_chunk(self, h: torch.Tensor, state: dict[str, torch.Tensor], window: bool = True
                       ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The context layers over one chunk of tokens (B, c, D) against the cached keys and values
        (``att_k`` / ``att_v`` (layers, B, heads, C, head dim), ``offset`` (B,)). ``window``: keep the last
        ``left_chunks`` chunks of the new caches (False: return all ``C + c`` slots, as the ONNX step does)."""
        c, offset = h.size(1), state["offset"]
        cached = state["att_k"].size(3)
        cos, sin = self.rotary(offset.unsqueeze(1) + torch.arange(c, device=h.device), h.dtype)
        mask = cached_chunk_mask(offset, cached, c)
        ks, vs = [], []
        for i, layer in enumerate(self.context):
            h, k, v = layer(h, cos, sin, mask, state["att_k"][i], state["att_v"][i])
            if window and self.left_chunks >= 0:    # a fixed window of the last left_chunks chunks
                k, v = k[:, :, k.size(2) - cached:], v[:, :, v.size(2) - cached:]
            ks.append(k)
            vs.append(v)
        return self.context_norm(h), {**state, "offset": offset + c, "att_k": torch.stack(ks),
                                      "att_v": torch.stack(vs)}

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
        context: the base class's context-layer arguments (``context_layers``, ``chunk_tokens``, ...).
    """

    def __init__(self, input_dim: int, embedding: torch.Tensor, stack: int = 4, hidden_dim: int | None = None,
                 vocab_ids: torch.Tensor | None = None, temperature: float = 1.0, **context):
        llm_dim = embedding.size(1)
        super().__init__(input_dim, llm_dim, stack, hidden_dim, **context)
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

    def hidden(self, x: torch.Tensor, lens: torch.Tensor,
               chunk_tokens: int | torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, D_enc), (B,) -> ``h`` (B, N, D_llm) before the vocabulary, lengths (B,)."""
        return super().forward(x, lens, chunk_tokens)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """``h`` (B, N, D_llm) -> CTC logits (B, N, |V| + 1), blank last."""
        return (h @ self.classes().t()) / self.temperature

    def mix(self, h: torch.Tensor) -> torch.Tensor:
        """``h`` -> the posterior-weighted embeddings (B, N, D_llm) the LLM reads."""
        table = self.classes()
        return torch.softmax(h @ table.t() / self.temperature, dim=-1) @ table

    def forward(self, x: torch.Tensor, lens: torch.Tensor,
                chunk_tokens: int | torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        h, out_lens = self.hidden(x, lens, chunk_tokens)
        return self.mix(h), out_lens

    def nonblank(self, h: torch.Tensor) -> torch.Tensor:
        """``h`` (B, N, D_llm) -> (B, N): ``1 - p(blank)``, the CTC head's mass on text tokens per vector."""
        return 1.0 - torch.softmax(self.logits(h).float(), dim=-1)[..., self.blank_id]

    def streaming_forward(self, x: torch.Tensor, state, final: bool = False):
        out, _, rest = self.streaming_forward_mass(x, state, final)
        return out, rest

    def streaming_forward_mass(self, x: torch.Tensor, state, final: bool = False):
        """:meth:`streaming_forward` that also gives each new vector's non-blank mass (B, n)."""
        h, rest = super().streaming_forward(x, state, final)
        if not h.size(1):
            return h, h.new_zeros(h.size(0), 0), rest
        return self.mix(h), self.nonblank(h), rest
