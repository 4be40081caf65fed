"""Live transcription: capture from an audio source and display; endpointing and decoding are the
Recognizer's (:mod:`speech_llm.decoding.recognizer`, :mod:`speech_common.endpoint`).

    source = MicrophoneSource(device="USB", max_seconds=None)       # or ArraySource(samples, rate)
    report = run_live(rec, source, LiveDisplay())
    report.segments   # [SegmentResult(index, start_s, end_s, text, words, reason, truncated), ...]

Capture (:class:`MicrophoneSource`): a sounddevice ``InputStream`` at the device's default rate (the
recognizer resamples), mono int16, fixed blocks of ``block_ms``. The PortAudio callback only copies the
block into a bounded ``queue.Queue`` — it never blocks. Nothing is dropped silently: PortAudio input
overflows are counted, and when the decoder falls more than ``max_backlog_s`` behind, new blocks are
dropped and counted; both are reported to the user (a warning at most every ``NOTICE_INTERVAL_S``, and
the totals in the :class:`LiveReport`). The decoding loop pulls blocks from the queue. A stop condition
for scripts and tests: ``max_seconds`` of captured audio (``--duration``).

One :class:`~speech_llm.decoding.recognizer.Stream` takes the whole session: its endpointer cuts segments at pauses
(``decode.endpoint``), each decoded with a fresh LLM context, so memory stays bounded however long the
session runs, and the text equals ``transcribe`` of the same samples (the segmentation depends on the
samples alone). Each block is decoded right after it is accepted.

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
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TextIO

import numpy as np

from speech_common.errors import UserError
from speech_common.streaming import run_stream
from speech_llm.decoding.display import TranscriptLine, format_time, segment_line

if TYPE_CHECKING:      # either recognizer (torch or speech_runtime): live needs no torch of its own
    from speech_llm.decoding.recognizer import Recognizer, Result, SegmentResult, Stream

NOTICE_INTERVAL_S = 5.0   # at most one "audio lost" warning per this many seconds


class AudioDeviceError(UserError):
    """No usable audio input device, or the one asked for does not exist / cannot be opened."""


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

    def update(self, start_s: float, committed: str, partial: str) -> None:
        self.line.prefix = f"[{format_time(start_s)}] "
        self.line.update(committed, partial)

    def segment(self, seg: SegmentResult) -> None:
        if not seg.text:
            self.line.clear()
            return
        self.line.prefix = ""
        self.line.final(segment_line(seg))

    def notice(self, text: str) -> None:
        self.line.clear()
        print(text, file=self.err, flush=True)


def write_segment(out: TextIO, seg: SegmentResult) -> None:
    """One transcript line: ``start_s <TAB> end_s <TAB> text`` (seconds of session audio, 3 decimals)."""
    out.write(f"{seg.start_s:.3f}\t{seg.end_s:.3f}\t{seg.text}\n")
    out.flush()


@dataclass
class LiveReport:
    segments: list[SegmentResult]
    samplerate: int
    audio_s: float                  # audio taken from the source
    overflows: int = 0              # PortAudio input overflows (audio lost before it reached us)
    dropped_s: float = 0.0          # audio dropped because the decoder fell behind
    interrupted: bool = False       # stopped by Ctrl-C
    notices: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.segments if s.text)


class _Shown:
    """What of a stream's result the display has shown: finished segments once, the open one as it grows."""

    def __init__(self, display: LiveDisplay | None, transcript_out: TextIO | None):
        self.display, self.transcript_out, self.done = display, transcript_out, 0

    def __call__(self, r: Result, open_start_s: float | None) -> None:
        for seg in r.segments[self.done:]:
            if self.display:
                self.display.segment(seg)
            if self.transcript_out is not None and seg.text:
                write_segment(self.transcript_out, seg)
        self.done = len(r.segments)
        if self.display and open_start_s is not None:
            self.display.update(open_start_s, " ".join(w.word for w in r.open_words), r.partial)


def run_live(rec: Recognizer, source, display: LiveDisplay | None = None, audio_out=None,
             transcript_out: TextIO | None = None) -> LiveReport:
    """Decode ``source`` (a :class:`MicrophoneSource` or :class:`ArraySource`) until it ends or Ctrl-C.

    ``audio_out``: a writable ``soundfile.SoundFile`` that receives every captured block;
    ``transcript_out``: a text file that receives each finished segment (:func:`write_segment`).
    """
    show = _Shown(display, transcript_out)
    frames = 0
    report = LiveReport([], source.samplerate, 0.0)
    seen, last_notice = (0, 0), -math.inf

    def captured(stop: threading.Event):
        """The source's blocks as ``(samples, rate)``, saved and counted; the source is closed when they
        end (after a Ctrl-C: at the end of the block it came in)."""
        nonlocal frames
        with source:
            try:
                for block in source.blocks(stop):
                    if audio_out is not None:
                        audio_out.write(block)
                    frames += len(block)
                    yield block, source.samplerate
            except KeyboardInterrupt:
                if stop.is_set():
                    raise  # a second Ctrl-C: quit at once
                stop.set()
        report.interrupted = stop.is_set()

    def decoded(stream: Stream) -> None:
        nonlocal seen, last_notice
        show(rec.get_result(stream), stream.open[-1].start_s if stream.open else None)
        lost = (source.overflows, source.dropped_frames)
        if lost != seen and time.monotonic() - last_notice >= NOTICE_INTERVAL_S:
            seen, last_notice = lost, time.monotonic()
            _notice(report, display, f"warning: audio lost (totals at "
                    f"{format_time(frames / source.samplerate)}: {source.overflows} input "
                    f"overflows, {source.dropped_frames / source.samplerate:.1f} s dropped because "
                    "decoding is slower than real time)")

    with _stop_on_sigint() as stop:
        stream = run_stream(rec, captured(stop), decoded)
        report.segments = stream.segments
        show(rec.get_result(stream), None)
    report.audio_s = frames / source.samplerate
    report.overflows, report.dropped_s = source.overflows, source.dropped_frames / source.samplerate
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
