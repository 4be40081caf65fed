"""Live transcription: an audio source, energy-based endpointing, and one recognizer stream per segment.

    source = MicrophoneSource(device="USB", max_seconds=None)       # or ArraySource(samples, rate)
    report = run_live(rec, source, EndpointConfig(silence_s=0.8, max_segment_s=20.0), LiveDisplay())
    report.segments   # [Segment(start_s, end_s, text, words, reason), ...]

Capture (:class:`MicrophoneSource`): a sounddevice ``InputStream`` at the device's default rate (the
recognizer resamples), mono int16, fixed blocks of ``block_ms``. The PortAudio callback only copies the
block into a bounded ``queue.Queue`` — it never blocks. Nothing is dropped silently: PortAudio input
overflows are counted, and when the decoder falls more than ``max_backlog_s`` behind, new blocks are
dropped and counted; both are reported to the user (a warning at most every ``NOTICE_INTERVAL_S``, and
the totals in the :class:`LiveReport`). The decoding loop pulls blocks from the queue. A stop condition
for scripts and tests: ``max_seconds`` of captured audio (``--duration``).

Endpointing (:class:`Endpointer`) cuts the sample sequence into segments. The signal is split into
frames of ``frame_ms`` (25 ms) on a grid counted from the start of the session; a frame is *speech*
when its RMS level ``20*log10(rms)`` (dBFS, full scale = 1.0, so a full-scale sine is -3 dBFS) is at
least ``threshold_db`` (default -40 dBFS). Between segments the audio is only kept as a pre-roll of
``preroll_s``; the first speech frame opens a segment that starts with that pre-roll. A segment ends at
the end of the frame where ``silence_s`` of trailing non-speech frames have been seen, or at the first
frame end where it is ``max_segment_s`` long, or when the input ends. Segment boundaries therefore
depend only on the samples, never on block sizes or on how fast the decoder runs.

Each segment is decoded by a fresh :class:`~speech_llm.recognizer.Stream` (a fresh LLM context, KV cache
and encoder caches) that is dropped once the segment is final, so memory stays bounded however long the
session runs: at most one segment of state, a pre-roll and the queue (plus the finished segments' text).
Each audio piece is decoded right after it is accepted, so a segment is always decoded in streaming
mode, and its text equals streaming the same samples through ``transcribe``. Keeping the previous
segment's text as context for the next one is left out: the model has no input for earlier text (it
would need a prompt field trained for it).

Ctrl-C: while :func:`run_live` runs in the main thread, the first SIGINT asks the loop to stop between
blocks (capture stops, audio already queued is decoded, the open segment is finalised and printed); a
second Ctrl-C raises ``KeyboardInterrupt`` at once. A ``KeyboardInterrupt`` raised by the source is
handled like the first Ctrl-C.
"""

from __future__ import annotations

import contextlib
import math
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TextIO

import numpy as np

from speech_common.errors import UserError
from speech_llm.display import TranscriptLine
from speech_llm.recognizer import Recognizer, Result, Word

NOTICE_INTERVAL_S = 5.0   # at most one "audio lost" warning per this many seconds


class AudioDeviceError(UserError):
    """No usable audio input device, or the one asked for does not exist / cannot be opened."""


# ---------------------------------------------------------------------------------------------- endpointing
@dataclass
class EndpointConfig:
    """When a segment ends (see the module docstring). Times in seconds, levels in dBFS."""

    silence_s: float = 0.8          # trailing non-speech that ends a segment
    max_segment_s: float = 20.0     # a segment is cut at this length even while speech goes on
    threshold_db: float = -40.0     # frame RMS level at or above which a frame is speech
    frame_ms: float = 25.0          # energy frame length
    preroll_s: float = 0.3          # audio kept before the first speech frame of a segment

    def __post_init__(self):
        if self.silence_s <= 0:
            raise ValueError(f"endpoint silence must be > 0 seconds, got {self.silence_s:g}")
        if self.max_segment_s <= 0:
            raise ValueError(f"max segment length must be > 0 seconds, got {self.max_segment_s:g}")
        if self.frame_ms <= 0:
            raise ValueError(f"frame_ms must be > 0, got {self.frame_ms:g}")
        if self.preroll_s < 0:
            raise ValueError(f"preroll_s must be >= 0, got {self.preroll_s:g}")


def frame_levels_db(frames: np.ndarray) -> np.ndarray:
    """RMS level in dBFS of each row of ``frames`` (F, L), float samples with full scale 1.0 -> (F,)."""
    rms = np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=1))
    with np.errstate(divide="ignore"):
        return 20.0 * np.log10(rms)


class Endpointer:
    """Cut a stream of float samples (full scale 1.0) at ``sample_rate`` into segments.

    :meth:`process` takes a block and returns events, in order:
    ``("start", index)``, ``("audio", samples)``, ``("end", index, reason)`` — ``index`` counts samples
    from the start of the session; ``reason`` is "silence", "max_length" or "end". :meth:`flush` ends the
    open segment (reason "end"). Samples of an incomplete frame wait for the next block.
    """

    def __init__(self, config: EndpointConfig, sample_rate: int):
        self.config = config
        self.sample_rate = int(sample_rate)
        self.frame = max(1, round(config.frame_ms * self.sample_rate / 1000))
        self.silence_len = max(1, round(config.silence_s * self.sample_rate))
        self.max_len = max(1, round(config.max_segment_s * self.sample_rate))
        self.preroll_len = round(config.preroll_s * self.sample_rate)
        self.active = False
        self.seg_start = 0
        self._silent = 0                                # trailing non-speech samples in the open segment
        self._carry = np.zeros(0, np.float32)           # samples of an incomplete frame
        self._pos = 0                                   # session index of _carry[0]
        self._idle = np.zeros(0, np.float32)            # pre-roll, ends at _pos

    def process(self, samples: np.ndarray) -> list[tuple]:
        buf = np.concatenate([self._carry, np.asarray(samples, np.float32)])
        n = len(buf) // self.frame * self.frame
        speech = frame_levels_db(buf[:n].reshape(-1, self.frame)) >= self.config.threshold_db
        events: list[tuple] = []
        done = 0                                        # buf[:done] has been handed out or kept as pre-roll
        for i, loud in enumerate(speech):
            a, b = i * self.frame, (i + 1) * self.frame
            if not self.active:
                if not loud:
                    continue
                pre = self._keep_preroll(buf[done:a])
                self._idle = np.zeros(0, np.float32)
                self.active, self.seg_start, self._silent = True, self._pos + a - len(pre), 0
                events += [("start", self.seg_start), ("audio", pre)]
                done = a
            self._silent = 0 if loud else self._silent + self.frame
            reason = ("silence" if self._silent >= self.silence_len
                      else "max_length" if self._pos + b - self.seg_start >= self.max_len else None)
            if reason:
                events += [("audio", buf[done:b]), ("end", self._pos + b, reason)]
                self.active, done = False, b
        if self.active:
            events.append(("audio", buf[done:n]))
        else:
            self._idle = self._keep_preroll(buf[done:n])
        self._carry, self._pos = buf[n:].copy(), self._pos + n
        return [e for e in events if e[0] != "audio" or len(e[1])]

    def flush(self) -> list[tuple]:
        """The input ended: close the open segment (with the samples of the incomplete frame)."""
        events: list[tuple] = []
        end = self._pos + len(self._carry)
        if self.active:
            if len(self._carry):
                events.append(("audio", self._carry))
            events.append(("end", end, "end"))
        self.active, self._carry, self._pos, self._idle = False, np.zeros(0, np.float32), end, self._idle[:0]
        return events

    def _keep_preroll(self, more: np.ndarray) -> np.ndarray:
        joined = np.concatenate([self._idle, more])
        return joined[len(joined) - min(len(joined), self.preroll_len):].copy()


# ------------------------------------------------------------------------------------------------ decoding
@dataclass
class Segment:
    """A finished segment. Times are seconds of session audio; ``words[i].audio_s`` too."""

    index: int
    start_s: float
    end_s: float
    text: str
    words: list[Word]
    reason: str                 # "silence", "max_length" or "end"
    start_sample: int           # [start_sample, end_sample) at the source rate
    end_sample: int


class LiveTranscriber:
    """Feed session audio block by block; decode each endpointed segment with a fresh stream.

    Args:
        rec: the shared :class:`Recognizer`.
        sample_rate: rate of the samples given to :meth:`accept`.
        endpoint: :class:`EndpointConfig`.
        on_update: called as ``on_update(segment_start_s, result)`` after each decode of an open segment.
        on_segment: called with each finished :class:`Segment`.
    """

    def __init__(self, rec: Recognizer, sample_rate: int, endpoint: EndpointConfig | None = None,
                 on_update: Callable[[float, Result], None] | None = None,
                 on_segment: Callable[[Segment], None] | None = None):
        self.rec = rec
        self.sample_rate = int(sample_rate)
        self.endpointer = Endpointer(endpoint or EndpointConfig(), self.sample_rate)
        self.on_update, self.on_segment = on_update, on_segment
        self.segments: list[Segment] = []
        self.stream = None
        self._seg_start = 0
        self.num_samples = 0

    @property
    def start_s(self) -> float:
        """Start of the open segment (seconds)."""
        return self._seg_start / self.sample_rate

    def accept(self, samples: np.ndarray) -> list[Segment]:
        """Add samples (N,): int16 PCM or float in [-1, 1]. Returns the segments finished by them."""
        x = to_float(samples)
        self.num_samples += len(x)
        return self._apply(self.endpointer.process(x))

    def finish(self) -> list[Segment]:
        """The input ended: finalise the open segment (if any) and return it."""
        return self._apply(self.endpointer.flush())

    def _apply(self, events: list[tuple]) -> list[Segment]:
        finished = []
        for ev in events:
            if ev[0] == "start":
                self.stream, self._seg_start = self.rec.create_stream(), ev[1]
            elif ev[0] == "audio":
                self.stream.accept_waveform(self.sample_rate, ev[1])
                self.rec.decode(self.stream)    # before any input_finished: always streaming mode
                if self.on_update:
                    self.on_update(self.start_s, self.rec.get_result(self.stream))
            else:
                finished.append(self._finalise(ev[1], ev[2]))
        return finished

    def _finalise(self, end: int, reason: str) -> Segment:
        self.stream.input_finished()
        self.rec.decode(self.stream)
        r = self.rec.get_result(self.stream)
        start = self._seg_start
        t0 = start / self.sample_rate
        seg = Segment(len(self.segments), t0, end / self.sample_rate, r.text,
                      [Word(w.word, t0 + w.audio_s, w.wall_s) for w in r.words], reason, start, end)
        self.stream = None                      # drop the LLM context: memory stays bounded
        self.segments.append(seg)
        if self.on_segment:
            self.on_segment(seg)
        return seg


def to_float(samples) -> np.ndarray:
    """(N,) int16 PCM (scaled by 1/32768) or float -> float32 (N,)."""
    x = np.asarray(samples)
    if x.ndim != 1:
        raise ValueError(f"expected mono samples of shape (N,), got {x.shape}")
    if x.dtype == np.int16:
        return x.astype(np.float32) / 32768.0
    return x.astype(np.float32, copy=False)


# ------------------------------------------------------------------------------------------------- sources
class ArraySource:
    """Samples already in memory, given out in blocks of ``block_ms`` (``repeat`` times over), as fast as
    they are taken. For tests and scripts; same interface as :class:`MicrophoneSource`."""

    def __init__(self, samples: np.ndarray, samplerate: int, block_ms: float = 50.0, repeat: int = 1):
        self.samples = np.asarray(samples)
        self.samplerate = int(samplerate)
        self.block = max(1, round(block_ms * self.samplerate / 1000))
        self.repeat = repeat
        self.overflows = 0
        self.dropped_frames = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def blocks(self, stop: threading.Event | None = None) -> Iterator[np.ndarray]:
        for _ in range(self.repeat):
            for i in range(0, len(self.samples), self.block):
                if stop is not None and stop.is_set():
                    return
                yield self.samples[i:i + self.block]


def query_devices() -> list[dict]:
    """All PortAudio devices (sounddevice dicts with 'index', 'name', 'max_input_channels', ...)."""
    sd = _sounddevice()
    return [dict(d) for d in sd.query_devices()]


def default_input_index() -> int:
    """PortAudio's default input device index (-1: none)."""
    return int(_sounddevice().default.device[0])


def find_input_device(spec: str | int | None, devices: list[dict] | None = None,
                      default_index: int | None = None) -> dict:
    """The input device named by ``spec``: an index, an exact name, or a unique part of a name
    (case-insensitive); None: the default input device (else the first one). Raises AudioDeviceError."""
    if devices is None:
        devices = query_devices()
        default_index = default_input_index() if default_index is None else default_index
    inputs = [d for d in devices if d["max_input_channels"] > 0]
    if not inputs:
        raise AudioDeviceError("no audio input device found (PortAudio lists no device with input channels); "
                               "connect a microphone, or run `speech-llm live --list-devices`")
    listing = "; input devices: " + ", ".join(f"{d['index']} {d['name']!r}" for d in inputs)
    if spec is None or spec == "":
        return next((d for d in inputs if d["index"] == default_index), inputs[0])
    if isinstance(spec, int) or str(spec).strip().isdigit():
        idx = int(spec)
        found = [d for d in inputs if d["index"] == idx]
        if not found:
            what = "has no input channels" if any(d["index"] == idx for d in devices) else "does not exist"
            raise AudioDeviceError(f"--device {idx}: device {idx} {what}{listing}")
        return found[0]
    name = str(spec).strip().lower()
    found = [d for d in inputs if d["name"].lower() == name] or [d for d in inputs if name in d["name"].lower()]
    if not found:
        raise AudioDeviceError(f"--device {spec!r}: no input device has this name{listing}")
    if len(found) > 1:
        raise AudioDeviceError(f"--device {spec!r} is ambiguous, it matches "
                               + ", ".join(f"{d['index']} {d['name']!r}" for d in found) + "; give the index")
    return found[0]


def format_devices(devices: list[dict], default_input: int | None = None) -> str:
    """A table of devices for ``--list-devices`` (``>`` marks the default input)."""
    if not devices:
        return "no audio devices found\n"
    rows = ["    index  inputs  rate     name"]
    for d in devices:
        mark = ">" if d["index"] == default_input else " "
        rows.append(f"  {mark} {d['index']:5d}  {d['max_input_channels']:6d}  {int(d['default_samplerate']):6d}"
                    f"   {d['name']}")
    return "\n".join(rows) + "\n"


class MicrophoneSource:
    """Capture mono int16 blocks from a PortAudio input device (see the module docstring).

    Args:
        device: index, name or unique part of a name; None = the default input device.
        samplerate: capture rate; None = the device's default rate.
        block_ms: block length handed to the callback.
        max_seconds: stop after this much audio (None: until stopped).
        max_backlog_s: audio the queue may hold before new blocks are dropped (and counted).
    """

    def __init__(self, device: str | int | None = None, samplerate: int | None = None, block_ms: float = 50.0,
                 max_seconds: float | None = None, max_backlog_s: float = 60.0):
        self.sd = _sounddevice()
        self.device = find_input_device(device)
        self.samplerate = int(self.device["default_samplerate"] if samplerate is None else samplerate)
        if self.samplerate <= 0:
            raise AudioDeviceError(f"--samplerate must be > 0, got {self.samplerate}")
        self.blocksize = max(1, round(block_ms * self.samplerate / 1000))
        self.max_frames = None if max_seconds is None else max(1, round(max_seconds * self.samplerate))
        self.queue: queue.Queue = queue.Queue(maxsize=max(2, math.ceil(max_backlog_s * self.samplerate
                                                                         / self.blocksize)))
        self.frames = 0              # frames delivered by PortAudio (queued or dropped)
        self.overflows = 0           # callbacks whose status reported an input overflow
        self.dropped_frames = 0      # frames dropped because the queue was full
        self._done = threading.Event()
        self._stream = None

    def _callback(self, indata, frames, time_info, status) -> None:
        if status.input_overflow:
            self.overflows += 1
        block = indata[:, 0]
        if self.max_frames is not None:
            block = block[:self.max_frames - self.frames]
        self.frames += len(block)
        try:
            self.queue.put_nowait(block.copy())
        except queue.Full:
            self.dropped_frames += len(block)
        if self.max_frames is not None and self.frames >= self.max_frames:
            raise self.sd.CallbackStop

    def __enter__(self) -> MicrophoneSource:
        """Open and start the stream (once: entering an open source again is a no-op)."""
        if self._stream is not None:
            return self
        d = self.device
        try:
            self._stream = self.sd.InputStream(device=d["index"], samplerate=self.samplerate, channels=1,
                                               dtype="int16", blocksize=self.blocksize, callback=self._callback,
                                               finished_callback=self._done.set)
            self._stream.start()
        except self.sd.PortAudioError as e:
            self.close()
            raise AudioDeviceError(f"cannot open input device {d['index']} {d['name']!r} at "
                                   f"{self.samplerate} Hz: {e}") from e
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self) -> None:
        if self._stream is not None:
            self._stream.abort(ignore_errors=True)
            self._stream.close(ignore_errors=True)
            self._stream = None
        self._done.set()

    def blocks(self, stop: threading.Event | None = None) -> Iterator[np.ndarray]:
        """Captured blocks (n,) int16 until ``max_seconds`` or ``stop``; then what is still queued."""
        while True:
            if stop is not None and stop.is_set() and self._stream is not None:
                self.close()
            try:
                yield self.queue.get(timeout=0.05)
            except queue.Empty:
                if self._done.is_set() and self.queue.empty():
                    return


def _sounddevice():
    try:
        import sounddevice
    except OSError as e:  # the PortAudio shared library is missing
        raise AudioDeviceError(f"cannot use audio input: {e} (install PortAudio, e.g. apt install libportaudio2)"
                               ) from e
    return sounddevice


# ---------------------------------------------------------------------------------------------------- loop
class LiveDisplay:
    """Terminal output: the open segment updates in place, finished segments are printed with their times,
    notices go to ``err``."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None):
        self.line = TranscriptLine(out)
        self.err = err or sys.stderr

    def update(self, start_s: float, result: Result) -> None:
        self.line.prefix = f"[{format_time(start_s)}] "
        self.line.update(result.committed, result.partial)

    def segment(self, seg: Segment) -> None:
        if not seg.text:
            self.line.clear()
            return
        self.line.prefix = f"[{format_time(seg.start_s)} - {format_time(seg.end_s)}] "
        self.line.final(seg.text)

    def notice(self, text: str) -> None:
        self.line.clear()
        print(text, file=self.err, flush=True)


def format_time(seconds: float) -> str:
    """``mm:ss.s`` (``h:mm:ss.s`` from one hour)."""
    m, s = divmod(max(0.0, seconds), 60)
    h, m = divmod(int(m), 60)
    return f"{h}:{m:02d}:{s:04.1f}" if h else f"{m:02d}:{s:04.1f}"


def write_segment(out: TextIO, seg: Segment) -> None:
    """One transcript line: ``start_s <TAB> end_s <TAB> text`` (seconds of session audio, 3 decimals)."""
    out.write(f"{seg.start_s:.3f}\t{seg.end_s:.3f}\t{seg.text}\n")
    out.flush()


@dataclass
class LiveReport:
    segments: list[Segment]
    samplerate: int
    audio_s: float                  # audio taken from the source
    overflows: int = 0              # PortAudio input overflows (audio lost before it reached us)
    dropped_s: float = 0.0          # audio dropped because the decoder fell behind
    interrupted: bool = False       # stopped by Ctrl-C
    notices: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.segments if s.text)


def run_live(rec: Recognizer, source, endpoint: EndpointConfig | None = None, display: LiveDisplay | None = None,
             audio_out=None, transcript_out: TextIO | None = None) -> LiveReport:
    """Decode ``source`` (a :class:`MicrophoneSource` or :class:`ArraySource`) until it ends or Ctrl-C.

    ``audio_out``: a writable ``soundfile.SoundFile`` that receives every captured block;
    ``transcript_out``: a text file that receives each finished segment (:func:`write_segment`).
    """
    def on_segment(seg: Segment) -> None:
        if display:
            display.segment(seg)
        if transcript_out is not None and seg.text:
            write_segment(transcript_out, seg)

    tr = LiveTranscriber(rec, source.samplerate, endpoint, display.update if display else None, on_segment)
    report = LiveReport(tr.segments, tr.sample_rate, 0.0)
    seen, last_notice = (0, 0), -math.inf
    with _stop_on_sigint() as stop:
        with source:
            try:
                for block in source.blocks(stop):
                    if audio_out is not None:
                        audio_out.write(block)
                    tr.accept(block)
                    lost = (source.overflows, source.dropped_frames)
                    if lost != seen and time.monotonic() - last_notice >= NOTICE_INTERVAL_S:
                        seen, last_notice = lost, time.monotonic()
                        _notice(report, display, f"warning: audio lost (totals at "
                                f"{format_time(tr.num_samples / tr.sample_rate)}: {source.overflows} input "
                                f"overflows, {source.dropped_frames / tr.sample_rate:.1f} s dropped because "
                                "decoding is slower than real time)")
            except KeyboardInterrupt:
                if stop.is_set():
                    raise  # a second Ctrl-C: quit at once
                stop.set()
        report.interrupted = stop.is_set()
        tr.finish()
    report.audio_s = tr.num_samples / tr.sample_rate
    report.overflows, report.dropped_s = source.overflows, source.dropped_frames / tr.sample_rate
    return report


def _notice(report: LiveReport, display: LiveDisplay | None, text: str) -> None:
    report.notices.append(text)
    if display:
        display.notice(text)


@contextlib.contextmanager
def _stop_on_sigint() -> Iterator[threading.Event]:
    """The first SIGINT sets the returned event (stop between blocks); a second one raises KeyboardInterrupt."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)
