"""Streaming resampling to the model rate, equal to resampling the whole signal at once.

:class:`StreamingResampler` takes blocks of any size at the input rate and returns the output samples
that are settled — those whose filter support lies inside the input received so far. It keeps only the
input still needed (whole filter periods of left context), so memory is bounded for endless streams.
Samples equal ``torchaudio.functional.resample`` of the concatenated input (same sinc filter; float
rounding only), including the tail flushed by :meth:`StreamingResampler.flush`.
"""

from __future__ import annotations

import math

import torch
import torchaudio.functional as AF

LOWPASS_WIDTH = 6
ROLLOFF = 0.99


class StreamingResampler:
    """Resample a stream from ``orig_rate`` to ``new_rate`` block by block.

    Args:
        orig_rate: input sample rate (Hz).
        new_rate: output sample rate (Hz).
    """

    def __init__(self, orig_rate: int, new_rate: int):
        if orig_rate <= 0 or new_rate <= 0:
            raise ValueError(f"sample rates must be positive, got {orig_rate} -> {new_rate}")
        self.orig_rate, self.new_rate = int(orig_rate), int(new_rate)
        g = math.gcd(self.orig_rate, self.new_rate)
        self._period_in, self._period_out = self.orig_rate // g, self.new_rate // g
        # Filter half-width in input samples (torchaudio's sinc kernel), plus one period of slack.
        base = min(self._period_in, self._period_out) * ROLLOFF
        self._margin = math.ceil(LOWPASS_WIDTH * self._period_in / base) + self._period_in + 1
        self._buf = torch.zeros(0)
        self._buf_start = 0      # absolute input index of _buf[0], a multiple of the input period
        self._emitted = 0        # output samples returned so far
        self._finished = False

    @property
    def identity(self) -> bool:
        return self.orig_rate == self.new_rate

    def accept(self, samples: torch.Tensor) -> torch.Tensor:
        """Append input samples (n,) and return the newly settled output samples (m,)."""
        if self._finished:
            raise RuntimeError("accept() after flush()")
        if self.identity:
            return samples
        self._buf = torch.cat([self._buf, samples.to(torch.float32)])
        total_in = self._buf_start + self._buf.numel()
        settled = max(0, math.floor((total_in - self._margin) * self.new_rate / self.orig_rate) + 1)
        return self._emit(settled)

    def flush(self) -> torch.Tensor:
        """Input ended: return the remaining output samples."""
        if self.identity or self._finished:
            self._finished = True
            return torch.zeros(0)
        self._finished = True
        total_in = self._buf_start + self._buf.numel()
        return self._emit(math.ceil(total_in * self.new_rate / self.orig_rate))

    def _emit(self, upto: int) -> torch.Tensor:
        if upto <= self._emitted or self._buf.numel() == 0:
            return torch.zeros(0)
        out_offset = self._buf_start // self._period_in * self._period_out
        y = AF.resample(self._buf, self.orig_rate, self.new_rate, lowpass_filter_width=LOWPASS_WIDTH,
                        rolloff=ROLLOFF)
        out = y[self._emitted - out_offset: upto - out_offset]
        self._emitted = upto
        # Drop input no longer needed by future outputs, in whole periods so the filter phase stays aligned.
        need_from = self._emitted * self.orig_rate / self.new_rate - self._margin
        new_start = max(0, math.floor(need_from / self._period_in) * self._period_in)
        if new_start > self._buf_start:
            self._buf = self._buf[new_start - self._buf_start:]
            self._buf_start = new_start
        return out
