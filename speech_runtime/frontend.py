"""The runtime's audio front end in numpy: streaming resampling to 16 kHz and Kaldi fbank.

Both equal the torch front end of the toolkit up to float rounding (tests/speech_runtime compare them):

* :class:`StreamingResampler` = ``speech_llm.decoding.resample.StreamingResampler`` (torchaudio's windowed-sinc
  ``resample`` with ``lowpass_filter_width=6, rolloff=0.99``, Hann window, kernel in float32), block by block
  equal to resampling the whole signal;
* :func:`kaldi_fbank` = ``torchaudio.compliance.kaldi.fbank`` with the toolkit's options (80 bins, 25/10 ms,
  no dither, povey window, pre-emphasis 0.97, DC removed, power spectrum, log floor at float32 eps), and
  :class:`StreamingFbank` = ``encoders.frontend.StreamingFbank`` (Kaldi's ``snip_edges=False`` framing:
  the start reflected over 120 samples, the end over the reversed audio), in float64 as the torch one;
* Whisper's log-mel (``encoders.whisper_frontend``) is :mod:`speech_runtime.log_mel`, on the same buffering
  (:class:`StreamingFrames`); ``speech_runtime.recognizer`` builds the one an export's manifest names.
"""

from __future__ import annotations

import math

import numpy as np

SAMPLE_RATE = 16000
NUM_MEL_BINS = 80
FRAME_LENGTH_MS = 25.0
FRAME_SHIFT_MS = 10.0
WINDOW = int(SAMPLE_RATE * FRAME_LENGTH_MS / 1000)      # 400
HOP = int(SAMPLE_RATE * FRAME_SHIFT_MS / 1000)          # 160
LEFT_PAD = WINDOW // 2 - HOP // 2                       # 120
PADDED = 1 << (WINDOW - 1).bit_length()                 # 512 (round_to_power_of_two)
PCM_SCALE = 32768.0
LOW_FREQ = 20.0
PREEMPH = 0.97
EPS = float(np.finfo(np.float32).eps)
LOWPASS_WIDTH = 6
ROLLOFF = 0.99


def _mel(f):
    return np.float32(1127.0) * np.log(np.float32(1.0) + f / np.float32(700.0))


def mel_banks(num_bins: int = NUM_MEL_BINS) -> np.ndarray:
    """(num_bins, PADDED // 2 + 1) triangular mel filters as torchaudio builds them (float32, then float64)."""
    nyquist = 0.5 * SAMPLE_RATE
    fft_bin_width = SAMPLE_RATE / PADDED
    mel_low = 1127.0 * math.log(1.0 + LOW_FREQ / 700.0)
    mel_high = 1127.0 * math.log(1.0 + nyquist / 700.0)
    delta = (mel_high - mel_low) / (num_bins + 1)
    b = np.arange(num_bins, dtype=np.float32)[:, None]
    left = np.float32(mel_low) + b * np.float32(delta)
    center = np.float32(mel_low) + (b + np.float32(1.0)) * np.float32(delta)
    right = np.float32(mel_low) + (b + np.float32(2.0)) * np.float32(delta)
    mel = _mel(np.float32(fft_bin_width) * np.arange(PADDED // 2, dtype=np.float32))[None, :]
    up = (mel - left) / (center - left)
    down = (right - mel) / (right - center)
    bins = np.maximum(np.float32(0.0), np.minimum(up, down)).astype(np.float64)
    return np.pad(bins, ((0, 0), (0, 1)))


_BANKS = mel_banks()
_WINDOW_FN = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(WINDOW) / (WINDOW - 1))) ** 0.85   # povey


def kaldi_fbank(signal: np.ndarray) -> np.ndarray:
    """(N,) float64 PCM-scaled samples -> (T, 80) float32 log mel energies, ``snip_edges=True`` framing."""
    if signal.size < WINDOW:
        return np.zeros((0, NUM_MEL_BINS), np.float32)
    n = 1 + (signal.size - WINDOW) // HOP
    frames = np.lib.stride_tricks.sliding_window_view(signal, WINDOW)[::HOP][:n].astype(np.float64)
    frames = frames - frames.mean(axis=1, keepdims=True)
    prev = np.concatenate([frames[:, :1], frames[:, :-1]], axis=1)
    frames = (frames - PREEMPH * prev) * _WINDOW_FN
    spectrum = np.abs(np.fft.rfft(frames, n=PADDED)) ** 2
    energies = spectrum @ _BANKS.T
    return np.log(np.maximum(energies, EPS)).astype(np.float32)


def num_frames(num_samples: int) -> int:
    """Frames of the offline fbank of ``num_samples`` samples (``encoders.frontend.num_frames``)."""
    return 0 if num_samples < WINDOW else (num_samples + HOP // 2) // HOP


def compute_fbank(samples: np.ndarray) -> np.ndarray:
    """Offline fbank of one utterance, (N,) float in [-1, 1] -> (num_frames(N), 80) float32."""
    fb = StreamingFbank()
    return np.concatenate([fb.accept_waveform(samples), fb.input_finished()])


class StreamingFrames:
    """Buffering of the streaming front ends (``encoders.streaming_frontend.StreamingFrames`` in numpy): audio
    arrives in blocks of any size, every frame is emitted once, as soon as its window is complete. A subclass
    sets ``n_mels``, ``window``, ``hop`` and defines ``_samples``, ``_start``, ``_total_frames``, ``_pad_end``
    and ``_frames`` (as the torch base class documents)."""

    n_mels: int
    window: int
    hop: int

    def __init__(self) -> None:
        self._pending = np.zeros(0, np.float64)
        self._buffer: np.ndarray | None = None
        self._num_samples = 0
        self._next_frame = 0
        self._finished = False

    def accept_waveform(self, samples: np.ndarray) -> np.ndarray:
        """Append (n,) float samples in [-1, 1]; return the (k, n_mels) frames whose window is complete."""
        if self._finished:
            raise RuntimeError(f"{type(self).__name__}.accept_waveform called after input_finished()")
        x = self._samples(np.asarray(samples, dtype=np.float64).reshape(-1))
        self._num_samples += x.size
        if self._buffer is None:
            self._pending = np.concatenate([self._pending, x])
            self._buffer = self._start(self._pending)
            if self._buffer is None:
                return self._empty()
            self._pending = self._pending[:0]
        else:
            self._buffer = np.concatenate([self._buffer, x])
        ready = 0 if self._buffer.size < self.window else 1 + (self._buffer.size - self.window) // self.hop
        return self._emit(ready)

    def input_finished(self) -> np.ndarray:
        """End of the audio: the remaining frames (their windows padded at the end as the front end does)."""
        if self._finished:
            raise RuntimeError(f"{type(self).__name__}.input_finished called twice")
        self._finished = True
        remaining = self._total_frames(self._num_samples) - self._next_frame
        if remaining <= 0 or not self._pad_end(remaining):
            return self._empty()
        return self._emit(remaining)

    def _empty(self) -> np.ndarray:
        return np.zeros((0, self.n_mels), np.float32)

    def _emit(self, count: int) -> np.ndarray:
        if count <= 0:
            return self._empty()
        frames = self._frames(self._buffer[:self.window + self.hop * (count - 1)])
        self._buffer = self._buffer[count * self.hop:]
        self._next_frame += count
        return frames

    def _extend_buffer(self, remaining: int, padding) -> None:
        """Append ``padding(needed)`` samples so that ``remaining`` more frames fit in the buffer."""
        needed = self.window + self.hop * (remaining - 1) - self._buffer.size
        if needed > 0:
            self._buffer = np.concatenate([self._buffer, padding(needed)])


class StreamingFbank(StreamingFrames):
    """Fbank of audio arriving in blocks of any size; emits exactly the frames of :func:`compute_fbank`."""

    n_mels = NUM_MEL_BINS
    window = WINDOW
    hop = HOP

    def _samples(self, x: np.ndarray) -> np.ndarray:
        return x * PCM_SCALE

    def _start(self, pending: np.ndarray) -> np.ndarray | None:
        if pending.size < WINDOW:
            return None
        return np.concatenate([pending[:LEFT_PAD][::-1], pending])

    def _total_frames(self, num_samples: int) -> int:
        return num_frames(num_samples)

    def _pad_end(self, remaining: int) -> bool:
        if self._buffer is None:
            return False
        self._extend_buffer(remaining, lambda needed: self._buffer[::-1][:needed])   # the reversed audio
        return True

    def _frames(self, signal: np.ndarray) -> np.ndarray:
        return kaldi_fbank(signal)


def _sinc_kernel(orig: int, new: int) -> tuple[np.ndarray, int]:
    """torchaudio's ``_get_sinc_resample_kernel`` (Hann window) in float32: (new, 2 width + orig), width."""
    base = min(orig, new) * ROLLOFF
    width = math.ceil(LOWPASS_WIDTH * orig / base)
    idx = np.arange(-width, width + orig, dtype=np.float32)[None, :] / np.float32(orig)
    t = np.arange(0, -new, -1, dtype=np.float32)[:, None] / np.float32(new) + idx
    t = np.clip(t * np.float32(base), -LOWPASS_WIDTH, LOWPASS_WIDTH).astype(np.float32)
    window = np.cos(t * np.float32(math.pi / LOWPASS_WIDTH / 2)) ** 2
    t = t * np.float32(math.pi)
    with np.errstate(invalid="ignore", divide="ignore"):
        k = np.where(t == 0, np.float32(1.0), np.sin(t) / t)
    return (k * window * np.float32(base / orig)).astype(np.float32), width


def resample(x: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    """``torchaudio.functional.resample`` of (N,) float32 samples (windowed sinc, as the toolkit calls it)."""
    if orig_rate == new_rate:
        return x
    g = math.gcd(orig_rate, new_rate)
    orig, new = orig_rate // g, new_rate // g
    kernel, width = _sinc_kernel(orig, new)
    padded = np.pad(x.astype(np.float32), (width, width + orig))
    windows = np.lib.stride_tricks.sliding_window_view(padded, kernel.shape[1])[::orig]
    out = (windows @ kernel.T).reshape(-1)
    return out[:math.ceil(new * x.size / orig)]


class StreamingResampler:
    """``speech_llm.decoding.resample.StreamingResampler`` in numpy: blocks in, settled output samples out."""

    def __init__(self, orig_rate: int, new_rate: int = SAMPLE_RATE):
        if orig_rate <= 0 or new_rate <= 0:
            raise ValueError(f"sample rates must be positive, got {orig_rate} -> {new_rate}")
        self.orig_rate, self.new_rate = int(orig_rate), int(new_rate)
        g = math.gcd(self.orig_rate, self.new_rate)
        self._period_in, self._period_out = self.orig_rate // g, self.new_rate // g
        base = min(self._period_in, self._period_out) * ROLLOFF
        self._margin = math.ceil(LOWPASS_WIDTH * self._period_in / base) + self._period_in + 1
        self._buf = np.zeros(0, np.float32)
        self._buf_start = 0
        self._emitted = 0
        self._finished = False

    @property
    def identity(self) -> bool:
        return self.orig_rate == self.new_rate

    def accept(self, samples: np.ndarray) -> np.ndarray:
        if self._finished:
            raise RuntimeError("accept() after flush()")
        if self.identity:
            return samples
        self._buf = np.concatenate([self._buf, samples.astype(np.float32)])
        total_in = self._buf_start + self._buf.size
        settled = max(0, math.floor((total_in - self._margin) * self.new_rate / self.orig_rate) + 1)
        return self._emit(settled)

    def flush(self) -> np.ndarray:
        if self.identity or self._finished:
            self._finished = True
            return np.zeros(0, np.float32)
        self._finished = True
        total_in = self._buf_start + self._buf.size
        return self._emit(math.ceil(total_in * self.new_rate / self.orig_rate))

    def _emit(self, upto: int) -> np.ndarray:
        if upto <= self._emitted or self._buf.size == 0:
            return np.zeros(0, np.float32)
        out_offset = self._buf_start // self._period_in * self._period_out
        y = resample(self._buf, self.orig_rate, self.new_rate)
        out = y[self._emitted - out_offset: upto - out_offset]
        self._emitted = upto
        need_from = self._emitted * self.orig_rate / self.new_rate - self._margin
        new_start = max(0, math.floor(need_from / self._period_in) * self._period_in)
        if new_start > self._buf_start:
            self._buf = self._buf[new_start - self._buf_start:]
            self._buf_start = new_start
        return out
