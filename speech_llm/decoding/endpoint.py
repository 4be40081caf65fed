"""Endpointing: where a segment starts (an energy gate on the samples) and, in energy mode, where it ends.

The :class:`~speech_llm.decoding.recognizer.Recognizer` endpoints every stream (as sherpa-onnx's recognizer does),
so ``decode``, ``transcribe``, ``live``, the server and the Python API all cut input of any length into
segments the same way, and each segment is decoded with a fresh LLM context and fresh encoder caches.

Two parts (:class:`speech_llm.config.EndpointConfig`):

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
  after each chunk (:func:`decoder_end`: sherpa-onnx's rules 1-3), and restarts the gate on the samples
  after that chunk end.

Either way the input end closes the open segment ("end"), and boundaries depend only on the samples (and on
what the model writes for them), never on block sizes or on how fast the decoder runs.
"""

from __future__ import annotations

import numpy as np

from encoders.constants import SAMPLE_RATE
from speech_common.levels import frame_levels_db
from speech_llm.config import EndpointConfig

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

    def __init__(self, config: EndpointConfig, sample_rate: int = SAMPLE_RATE, ends: bool = True):
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
