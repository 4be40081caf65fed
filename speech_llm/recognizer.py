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

Committed text never changes: every token is written once and never revised (nothing is re-encoded).
``committed`` is the text of complete words; ``partial`` is a word still being written (its next token
could continue it), which is usually empty because ``<wait>`` falls between words.

Input conversions (documented): integer PCM is scaled to [-1, 1] (int16 by 1/32768, int32 by 1/2^31);
2-D input of shape (N, C) is averaged over channels; NaN or infinite samples raise ``ValueError``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from encoders.constants import FRAME_SHIFT_MS, SAMPLE_RATE
from encoders.frontend import StreamingFbank
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
class Stream:
    """One utterance's decoding state. Create with :meth:`Recognizer.create_stream`."""

    rec: Recognizer
    resampler: StreamingResampler | None = None
    fbank: StreamingFbank = field(default_factory=StreamingFbank)
    feats: list[torch.Tensor] = field(default_factory=list)
    num_samples: int = 0
    input_done: bool = False
    started: bool = False
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
        self.audio = p.new_zeros(1, 0, m.glm.hidden_size)
        self.session = None
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

    def __init__(self, model: SpeechLLM, tokenizer, options: DecodeOptions | None = None):
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

    @torch.no_grad()
    def decode(self, stream: Stream) -> None:
        """Advance ``stream`` as far as its input allows (see the module docstring for the policy)."""
        if stream.finished:
            return
        t = time.perf_counter()
        try:
            self._advance(stream)
        finally:
            stream.compute_s += time.perf_counter() - t

    def _advance(self, stream: Stream) -> None:
        batch = self.options.mode == "batch" or (not stream.started and stream.input_done)
        if self.options.mode == "batch" and not stream.input_done:
            return  # batch mode waits for the whole input
        stream.started = True
        self._encode(stream)
        k = self.tokens_per_chunk
        if not batch:
            while stream.audio.size(1) >= k:
                self._read(stream, stream.audio[:, :k])
                stream.audio = stream.audio[:, k:]
                if stream.tokens_read > self.options.lookahead_chunks * k:
                    self._write(stream, final=False)
        if not stream.input_done:
            return
        if batch and stream.audio.size(1):
            self._read(stream, stream.audio)
        elif stream.audio.size(1):
            self._read(stream, stream.audio)
            self._write(stream, final=False)
        stream.audio = stream.audio[:, :0]
        self._ensure_session(stream).read(self.model.token_embeds(self.model.tokens.end_ids))
        self._write(stream, final=True)
        stream.finished = True

    def decode_streams(self, streams: list[Stream]) -> None:
        """Advance several streams (one after another; each keeps its own KV cache)."""
        for s in streams:
            self.decode(s)

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
    def _encode(self, stream: Stream) -> None:
        m = self.model
        feats = stream._take_feats()
        if m.cmvn is not None and feats.numel():
            feats = m.cmvn(feats)
        enc, stream.enc_states = m.encoder.streaming_forward(feats.unsqueeze(0), stream.enc_states,
                                                             final=stream.input_done)
        proj, stream.proj_state = m.projector.streaming_forward(enc, stream.proj_state, final=stream.input_done)
        stream.audio = torch.cat([stream.audio, proj.to(stream.audio.dtype)], dim=1)

    def _ensure_session(self, stream: Stream):
        if stream.session is None:
            stream.session = self.model.glm.start(1)
            stream.session.read(self.model.token_embeds(self.model.tokens.prompt_ids))
        return stream.session

    def _read(self, stream: Stream, audio: torch.Tensor) -> None:
        self._ensure_session(stream).read(audio)
        stream.tokens_read += audio.size(1)

    def _write(self, stream: Stream, final: bool) -> None:
        tk = self.model.tokens
        left = self.options.max_total_tokens - len(stream.written)
        if left <= 0:
            return
        cap = left if final else min(left, self.options.max_tokens_per_read)
        stop, suppress = ([tk.eos_id], [tk.wait_id]) if final else ([tk.wait_id], [tk.eos_id])
        sess = self._ensure_session(stream)
        visible = int(sess.num_source[0])
        res = sess.greedy_write(stream.pending, stop, cap, suppress_ids=suppress)
        stream.trace += [(t, visible) for t in res.tokens[0]]
        audio_s = stream.duration_s if final else min(stream.tokens_read * self.token_s, stream.duration_s)
        wall = stream.wall_s()
        for t in res.tokens[0]:
            if t not in (tk.wait_id, tk.eos_id):
                stream.written.append(_Written(t, audio_s, wall))
        stream.pending = res.pending
        toks = [w.token for w in stream.written]
        # A write that ended on <wait>/eos closed its last word; one cut by a cap may be mid-word.
        stream.num_complete = len(toks) if bool(res.stopped[0]) or final else self._word_boundary(toks)

    def _starts_word(self, token: int) -> bool:
        return self.tokenizer.decode([token]).startswith(" ")

    def _word_boundary(self, toks: list[int]) -> int:
        """Index where the last (possibly unfinished) word starts."""
        for i in range(len(toks) - 1, 0, -1):
            if self._starts_word(toks[i]):
                return i
        return 0


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
