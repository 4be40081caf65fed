"""Endpointing: where a segment starts (an energy gate on the samples) and where it ends (the decoder rules, or
the gate in energy mode). Numpy only: the one home of these rules for both recognizers, the torch one
(:mod:`speech_llm.decoding.recognizer`) and the onnxruntime one (:mod:`speech_runtime.recognizer`), which
therefore cut a stream into the same segments.

Both recognizers endpoint every stream (as sherpa-onnx's recognizer does), so ``decode``, ``transcribe``,
``live``, the server and the Python API all cut input of any length into segments the same way, and each
segment is decoded with a fresh LLM context and fresh encoder caches.

Two parts (:class:`EndpointConfig`, the ``decode.endpoint`` section of the experiment config):

- The **energy gate** (this module, :class:`Endpointer`): the signal is split into frames of ``frame_ms``
  (25 ms) on a grid counted from the start of the session (the stream, or the restart after a segment the
  decoder ended, :meth:`Endpointer.restart`); a frame is *loud* when its RMS level ``20*log10(rms)`` (dBFS,
  full scale = 1.0, so a full-scale sine is -3 dBFS) is at least ``threshold_db`` (default -40 dBFS).
  Between segments the audio is only kept as a pre-roll of ``preroll_s``; the first loud frame opens a
  segment that starts with that pre-roll. Long quiet input never opens a segment, so it costs no decoding.
- **Segment ends.** With ``ends=True`` (energy mode, and batch decoding) the gate also ends the segment: at
  the end of the frame where ``silence_s`` of trailing quiet frames have been seen ("silence"), or at the
  first frame end where it is ``max_segment_s`` long ("max_length"). With ``ends=False`` (decoder mode,
  the streaming default) the gate never ends a segment: the recognizer does, from what the decoder writes
  after each chunk (:func:`decoder_end`: sherpa-onnx's rules 1-3; a segment's count in :class:`DecoderRules`),
  and restarts the gate on the samples after that chunk end.

Either way the input end closes the open segment ("end"), and boundaries depend only on the samples (and on
what the model writes for them), never on block sizes or on how fast the decoder runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from speech_common.errors import ConfigError
from speech_common.levels import frame_levels_db


@dataclass
class EndpointConfig:
    """When the recognizer ends a segment and starts a fresh LLM context and fresh encoder caches.

    Two ways to end a segment (``mode``), with the same energy gate in front:

    - **Energy gate** (always): the 16 kHz signal is split into frames of ``frame_ms`` on a grid from the
      start of the stream (or from the end of the last segment); a frame is *loud* when its RMS level is at
      least ``threshold_db`` dBFS (full scale 1.0). Between segments only ``preroll_s`` of audio is kept; the
      first loud frame opens a segment that starts with that pre-roll. Digital silence and quiet audio
      therefore open no segment and cost no decoding.
    - ``mode = "decoder"`` (the default; streaming decoding): the segment is ended by what the decoder
      writes (sherpa-onnx's three rules), decided after each chunk of audio, at chunk ends counted from the
      segment start. A chunk is *non-speech* when the model wrote no word for it (only ``<|wait|>``; a chunk
      where it could not write -- read-ahead, token cap used up -- only counts for the length). Rule 1:
      ``rule1_silence_s`` of trailing non-speech chunks and nothing written yet in the segment (reason
      ``no_text``). Rule 2: ``rule2_silence_s`` of trailing
      non-speech chunks after some text (reason ``silence``). Rule 3: the segment is as long as it can be
      without passing ``max_segment_s`` (the last chunk end at or before it; reason ``max_length``). The
      energy gate only opens segments: noise above ``threshold_db`` keeps nothing open once the decoder
      stops writing.
    - ``mode = "energy"``, and always in batch decoding (``decode.mode = "batch"``, where there is no
      incremental decoder output): a segment ends after ``silence_s`` of trailing frames below
      ``threshold_db`` (reason ``silence``) or at the first frame end where it is ``max_segment_s`` long
      (reason ``max_length``).

    In both, the end of the input ends the open segment (reason ``end``). Boundaries depend on the samples
    (and, in decoder mode, on what the model writes for them) only, never on block sizes or decode timing.
    """

    enabled: bool = True
    """False: the whole input is one segment (one LLM context, however long)."""
    mode: Literal["decoder", "energy"] = "decoder"
    """decoder: rules 1-3 on what the decoder writes (streaming); energy: trailing quiet frames and max length."""
    rule1_silence_s: float = 2.4
    """Decoder rule 1: trailing non-speech (chunks where the model wrote no word) that ends a segment in
    which nothing has been written yet."""
    rule2_silence_s: float = 1.2
    """Decoder rule 2: trailing non-speech that ends a segment after some text."""
    max_segment_s: float = 20.0
    """Rule 3 (both modes): the longest segment (Whisper-style encoders need at most ~20-30 s)."""
    silence_s: float = 0.8
    """Energy mode and batch decoding: trailing frames below ``threshold_db`` that end a segment."""
    threshold_db: float = -40.0
    """Energy gate: a frame at or above this RMS level (dBFS) opens a segment; in energy mode it is speech."""
    frame_ms: float = 25.0
    preroll_s: float = 0.3

    def validate(self) -> None:
        for name in ("silence_s", "max_segment_s", "frame_ms", "rule1_silence_s", "rule2_silence_s"):
            if getattr(self, name) <= 0:
                raise ConfigError(name, f"must be > 0, got {getattr(self, name)}")
        if self.preroll_s < 0:
            raise ConfigError("preroll_s", f"must be >= 0, got {self.preroll_s}")

    def energy_ends(self, decode_mode: str) -> bool:
        """Whether the energy rules end segments (energy mode, or batch decoding)."""
        return self.mode == "energy" or decode_mode == "batch"


_EPS = 1e-9


def decoder_end(config: EndpointConfig, chunks: int, quiet_chunks: int, wrote_text: bool,
                chunk_s: float) -> str | None:
    """The decoder rules, checked after each chunk of a segment: the reason the segment ends at the end of
    its ``chunks``-th chunk (each ``chunk_s`` seconds), or None.

    ``quiet_chunks``: the trailing chunks for which the model wrote no word (only ``<|wait|>``; chunks where
    it could not write -- read-ahead, token cap used up -- are not counted); ``wrote_text``: some word was
    written earlier in the segment.

    - rule 1 ("no_text"): nothing written yet and ``quiet_chunks * chunk_s >= rule1_silence_s``;
    - rule 2 ("silence"): some text and ``quiet_chunks * chunk_s >= rule2_silence_s``;
    - rule 3 ("max_length"): one more chunk would make the segment longer than ``max_segment_s`` (so a
      segment is at most ``max_segment_s`` long, and at least one chunk).

    Example (chunk_s 0.64, defaults 2.4 / 1.2 / 20 s): no text for 4 chunks -> "no_text" at 2.56 s; text,
    then 2 chunks of ``<|wait|>`` -> "silence" 1.28 s after the last word's chunk; text in every chunk ->
    "max_length" after 31 chunks (19.84 s).
    """
    quiet = quiet_chunks * chunk_s
    if wrote_text and quiet >= config.rule2_silence_s - _EPS:
        return "silence"
    if not wrote_text and quiet >= config.rule1_silence_s - _EPS:
        return "no_text"
    if (chunks + 1) * chunk_s > config.max_segment_s + _EPS:
        return "max_length"
    return None


class Endpointer:
    """The energy gate over a stream of float samples (full scale 1.0) at ``sample_rate``.

    :meth:`process` takes a block and returns events, in order:
    ``("start", index)``, ``("audio", samples)``, ``("end", index, reason)`` — ``index`` counts samples
    from the start of the stream; ``reason`` is "silence", "max_length" or "end". With ``ends=False`` only
    :meth:`flush` ends a segment. :meth:`flush` ends the open segment (reason "end"). Samples of an
    incomplete frame wait for the next block.
    """

    def __init__(self, config: EndpointConfig, sample_rate: int, ends: bool = True):
        self.config = config
        self.ends = ends
        self.sample_rate = int(sample_rate)
        self.frame = max(1, round(config.frame_ms * self.sample_rate / 1000))
        self.silence_len = max(1, round(config.silence_s * self.sample_rate))
        self.max_len = max(1, round(config.max_segment_s * self.sample_rate))
        self.preroll_len = round(config.preroll_s * self.sample_rate)
        self.restart(0)

    def restart(self, index: int) -> None:
        """Forget everything and go idle at stream sample ``index`` (the frame grid starts there; no
        pre-roll: the samples before ``index`` belong to the segment that just ended)."""
        self.active = False
        self.seg_start = index
        self._silent = 0                                # trailing non-speech samples in the open segment
        self._carry = np.zeros(0, np.float32)           # samples of an incomplete frame
        self._pos = index                               # stream index of _carry[0]
        self._idle = np.zeros(0, np.float32)            # pre-roll, ends at _pos

    def process(self, samples: np.ndarray) -> list[tuple]:
        buf = np.concatenate([self._carry, np.asarray(samples, np.float32)])
        if self.active and not self.ends:               # an open gate passes everything on, unexamined
            self._carry, self._pos = buf[:0], self._pos + len(buf)
            return [("audio", buf)] if len(buf) else []
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
                if not self.ends:
                    break
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


def stream_endpointer(config: EndpointConfig, decode_mode: str, sample_rate: int) -> tuple[Endpointer | None, bool]:
    """A stream's energy gate (None with endpointing off) and whether the decoder rules end its segments
    (streaming decoding with ``mode = "decoder"``; then the gate only opens them)."""
    decoder_ends = config.enabled and not config.energy_ends(decode_mode)
    return (Endpointer(config, sample_rate, ends=not decoder_ends) if config.enabled else None), decoder_ends


class DecoderRules:
    """The decoder rules' state over one segment that starts at stream sample ``start_sample``: the chunks
    decided so far (each ``chunk_samples`` long, ``chunk_s`` seconds), the trailing ones with no word, whether a
    word was written; and the samples after the last decided chunk end (:meth:`keep`), which start the next
    segment if the rules end this one there (:attr:`ended`; then :meth:`rest` gives them).

    Example (chunk 0.64 s, rule 2 at 1.2 s): ``after_chunk(True, True)`` -> None, ``after_chunk(False, True)``
    -> None, ``after_chunk(False, True)`` -> ``(start_sample + 3 * chunk_samples, "silence")``.
    """

    def __init__(self, config: EndpointConfig, start_sample: int, chunk_samples: int, chunk_s: float):
        self.config, self.start_sample, self.chunk_samples, self.chunk_s = config, start_sample, chunk_samples, chunk_s
        self.chunks = self.quiet_chunks = 0
        self.wrote_text = self.ended = False
        self._tail: list[np.ndarray] = []
        self._tail_start = 0                            # segment sample of the first kept one

    @property
    def held(self) -> int:
        """How many samples are kept (bounded: at most about a chunk plus the last block)."""
        return sum(len(t) for t in self._tail)

    def keep(self, samples: np.ndarray) -> None:
        """The segment took these samples (after all those before)."""
        self._tail.append(np.asarray(samples, np.float32))

    def after_chunk(self, wrote: bool, could_write: bool, input_end: int | None = None) -> tuple[int, str] | None:
        """The segment's next whole chunk was read and written on: ``wrote`` a word for it, or not although it
        ``could_write`` (chunks where it could not -- read-ahead, token cap used up -- count for the length
        only). ``input_end``: the stream sample where the segment's input ends, when known (a chunk ending
        there ends the segment anyway). Returns ``(end sample, reason)`` when the rules end the segment at
        this chunk's end, else None; the kept samples before that end are dropped."""
        self.chunks += 1
        if wrote:
            self.quiet_chunks, self.wrote_text = 0, True
        elif could_write:
            self.quiet_chunks += 1
        end = self.start_sample + self.chunks * self.chunk_samples
        if input_end is not None and end >= input_end:
            return None
        reason = decoder_end(self.config, self.chunks, self.quiet_chunks, self.wrote_text, self.chunk_s)
        if reason is None:
            return None
        self.ended = True
        self._from(end - self.start_sample)
        return end, reason

    def drop_decided(self) -> None:
        """Forget the samples before the last decided chunk end (they stay in this segment)."""
        if not self.ended:
            self._from(max(self._tail_start, self.chunks * self.chunk_samples))

    def rest(self) -> np.ndarray:
        """The samples after the end the rules chose (for the next segment)."""
        return self._from(self._tail_start)

    def _from(self, index: int) -> np.ndarray:
        x = np.concatenate(self._tail) if self._tail else np.zeros(0, np.float32)
        self._tail, self._tail_start = [x[index - self._tail_start:]], index
        return self._tail[0]


def after_chunk_step(seg, whole_chunk: bool, wrote: bool, could_write: bool) -> bool:
    """After a step of segment ``seg`` (a recognizer's segment: ``rules`` (:class:`DecoderRules` or None),
    ``input_done``, ``end_sample``, ``end_by_rule(end_sample, reason)``) that read a ``whole_chunk`` of audio and
    wrote on it (not the final write): True when the decoder rules end the segment at that chunk's end (then
    ``seg.end_by_rule`` has marked it). ``wrote``/``could_write``: as :meth:`DecoderRules.after_chunk`."""
    if seg.rules is None or not whole_chunk:
        return False
    ended = seg.rules.after_chunk(wrote, could_write, seg.end_sample if seg.input_done else None)
    if ended is not None:
        seg.end_by_rule(*ended)
    return ended is not None


class SegmentingStream:
    """The stream side of endpointing, shared by both recognizers' streams: the samples go through the
    energy gate (:attr:`endpointer`, from :func:`stream_endpointer`) into the open segments; a segment the
    decoder rules ended restarts the gate on its rest (:meth:`_restart`).

    A subclass has ``open`` (its segments not finalised, in order), ``num_samples`` and ``input_done``, and
    :meth:`_new_segment`; a segment has ``push(samples)`` and ``close(end_sample, reason)``.
    """

    endpointer: Endpointer | None

    def _new_segment(self, start_sample: int) -> None:
        raise NotImplementedError

    def _route(self, x: np.ndarray) -> None:
        """New 16 kHz samples (float32, numpy) of the stream."""
        if self.endpointer is not None:
            self._events(self.endpointer.process(x))
        else:
            if not self.open:
                self._new_segment(0)
            self.open[-1].push(x)

    def _close_input(self) -> None:
        """The input ended: the open segment ends (reason ``end``)."""
        if self.endpointer is not None:
            self._events(self.endpointer.flush())
        else:
            if not self.open:       # no audio at all: still one (empty) segment, decoded like any other
                self._new_segment(0)
            self.open[-1].close(self.num_samples, "end")

    def _events(self, events: list[tuple]) -> None:
        for ev in events:
            if ev[0] == "start":
                self._new_segment(ev[1])
            elif ev[0] == "audio":
                self.open[-1].push(ev[1])
            else:
                self.open[-1].close(ev[1], ev[2])

    def _restart(self, index: int, samples: np.ndarray) -> None:
        """The decoder rules ended a segment at stream sample ``index``: the energy gate starts afresh there
        and examines the samples already accepted after it (they may open the next segment)."""
        self.endpointer.restart(index)
        events = self.endpointer.process(samples)
        if self.input_done:
            events += self.endpointer.flush()
        self._events(events)
