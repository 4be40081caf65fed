"""Whisper's log-mel front end in numpy: ``encoders.whisper_frontend`` (read its docstring) without torch.

* :func:`mel_filters`: the slaney mel filter bank of ``librosa.filters.mel(htk=False, norm="slaney")``
  (what Whisper's ``mel_filters.npz`` holds), from its formula: mel scale linear below 1 kHz and
  logarithmic above, triangles between ``n_mels + 2`` equally spaced mel points, each scaled to unit area;
* :func:`compute_log_mel` and :class:`StreamingLogMel`: 25 ms periodic Hann windows every 10 ms centred
  on sample ``160 i`` (start reflected over 200 samples, zeros after the end), power spectrum, mel,
  ``log10(max(mel, 1e-10))``, floored at ``ceiling - 8`` and mapped by ``(L + 4) / 4``; ``N // 160`` frames.

Computed in float64 and returned as float32, as the torch one.
"""

from __future__ import annotations

import numpy as np

from speech_runtime.frontend import HOP, SAMPLE_RATE, WINDOW, StreamingFrames

N_FFT = WINDOW          # 400
PAD = N_FFT // 2        # 200: center=True's reflection at the start
LOG_FLOOR = 1e-10
DYNAMIC_RANGE = 8.0
DEFAULT_CEILING = 1.0

_MIN_LOG_HZ = 1000.0    # the slaney mel scale: linear below, logarithmic above
_MEL_PER_HZ = 3.0 / 200.0
_LOG_STEP = np.log(6.4) / 27.0


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    f = np.asarray(f, np.float64)
    lin = f * _MEL_PER_HZ
    log = _MIN_LOG_HZ * _MEL_PER_HZ + np.log(np.maximum(f, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOG_STEP
    return np.where(f >= _MIN_LOG_HZ, log, lin)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, np.float64)
    min_log_mel = _MIN_LOG_HZ * _MEL_PER_HZ
    lin = m / _MEL_PER_HZ
    log = _MIN_LOG_HZ * np.exp(_LOG_STEP * (np.maximum(m, min_log_mel) - min_log_mel))
    return np.where(m >= min_log_mel, log, lin)


def mel_filters(n_mels: int = 80) -> np.ndarray:
    """(n_mels, N_FFT // 2 + 1) float64 slaney mel filters from 0 Hz to the Nyquist frequency."""
    fft_hz = np.linspace(0.0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    points = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(SAMPLE_RATE / 2), n_mels + 2))
    widths = np.diff(points)
    ramps = points[:, None] - fft_hz[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    return weights * (2.0 / (points[2:] - points[:-2]))[:, None]


_FILTERS: dict[int, np.ndarray] = {}
_HANN = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)     # periodic


def _filters(n_mels: int) -> np.ndarray:
    if n_mels not in _FILTERS:
        _FILTERS[n_mels] = mel_filters(n_mels)
    return _FILTERS[n_mels]


def log_mel_frames(padded: np.ndarray, n_mels: int, ceiling: float) -> np.ndarray:
    """(400 + 160 (T - 1),) float64 padded signal -> (T, n_mels) float32 normalised log-mel."""
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP]
    power = np.abs(np.fft.rfft(frames * _HANN, n=N_FFT)) ** 2
    log_spec = np.log10(np.maximum(power @ _filters(n_mels).T, LOG_FLOOR))
    return ((np.maximum(log_spec, ceiling - DYNAMIC_RANGE) + 4.0) / 4.0).astype(np.float32)


def num_frames(num_samples: int) -> int:
    """Frames of ``num_samples`` samples: ``N // 160``."""
    return max(int(num_samples), 0) // HOP


def compute_log_mel(samples: np.ndarray, n_mels: int = 80, ceiling: float = DEFAULT_CEILING) -> np.ndarray:
    """Offline log-mel of one utterance, (N,) float in [-1, 1] -> (N // 160, n_mels) float32."""
    x = np.asarray(samples, np.float64).reshape(-1)
    count = num_frames(x.size)
    if count == 0:
        return np.zeros((0, n_mels), np.float32)
    signal = np.concatenate([x, np.zeros(N_FFT + PAD)])
    padded = np.concatenate([signal[1:PAD + 1][::-1], signal])[:N_FFT + HOP * (count - 1)]
    return log_mel_frames(padded, n_mels, ceiling)


class StreamingLogMel(StreamingFrames):
    """Whisper log-mel of audio in blocks of any size; emits exactly the frames of :func:`compute_log_mel`
    (nothing before 201 samples, which the start's reflection needs, or the input end)."""

    window = N_FFT
    hop = HOP

    def __init__(self, n_mels: int = 80, ceiling: float = DEFAULT_CEILING) -> None:
        super().__init__()
        self.n_mels = n_mels
        self.ceiling = ceiling

    def _samples(self, x: np.ndarray) -> np.ndarray:
        return x

    def _start(self, pending: np.ndarray) -> np.ndarray | None:
        if pending.size <= PAD:
            return None
        return np.concatenate([pending[1:PAD + 1][::-1], pending])

    def _total_frames(self, num_samples: int) -> int:
        return num_frames(num_samples)

    def _pad_end(self, remaining: int) -> bool:
        if self._buffer is None:        # fewer than 201 samples: the reflection reaches into the zeros
            signal = np.concatenate([self._pending, np.zeros(PAD + 1)])
            self._buffer = np.concatenate([signal[1:PAD + 1][::-1], self._pending])
        self._extend_buffer(remaining, np.zeros)
        return True

    def _frames(self, signal: np.ndarray) -> np.ndarray:
        return log_mel_frames(signal, self.n_mels, self.ceiling)
