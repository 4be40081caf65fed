"""Run any Hugging Face decoder-only LLM as a group-streaming processor.

:class:`GroupStreamingLM` wraps a causal LM that accepts ``inputs_embeds``, ``position_ids`` and a 4D
attention mask (Qwen2, Llama, ...). It has two faces that compute the same function:

* **training forward** — one pass over ``[source | target]`` with group position IDs
  (:mod:`speech_llm.positions`) and the streaming mask (:mod:`speech_llm.masks`), returning the logits at
  the target positions;
* **incremental session** (:meth:`GroupStreamingLM.start`) — ``read`` appends source embeddings to the KV
  cache (they attend to earlier source only, never to target already written), ``write`` appends target
  tokens and returns their logits. Every token is forwarded exactly once; nothing is re-encoded.

Token/row convention: ``target_ids[t]`` is the *input* token at target slot ``t`` and ``logits[:, t]``
predicts the token after it. ``source_visible[b, t]`` is how much source the row of input token ``t`` sees,
i.e. what was available when the *next* token was written. In a session that is simply "how much was read
before ``write`` was called with that token".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from transformers import DynamicCache

from speech_llm.masks import batch_visibility, incremental_mask, lengths_to_valid, streaming_mask, to_additive
from speech_llm.positions import check_phi, source_position_ids, target_position_ids, training_position_ids


@dataclass
class GroupLMOutput:
    """Logits at the target positions, (B, T, V)."""

    logits: torch.Tensor


@dataclass
class WriteResult:
    """What a greedy write produced.

    tokens: per stream, the tokens generated in this call, in order; the last one is a stop token when the
        stream stopped on one.
    pending: (B,) long, the last generated token of each stream, not yet fed to the model. Pass it as
        ``first_ids`` of the next greedy write (after the next ``read``), so its row sees the new source.
    stopped: (B,) bool, True where the stream ended on a stop token (False: the per-call cap was reached).
    """

    tokens: list[list[int]]
    pending: torch.Tensor
    stopped: torch.Tensor


class GroupStreamingLM(nn.Module):
    """Group-streaming wrapper around a Hugging Face causal LM.

    Args:
        causal_lm: a ``PreTrainedModel`` (or a peft model around one) taking ``inputs_embeds``,
            ``position_ids``, a 4D float ``attention_mask``, ``past_key_values`` and ``logits_to_keep``.
        phi: position ID of the first target token (group start), an integer >= 0.
    """

    def __init__(self, causal_lm: nn.Module, phi: int = 0):
        super().__init__()
        self.lm = causal_lm
        self.phi = check_phi(phi)

    @property
    def hidden_size(self) -> int:
        return self.lm.config.hidden_size

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Token ids (B, T) -> embeddings (B, T, D)."""
        return self.lm.get_input_embeddings()(ids)

    def forward(self, source_embeds: torch.Tensor, source_lens: torch.Tensor, target_ids: torch.Tensor,
                target_lens: torch.Tensor, source_visible: torch.Tensor | None = None) -> GroupLMOutput:
        """One forward pass over a padded ``[source | target]`` batch.

        Args:
            source_embeds: (B, S, D) source embeddings, right-padded.
            source_lens: (B,) real source lengths.
            target_ids: (B, T) input target tokens, right-padded (padding values are ignored).
            target_lens: (B,) real target lengths.
            source_visible: (B, T) how many source tokens each target row sees; ``None`` = batch mode
                (the whole source).

        Returns:
            :class:`GroupLMOutput` with logits (B, T, V) at the target positions.
        """
        batch, src_len, _ = self._check_embeds(source_embeds, "source_embeds")
        if target_ids.dim() != 2:
            raise ValueError(f"target_ids must have shape (B, T), got {tuple(target_ids.shape)}")
        tgt_len = target_ids.size(1)
        named = (("source_lens", source_lens), ("target_ids", target_ids), ("target_lens", target_lens))
        for name, t in named:
            if t.size(0) != batch:
                raise ValueError(f"{name} has batch size {t.size(0)} but source_embeds has {batch}")
        if source_visible is None:
            source_visible = batch_visibility(source_lens, tgt_len)
        elif source_visible.shape != target_ids.shape:
            raise ValueError(f"source_visible must have the shape of target_ids {tuple(target_ids.shape)}, "
                             f"got {tuple(source_visible.shape)}")
        if (source_lens > src_len).any() or (target_lens > tgt_len).any():
            raise ValueError("source_lens/target_lens exceed the padded lengths of source_embeds/target_ids")

        tgt_valid = lengths_to_valid(target_lens, tgt_len)
        tgt_embeds = self.embed(target_ids.masked_fill(~tgt_valid, 0)).to(source_embeds.dtype)
        mask = streaming_mask(source_lens, target_lens, source_visible, src_len, tgt_len)
        out = self.lm(
            inputs_embeds=torch.cat([source_embeds, tgt_embeds], dim=1),
            attention_mask=to_additive(mask, source_embeds.dtype),
            position_ids=training_position_ids(src_len, tgt_len, self.phi, batch, source_embeds.device),
            use_cache=False,
            logits_to_keep=tgt_len,
        )
        return GroupLMOutput(logits=out.logits)

    def start(self, batch_size: int = 1) -> GroupStreamingSession:
        """A fresh incremental session for ``batch_size`` streams."""
        return GroupStreamingSession(self, batch_size)

    def _check_embeds(self, embeds: torch.Tensor, name: str) -> tuple[int, int, int]:
        if embeds.dim() != 3 or embeds.size(2) != self.hidden_size:
            raise ValueError(f"{name} must have shape (B, n, {self.hidden_size}), got {tuple(embeds.shape)}")
        return tuple(embeds.shape)


class GroupStreamingSession:
    """Incremental group-streaming state of ``B`` streams: a KV cache plus what each cached slot holds.

    Slots are appended block by block for all streams at once; ``lens`` marks per-stream padding inside a
    block. Cached slot kinds (source/target) and validity drive the masks of later blocks.
    """

    def __init__(self, glm: GroupStreamingLM, batch_size: int):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.glm = glm
        self.batch_size = batch_size
        param = next(glm.lm.parameters())
        self.device, self.dtype = param.device, param.dtype
        self.cache = DynamicCache(config=glm.lm.config)
        self.cache_valid = torch.zeros(batch_size, 0, dtype=torch.bool, device=self.device)
        self.cache_is_source = torch.zeros(0, dtype=torch.bool, device=self.device)
        self.num_source = torch.zeros(batch_size, dtype=torch.long, device=self.device)
        self.num_target = torch.zeros(batch_size, dtype=torch.long, device=self.device)

    @property
    def num_forwarded(self) -> int:
        """Token positions the LLM has processed per stream (the KV-cache length); each exactly once."""
        return self.cache_valid.size(1)

    @torch.no_grad()
    def read(self, embeds: torch.Tensor, lens: torch.Tensor | None = None,
             return_hidden: bool = False) -> torch.Tensor | None:
        """Append source embeddings (B, n, D); stream b takes its first ``lens[b]`` (default all n).

        Returns the last-layer hidden states (B, n, D) of the new source rows when ``return_hidden``.
        """
        batch, n, _ = self.glm._check_embeds(embeds, "embeds")
        valid = self._valid(batch, n, lens, "embeds")
        pos = source_position_ids(self.num_source, valid)
        out = self._forward(embeds.to(self.dtype), pos, valid, is_source=True, keep=1, hidden=return_hidden)
        self.num_source += valid.sum(1)
        return out.hidden_states[-1] if return_hidden else None

    @torch.no_grad()
    def write(self, ids: torch.Tensor, lens: torch.Tensor | None = None) -> torch.Tensor:
        """Append target tokens (B, m); stream b takes its first ``lens[b]``. Returns logits (B, m, V)."""
        if ids.dim() != 2:
            raise ValueError(f"ids must have shape (B, m), got {tuple(ids.shape)}")
        valid = self._valid(ids.size(0), ids.size(1), lens, "ids")
        embeds = self.glm.embed(ids.to(self.device).masked_fill(~valid, 0)).to(self.dtype)
        pos = target_position_ids(self.num_target, valid, self.glm.phi)
        out = self._forward(embeds, pos, valid, is_source=False, keep=0, hidden=False)
        self.num_target += valid.sum(1)
        return out.logits

    @torch.no_grad()
    def greedy_write(self, first_ids: torch.Tensor, stop_ids: Sequence[int], max_tokens: int,
                     active: torch.Tensor | None = None, suppress_ids: Sequence[int] = ()) -> WriteResult:
        """Feed ``first_ids`` (B,) and write greedily until a stop token or ``max_tokens`` per stream.

        Stop tokens (e.g. ``<wait>``, eos) and the token that hits the cap are returned but not fed: they
        are ``pending`` and go in first at the next call. Streams with ``active[b] = False`` write nothing.
        Tokens in ``suppress_ids`` are never chosen (e.g. eos before the input has ended).
        """
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
        if first_ids.shape != (self.batch_size,):
            raise ValueError(f"first_ids must have shape ({self.batch_size},), got {tuple(first_ids.shape)}")
        pending = first_ids.to(self.device).long().clone()
        active = (torch.ones(self.batch_size, dtype=torch.bool, device=self.device) if active is None
                  else active.to(self.device).bool().clone())
        stop = torch.tensor(list(stop_ids), dtype=torch.long, device=self.device)
        suppress = torch.tensor(list(suppress_ids), dtype=torch.long, device=self.device)
        stopped = torch.zeros_like(active)
        tokens: list[list[int]] = [[] for _ in range(self.batch_size)]
        for _ in range(max_tokens):
            if not active.any():
                break
            logits = self.write(pending.unsqueeze(1), lens=active.long())[:, -1]
            if suppress.numel():
                logits = logits.index_fill(-1, suppress, float("-inf"))
            nxt = logits.argmax(-1)
            for b in active.nonzero().flatten().tolist():
                tokens[b].append(int(nxt[b]))
            pending = torch.where(active, nxt, pending)
            hit = active & torch.isin(nxt, stop)
            stopped |= hit
            active &= ~hit
        return WriteResult(tokens=tokens, pending=pending, stopped=stopped)

    def _valid(self, batch: int, n: int, lens: torch.Tensor | None, name: str) -> torch.Tensor:
        if batch != self.batch_size:
            raise ValueError(f"{name} has batch size {batch} but the session has {self.batch_size}")
        if lens is None:
            return torch.ones(batch, n, dtype=torch.bool, device=self.device)
        lens = torch.as_tensor(lens, device=self.device)
        if lens.shape != (batch,) or (lens < 0).any() or (lens > n).any():
            raise ValueError(f"lens must have shape ({batch},) with values in [0, {n}], got {lens.tolist()}")
        return lengths_to_valid(lens, n)

    def _forward(self, embeds: torch.Tensor, pos: torch.Tensor, valid: torch.Tensor, is_source: bool,
                 keep: int, hidden: bool):
        mask = incremental_mask(self.cache_valid, self.cache_is_source, valid, is_source)
        out = self.glm.lm(
            inputs_embeds=embeds,
            attention_mask=to_additive(mask, self.dtype),
            position_ids=pos,
            past_key_values=self.cache,
            use_cache=True,
            logits_to_keep=keep,
            output_hidden_states=hidden,
        )
        self.cache = out.past_key_values
        self.cache_valid = torch.cat([self.cache_valid, valid], dim=1)
        kind = torch.full((valid.size(1),), is_source, dtype=torch.bool, device=self.device)
        self.cache_is_source = torch.cat([self.cache_is_source, kind])
        return out
