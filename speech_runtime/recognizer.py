"""Recognizer / Stream on onnxruntime: the API and decoding policy of ``speech_llm.decoding.recognizer``, no torch.

    import speech_runtime
    rec = speech_runtime.load_recognizer("exp/mini/onnx")     # a dir written by `speech-llm export`
    s = rec.create_stream()
    s.accept_waveform(sample_rate, samples)                   # any block size, any rate
    rec.decode(s)
    s.input_finished(); rec.decode(s)
    print(rec.get_result(s).text)

The policy is that of the torch recognizer (read its module docstring): audio goes through the front end
(fbank or Whisper's log-mel, as the export's manifest says) -> encoder -> projector as it arrives; each
complete chunk of audio tokens is read and the model writes until ``<|wait|>`` (eos suppressed, at most
``max_tokens_per_read`` tokens); that ``<|wait|>`` stays pending and is fed in the same forward as the next
chunk; at the input end the last partial chunk is read and written on, then the end marker, and the model
writes until eos (``<|wait|>`` suppressed). ``mode = "batch"`` reads each segment whole and writes once.
:meth:`Recognizer.decode_streams` advances many streams in one batch.

Endpointing is the torch recognizer's, from the same code (:mod:`speech_common.endpoint`) and the export's
``decode.endpoint`` settings: the energy gate opens segments, the decoder rules (or, in energy mode and batch
decoding, the gate) end them, and each segment is decoded with a fresh LLM context and fresh front-end and
encoder caches, so a stream of any length keeps bounded state; ``context_words`` gives the last words of the
earlier segments to the next one's prompt. The segments, text and word times are the torch recognizer's.
"""

from __future__ import annotations

import copy
import json
import os
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from speech_common.chunking import chunk_frames_of
from speech_common.endpoint import (
    DecoderRules,
    EndpointConfig,
    SegmentingStream,
    after_chunk_step,
    stream_endpointer,
)
from speech_common.export_dir import MANIFEST, is_export_dir
from speech_common.pcm import to_mono_float
from speech_common.results import Result, SegmentResult, Word, stream_result
from speech_common.streaming import run_stream
from speech_common.write_caps import nonblank_allowance
from speech_runtime.frontend import NUM_MEL_BINS, SAMPLE_RATE, StreamingFbank, StreamingFrames, StreamingResampler
from speech_runtime.log_mel import StreamingLogMel
from speech_runtime.models import LLM, AudioSide, LLMSession

FORMAT = "speech-llm-onnx"
VERSION = 1
TRACE_MAX_TOKENS = 4096
"""How many generated tokens ``Stream.trace`` keeps (the newest; minutes of speech), as the torch recognizer."""


def make_frontend(config: dict) -> StreamingFrames:
    """A new streaming front end for the manifest's ``frontend`` entry (``kaldi_fbank`` or ``whisper_log_mel``)."""
    kind = config.get("type")
    if kind == "kaldi_fbank":
        if config.get("num_mel_bins", NUM_MEL_BINS) != NUM_MEL_BINS:
            raise ValueError(f"the runtime's fbank has {NUM_MEL_BINS} bins, the export {config['num_mel_bins']}")
        return StreamingFbank()
    if kind == "whisper_log_mel":
        return StreamingLogMel(n_mels=config["n_mels"], ceiling=config["ceiling"])
    raise ValueError(f"unknown front end {kind!r} in the export's manifest")


@dataclass
class DecodeOptions:
    """The decode settings the runtime uses (the fields of ``speech_llm.config.DecodeConfig`` it honours)."""

    mode: str = "streaming"
    chunk_ms: float | None = None
    read_ahead_chunks: int = 0
    max_tokens_per_read: int = 20
    max_tokens_per_segment: int = 200
    nonblank_cap: float = 0.0
    nonblank_slack: int = 2
    context_words: int = 0
    endpoint: EndpointConfig = field(default_factory=EndpointConfig)


def decode_options(exported: dict, overrides: dict | None = None) -> DecodeOptions:
    """The export's decode config (its manifest's ``decode``; fields the runtime does not use are dropped) with
    ``overrides``: flat keys, ``endpoint.<field>`` for the endpoint section.

    Raises:
        ValueError: an unknown key. ``speech_common.errors.ConfigError``: a bad endpoint value.
    """
    known = {f.name for f in fields(DecodeOptions)} - {"endpoint"}
    ep_known = {f.name for f in fields(EndpointConfig)}
    base = {k: v for k, v in exported.items() if k in known}
    ep = {k: v for k, v in exported.get("endpoint", {}).items() if k in ep_known}
    unknown = []
    for key, value in (overrides or {}).items():
        section, dot, name = key.partition(".")
        if key in known:
            base[key] = value
        elif dot and section == "endpoint" and name in ep_known:
            ep[name] = value
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(f"unknown decode options {sorted(unknown)}; known: {sorted(known)} and "
                         f"endpoint.<{'|'.join(sorted(ep_known))}>")
    endpoint = EndpointConfig(**ep)
    endpoint.validate()
    return DecodeOptions(**base, endpoint=endpoint)


@dataclass
class _Written:
    token: int
    audio_s: float
    wall_s: float


@dataclass
class _Step:
    source: np.ndarray      # (n, D)
    n_audio: int
    write: str | None


class _Segment:
    def __init__(self, rec: Recognizer, stream: Stream, index: int, start_sample: int):
        self.stream, self.index, self.start_sample = stream, index, start_sample
        self.end_sample: int | None = None
        self.reason = ""
        self.frontend = make_frontend(rec.manifest["frontend"])
        self.feats: list[np.ndarray] = []
        self.audio_state = rec.audio.init_state(rec.chunk_frames)
        self.audio = np.zeros((0, rec.llm.hidden_size), np.float32)
        self.session: LLMSession | None = None
        self.pending = np.array([rec.tokens["bos_id"]], np.int64)
        self.rules = DecoderRules(rec.config.endpoint, start_sample, rec.chunk_samples, rec.chunk_s) \
            if stream.decoder_ends else None
        self.written: list[_Written] = []
        self.num_complete = 0
        self.tokens_read = 0
        self.num_samples = 0
        self.input_done = self.finished = self.truncated = False

    @property
    def start_s(self) -> float:
        return self.start_sample / SAMPLE_RATE

    @property
    def duration_s(self) -> float:
        return self.num_samples / SAMPLE_RATE

    def push(self, x: np.ndarray) -> None:
        if x.size:
            self.num_samples += x.size
            self.feats.append(self.frontend.accept_waveform(x))
            if self.rules is not None:
                self.rules.keep(x)

    def end_by_rule(self, end_sample: int, reason: str) -> None:
        self.feats, self.audio = [], self.audio[:0]
        self.num_samples = end_sample - self.start_sample
        self.end_sample, self.reason, self.input_done = end_sample, reason, True

    def close(self, end_sample: int, reason: str) -> None:
        self.feats.append(self.frontend.input_finished())
        self.end_sample, self.reason, self.input_done = end_sample, reason, True

    def take_feats(self) -> np.ndarray:
        f = np.concatenate(self.feats) if self.feats else np.zeros((0, self.audio_state.feats.shape[1]), np.float32)
        self.feats = []
        return f

    def has_work(self, batch_mode: bool) -> bool:
        if self.finished:
            return False
        if batch_mode:
            return self.input_done
        return self.input_done or any(f.size for f in self.feats)


class Stream(SegmentingStream):
    """One input's decoding state; create with :meth:`Recognizer.create_stream`."""

    def __init__(self, rec: Recognizer):
        self.rec = rec
        self.endpointer, self.decoder_ends = stream_endpointer(rec.config.endpoint, rec.config.mode, SAMPLE_RATE)
        self.resampler: StreamingResampler | None = None
        self.num_samples = 0
        self.input_done = False
        self.t0: float | None = None
        self.input_end_wall: float | None = None
        self.compute_s = 0.0
        self.segments: list[SegmentResult] = []
        self.open: list[_Segment] = []
        self.tokens_read = 0
        self.trace: deque[tuple[int, int]] = deque(maxlen=TRACE_MAX_TOKENS)
        """The last :data:`TRACE_MAX_TOKENS` generated tokens, <wait>/eos included, each with the source tokens
        it saw (as the torch ``Stream.trace``): bounded, so a stream of hours keeps constant state."""

    @property
    def finished(self) -> bool:
        return self.input_done and not self.open

    @property
    def duration_s(self) -> float:
        return self.num_samples / SAMPLE_RATE

    def accept_waveform(self, sample_rate: int, samples) -> None:
        """Append audio: (N,) or (N, C), float in [-1, 1] or integer PCM, at ``sample_rate``."""
        if self.input_done:
            raise RuntimeError("accept_waveform() after input_finished()")
        x = to_mono_float(samples)
        if self.t0 is None:
            self.t0 = time.monotonic()
        if self.resampler is None:
            self.resampler = StreamingResampler(int(sample_rate), SAMPLE_RATE)
        elif int(sample_rate) != self.resampler.orig_rate:
            raise ValueError(f"sample rate changed within a stream: {self.resampler.orig_rate} -> {sample_rate}")
        self._push(self.resampler.accept(x))

    def input_finished(self) -> None:
        if self.input_done:
            return
        if self.resampler is not None:
            self._push(self.resampler.flush())
        self._close_input()
        self.input_done = True
        self.input_end_wall = self.wall_s()

    def wall_s(self) -> float:
        return 0.0 if self.t0 is None else time.monotonic() - self.t0

    def _push(self, x: np.ndarray) -> None:
        if not x.size:
            return
        self._route(x)
        self.num_samples += x.size

    def _new_segment(self, start_sample: int) -> None:
        self.open.append(_Segment(self.rec, self, len(self.segments) + len(self.open), start_sample))


class Recognizer:
    """The exported speech LLM shared by many streams (``speech_llm.decoding.recognizer.Recognizer``'s API).

    Args:
        export_dir: a dir written by ``speech-llm export``.
        int8: use the dynamically quantized models (the export must have been made with ``--int8``).
        overrides: decode settings, ``{"chunk_ms": 320, "endpoint.max_segment_s": 10}`` (fields of
            :class:`DecodeOptions`, ``endpoint.<field>`` for its endpoint section), over the export's decode config.
        threads: onnxruntime intra-op threads per model (0: onnxruntime's default).
    """

    def __init__(self, export_dir: str | os.PathLike, int8: bool = False, overrides: dict | None = None,
                 threads: int = 0):
        from tokenizers import Tokenizer

        root = Path(export_dir)
        if not is_export_dir(root):
            raise FileNotFoundError(f"{root} is not an export dir (no {MANIFEST}); write one with speech-llm export")
        manifest = json.loads((root / MANIFEST).read_text())
        if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
            raise ValueError(f"{root / MANIFEST}: unsupported format {manifest.get('format')} "
                             f"version {manifest.get('version')} (this runtime reads {FORMAT} {VERSION})")
        files = {part: manifest[part]["file"] for part in ("encoder", "projector", "llm")}
        if int8:
            if not manifest.get("int8"):
                raise ValueError(f"{root} has no int8 models: export with --int8")
            files = dict(manifest["int8"])
        self.manifest = manifest
        self.config = decode_options(manifest["decode"], overrides)
        self.tokens = manifest["tokens"]
        self.tokenizer = Tokenizer.from_file(str(root / manifest["tokenizer"]))
        self.audio = AudioSide(root, manifest, files, threads)
        self.llm = LLM(root, manifest, files, threads)
        self._set_chunk()

    def with_config(self, config: DecodeOptions) -> Recognizer:
        """A recognizer of the same models (nothing copied) with another decode config (the server's per-session
        options; the torch ``Recognizer.with_config``)."""
        rec = copy.copy(self)
        rec.config = config
        rec._set_chunk()
        return rec

    def _set_chunk(self) -> None:
        enc = self.manifest["encoder"]
        stack = self.manifest["projector"]["stack"]
        self.token_s = enc["frame_shift_s"] * stack
        self.chunk_frames = enc["chunk_frames"] if self.config.chunk_ms is None else \
            chunk_frames_of(self.config.chunk_ms, enc["frame_shift_s"] * 1000.0, stack)
        self.tokens_per_chunk = self.chunk_frames // stack
        self.chunk_samples = round(self.chunk_s * SAMPLE_RATE)

    @property
    def chunk_s(self) -> float:
        return self.tokens_per_chunk * self.token_s

    def create_stream(self) -> Stream:
        return Stream(self)

    def decode(self, stream: Stream) -> None:
        self.decode_streams([stream])

    def decode_streams(self, streams: Sequence[Stream]) -> None:
        """Advance several streams as far as their inputs allow, in one batch."""
        todo = [s for s in dict.fromkeys(streams) if not s.finished]
        if not todo:
            return
        t = time.perf_counter()
        batch_mode = self.config.mode == "batch"
        try:
            while work := [s.open[0] for s in todo if s.open and s.open[0].has_work(batch_mode)]:
                self._advance(work, batch_mode)
                for s in todo:
                    self._collect(s)
        finally:
            share = (time.perf_counter() - t) / len(todo)
            for s in todo:
                s.compute_s += share

    def get_result(self, stream: Stream) -> Result:
        return stream_result(stream.segments, [self._segment_words(seg) for seg in stream.open], stream.finished)

    # ------------------------------------------------------------------ internals
    def _advance(self, segs: list[_Segment], batch_mode: bool) -> None:
        audio = self.audio.stream_audio([g.audio_state for g in segs], [g.take_feats() for g in segs],
                                        [g.input_done for g in segs], self.chunk_frames)
        for g, a in zip(segs, audio):
            g.audio = np.concatenate([g.audio, a])
        plans = {id(g): self._plan(g, batch_mode) for g in segs}
        self._run_steps(plans, segs)
        for g in segs:
            if g.rules is not None:
                g.rules.drop_decided()

    def _collect(self, stream: Stream) -> None:
        while stream.open and stream.open[0].finished:
            seg = stream.open.pop(0)
            words, _ = self._segment_words(seg)
            stream.segments.append(SegmentResult(
                index=seg.index, start_s=seg.start_s, end_s=seg.end_sample / SAMPLE_RATE,
                text=" ".join(w.word for w in words), words=words, reason=seg.reason, truncated=seg.truncated))
            if seg.rules is not None and seg.rules.ended:
                stream._restart(seg.end_sample, seg.rules.rest())

    def _context(self, seg: _Segment) -> list[int]:
        """Prompt context of a segment: the last ``context_words`` words of the stream's finished segments."""
        n = self.config.context_words
        words = [w.word for s in seg.stream.segments for w in s.words][-n:] if n else []
        return self.tokenizer.encode(" " + " ".join(words), add_special_tokens=False).ids if words else []

    def _plan(self, seg: _Segment, batch_mode: bool) -> list[_Step]:
        k = self.tokens_per_chunk
        audio = seg.audio
        steps: list[_Step] = []
        read = seg.tokens_read
        if not batch_mode:
            while audio.shape[0] >= k:
                read += k
                write = "chunk" if read > self.config.read_ahead_chunks * k else None
                steps.append(_Step(audio[:k], k, write))
                audio = audio[k:]
        if seg.input_done:
            end = self._end_step()
            if batch_mode:
                steps.append(_Step(np.concatenate([audio, end.source]), audio.shape[0], "final"))
            else:
                if audio.shape[0]:
                    steps.append(_Step(audio, audio.shape[0], "chunk"))
                steps.append(end)
            seg.audio = audio[:0]
        else:
            seg.audio = audio
        if steps and seg.session is None:
            prompt = self.llm.embed([*self.tokens["prompt_ids"], *self._context(seg)])
            first = steps[0]
            steps[0] = _Step(np.concatenate([prompt, first.source]), first.n_audio, first.write)
        return steps

    def _end_step(self) -> _Step:
        """Read the source end marker, then write until eos."""
        return _Step(self.llm.embed(self.tokens["end_ids"]), 0, "final")

    def _endpoint(self, seg: _Segment, step: _Step, wrote: bool) -> bool:
        """The torch ``Recognizer._endpoint``: after a step, True when the decoder rules end the segment there."""
        return after_chunk_step(seg, step.write != "final" and step.n_audio == self.tokens_per_chunk, wrote,
                                step.write is not None and not seg.truncated)

    def _run_steps(self, plans: dict[int, list[_Step]], segs: list[_Segment]) -> None:
        group = [g for g in segs if plans[id(g)]]
        if not group:
            return
        sess = LLMSession.merge([g.session or self.llm.start(1) for g in group])
        i = 0
        while group:
            steps = [plans[id(g)][i] for g in group]
            width = max(st.source.shape[0] for st in steps)
            embeds = np.zeros((len(steps), width, self.llm.hidden_size), np.float32)
            for b, st in enumerate(steps):
                embeds[b, :st.source.shape[0]] = st.source
            lens = np.array([st.source.shape[0] for st in steps], np.int64)
            for g, st in zip(group, steps):
                g.tokens_read += st.n_audio
                g.stream.tokens_read += st.n_audio
            before = [len(g.written) for g in group]
            self._read_and_write(sess, group, steps, embeds, lens)
            for g, st, n in zip(group, steps, before):
                if self._endpoint(g, st, len(g.written) > n):
                    plans[id(g)][i + 1:] = [self._end_step()]
            i += 1
            done = [b for b, g in enumerate(group) if len(plans[id(g)]) == i]
            if done:
                keep = [b for b in range(len(group)) if b not in done]
                for b in done:
                    group[b].session = sess.select([b])
                    if steps[b].write == "final":
                        group[b].finished = True
                        group[b].session = None
                sess = sess.select(keep) if keep else sess
                group = [group[b] for b in keep]

    def _read_and_write(self, sess: LLMSession, group: list[_Segment], steps: list[_Step], embeds: np.ndarray,
                        lens: np.ndarray) -> None:
        tk, cfg = self.tokens, self.config
        active, caps, stops, suppress = [], [], [], []
        for g, st in zip(group, steps):
            left = cfg.max_tokens_per_segment - len(g.written)
            final = st.write == "final"
            if st.write is not None and left <= 0:
                g.truncated = True
            heard = self._nonblank_allowance(g)
            if heard is not None:
                left = min(left, heard - len(g.written))
            active.append(st.write is not None and left > 0)
            caps.append(max(1, left if final else min(left, cfg.max_tokens_per_read)))
            stops.append([tk["eos_id"]] if final else [tk["wait_id"]])
            suppress.append([tk["wait_id"]] if final else [tk["eos_id"]])
        if not any(active):
            sess.read(embeds, lens)
            return
        visible = (sess.num_source + lens).tolist()
        pending = np.concatenate([g.pending for g in group])
        res = sess.greedy_write(pending, stops, caps, np.array(active), suppress, source=embeds, source_lens=lens)
        for b, (g, st) in enumerate(zip(group, steps)):
            if active[b]:
                self._record(g, res.tokens[b], res.pending[b:b + 1], bool(res.stopped[b]), visible[b],
                             final=st.write == "final")

    def _nonblank_allowance(self, seg: _Segment) -> int | None:
        """``decode.nonblank_cap`` (the torch ``Recognizer._nonblank_allowance``): the tokens the segment may have
        written after the audio it has read, or None (off, or a projector without CTC classes)."""
        if not self.audio.has_nonblank:
            return None
        heard = float(seg.audio_state.nonblank[:seg.tokens_read].sum())
        return nonblank_allowance(self.config.nonblank_cap, self.config.nonblank_slack, heard)

    def _record(self, seg: _Segment, tokens: list[int], pending: np.ndarray, stopped: bool, visible: int,
                final: bool) -> None:
        tk = self.tokens
        seg.stream.trace.extend((t, visible) for t in tokens)
        read_s = seg.duration_s if final else min(seg.tokens_read * self.token_s, seg.duration_s)
        audio_s, wall = seg.start_s + read_s, seg.stream.wall_s()
        for t in tokens:
            if t not in (tk["wait_id"], tk["eos_id"]):
                seg.written.append(_Written(t, audio_s, wall))
        seg.pending = pending
        if final and not stopped:
            seg.truncated = True
        toks = [w.token for w in seg.written]
        seg.num_complete = len(toks) if stopped or final else self._word_boundary(toks)

    def _segment_words(self, seg: _Segment) -> tuple[list[Word], str]:
        toks = [w.token for w in seg.written]
        n_done = seg.num_complete
        words: list[Word] = []
        start = 0
        for i in range(1, n_done + 1):
            if i == n_done or self._starts_word(toks[i]):
                text = self.tokenizer.decode(toks[start:i], skip_special_tokens=True).strip()
                if text:
                    last = seg.written[i - 1]
                    words += [Word(w, last.audio_s, last.wall_s) for w in text.split()]
                start = i
        return words, self.tokenizer.decode(toks[n_done:], skip_special_tokens=True).strip()

    def _starts_word(self, token: int) -> bool:
        return self.tokenizer.decode([token], skip_special_tokens=False).startswith(" ")

    def _word_boundary(self, toks: list[int]) -> int:
        for i in range(len(toks) - 1, 0, -1):
            if self._starts_word(toks[i]):
                return i
        return 0


def load_recognizer(export_dir: str | os.PathLike, int8: bool = False,
                    overrides: dict | Sequence[str] | None = None, threads: int = 0) -> Recognizer:
    """A :class:`Recognizer` on an export dir (``speech-llm export``).

    ``overrides``: a dict of :class:`DecodeOptions` fields (:func:`decode_options`), or the ``key=value`` strings
    of the torch recognizer (``["chunk_ms=320", "endpoint.rule2_silence_s=0.8"]``): ``quantize=int8`` picks the
    int8 models, ``dtype`` is ignored.
    """
    if overrides is not None and not isinstance(overrides, dict):
        overrides, int8 = _parse_overrides(overrides, int8)
    return Recognizer(export_dir, int8=int8, overrides=overrides, threads=threads)


def stream_file(rec: Recognizer, path: str | os.PathLike, on_decode=None) -> Stream:
    """Stream an audio file through ``rec`` as ``speech-llm transcribe`` does: read block by block
    (:func:`file_blocks`, blocks of one chunk), a decode after each block and ``on_decode(stream)`` after it; then
    finish the input and decode the rest (``speech_common.streaming.run_stream``). Returns the finished stream.

    Raises:
        FileNotFoundError: no such file. ``soundfile`` errors for a file it cannot decode.
    """
    return run_stream(rec, file_blocks(path, rec.chunk_s), on_decode)


def file_blocks(path: str | os.PathLike, block_s: float) -> Iterator[tuple[np.ndarray, int]]:
    """``(samples, rate)`` blocks of about ``block_s`` seconds of an audio file at its own rate (soundfile; float32,
    ``(n, channels)``: the recognizer averages the channels), whatever its length.

    Raises:
        FileNotFoundError: no such file. ``soundfile`` errors for a file it cannot decode.
    """
    import soundfile as sf

    if not Path(path).is_file():
        raise FileNotFoundError(f"audio file not found: {path}")
    with sf.SoundFile(str(path)) as f:
        for samples in f.blocks(blocksize=max(1, int(f.samplerate * block_s)), dtype="float32"):
            yield samples, f.samplerate


def _parse_overrides(items: Sequence[str], int8: bool) -> tuple[dict, bool]:
    out: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"decode override {item!r} is not key=value")
        key = key.strip()
        if key == "quantize":
            int8 = int8 or value.strip() == "int8"
        elif key == "dtype":
            continue
        else:
            try:
                out[key] = json.loads(value)
            except json.JSONDecodeError:
                out[key] = value.strip()
    return out, int8


