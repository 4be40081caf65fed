"""Whisper's log-mel front end, offline and streaming, with a streaming-compatible normalisation.

Whisper's features (``WhisperFeatureExtractor``): the audio is zero-padded to 30 s, framed by
``torch.stft`` with ``n_fft = 400`` (25 ms), ``hop = 160`` (10 ms), a periodic Hann window and
``center=True`` (the signal is reflect-padded by 200 samples at the start), the power spectrum goes through
Whisper's 80 (or 128) slaney mel filters (``librosa.filters.mel(..., htk=False, norm="slaney")``), the
last STFT frame is dropped, then::

    L = log10(max(mel, 1e-10));  L = max(L, max(L) - 8);  features = (L + 4) / 4

Here, for ``N`` samples:

- frame ``i`` (``0 <= i < N // 160``) is the window centred at sample ``160 i``, i.e. padded samples
  ``[160 i, 160 i + 400)`` of ``reflect200(audio ++ zeros)``: the start is reflected as ``center=True``
  does, and samples after the end are zeros, exactly as after Whisper's 30 s zero padding. ``N // 160``
  frames is what Whisper keeps after dropping its last frame (3000 for 30 s); frame ``i`` is complete once
  ``160 i + 200`` samples (at least 201, for the reflection) have arrived.
- **Normalisation (the one difference).** ``max(L)`` is the utterance maximum: it is not known before
  the utterance ends, so no streaming front end can use it. The floor is fixed instead:
  ``L = max(L, ceiling - 8)`` with a constant ``ceiling`` (default :data:`DEFAULT_CEILING`, the median
  utterance maximum of speech at normal recording level), used in both the offline and the streaming
  path, then ``(L + 4) / 4`` as in Whisper. The floor only touches bins more than 80 dB below the
  ceiling (silence, band edges), so for speech at normal levels features match Whisper's, and they are
  exactly Whisper's whenever ``max(L) == ceiling``. Whisper's own normalisation is available offline as
  ``compute_log_mel(..., normalization="utterance")``, for comparisons only.

:class:`StreamingLogMel` emits exactly (bit for bit) the frames of :func:`compute_log_mel` for any block
sizes. Everything is computed in float64 and returned as float32 (float32 matrix products are not
batch-invariant; float64 rounded to float32 is), as in :mod:`encoders.frontend`.
"""

from __future__ import annotations

import functools

import torch

from encoders.constants import FRAME_LENGTH_MS, FRAME_SHIFT_MS, SAMPLE_RATE
from encoders.streaming_frontend import StreamingFrames, check_samples

N_FFT = int(SAMPLE_RATE * FRAME_LENGTH_MS / 1000)  # 400: Whisper's 25 ms window
HOP = int(SAMPLE_RATE * FRAME_SHIFT_MS / 1000)  # 160: 10 ms
PAD = N_FFT // 2  # centre padding (reflected at the start)
LOG_FLOOR = 1e-10
DYNAMIC_RANGE = 8.0  # log10 units (80 dB) kept below the ceiling
DEFAULT_CEILING = 1.0
"""log10 mel power used in place of the utterance maximum (see the module docstring)."""
NORMALIZATIONS = ("fixed", "utterance")


@functools.lru_cache(maxsize=4)
def mel_filters(n_mels: int) -> torch.Tensor:
    """(n_mels, N_FFT // 2 + 1) float64 slaney mel filters, as Whisper's ``mel_filters.npz``."""
    import librosa

    fb = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=n_mels, fmin=0.0, fmax=SAMPLE_RATE / 2,
                             htk=False, norm="slaney", dtype="float64")
    return torch.from_numpy(fb)


def num_frames(num_samples: int) -> int:
    """Frames :func:`compute_log_mel` gives for ``num_samples`` samples (``N // 160``)."""
    return max(int(num_samples), 0) // HOP


def _check_samples(samples: torch.Tensor, name: str) -> torch.Tensor:
    """(N,) float samples in [-1, 1] -> (N,) float64 on the CPU."""
    return check_samples(samples, name).cpu()


def _log_mel(padded: torch.Tensor, n_mels: int) -> torch.Tensor:
    """(P,) float64 padded signal, P = 400 + 160 (T - 1) -> (T, n_mels) float64 log10 mel power."""
    window = torch.hann_window(N_FFT, periodic=True, dtype=torch.float64)
    spec = torch.stft(padded, N_FFT, HOP, window=window, center=False, return_complex=True)  # (201, T)
    mel = mel_filters(n_mels) @ spec.abs().square()
    return mel.clamp_min(LOG_FLOOR).log10().T


def _normalize(log_spec: torch.Tensor, ceiling: float) -> torch.Tensor:
    return ((log_spec.clamp_min(ceiling - DYNAMIC_RANGE) + 4.0) / 4.0).to(torch.float32)


def compute_log_mel(samples: torch.Tensor, n_mels: int = 80, ceiling: float = DEFAULT_CEILING,
                    normalization: str = "fixed") -> torch.Tensor:
    """Offline Whisper log-mel of one utterance.

    Args:
        samples: (N,) float samples in [-1, 1] at SAMPLE_RATE.
        n_mels: 80 (Whisper up to large-v2) or 128 (large-v3).
        ceiling: the fixed log10 ceiling of ``normalization="fixed"``.
        normalization: ``"fixed"`` (streaming-compatible, what the encoder is fed) or ``"utterance"``
            (Whisper's own ``max(L) - 8`` floor; offline only).

    Returns:
        (N // 160, n_mels) float32.
    """
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    x = _check_samples(samples, "compute_log_mel(samples)")
    count = num_frames(x.numel())
    if count == 0:
        return torch.zeros(0, n_mels)
    signal = torch.cat([x, x.new_zeros(N_FFT + PAD)])  # audio ++ zeros (Whisper's padding to 30 s)
    padded = torch.cat([signal[1:PAD + 1].flip(0), signal])[:N_FFT + HOP * (count - 1)]
    log_spec = _log_mel(padded, n_mels)
    if normalization == "utterance":
        ceiling = float(log_spec.max())
    return _normalize(log_spec, ceiling)


class StreamingLogMel(StreamingFrames):
    """Whisper log-mel of audio that arrives in blocks of any size; emits exactly :func:`compute_log_mel`.

    Usage::

        fe = StreamingLogMel()
        for block in blocks:                     # (n,) float samples in [-1, 1]
            frames = fe.accept_waveform(block)   # (k, 80), k >= 0: frames whose window is complete
        frames = fe.input_finished()             # (k, 80): the frames that reach past the end (zeros)

    The buffer holds the padded signal ``reflect200(audio) ++ ...`` from the first sample a frame not yet
    emitted needs; nothing is emitted before 201 samples (the reflection needs them) or the input end.
    Buffering: :class:`encoders.streaming_frontend.StreamingFrames`.
    """

    window = N_FFT
    hop = HOP

    def __init__(self, n_mels: int = 80, ceiling: float = DEFAULT_CEILING) -> None:
        super().__init__()
        self.n_mels = n_mels
        self.ceiling = ceiling

    def _samples(self, samples: torch.Tensor, name: str) -> torch.Tensor:
        return _check_samples(samples, name)

    def _start(self, pending: torch.Tensor) -> torch.Tensor | None:
        if pending.numel() <= PAD:  # the reflection needs 201 samples
            return None
        return torch.cat([pending[1:PAD + 1].flip(0), pending])

    def _total_frames(self, num_samples: int) -> int:
        return num_frames(num_samples)

    def _pad_end(self, remaining: int) -> bool:
        if self._buffer is None:  # fewer than 201 samples: the reflection reaches into the zeros
            signal = torch.cat([self._pending, self._pending.new_zeros(PAD + 1)])
            self._buffer = torch.cat([signal[1:PAD + 1].flip(0), self._pending])
        self._extend_buffer(remaining, lambda needed: self._buffer.new_zeros(needed))  # zeros after the end
        return True

    def _frames(self, signal: torch.Tensor) -> torch.Tensor:
        return _normalize(_log_mel(signal, self.n_mels), self.ceiling)
