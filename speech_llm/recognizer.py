"""Recognizer / Stream: incremental decoding with a shared model and per-utterance state (DESIGN.md §4).

    rec = speech_llm.load_recognizer("exp/mini")
    s = rec.create_stream()
    s.accept_waveform(sample_rate, samples)    # any block size, any rate (resampled to 16 kHz)
    rec.decode(s)                              # advance as far as the input allows
    s.input_finished(); rec.decode(s)
    r = rec.get_result(s)                      # r.text, r.committed, r.partial, r.words

The :class:`Recognizer` holds the model; a :class:`Stream` holds one utterance's state: resampler,
streaming fbank, encoder caches, projector carry-over, the LLM session (KV cache) and what was written.

Policy (streaming): audio goes through fbank -> encoder -> projector as it arrives. Each complete chunk
of ``tokens_per_chunk`` audio tokens is read on its own, then the model writes until it writes
``<wait>`` (eos is suppressed while input remains); that ``<wait>`` is fed back after the next chunk,
exactly as in training. With ``lookahead_chunks = K`` the first write waits until K+1 chunks are read
(every later write then sees K chunks more than in training: more context, K chunks more latency).
When the input has ended: the last partial chunk is read and written on, then
the source end marker is read and the model writes until eos (``<wait>`` suppressed). Because chunks are
processed one at a time, the result does not depend on block sizes or on how often ``decode`` is called.

Batch mode: a stream whose input is already complete at its first ``decode`` (or any stream when the
recognizer's mode is ``"batch"``) is decoded offline: all audio tokens and the end marker are read, then
the model writes until eos with no waits — the batch-mode result of the same checkpoint.

Many streams (:meth:`Recognizer.decode_streams`) advance in one batch with exactly the policy above; a
single :meth:`Recognizer.decode` is the same code with one stream. Between calls every stream keeps its
own state (encoder caches, a compact ``B = 1`` LLM session), so streams can join, leave, finish and be fed
any block sizes independently. Within a call:

1. Encoder + projector: features are cut into chunk windows per stream; window ``j`` of every stream that
   has one goes through ``encoder.streaming_forward`` together (states stacked with ``stack_states``), so
   all batched inputs are chunk-aligned; the last partial chunks of finished inputs are encoded in groups
   of equal length.
2. LLM: each stream's work is a list of steps (read a chunk -- the prompt goes with the first one -- then
   maybe write; at the end the end marker, then the final write). The sessions of the streams with work
   are merged (:meth:`~speech_llm.group_lm.GroupStreamingSession.merge`) and step ``i`` of every stream
   runs together: ONE LLM forward reads all the chunks (per-stream lengths), then each greedy token is ONE
   forward over the merged batch (per-stream stop/suppress/cap; a stream done writing takes part with an
   empty row until the longest write of the step ends). A stream whose steps are done leaves the batch
   (:meth:`~speech_llm.group_lm.GroupStreamingSession.select`, which drops its padding slots), so padding
   never outlives a call.

Each stream gets the tokens it gets decoded alone: batched forwards differ from ``B = 1`` ones only by
float rounding (masked padding contributes exactly zero). Cost notes: a batch-mode stream reads its whole
input in one step, so the other streams' rows of that read are padded to its length; ``compute_s`` of a
stream is its equal share of the batched call's time.

Committed text never changes: every token is written once and never revised (nothing is re-encoded).
``committed`` is the text of complete words; ``partial`` is a word still being written (its next token
could continue it), which is usually empty because ``<wait>`` falls between words.

Input conversions (documented): integer PCM is scaled to [-1, 1] (int16 by 1/32768, int32 by 1/2^31);
2-D input of shape (N, C) is averaged over channels; NaN or infinite samples raise ``ValueError``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from encoders.constants import FRAME_SHIFT_MS, SAMPLE_RATE
from encoders.frontend import StreamingFbank
from speech_llm.group_lm import GroupStreamingSession
from speech_llm.model import SpeechLLM
from speech_llm.resample import StreamingResampler


@dataclass
class DecodeOptions:
    """mode: "streaming" or "batch"; caps guard against a model that never stops."""

    mode: str = "streaming"
    chunk_ms: float | None = None       # None: the chunk the model was trained with
    lookahead_chunks: int = 0           # streaming: read this many chunks ahead before writing
    max_tokens_per_read: int = 20
    max_total_tokens: int = 200

    def __post_init__(self):
        if self.mode not in ("streaming", "batch"):
            raise ValueError(f"mode must be 'streaming' or 'batch', got {self.mode!r}")
        if self.lookahead_chunks < 0:
            raise ValueError(f"lookahead_chunks must be >= 0, got {self.lookahead_chunks}")
        if self.max_tokens_per_read < 1 or self.max_total_tokens < 1:
            raise ValueError("max_tokens_per_read and max_total_tokens must be >= 1")


@dataclass
class Word:
    """A written word and when: ``audio_s`` = seconds of audio read when its last token was written,
    ``wall_s`` = wall-clock seconds since the stream's first audio arrived."""

    word: str
    audio_s: float
    wall_s: float


@dataclass
class Result:
    text: str
    committed: str
    partial: str
    words: list[Word]
    finished: bool


@dataclass
class _Written:
    token: int
    audio_s: float
    wall_s: float


@dataclass
class _Step:
    """One step of a stream's LLM work: read ``source`` (n, D) (``n_audio`` of them audio tokens), then
    write: ``None`` (no write), ``"chunk"`` (until ``<wait>``) or ``"final"`` (until eos)."""

    source: torch.Tensor
    n_audio: int
    write: str | None


@dataclass
class Stream:
    """One utterance's decoding state. Create with :meth:`Recognizer.create_stream`."""

    rec: Recognizer
    resampler: StreamingResampler | None = None
    fbank: StreamingFbank = field(default_factory=StreamingFbank)
    feats: list[torch.Tensor] = field(default_factory=list)
    num_samples: int = 0
    input_done: bool = False
    started: bool = False
    batch_mode: bool = False
    finished: bool = False
    t0: float | None = None
    written: list[_Written] = field(default_factory=list)
    num_complete: int = 0
    tokens_read: int = 0
    input_end_wall: float | None = None
    compute_s: float = 0.0
    trace: list[tuple[int, int]] = field(default_factory=list)
    """Every generated token, <wait>/eos included, with the source tokens its row saw when it was chosen."""

    def __post_init__(self):
        m = self.rec.model
        p = next(m.parameters())
        self.enc_states = m.encoder.init_states(1, self.rec.chunk_frames, m.left_chunks)
        self.proj_state = m.projector.init_state(1, m.encoder.output_dim, p.device, p.dtype)
        self.enc_buf = p.new_zeros(0, m.encoder.input_dim)   # (T, F) features not yet encoded (CMVN applied)
        self.audio = p.new_zeros(1, 0, m.glm.hidden_size)
        self.session: GroupStreamingSession | None = None
        self.pending = torch.tensor([m.tokens.bos_id])

    @property
    def duration_s(self) -> float:
        """Seconds of (16 kHz) audio accepted so far."""
        return self.num_samples / SAMPLE_RATE

    def accept_waveform(self, sample_rate: int, samples) -> None:
        """Append audio: ``samples`` (N,) or (N, C), float in [-1, 1] or integer PCM, at ``sample_rate``."""
        if self.input_done:
            raise RuntimeError("accept_waveform() after input_finished()")
        x = _to_mono_float(samples)
        if self.t0 is None:
            self.t0 = time.monotonic()
        if self.resampler is None:
            self.resampler = StreamingResampler(int(sample_rate), SAMPLE_RATE)
        elif int(sample_rate) != self.resampler.orig_rate:
            raise ValueError(f"sample rate changed within a stream: {self.resampler.orig_rate} -> {sample_rate}")
        self._push(self.resampler.accept(x))

    def input_finished(self) -> None:
        """No more audio will come."""
        if self.input_done:
            return
        if self.resampler is not None:
            self._push(self.resampler.flush())
        self.feats.append(self.fbank.input_finished())
        self.input_done = True
        self.input_end_wall = self.wall_s()

    def wall_s(self) -> float:
        """Wall-clock seconds since the first audio arrived."""
        return 0.0 if self.t0 is None else time.monotonic() - self.t0

    def _push(self, x: torch.Tensor) -> None:
        if x.numel():
            self.num_samples += x.numel()
            self.feats.append(self.fbank.accept_waveform(x))

    def _take_feats(self) -> torch.Tensor:
        f = torch.cat(self.feats) if self.feats else torch.zeros(0, self.rec.model.encoder.input_dim)
        self.feats = []
        return f


class Recognizer:
    """A speech LLM shared by many streams.

    Args:
        model: a :class:`SpeechLLM` (eval mode is set here).
        tokenizer: the LLM tokenizer (``decode``).
        options: :class:`DecodeOptions`.
    """

    @classmethod
    def from_checkpoint(cls, exp_dir_or_checkpoint: str | os.PathLike, options: DecodeOptions | None = None,
                        device: str = "cpu") -> Recognizer:
        """Rebuild the model from a checkpoint (or the best one in an exp dir) alone and wrap it.

        ``options`` None: the checkpoint config's ``decode`` section (mode and token caps). The config is
        kept as :attr:`config`.
        """
        from speech_llm.checkpoint import load_model

        model, tokenizer, cfg = load_model(exp_dir_or_checkpoint, device=device)
        if options is None:
            d = cfg.decode
            options = DecodeOptions(mode=d.mode, max_tokens_per_read=d.max_tokens_per_read,
                                    max_total_tokens=d.max_total_tokens)
        rec = cls(model, tokenizer, options)
        rec.config = cfg
        return rec

    def __init__(self, model: SpeechLLM, tokenizer, options: DecodeOptions | None = None):
        self.config = None
        """The experiment config the model was trained with, when built by :meth:`from_checkpoint`."""
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.options = options or DecodeOptions()
        frame_ms = model.encoder.subsampling_rate * FRAME_SHIFT_MS
        self.token_s = model.projector.stack * frame_ms / 1000.0
        self.chunk_frames = model.chunk_frames
        if self.options.chunk_ms is not None:
            frames = self.options.chunk_ms / frame_ms
            if frames != int(frames) or int(frames) % model.projector.stack or frames < 1:
                raise ValueError(f"chunk_ms={self.options.chunk_ms:g} must be a positive multiple of "
                                 f"{self.token_s * 1000:g} ms (one LLM input token)")
            self.chunk_frames = int(frames)
        self.tokens_per_chunk = self.chunk_frames // model.projector.stack

    @property
    def chunk_s(self) -> float:
        return self.tokens_per_chunk * self.token_s

    def create_stream(self) -> Stream:
        return Stream(self)

    def decode(self, stream: Stream) -> None:
        """Advance ``stream`` as far as its input allows (see the module docstring for the policy)."""
        self.decode_streams([stream])

    @torch.no_grad()
    def decode_streams(self, streams: Sequence[Stream]) -> None:
        """Advance several streams as far as their inputs allow, in one batch (see the module docstring).

        Each stream gets the tokens, text and emission audio times that :meth:`decode` on it alone gives.
        """
        todo = list({id(s): s for s in streams if not s.finished}.values())
        if not todo:
            return
        t = time.perf_counter()
        try:
            work = [s for s in todo if self._start(s)]
            self._encode(work)
            self._run_steps({id(s): self._plan(s) for s in work}, work)
        finally:
            share = (time.perf_counter() - t) / len(todo)
            for s in todo:
                s.compute_s += share

    def get_result(self, stream: Stream) -> Result:
        """Text so far: committed words never change; ``partial`` is a word still being written."""
        toks = [w.token for w in stream.written]
        n_done = stream.num_complete
        words: list[Word] = []
        start = 0
        for i in range(1, n_done + 1):
            if i == n_done or self._starts_word(toks[i]):
                text = self.tokenizer.decode(toks[start:i], skip_special_tokens=True).strip()
                if text:
                    last = stream.written[i - 1]
                    words += [Word(w, last.audio_s, last.wall_s) for w in text.split()]
                start = i
        committed = " ".join(w.word for w in words)
        partial = self.tokenizer.decode(toks[n_done:], skip_special_tokens=True).strip()
        text = (committed + " " + partial).strip()
        return Result(text=text, committed=committed, partial=partial, words=words, finished=stream.finished)

    # ------------------------------------------------------------------ internals
    def _start(self, stream: Stream) -> bool:
        """Whether ``stream`` is decoded now (batch mode waits for the whole input); fixes its mode."""
        if self.options.mode == "batch" and not stream.input_done:
            return False
        stream.batch_mode = self.options.mode == "batch" or (not stream.started and stream.input_done)
        stream.started = True
        return True

    def _encode(self, streams: list[Stream]) -> None:
        """New features of every stream -> audio tokens appended to ``stream.audio``, chunk-aligned batches."""
        m = self.model
        for s in streams:
            feats = s._take_feats()
            if m.cmvn is not None and feats.numel():
                feats = m.cmvn(feats)
            s.enc_buf = torch.cat([s.enc_buf, feats.to(s.enc_buf.dtype)])
        window = self._chunk_window()
        if window is None:  # an encoder without chunk geometry / state stacking: one stream at a time
            for s in streams:
                self._encode_group([s], s.enc_buf.size(0), final=s.input_done)
            return
        need, hop = window
        while ready := [s for s in streams if s.enc_buf.size(0) >= need]:
            self._encode_group(ready, need, final=False, hop=hop)
        ends: dict[int, list[Stream]] = {}
        for s in streams:
            if s.input_done:
                ends.setdefault(s.enc_buf.size(0), []).append(s)
        for n, group in ends.items():
            self._encode_group(group, n, final=True)

    def _chunk_window(self) -> tuple[int, int] | None:
        """(features needed for one chunk, features consumed by it), or None for an encoder that lacks
        ``embed.stride``/``embed.receptive_field`` or ``stack_states``/``unstack_states``."""
        enc = self.model.encoder
        embed = getattr(enc, "embed", None)
        stride, field_ = getattr(embed, "stride", None), getattr(embed, "receptive_field", None)
        if stride is None or field_ is None or not hasattr(enc, "stack_states") or not hasattr(enc, "unstack_states"):
            return None
        return stride * (self.chunk_frames - 1) + field_, stride * self.chunk_frames

    def _encode_group(self, group: list[Stream], n: int, final: bool, hop: int | None = None) -> None:
        """Encode the first ``n`` buffered features of every stream in ``group`` in one batch.

        With ``hop``, the ``n`` features are one chunk's window: ``hop`` of them are consumed, the rest stays
        at the front of ``enc_buf`` and the encoder's own feature buffer is emptied (so every stream's
        states hold no features and stack). Without it, all ``n`` go to the encoder, which keeps what it
        cannot use yet."""
        m = self.model
        feats = torch.stack([s.enc_buf[:n] for s in group])
        states = (group[0].enc_states if len(group) == 1
                  else m.encoder.stack_states([s.enc_states for s in group]))
        enc, states = m.encoder.streaming_forward(feats, states, final=final)
        proj, proj_state = m.projector.streaming_forward(enc, torch.cat([s.proj_state for s in group]), final=final)
        per_stream = [states] if len(group) == 1 else m.encoder.unstack_states(states)
        for b, (s, st) in enumerate(zip(group, per_stream)):
            s.enc_buf = s.enc_buf[n if hop is None else hop:]
            if hop is not None:
                st["feats"] = st["feats"][:, :0]  # what it kept is still at the front of enc_buf
            s.enc_states = st
            s.proj_state = proj_state[b:b + 1]
            s.audio = torch.cat([s.audio, proj[b:b + 1].to(s.audio.dtype)], dim=1)

    def _plan(self, stream: Stream) -> list[_Step]:
        """Turn the stream's new audio tokens (and input end) into its LLM steps; see the module docstring."""
        m, k = self.model, self.tokens_per_chunk
        audio = stream.audio[0]
        stream.audio = stream.audio[:, :0]
        steps: list[_Step] = []
        read = stream.tokens_read
        if not stream.batch_mode:
            while audio.size(0) >= k:
                read += k
                write = "chunk" if read > self.options.lookahead_chunks * k else None
                steps.append(_Step(audio[:k], k, write))
                audio = audio[k:]
        if stream.input_done:
            end = m.token_embeds(m.tokens.end_ids)[0].to(audio.dtype)
            if stream.batch_mode:
                steps.append(_Step(torch.cat([audio, end]), audio.size(0), "final"))
            else:
                if audio.size(0):
                    steps.append(_Step(audio, audio.size(0), "chunk"))
                steps.append(_Step(end, 0, "final"))
        else:
            stream.audio = audio.unsqueeze(0)  # less than a chunk: waits for more
        if steps and stream.session is None:
            prompt = m.token_embeds(m.tokens.prompt_ids)[0].to(audio.dtype)
            first = steps[0]
            steps[0] = _Step(torch.cat([prompt, first.source]), first.n_audio, first.write)
        return steps

    def _run_steps(self, plans: dict[int, list[_Step]], streams: list[Stream]) -> None:
        """Run step i of every stream together: one read forward, then batched greedy writes."""
        group = [s for s in streams if plans[id(s)]]
        if not group:
            return
        sess = GroupStreamingSession.merge([s.session or self.model.glm.start(1) for s in group])
        i = 0
        while group:
            steps = [plans[id(s)][i] for s in group]
            embeds = torch.nn.utils.rnn.pad_sequence([st.source for st in steps], batch_first=True)
            sess.read(embeds, lens=torch.tensor([st.source.size(0) for st in steps]))
            for s, st in zip(group, steps):
                s.tokens_read += st.n_audio
            self._write(sess, group, steps)
            i += 1
            done = [b for b, s in enumerate(group) if len(plans[id(s)]) == i]
            if done:
                keep = [b for b in range(len(group)) if b not in done]
                for b in done:
                    group[b].session = sess.select([b])
                    group[b].finished = steps[b].write == "final"
                sess = sess.select(keep) if keep else sess
                group = [group[b] for b in keep]

    def _write(self, sess: GroupStreamingSession, group: list[Stream], steps: list[_Step]) -> None:
        """Greedy writes of the streams whose step writes, batched; bookkeeping per stream."""
        tk, opts = self.model.tokens, self.options
        active, caps, stops, suppress = [], [], [], []
        for s, st in zip(group, steps):
            left = opts.max_total_tokens - len(s.written)
            final = st.write == "final"
            active.append(st.write is not None and left > 0)
            caps.append(max(1, left if final else min(left, opts.max_tokens_per_read)))
            stops.append([tk.eos_id] if final else [tk.wait_id])
            suppress.append([tk.wait_id] if final else [tk.eos_id])
        if not any(active):
            return
        visible = sess.num_source.tolist()
        pending = torch.cat([s.pending for s in group])
        res = sess.greedy_write(pending, stops, caps, active=torch.tensor(active), suppress_ids=suppress)
        for b, (s, st) in enumerate(zip(group, steps)):
            if active[b]:
                self._record(s, res.tokens[b], res.pending[b:b + 1], bool(res.stopped[b]), visible[b],
                             final=st.write == "final")

    def _record(self, stream: Stream, tokens: list[int], pending: torch.Tensor, stopped: bool, visible: int,
                final: bool) -> None:
        tk = self.model.tokens
        stream.trace += [(t, visible) for t in tokens]
        audio_s = stream.duration_s if final else min(stream.tokens_read * self.token_s, stream.duration_s)
        wall = stream.wall_s()
        for t in tokens:
            if t not in (tk.wait_id, tk.eos_id):
                stream.written.append(_Written(t, audio_s, wall))
        stream.pending = pending
        toks = [w.token for w in stream.written]
        # A write that ended on <wait>/eos closed its last word; one cut by a cap may be mid-word.
        stream.num_complete = len(toks) if stopped or final else self._word_boundary(toks)

    def _starts_word(self, token: int) -> bool:
        return self.tokenizer.decode([token]).startswith(" ")

    def _word_boundary(self, toks: list[int]) -> int:
        """Index where the last (possibly unfinished) word starts."""
        for i in range(len(toks) - 1, 0, -1):
            if self._starts_word(toks[i]):
                return i
        return 0


def load_recognizer(exp_dir_or_checkpoint: str | os.PathLike, options: DecodeOptions | None = None,
                    device: str = "cpu") -> Recognizer:
    """:meth:`Recognizer.from_checkpoint` (exported as ``speech_llm.load_recognizer``)."""
    return Recognizer.from_checkpoint(exp_dir_or_checkpoint, options, device)


def _to_mono_float(samples) -> torch.Tensor:
    x = samples.detach().cpu().numpy() if isinstance(samples, torch.Tensor) else np.asarray(samples)
    if x.dtype.kind in "iu":
        x = x.astype(np.float32) / float(2 ** (8 * x.dtype.itemsize - 1))
    x = x.astype(np.float32)
    if x.ndim == 2:
        x = x.mean(axis=1)
    elif x.ndim != 1:
        raise ValueError(f"samples must have shape (N,) or (N, channels), got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("samples contain NaN or infinite values")
    return torch.from_numpy(x)
