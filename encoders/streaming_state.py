"""What the chunked streaming encoders share (:class:`encoders.conformer.ConformerEncoder`,
:class:`encoders.whisper.WhisperStreamingEncoder`): their streaming states, stacking and unstacking them,
the chunk loop of ``streaming_forward`` and WeNet's dynamic chunk training.

Streaming states are a dict of plain tensors. Every encoder's states hold these keys (``B`` streams,
``N`` layers, ``H`` heads, ``Dh`` head dim, ``F`` feature dim):

============  ======================  ==========================================================
key           shape                   meaning
============  ======================  ==========================================================
feats         (B, L, F)               features received but not yet consumed by the input layer
offset        (B,)                    encoder frames emitted so far (position of the next)
chunk_size    (B,)                    chunk size in encoder frames
left_chunks   (B,)                    left context in chunks (-1 = unlimited)
att_k, att_v  (N, B, H, C, Dh)        keys and values of the last C frames, right-aligned; the last
                                      ``min(offset, C)`` slots are real. C is ``left_chunks *
                                      chunk_size``, or grows with the stream when unlimited.
============  ======================  ==========================================================

and its own caches besides (the Conformer's ``conv``, Whisper's ``mel`` and ``conv``). An encoder names
the batch dimension of each of its keys in ``STATE_BATCH_DIM``; :func:`stack_states` and
:func:`unstack_states` need nothing else.

An encoder built on :class:`ChunkedStreamingEncoder` provides ``input_dim``, ``output_dim``,
``num_heads``, ``layers``, ``embed`` (with ``stride`` and ``receptive_field``: a chunk of ``c`` frames
needs ``stride * (c - 1) + receptive_field`` features and consumes ``stride * c``), ``output_lengths``
and the hooks of the one ``forward`` / ``_forward_chunk`` written here:

* ``_embed(feats, feat_lens) -> (x, lens)``: the input layer over a padded batch;
* ``_embed_chunk(feats, states, final) -> (x, caches)``: the input layer over one chunk, with the new values
  of its own state keys (Whisper's ``mel``, ``conv``; none for the Conformer);
* ``_positions(x, positions) -> (x, pos)``: the frame positions (absolute, from the stream start) applied to
  the embedded frames, or prepared for the layers (``pos`` is handed to every layer);
* ``_layer_step(i, x, pos, mask, states) -> (x, caches)``: layer ``i``; with ``states`` against their
  caches, giving the layer's new ``att_k``, ``att_v`` (and its own, the Conformer's ``conv``);
* ``_output(x)``: after the last layer (Whisper's final layer norm; none by default).

The masks (:mod:`encoders.attention`) make both paths the same function: chunk by chunk through
``streaming_forward`` equals the masked ``forward`` with the same chunk size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from encoders.attention import cached_chunk_mask, padded_chunk_mask

States = dict[str, torch.Tensor]
COMMON_BATCH_DIM = {"feats": 0, "offset": 0, "chunk_size": 0, "left_chunks": 0, "att_k": 1, "att_v": 1}


def uniform(states: States, key: str) -> int:
    """The value of ``states[key]`` (B,), which must be the same for every stream."""
    values = states[key]
    if values.numel() == 0:
        raise ValueError("streaming states hold no streams")
    if not bool((values == values[0]).all()):
        raise ValueError(f"streaming states: '{key}' differs between streams: {values.tolist()}")
    return int(values[0])


def stack_states(states_list: list[States], batch_dim: dict[str, int]) -> States:
    """Batch the states of several streams (same chunk_size, left_chunks and buffered feature count);
    ``batch_dim`` gives each key's batch dimension.

    With unlimited left context the attention caches (N, 1, H, C_i, Dh) are left-padded to the longest
    C; ``offset`` tells which slots are real.
    """
    if not states_list:
        raise ValueError("stack_states: empty list")
    for key in ("chunk_size", "left_chunks"):
        uniform({key: torch.cat([s[key] for s in states_list])}, key)
    lengths = {s["feats"].size(1) for s in states_list}
    if len(lengths) > 1:
        raise ValueError(f"stack_states: streams have different numbers of buffered feature frames "
                         f"{sorted(lengths)}; feed them equal blocks before stacking")
    cached = max(s["att_k"].size(3) for s in states_list)
    out = {}
    for key, dim in batch_dim.items():
        parts = [s[key] for s in states_list]
        if key in ("att_k", "att_v"):
            parts = [F.pad(p, (0, 0, cached - p.size(3), 0)) for p in parts]
        out[key] = torch.cat(parts, dim=dim)
    return out


def unstack_states(states: States, batch_dim: dict[str, int]) -> list[States]:
    """Split batched states into one states dict per stream (unlimited caches trimmed to the stream);
    ``batch_dim`` gives each key's batch dimension."""
    streams = []
    for b in range(states["offset"].numel()):
        one = {key: states[key].narrow(dim, b, 1).clone() for key, dim in batch_dim.items()}
        if int(one["left_chunks"][0]) < 0:
            keep = min(int(one["offset"][0]), one["att_k"].size(3))
            for key in ("att_k", "att_v"):
                one[key] = one[key][:, :, :, one[key].size(3) - keep:].clone()
        streams.append(one)
    return streams


class ChunkedStreamingEncoder(nn.Module):
    """Base of the chunked streaming encoders: ``streaming_forward``, ``features_needed``, stacking,
    the common states and dynamic chunk training (see the module docstring for what a subclass provides).

    Args:
        dynamic_chunk: in training mode, ignore the ``chunk_size`` given to ``forward`` and draw one
            per batch: full attention with probability ``full_attention_prob``, else uniform in
            ``[1, max_dynamic_chunk]`` (WeNet's dynamic chunk training).
        dynamic_left_chunks: with ``dynamic_chunk``, also draw ``left_chunks`` uniformly in
            ``[0, max_left_chunks]`` (else the given ``left_chunks`` is used).
    """

    STATE_BATCH_DIM: dict[str, int] = COMMON_BATCH_DIM

    def __init__(self, dynamic_chunk: bool = False, max_dynamic_chunk: int = 25, full_attention_prob: float = 0.5,
                 dynamic_left_chunks: bool = False, max_left_chunks: int = 8) -> None:
        super().__init__()
        self.dynamic_chunk = dynamic_chunk
        self.max_dynamic_chunk = max_dynamic_chunk
        self.full_attention_prob = full_attention_prob
        self.dynamic_left_chunks = dynamic_left_chunks
        self.max_left_chunks = max_left_chunks

    # ---------------------------------------------------------------- training
    def _sample_chunk(self, left_chunks: int) -> tuple[int, int]:
        """One draw of (chunk_size, left_chunks) for a training batch (``(0, -1)`` is full attention)."""
        if float(torch.rand(())) < self.full_attention_prob:
            return 0, -1
        chunk = int(torch.randint(1, self.max_dynamic_chunk + 1, ()))
        if self.dynamic_left_chunks:
            left_chunks = int(torch.randint(0, self.max_left_chunks + 1, ()))
        return chunk, left_chunks

    def _check_feats(self, feats: torch.Tensor) -> None:
        if feats.dim() != 3 or feats.size(2) != self.input_dim:
            raise ValueError(f"{type(self).__name__} expects features (B, T, {self.input_dim}), "
                             f"got shape {tuple(feats.shape)}")

    # ---------------------------------------------------------------- training / full forward
    def forward(self, feats: torch.Tensor, feat_lens: torch.Tensor, chunk_size: int | torch.Tensor = 0,
                left_chunks: int = -1) -> tuple[torch.Tensor, torch.Tensor]:
        """Masked forward of a padded batch.

        Args:
            feats: (B, T, F) features, padded at the end.
            feat_lens: (B,) real lengths.
            chunk_size: chunk size in encoder frames, or (B,) sizes, one per utterance; <= 0 is full
                attention.
            left_chunks: left context in chunks; < 0 is unlimited.

        Returns:
            out (B, T', D) (padded frames set to 0; T' = ``output_lengths(T)``) and out_lens (B,).
        """
        self._check_feats(feats)
        if self.training and self.dynamic_chunk:
            chunk_size, left_chunks = self._sample_chunk(left_chunks)
        x, lens = self._embed(feats, feat_lens)
        num_frames = x.size(1)
        if num_frames == 0:  # every input shorter than the input layer's receptive field
            return x, lens
        x, pos = self._positions(x, torch.arange(num_frames, device=x.device))
        mask = padded_chunk_mask(lens, num_frames, chunk_size, left_chunks)
        for i in range(len(self.layers)):
            x, _ = self._layer_step(i, x, pos, mask, None)
        x = self._output(x)
        valid = torch.arange(num_frames, device=x.device).unsqueeze(0) < lens.unsqueeze(1)
        return x * valid.unsqueeze(-1).to(x.dtype), lens

    def _output(self, x: torch.Tensor) -> torch.Tensor:
        """After the last layer: nothing unless the encoder has a final norm."""
        return x

    # ---------------------------------------------------------------- streaming
    def _forward_chunk(self, feats: torch.Tensor, states: States, left_chunks: int,
                       final: bool = False) -> tuple[torch.Tensor, States]:
        """Encode the frames of one chunk (all its features present, or the last ones when ``final``) against
        the caches; returns them (B, c, D) and the new states."""
        x, new = self._embed_chunk(feats, states, final)
        out, caches = self._chunk_layers(x, states, left_chunks)
        return out, {**states, **new, **caches}

    def _chunk_layers(self, x: torch.Tensor, states: States, left_chunks: int) -> tuple[torch.Tensor, States]:
        """The layers over the embedded frames x (B, c, D) of one chunk against the caches of ``states``:
        returns their output (B, c, D) and the new ``offset`` and layer caches (``att_k``, ``att_v``, ...)."""
        c = x.size(1)
        offset = states["offset"]
        x, pos = self._positions(x, offset.unsqueeze(1) + torch.arange(c, device=x.device))
        cached = states["att_k"].size(3)
        mask = cached_chunk_mask(offset, cached, c)  # (B, 1, 1, C + c)
        caches: dict[str, list[torch.Tensor]] = {}
        for i in range(len(self.layers)):
            x, layer_caches = self._layer_step(i, x, pos, mask, states)
            if left_chunks >= 0:  # keep a fixed-size window
                for key in ("att_k", "att_v"):
                    kv = layer_caches[key]
                    layer_caches[key] = kv[:, :, kv.size(2) - cached:]
            for key, t in layer_caches.items():
                caches.setdefault(key, []).append(t)
        new = {key: torch.stack(ts) for key, ts in caches.items()}
        new["offset"] = offset + c
        return self._output(x), new

    def _new_states(self, batch_size: int, chunk_size: int, left_chunks: int, like: torch.Tensor) -> States:
        """The common keys of ``batch_size`` new streams (module docstring), on ``like``'s device and dtype."""
        if chunk_size <= 0:
            raise ValueError(f"streaming needs chunk_size >= 1 encoder frames, got {chunk_size}")
        cache = left_chunks * chunk_size if left_chunks >= 0 else 0
        n, h, dh = len(self.layers), self.num_heads, self.output_dim // self.num_heads
        long = dict(dtype=torch.long, device=like.device)
        return {
            "feats": like.new_zeros(batch_size, 0, self.input_dim),
            "offset": torch.zeros(batch_size, **long),
            "chunk_size": torch.full((batch_size,), chunk_size, **long),
            "left_chunks": torch.full((batch_size,), left_chunks, **long),
            "att_k": like.new_zeros(n, batch_size, h, cache, dh),
            "att_v": like.new_zeros(n, batch_size, h, cache, dh),
        }

    def streaming_forward(self, feats_block: torch.Tensor, states: States,
                          final: bool = False) -> tuple[torch.Tensor, States]:
        """Feed a block of features; get the encoder frames of every chunk that became complete.

        Args:
            feats_block: (B, t, F) new features of each stream (t may be 0 or anything).
            states: from :meth:`init_states`, :meth:`stack_states` or the previous call.
            final: the input has ended: also encode the last partial chunk, as ``forward`` ends an
                utterance (the Conformer drops features that do not fill its subsampling's receptive
                field; Whisper's convolutions see zeros after the end). The stream is then done; start a
                new one with :meth:`init_states`.

        Returns:
            out (B, t', D) with t' a multiple of the chunk size (any size when ``final``) and new states.
        """
        self._check_feats(feats_block)
        chunk_size, left_chunks = uniform(states, "chunk_size"), uniform(states, "left_chunks")
        if feats_block.size(0) != states["feats"].size(0):
            raise ValueError(f"streaming_forward: feats_block has {feats_block.size(0)} streams, "
                             f"states have {states['feats'].size(0)}")
        states = dict(states)
        buf = torch.cat([states["feats"], feats_block.to(states["feats"].dtype)], dim=1)
        stride, field = self.embed.stride, self.embed.receptive_field
        needed = stride * (chunk_size - 1) + field  # features of one whole chunk
        outs = []
        while buf.size(1) >= needed:
            out, states = self._forward_chunk(buf[:, :needed], states, left_chunks, final=False)
            outs.append(out)
            buf = buf[:, stride * chunk_size:]
        if final:
            if self.output_lengths(buf.size(1)) > 0:
                out, states = self._forward_chunk(buf, states, left_chunks, final=True)
                outs.append(out)
            buf = buf[:, :0]
        states["feats"] = buf
        if not outs:
            return feats_block.new_zeros(feats_block.size(0), 0, self.output_dim), states
        return torch.cat(outs, dim=1), states

    def features_needed(self, states: States) -> int:
        """Features to feed :meth:`streaming_forward` so that it encodes exactly one more chunk (the encoder's
        window arithmetic: one chunk of c frames needs ``stride * (c - 1) + receptive_field`` features, of which
        it keeps ``receptive_field - stride`` for the next chunk: 2 c + 1 and 1 for Whisper). Streams whose
        states need the same number stack and go through one batched call."""
        chunk = uniform(states, "chunk_size")
        return self.embed.stride * (chunk - 1) + self.embed.receptive_field - states["feats"].size(1)

    @classmethod
    def stack_states(cls, states_list: list[States]) -> States:
        """Batch the states of several streams: :func:`stack_states` with this encoder's keys."""
        return stack_states(states_list, cls.STATE_BATCH_DIM)

    @classmethod
    def unstack_states(cls, states: States) -> list[States]:
        """Split batched states into one per stream: :func:`unstack_states` with this encoder's keys."""
        return unstack_states(states, cls.STATE_BATCH_DIM)
