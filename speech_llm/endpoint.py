"""Endpointing: cut a stream of samples into speech segments, from the samples alone.

The :class:`~speech_llm.recognizer.Recognizer` endpoints every stream (as sherpa-onnx's recognizer does),
so ``decode``, ``transcribe``, ``live``, the server and the Python API all cut input of any length into
segments the same way, and each segment is decoded with a fresh LLM context.

The rules (:class:`speech_llm.config.EndpointConfig`): the signal is split into frames of ``frame_ms``
(25 ms) on a grid counted from the start of the stream; a frame is *speech* when its RMS level
``20*log10(rms)`` (dBFS, full scale = 1.0, so a full-scale sine is -3 dBFS) is at least ``threshold_db``
(default -40 dBFS). Between segments the audio is only kept as a pre-roll of ``preroll_s``; the first
speech frame opens a segment that starts with that pre-roll. A segment ends at the end of the frame where
``silence_s`` of trailing non-speech frames have been seen ("silence"), or at the first frame end where
it is ``max_segment_s`` long ("max_length"), or when the input ends ("end"). Long silence with no speech
never opens a segment. Segment boundaries therefore depend only on the samples, never on block sizes or
on how fast the decoder runs.
"""

from __future__ import annotations

import numpy as np

from encoders.constants import SAMPLE_RATE
from speech_common.levels import frame_levels_db
from speech_llm.config import EndpointConfig


class Endpointer:
    """Cut a stream of float samples (full scale 1.0) at ``sample_rate`` into segments.

    :meth:`process` takes a block and returns events, in order:
    ``("start", index)``, ``("audio", samples)``, ``("end", index, reason)`` — ``index`` counts samples
    from the start of the session; ``reason`` is "silence", "max_length" or "end". :meth:`flush` ends the
    open segment (reason "end"). Samples of an incomplete frame wait for the next block.
    """

    def __init__(self, config: EndpointConfig, sample_rate: int = SAMPLE_RATE):
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
