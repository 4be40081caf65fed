"""Run any Hugging Face decoder-only LLM as a group-streaming processor.

:class:`GroupStreamingLM` wraps a causal LM that accepts ``inputs_embeds``, ``position_ids`` and a 4D
attention mask (Qwen2, Llama, ...). It has two faces that compute the same function:

* **training forward** — one pass over ``[source | target]`` with group position IDs
  (:mod:`speech_llm.lm.positions`) and the streaming mask (:mod:`speech_llm.lm.masks`), returning the logits at
  the target positions;
* **incremental session** (:meth:`GroupStreamingLM.start`) — ``read`` appends source embeddings to the KV
  cache (they attend to earlier source only, never to target already written), ``write`` appends target
  tokens and returns their logits, and ``greedy_write(..., source=...)`` does both in ONE forward (a chunk
  and the pending token after it). Every token is forwarded exactly once; nothing is re-encoded. The KV
  cache and the mask templates are append-only buffers (:mod:`speech_llm.lm.kv_cache`): a forward writes
  its new slots in place and never copies the cache.

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

from speech_llm.lm.kv_cache import BlockCache, GrowingBuffer
from speech_llm.lm.masks import (
    batch_visibility,
    block_mask,
    column_bias,
    lengths_to_valid,
    streaming_mask,
    to_additive,
)
from speech_llm.lm.positions import check_phi, source_position_ids, target_position_ids, training_position_ids


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
    logits: with ``keep_logits``, the logits of every forward of the call, (B, V) each, in order (rows of
        streams that took no part in a forward are whatever the model gave their padding).
    """

    tokens: list[list[int]]
    pending: torch.Tensor
    stopped: torch.Tensor
    logits: list[torch.Tensor] | None = None


class GroupStreamingLM(nn.Module):
    """Group-streaming wrapper around a Hugging Face causal LM.

    Args:
        causal_lm: a ``PreTrainedModel`` (or a peft model around one) taking ``inputs_embeds``,
            ``position_ids``, a 4D float ``attention_mask``, ``cache`` (transformers >= 5.24) and ``logits_to_keep``.
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
        dtype = next(self.lm.parameters()).dtype   # the LLM's weights (bf16 weights need bf16 inputs without autocast)
        tgt_embeds = self.embed(target_ids.masked_fill(~tgt_valid, 0)).to(dtype)
        mask = streaming_mask(source_lens, target_lens, source_visible, src_len, tgt_len)
        out = self.lm(
            inputs_embeds=torch.cat([source_embeds.to(dtype), tgt_embeds], dim=1),
            attention_mask=to_additive(mask, dtype),
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
    block. Per stream and slot, ``cache_valid`` (B, L) says whether the slot holds a real token and
    ``cache_is_source`` (B, L) whether it is source; their additive templates (:func:`masks.column_bias`)
    are appended with them, and the mask of a block is read off the templates (:func:`masks.block_mask`).

    Batching streams decoded on their own (:mod:`speech_llm.decoding.recognizer`): :meth:`merge` stacks sessions
    into one, left-padding every KV cache with invalid slots to the longest; :meth:`select` takes some
    streams out again and drops the slots that none of them uses, so a single stream taken out is compact
    (no padding slot survives a merge/select round trip). Position IDs are stored with the keys (RoPE),
    so moving or dropping slots changes nothing: attention only depends on which slots are visible.
    """

    def __init__(self, glm: GroupStreamingLM, batch_size: int):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.glm = glm
        self.batch_size = batch_size
        param = next(glm.lm.parameters())
        self.device, self.dtype = param.device, param.dtype
        self.cache = BlockCache()
        self._valid = GrowingBuffer(batch_size, torch.bool, self.device, False)
        self._is_source = GrowingBuffer(batch_size, torch.bool, self.device, False)
        low = torch.finfo(self.dtype).min
        self._bias_all = GrowingBuffer(batch_size, self.dtype, self.device, low)
        self._bias_src = GrowingBuffer(batch_size, self.dtype, self.device, low)
        self.num_source = torch.zeros(batch_size, dtype=torch.long, device=self.device)
        self.num_target = torch.zeros(batch_size, dtype=torch.long, device=self.device)
        self.forwards = 0
        """LLM forwards run by this session (merged and selected sessions start counting from 0)."""

    @property
    def cache_valid(self) -> torch.Tensor:
        """(B, L) bool: the slot holds a real token."""
        return self._valid.value

    @property
    def cache_is_source(self) -> torch.Tensor:
        """(B, L) bool: the slot holds a source token."""
        return self._is_source.value

    @property
    def num_forwarded(self) -> int:
        """Cache slots per stream (the KV-cache length). Each token is forwarded exactly once; in a merged
        batch this also counts padding slots."""
        return self.cache_valid.size(1)

    # ---------------------------------------------------------------- batching separate sessions
    @classmethod
    def merge(cls, sessions: Sequence[GroupStreamingSession]) -> GroupStreamingSession:
        """One session holding the streams of ``sessions`` in order (their batch sizes add up).

        Caches of different lengths are left-padded with invalid slots. The inputs must not be used
        afterwards (take streams out with :meth:`select`).
        """
        if not sessions:
            raise ValueError("merge: no sessions")
        glm = sessions[0].glm
        if any(s.glm is not glm for s in sessions):
            raise ValueError("merge: sessions belong to different models")
        if len(sessions) == 1:
            return sessions[0]
        length = max(s.num_forwarded for s in sessions)

        def pad(x: torch.Tensor, dim: int, value=0) -> torch.Tensor:
            n = length - x.size(dim)
            if not n:
                return x
            shape = list(x.shape)
            shape[dim] = n
            return torch.cat([x.new_full(shape, value), x], dim=dim)

        layers = []
        if length:
            ref = next(s for s in sessions if s.num_forwarded)._kv()
            for i, (k_ref, _) in enumerate(ref):
                ks, vs = [], []
                for s in sessions:
                    empty = k_ref.new_zeros(s.batch_size, k_ref.size(1), 0, k_ref.size(3))
                    k, v = s._kv()[i] if s.num_forwarded else (empty, empty)
                    ks.append(pad(k, 2))
                    vs.append(pad(v, 2))
                layers.append((torch.cat(ks), torch.cat(vs)))
        return cls._from_parts(
            glm, layers,
            torch.cat([pad(s.cache_valid, 1, False) for s in sessions]),
            torch.cat([pad(s.cache_is_source, 1, False) for s in sessions]),
            torch.cat([s.num_source for s in sessions]),
            torch.cat([s.num_target for s in sessions]))

    def select(self, indices: Sequence[int]) -> GroupStreamingSession:
        """A new session with streams ``indices`` (in that order); slots none of them uses are dropped."""
        idx = torch.as_tensor(list(indices), dtype=torch.long, device=self.device)
        if idx.numel() == 0 or (idx < 0).any() or (idx >= self.batch_size).any():
            raise ValueError(f"select: indices must be in [0, {self.batch_size}), got {list(indices)}")
        valid = self.cache_valid[idx]
        keep = valid.any(0).nonzero().flatten()
        if idx.tolist() == list(range(self.batch_size)) and keep.numel() == self.num_forwarded:
            return self  # every stream, no slot to drop: nothing to copy
        layers = [(k[idx][:, :, keep], v[idx][:, :, keep]) for k, v in self._kv()] if keep.numel() else []
        return self._from_parts(self.glm, layers, valid[:, keep], self.cache_is_source[idx][:, keep],
                                self.num_source[idx].clone(), self.num_target[idx].clone())

    def split(self) -> list[GroupStreamingSession]:
        """One compact ``B = 1`` session per stream."""
        return [self.select([b]) for b in range(self.batch_size)]

    @classmethod
    def _from_parts(cls, glm: GroupStreamingLM, layers: list[tuple[torch.Tensor, torch.Tensor]],
                    cache_valid: torch.Tensor, cache_is_source: torch.Tensor, num_source: torch.Tensor,
                    num_target: torch.Tensor) -> GroupStreamingSession:
        sess = cls(glm, cache_valid.size(0))
        for i, (k, v) in enumerate(layers):
            sess.cache.update(k, v, i)
        sess._valid.append(cache_valid)
        sess._is_source.append(cache_is_source)
        bias_all, bias_src = column_bias(cache_valid, cache_is_source, sess.dtype)
        sess._bias_all.append(bias_all)
        sess._bias_src.append(bias_src)
        sess.num_source, sess.num_target = num_source, num_target
        return sess

    def _kv(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per layer (keys, values), each (B, H_kv, L, Dh); empty before the first forward."""
        if not self.num_forwarded:
            return []
        return [(layer.keys, layer.values) for layer in self.cache.layers]

    # ---------------------------------------------------------------- reading and writing
    @torch.no_grad()
    def read(self, embeds: torch.Tensor, lens: torch.Tensor | None = None,
             return_hidden: bool = False) -> torch.Tensor | None:
        """Append source embeddings (B, n, D); stream b takes its first ``lens[b]`` (default all n).

        Returns the last-layer hidden states (B, n, D) of the new source rows when ``return_hidden``.
        """
        batch, n, _ = self.glm._check_embeds(embeds, "embeds")
        valid = self._slots(batch, n, lens, "embeds")
        pos = source_position_ids(self.num_source, valid)
        out = self._forward(embeds.to(self.dtype), pos, valid, torch.ones_like(valid), keep=1, hidden=return_hidden)
        self.num_source += valid.sum(1)
        return out.hidden_states[-1] if return_hidden else None

    @torch.no_grad()
    def write(self, ids: torch.Tensor, lens: torch.Tensor | None = None) -> torch.Tensor:
        """Append target tokens (B, m); stream b takes its first ``lens[b]``. Returns logits (B, m, V)."""
        if ids.dim() != 2:
            raise ValueError(f"ids must have shape (B, m), got {tuple(ids.shape)}")
        valid = self._slots(ids.size(0), ids.size(1), lens, "ids")
        embeds = self.glm.embed(ids.to(self.device).masked_fill(~valid, 0)).to(self.dtype)
        pos = target_position_ids(self.num_target, valid, self.glm.phi)
        out = self._forward(embeds, pos, valid, torch.zeros_like(valid), keep=0, hidden=False)
        self.num_target += valid.sum(1)
        return out.logits

    @torch.no_grad()
    def read_write(self, embeds: torch.Tensor, lens: torch.Tensor | None, ids: torch.Tensor,
                   write: torch.Tensor) -> torch.Tensor:
        """Append source embeddings (B, n, D) (stream b takes its first ``lens[b]``) and then ONE target token
        ``ids`` (B,) for the streams with ``write[b]``, in a single forward: the token's row sees the new
        source. Returns the logits (B, V) of the token's row (a padding row where ``write[b]`` is False).

        Equal to ``read(embeds, lens)`` followed by ``write(ids[:, None], lens=write)``, in one forward.
        """
        batch, n, _ = self.glm._check_embeds(embeds, "embeds")
        src = self._slots(batch, n, lens, "embeds")
        tgt = write.to(self.device).bool().view(batch, 1)
        tok = self.glm.embed(ids.to(self.device).long().masked_fill(~tgt[:, 0], 0).view(batch, 1)).to(self.dtype)
        pos = torch.cat([source_position_ids(self.num_source, src),
                         target_position_ids(self.num_target, tgt, self.glm.phi)], dim=1)
        kinds = torch.cat([torch.ones_like(src), torch.zeros_like(tgt)], dim=1)
        out = self._forward(torch.cat([embeds.to(self.dtype), tok], dim=1), pos, torch.cat([src, tgt], dim=1),
                            kinds, keep=1, hidden=False)
        self.num_source += src.sum(1)
        self.num_target += tgt.sum(1)
        return out.logits[:, -1]

    @torch.no_grad()
    def greedy_write(self, first_ids: torch.Tensor, stop_ids: Sequence[int] | Sequence[Sequence[int]],
                     max_tokens: int | Sequence[int], active: torch.Tensor | None = None,
                     suppress_ids: Sequence[int] | Sequence[Sequence[int]] = (),
                     stop_table: torch.Tensor | None = None, keep_logits: bool = False,
                     source: torch.Tensor | None = None, source_lens: torch.Tensor | None = None) -> WriteResult:
        """Feed ``first_ids`` (B,) and write greedily until a stop token or ``max_tokens`` per stream.

        Stop tokens (e.g. ``<wait>``, eos) and the token that hits the cap are returned but not fed: they
        are ``pending`` and go in first at the next call. Streams with ``active[b] = False`` write nothing.
        Tokens in ``suppress_ids`` are never chosen (e.g. eos before the input has ended).

        ``stop_ids`` and ``suppress_ids`` are one list for every stream or B lists (one per stream);
        ``stop_table`` (V,) bool adds stop tokens by class (text translation: every token that starts a
        word); ``max_tokens`` is one cap or B caps. Each step is one forward of the LLM for all active
        streams. ``keep_logits`` returns every step's logits (tests compare them with a training forward).

        ``source`` (B, n, D) (with ``source_lens``) is read in the same forward as ``first_ids``
        (:meth:`read_write`): a chunk that writes nothing but its ``<wait>`` costs one forward. Streams with
        ``active[b] = False`` still read their source.
        """
        b = self.batch_size
        if first_ids.shape != (b,):
            raise ValueError(f"first_ids must have shape ({b},), got {tuple(first_ids.shape)}")
        caps = torch.as_tensor([max_tokens] * b if isinstance(max_tokens, int) else list(max_tokens),
                               dtype=torch.long, device=self.device)
        if caps.shape != (b,) or (caps < 1).any():
            raise ValueError(f"max_tokens must be >= 1 (one value or {b}), got {max_tokens}")
        stop = self._ids_per_stream(stop_ids, "stop_ids")
        suppress = self._ids_per_stream(suppress_ids, "suppress_ids")
        pending = first_ids.to(self.device).long().clone()
        active = (torch.ones(b, dtype=torch.bool, device=self.device) if active is None
                  else active.to(self.device).bool().clone())
        stopped = torch.zeros_like(active)
        count = torch.zeros(b, dtype=torch.long, device=self.device)
        tokens: list[list[int]] = [[] for _ in range(b)]
        kept: list[torch.Tensor] | None = [] if keep_logits else None
        table = None if stop_table is None else stop_table.to(self.device).bool()
        if source is not None:
            step = self.read_write(source, source_lens, pending, active)
        while active.any():
            if source is not None:
                logits, source = step, None
            else:
                logits = self.write(pending.unsqueeze(1), lens=active.long())[:, -1]
            if kept is not None:
                kept.append(logits.float().cpu())
            if suppress.numel():
                banned = torch.zeros_like(logits, dtype=torch.bool)
                rows = torch.arange(b, device=self.device).unsqueeze(1).expand_as(suppress)
                real = suppress >= 0
                banned[rows[real], suppress[real]] = True
                logits = logits.masked_fill(banned, float("-inf"))
            nxt = logits.argmax(-1)
            for i in active.nonzero().flatten().tolist():
                tokens[i].append(int(nxt[i]))
            pending = torch.where(active, nxt, pending)
            hit = active & (nxt.unsqueeze(1) == stop).any(1)
            if table is not None:
                hit |= active & table[nxt]
            stopped |= hit
            count += active.long()
            active &= ~hit & (count < caps)
        return WriteResult(tokens=tokens, pending=pending, stopped=stopped, logits=kept)

    def _ids_per_stream(self, ids, name: str) -> torch.Tensor:
        """Token ids for all streams or one list per stream -> (B, K) long, padded with -1."""
        ids = list(ids)
        if ids and all(isinstance(x, (list, tuple)) or (isinstance(x, torch.Tensor) and x.dim() == 1) for x in ids):
            if len(ids) != self.batch_size:
                raise ValueError(f"{name}: {len(ids)} per-stream lists for {self.batch_size} streams")
            rows = [[int(t) for t in x] for x in ids]
        else:
            rows = [[int(t) for t in ids]] * self.batch_size
        width = max(len(r) for r in rows)
        return torch.tensor([r + [-1] * (width - len(r)) for r in rows], dtype=torch.long,
                            device=self.device).view(self.batch_size, width)

    def _slots(self, batch: int, n: int, lens: torch.Tensor | None, name: str) -> torch.Tensor:
        if batch != self.batch_size:
            raise ValueError(f"{name} has batch size {batch} but the session has {self.batch_size}")
        if lens is None:
            return torch.ones(batch, n, dtype=torch.bool, device=self.device)
        lens = torch.as_tensor(lens, device=self.device)
        if lens.shape != (batch,) or (lens < 0).any() or (lens > n).any():
            raise ValueError(f"lens must have shape ({batch},) with values in [0, {n}], got {lens.tolist()}")
        return lengths_to_valid(lens, n)

    def _forward(self, embeds: torch.Tensor, pos: torch.Tensor, valid: torch.Tensor, is_source: torch.Tensor,
                 keep: int, hidden: bool):
        """One LLM forward over a block of new slots (B, n): kinds ``is_source`` (B, n), validity ``valid``."""
        bias_all, bias_src = column_bias(valid, is_source, self.dtype)
        mask = block_mask(self._bias_all.append(bias_all), self._bias_src.append(bias_src), valid, is_source)
        self._valid.append(valid)
        self._is_source.append(valid & is_source)
        out = self.glm.lm(
            inputs_embeds=embeds,
            attention_mask=mask,
            position_ids=pos,
            cache=self.cache,
            use_cache=True,
            logits_to_keep=keep,
            output_hidden_states=hidden,
        )
        self.cache = out.cache
        self.forwards += 1
        return out
