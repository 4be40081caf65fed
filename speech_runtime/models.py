"""The exported steps on onnxruntime: encoder chunks with their caches, the projector, the group-streaming LLM.

Everything here is numpy; the rules are those of the torch modules the steps were exported from:

* :class:`AudioSide` = ``SpeechLLM.stream_audio`` (CMVN -> chunked encoder (Conformer or Whisper) -> frame
  stacking -> projector), several streams batched per chunk; caches as in ``encoders.streaming_state`` (right-aligned,
  left-padded to the longest when batched, the offset says which slots are real);
* :class:`LLMSession` = ``speech_llm.lm.group_lm.GroupStreamingSession`` (read / write / read_write /
  greedy_write, merge and select of streams), with the masks of ``speech_llm.lm.masks`` (source rows see
  cached and earlier new source, target rows everything earlier, padded rows only themselves) and the group
  positions of ``speech_llm.lm.positions`` (source ``0, 1, ..``; target ``phi, phi + 1, ..``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort

LOW = float(np.finfo(np.float32).min)


def make_session(path: Path, threads: int = 0) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def lengths_to_valid(lens: np.ndarray, n: int) -> np.ndarray:
    """(B,) lengths -> (B, n) bool."""
    return np.arange(n)[None, :] < np.asarray(lens)[:, None]


def group_positions(start: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``speech_llm.lm.positions._group_ids``: start[b] + k for the k-th valid slot (padding repeats the last)."""
    counts = np.cumsum(valid.astype(np.int64), axis=1)
    return start[:, None].astype(np.int64) + np.maximum(counts - 1, 0)


def block_mask(cache_valid: np.ndarray, cache_is_source: np.ndarray, new_valid: np.ndarray,
               new_is_source: np.ndarray) -> np.ndarray:
    """Additive mask (B, 1, n, L + n) of a block of new slots (``speech_llm.lm.masks.incremental_mask``)."""
    b, n = new_valid.shape
    length = cache_valid.shape[1]
    valid = np.concatenate([cache_valid, new_valid], axis=1)
    src = np.concatenate([cache_is_source & cache_valid, new_is_source & new_valid], axis=1)
    cols = np.where(new_is_source[:, :, None], src[:, None, :], valid[:, None, :])
    cols[:, :, length:] &= np.tril(np.ones((n, n), dtype=bool))
    cols &= new_valid[:, :, None]
    rows, idx = np.nonzero(~new_valid)
    cols[rows, idx, length + idx] = True
    return np.where(cols, np.float32(0.0), np.float32(LOW))[:, None]


# ---------------------------------------------------------------------------------------------- audio side
@dataclass
class AudioState:
    """One stream's audio-side state: features not encoded yet (CMVN applied), encoder caches (the attention
    caches and the encoder's own: the Conformer's ``conv``, Whisper's ``mel`` and ``conv``), and the
    projector's carry-over of encoder frames not stacked yet."""

    feats: np.ndarray       # (T, F)
    offset: int
    att_k: np.ndarray       # (N, 1, H, C, Dh)
    att_v: np.ndarray
    caches: dict[str, np.ndarray]
    proj: np.ndarray        # (k, D_enc): frames waiting for a whole stack (with context layers: a whole chunk)
    proj_caches: dict[str, np.ndarray] = field(default_factory=dict)
    """With context layers: their ``offset`` (1,) and keys/values ``att_k`` / ``att_v`` (Nc, 1, Hc, C, Dc)."""
    nonblank: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    """(N,) the vocabulary projector's non-blank CTC mass of each audio token so far (``decode.nonblank_cap``)."""


def _encoder_caches(enc: dict) -> dict[str, dict]:
    """The manifest's encoder caches: name -> {"shape": one stream's shape, "batch_axis": ...}."""
    if "caches" in enc:
        return enc["caches"]
    return {"conv": {"shape": [enc["num_layers"], 1, enc["output_dim"], enc["conv_context"]], "batch_axis": 1}}


class AudioSide:
    """CMVN -> encoder chunks -> projector of several streams (``SpeechLLM.stream_audio``)."""

    def __init__(self, root: Path, manifest: dict, files: dict, threads: int = 0):
        enc, proj = manifest["encoder"], manifest["projector"]
        self.enc_cfg, self.stack = enc, proj["stack"]
        self.whisper = enc.get("type", "conformer") == "whisper"
        self.cache_specs = _encoder_caches(enc)
        self.llm_dim = proj["output_dim"]
        self.proj_context = proj.get("context")     # None: the projector has no context layers
        self.has_nonblank = bool(proj.get("nonblank"))
        self.encoder = make_session(root / files["encoder"], threads)
        self.projector = make_session(root / files["projector"], threads)
        cmvn = manifest["frontend"].get("cmvn")
        self.cmvn = None
        if cmvn:
            import json

            data = json.loads((root / cmvn).read_text())
            self.cmvn = (np.asarray(data["mean"], np.float32), np.asarray(data["std"], np.float32))

    def output_lengths(self, num_feats: int) -> int:
        """Encoder frames of ``num_feats`` features (Whisper: ``ceil(T / 2)``; Conformer: its convolutions)."""
        if self.whisper:
            return (max(num_feats, 0) + 1) // 2
        n = num_feats
        for kernel, step in self.enc_cfg["subsampling_convs"]:
            n = (n - kernel) // step + 1
        return max(n, 0)

    def init_state(self, chunk_frames: int) -> AudioState:
        e = self.enc_cfg
        cached = e["left_chunks"] * chunk_frames if e["left_chunks"] >= 0 else 0
        att = np.zeros((e["num_layers"], 1, e["num_heads"], cached, e["head_dim"]), np.float32)
        caches = {name: np.zeros(spec["shape"], np.float32) for name, spec in self.cache_specs.items()}
        proj_caches = {}
        if self.proj_context:   # the torch Projector.init_state: a window of left_chunks chunks, or a growing cache
            c = self.proj_context
            window = c["left_chunks"] * (chunk_frames // self.stack) if c["left_chunks"] >= 0 else 0
            kv = np.zeros((c["layers"], 1, c["heads"], window, c["head_dim"]), np.float32)
            proj_caches = {"offset": np.zeros(1, np.int64), "att_k": kv, "att_v": kv.copy()}
        return AudioState(feats=np.zeros((0, e["input_dim"]), np.float32), offset=0, att_k=att, att_v=att.copy(),
                          caches=caches, proj=np.zeros((0, e["output_dim"]), np.float32), proj_caches=proj_caches)

    def stream_audio(self, states: Sequence[AudioState], feats: Sequence[np.ndarray], final: Sequence[bool],
                     chunk_frames: int) -> list[np.ndarray]:
        """New features (T_b, F) of each stream -> its new audio tokens (n_b, D_llm); ``final[b]``: input
        ended (the last partial chunk is encoded, the last partial stack flushed)."""
        e = self.enc_cfg
        for st, f in zip(states, feats):
            if f.size:
                if self.cmvn is not None:
                    f = (f - self.cmvn[0]) / self.cmvn[1]
                st.feats = np.concatenate([st.feats, f.astype(np.float32)])
        needed = e["stride"] * (chunk_frames - 1) + e["receptive_field"]
        out: list[list[np.ndarray]] = [[] for _ in states]
        while True:
            idx = [b for b, st in enumerate(states) if st.feats.shape[0] >= needed]
            if not idx:
                break
            frames = self._encode([states[b] for b in idx], needed, e["stride"] * chunk_frames, chunk_frames)
            for b, fr in zip(idx, frames):
                out[b].append(self._project(states[b], fr, False, chunk_frames))
        for b, (st, fin) in enumerate(zip(states, final)):
            if not fin:
                continue
            n = st.feats.shape[0]
            frames = np.zeros((0, e["output_dim"]), np.float32)
            if self.output_lengths(n) > 0:
                if self.whisper:    # the last features and Whisper's zero padding as their right context
                    st.feats = np.concatenate([st.feats, np.zeros((1, st.feats.shape[1]), np.float32)])
                frames = self._encode([st], st.feats.shape[0], st.feats.shape[0], chunk_frames)[0]
            st.feats = st.feats[:0]
            out[b].append(self._project(st, frames, True, chunk_frames))
        return [np.concatenate(o) if o else np.zeros((0, self.llm_dim), np.float32) for o in out]

    def _encode(self, group: list[AudioState], n: int, consume: int, chunk_frames: int) -> list[np.ndarray]:
        """One encoder step over the first ``n`` features of every stream of ``group`` (batched)."""
        cached = max(st.att_k.shape[3] for st in group)

        def pad(a: np.ndarray) -> np.ndarray:
            return np.pad(a, ((0, 0), (0, 0), (0, 0), (cached - a.shape[3], 0), (0, 0)))

        feed = {"feats": np.stack([st.feats[:n] for st in group]),
                "offset": np.array([st.offset for st in group], np.int64),
                "att_k": np.concatenate([pad(st.att_k) for st in group], axis=1),
                "att_v": np.concatenate([pad(st.att_v) for st in group], axis=1)}
        for name, spec in self.cache_specs.items():
            feed[name] = np.concatenate([st.caches[name] for st in group], axis=spec["batch_axis"])
        names = ["frames", "att_k_out", "att_v_out", *(f"{name}_out" for name in self.cache_specs)]
        frames, att_k, att_v, *caches = self.encoder.run(names, feed)
        c = frames.shape[1]
        left = self.enc_cfg["left_chunks"]
        for b, st in enumerate(group):
            st.offset += c
            keep = left * chunk_frames if left >= 0 else min(st.offset, att_k.shape[3])
            st.att_k = att_k[:, b:b + 1, :, att_k.shape[3] - keep:].copy()
            st.att_v = att_v[:, b:b + 1, :, att_v.shape[3] - keep:].copy()
            for (name, spec), value in zip(self.cache_specs.items(), caches):
                st.caches[name] = np.take(value, [b], axis=spec["batch_axis"]).copy()
            st.feats = st.feats[consume:]
        return [frames[b] for b in range(len(group))]

    def _project(self, st: AudioState, frames: np.ndarray, final: bool, chunk_frames: int) -> np.ndarray:
        """``Projector.streaming_forward``: stack ``stack`` frames (zero-padding the last when final) -> MLP; with
        context layers whole chunks of ``chunk_frames`` frames at a time (the rest waits, or is flushed when
        final)."""
        x = np.concatenate([st.proj, frames])
        k = self.stack
        unit = (chunk_frames // k) * k if self.proj_context else k    # what may be projected: whole units
        n = x.shape[0] if final else (x.shape[0] // unit) * unit
        ready, st.proj = x[:n], x[n:]
        block = unit if self.proj_context else max(n, 1)    # the MLP alone takes every ready stack in one run
        outs = [self._project_block(st, ready[i:i + block]) for i in range(0, n, block)]
        return np.concatenate(outs) if outs else np.zeros((0, self.llm_dim), np.float32)

    def _project_block(self, st: AudioState, frames: np.ndarray) -> np.ndarray:
        """One projector run over ``frames`` (a whole chunk with context layers, else whole stacks; zero-padded to a
        whole stack): its tokens (n, D_llm); the non-blank mass and the context caches go to ``st``."""
        k, n = self.stack, frames.shape[0]
        pad = (-n) % k
        if pad:
            frames = np.concatenate([frames, np.zeros((pad, frames.shape[1]), np.float32)])
        feed = {"stacked": frames.reshape(1, (n + pad) // k, frames.shape[1] * k)}
        names = ["tokens", *(["nonblank"] if self.has_nonblank else [])]
        if self.proj_context:
            feed.update(st.proj_caches)
            names += ["att_k_out", "att_v_out"]
        out = dict(zip(names, self.projector.run(names, feed)))
        if self.has_nonblank:
            st.nonblank = np.concatenate([st.nonblank, out["nonblank"][0]])
        if self.proj_context:
            caches, keep = st.proj_caches, st.proj_caches["att_k"].shape[3]
            if self.proj_context["left_chunks"] < 0:    # unlimited left context: the cache grows
                keep = out["att_k_out"].shape[3]
            caches["offset"] = caches["offset"] + out["tokens"].shape[1]
            caches["att_k"] = out["att_k_out"][:, :, :, out["att_k_out"].shape[3] - keep:]
            caches["att_v"] = out["att_v_out"][:, :, :, out["att_v_out"].shape[3] - keep:]
        return out["tokens"][0]


# ---------------------------------------------------------------------------------------------- LLM
@dataclass
class WriteResult:
    """As ``speech_llm.lm.group_lm.WriteResult``: tokens per stream, the pending token (B,), stopped (B,)."""

    tokens: list[list[int]]
    pending: np.ndarray
    stopped: np.ndarray


class LLM:
    """The exported LLM step and its embedding table."""

    def __init__(self, root: Path, manifest: dict, files: dict, threads: int = 0):
        cfg = manifest["llm"]
        self.session = make_session(root / files["llm"], threads)
        self.embeddings = np.load(root / cfg["embeddings"])
        self.num_layers, self.num_kv_heads, self.head_dim = cfg["num_layers"], cfg["num_kv_heads"], cfg["head_dim"]
        self.hidden_size, self.phi = cfg["hidden_size"], cfg["phi"]
        self.past_names = [f"past_{kind}_{i}" for i in range(self.num_layers) for kind in ("key", "value")]

    def embed(self, ids) -> np.ndarray:
        """Token ids (...,) -> embeddings (..., D)."""
        return self.embeddings[np.asarray(ids, np.int64)]

    def start(self, batch_size: int = 1) -> LLMSession:
        return LLMSession(self, batch_size)


class LLMSession:
    """Incremental group-streaming state of B streams (``GroupStreamingSession`` on onnxruntime)."""

    def __init__(self, llm: LLM, batch_size: int):
        self.llm = llm
        self.batch_size = batch_size
        self.kv = [np.zeros((batch_size, llm.num_kv_heads, 0, llm.head_dim), np.float32)
                   for _ in range(2 * llm.num_layers)]
        self.valid = np.zeros((batch_size, 0), bool)
        self.is_source = np.zeros((batch_size, 0), bool)
        self.num_source = np.zeros(batch_size, np.int64)
        self.num_target = np.zeros(batch_size, np.int64)

    @property
    def num_forwarded(self) -> int:
        return self.valid.shape[1]

    @classmethod
    def merge(cls, sessions: Sequence[LLMSession]) -> LLMSession:
        """One session of all their streams; caches left-padded with invalid slots to the longest."""
        if len(sessions) == 1:
            return sessions[0]
        length = max(s.num_forwarded for s in sessions)

        def pad(x: np.ndarray, axis: int) -> np.ndarray:
            widths = [(0, 0)] * x.ndim
            widths[axis] = (length - x.shape[axis], 0)
            return np.pad(x, widths)

        out = cls(sessions[0].llm, sum(s.batch_size for s in sessions))
        out.kv = [np.concatenate([pad(s.kv[i], 2) for s in sessions]) for i in range(len(out.kv))]
        out.valid = np.concatenate([pad(s.valid, 1) for s in sessions])
        out.is_source = np.concatenate([pad(s.is_source, 1) for s in sessions])
        out.num_source = np.concatenate([s.num_source for s in sessions])
        out.num_target = np.concatenate([s.num_target for s in sessions])
        return out

    def select(self, indices: Sequence[int]) -> LLMSession:
        """The streams ``indices``; slots none of them uses are dropped."""
        idx = np.asarray(list(indices), np.int64)
        valid = self.valid[idx]
        keep = np.nonzero(valid.any(0))[0]
        out = LLMSession(self.llm, len(idx))
        out.kv = [k[idx][:, :, keep] for k in self.kv]
        out.valid, out.is_source = valid[:, keep], self.is_source[idx][:, keep]
        out.num_source, out.num_target = self.num_source[idx].copy(), self.num_target[idx].copy()
        return out

    def _forward(self, embeds: np.ndarray, pos: np.ndarray, valid: np.ndarray, is_source: np.ndarray) -> np.ndarray:
        mask = block_mask(self.valid, self.is_source, valid, is_source)
        feed = {"inputs_embeds": embeds.astype(np.float32), "position_ids": pos.astype(np.int64),
                "attention_mask": mask}
        feed.update(zip(self.llm.past_names, self.kv))
        logits, *self.kv = self.llm.session.run(None, feed)
        self.valid = np.concatenate([self.valid, valid], axis=1)
        self.is_source = np.concatenate([self.is_source, valid & is_source], axis=1)
        return logits

    def read(self, embeds: np.ndarray, lens: np.ndarray) -> None:
        """Append source embeddings (B, n, D); stream b takes its first ``lens[b]``."""
        valid = lengths_to_valid(lens, embeds.shape[1])
        self._forward(embeds, group_positions(self.num_source, valid), valid, np.ones_like(valid))
        self.num_source += valid.sum(1)

    def write(self, ids: np.ndarray, lens: np.ndarray) -> np.ndarray:
        """Append target tokens (B, m); stream b takes its first ``lens[b]``. Returns the last row's logits."""
        valid = lengths_to_valid(lens, ids.shape[1])
        embeds = self.llm.embed(np.where(valid, ids, 0))
        pos = group_positions(self.num_target, valid) + self.llm.phi
        logits = self._forward(embeds, pos, valid, np.zeros_like(valid))
        self.num_target += valid.sum(1)
        return logits

    def read_write(self, embeds: np.ndarray, lens: np.ndarray, ids: np.ndarray, write: np.ndarray) -> np.ndarray:
        """Source (B, n, D) and then one target token per writing stream, in one forward."""
        src = lengths_to_valid(lens, embeds.shape[1])
        tgt = write.astype(bool).reshape(-1, 1)
        tok = self.llm.embed(np.where(tgt[:, 0], ids, 0))[:, None]
        pos = np.concatenate([group_positions(self.num_source, src),
                              group_positions(self.num_target, tgt) + self.llm.phi], axis=1)
        kinds = np.concatenate([np.ones_like(src), np.zeros_like(tgt)], axis=1)
        logits = self._forward(np.concatenate([embeds, tok], axis=1), pos, np.concatenate([src, tgt], axis=1), kinds)
        self.num_source += src.sum(1)
        self.num_target += tgt.sum(1)
        return logits

    def greedy_write(self, first_ids: np.ndarray, stop_ids: Sequence[Sequence[int]], max_tokens: Sequence[int],
                     active: np.ndarray, suppress_ids: Sequence[Sequence[int]], source: np.ndarray | None = None,
                     source_lens: np.ndarray | None = None) -> WriteResult:
        """``GroupStreamingSession.greedy_write`` with per-stream stops, caps and suppressed tokens."""
        b = self.batch_size
        caps = np.asarray(max_tokens, np.int64)
        pending = np.asarray(first_ids, np.int64).copy()
        active = np.asarray(active, bool).copy()
        stopped = np.zeros(b, bool)
        count = np.zeros(b, np.int64)
        tokens: list[list[int]] = [[] for _ in range(b)]
        step = self.read_write(source, source_lens, pending, active) if source is not None else None
        while active.any():
            if step is not None:
                logits, step = step, None
            else:
                logits = self.write(pending[:, None], active.astype(np.int64))
            logits = logits.copy()
            for i in range(b):
                if suppress_ids[i]:
                    logits[i, list(suppress_ids[i])] = -np.inf
            nxt = logits.argmax(-1)
            for i in np.nonzero(active)[0]:
                tokens[i].append(int(nxt[i]))
            pending = np.where(active, nxt, pending)
            hit = active & np.array([int(nxt[i]) in stop_ids[i] for i in range(b)])
            stopped |= hit
            count += active
            active &= ~hit & (count < caps)
        return WriteResult(tokens=tokens, pending=pending, stopped=stopped)
