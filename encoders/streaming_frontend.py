"""What the streaming front ends share (:class:`encoders.frontend.StreamingFbank`,
:class:`encoders.whisper_frontend.StreamingLogMel`): audio arrives in blocks of any size and every frame
is emitted once, as soon as its window is complete, so that everything emitted is exactly the offline
features of the whole audio.

Both frame a padded signal ``start(audio) ++ audio ++ end(audio)``: frame ``i`` covers padded samples
``[i * hop, i * hop + window)``. The buffer holds the padded signal from the first sample that a frame not
yet emitted needs. The start padding needs the first samples of the audio, so nothing is emitted before
they have arrived; the end padding is added when the input is finished.

============  =========================================  ===========================================
front end     start padding (needs)                      end padding
============  =========================================  ===========================================
fbank         Kaldi's reflection of 120 samples (400)    the reversed audio
Whisper       ``center=True``'s reflection of 200 (201)  zeros
============  =========================================  ===========================================
"""

from __future__ import annotations

import torch


def check_samples(samples: torch.Tensor, name: str) -> torch.Tensor:
    """(N,) float samples in [-1, 1] (a tensor or anything ``torch.as_tensor`` takes) -> (N,) float64,
    detached; anything else is a ValueError naming ``name``."""
    if not isinstance(samples, torch.Tensor):
        samples = torch.as_tensor(samples)
    if samples.dim() != 1:
        raise ValueError(f"{name}: expected a 1-D tensor of samples (N,), got shape {tuple(samples.shape)}")
    if not samples.is_floating_point():
        raise ValueError(f"{name}: expected float samples in [-1, 1], got dtype {samples.dtype}")
    return samples.detach().to(torch.float64)


class StreamingFrames:
    """Base of the streaming front ends: the buffering, counting and end-of-input logic.

    A subclass sets ``n_mels``, ``window`` and ``hop`` (samples of the padded signal) and implements
    ``_samples`` (checks and scales a block), ``_start`` (the padded signal's start, once enough audio has
    arrived), ``_total_frames`` (the offline frame count), ``_pad_end`` (the end padding) and ``_frames``
    (the features of a span of padded signal).
    """

    n_mels: int
    window: int
    hop: int

    def __init__(self) -> None:
        self._pending = torch.zeros(0, dtype=torch.float64)  # raw audio before the start padding is possible
        self._buffer: torch.Tensor | None = None  # padded signal from padded sample hop * _next_frame on
        self._num_samples = 0
        self._next_frame = 0
        self._finished = False

    @property
    def num_samples(self) -> int:
        """Samples accepted so far."""
        return self._num_samples

    @property
    def num_frames_emitted(self) -> int:
        return self._next_frame

    def accept_waveform(self, samples: torch.Tensor) -> torch.Tensor:
        """Append (n,) samples; return the (k, n_mels) frames whose window is now complete (k >= 0)."""
        name = type(self).__name__
        if self._finished:
            raise RuntimeError(f"{name}.accept_waveform called after input_finished()")
        x = self._samples(samples, f"{name}.accept_waveform(samples)")
        self._num_samples += x.numel()
        if self._buffer is None:
            self._pending = torch.cat([self._pending, x])
            self._buffer = self._start(self._pending)
            if self._buffer is None:
                return self._empty()
            self._pending = self._pending[:0]
        else:
            self._buffer = torch.cat([self._buffer, x])
        ready = 0 if self._buffer.numel() < self.window else 1 + (self._buffer.numel() - self.window) // self.hop
        return self._emit(ready)

    def input_finished(self) -> torch.Tensor:
        """Mark the end of the audio; return the remaining (k, n_mels) frames (their windows end-padded)."""
        if self._finished:
            raise RuntimeError(f"{type(self).__name__}.input_finished called twice")
        self._finished = True
        remaining = self._total_frames(self._num_samples) - self._next_frame
        if remaining <= 0 or not self._pad_end(remaining):
            return self._empty()
        return self._emit(remaining)

    def _empty(self) -> torch.Tensor:
        return torch.zeros(0, self.n_mels, dtype=torch.float32)

    def _emit(self, count: int) -> torch.Tensor:
        if count <= 0:
            return self._empty()
        frames = self._frames(self._buffer[:self.window + self.hop * (count - 1)])
        self._buffer = self._buffer[count * self.hop:]
        self._next_frame += count
        return frames

    def _extend_buffer(self, remaining: int, padding) -> None:
        """Append ``padding(needed)`` (needed,) samples so that ``remaining`` more frames fit in the buffer."""
        needed = self.window + self.hop * (remaining - 1) - self._buffer.numel()
        if needed > 0:
            self._buffer = torch.cat([self._buffer, padding(needed)])

    # ---------------------------------------------------------------- what a front end defines
    def _samples(self, samples: torch.Tensor, name: str) -> torch.Tensor:
        """(n,) samples -> (n,) float64 as the features are computed from them."""
        raise NotImplementedError

    def _start(self, pending: torch.Tensor) -> torch.Tensor | None:
        """The padded signal's start from the first (P,) samples, or None while P is too few."""
        raise NotImplementedError

    def _total_frames(self, num_samples: int) -> int:
        """Frames the offline features of ``num_samples`` samples have."""
        raise NotImplementedError

    def _pad_end(self, remaining: int) -> bool:
        """Pad the buffer at the end of the input for ``remaining`` frames (False: no frames to emit)."""
        raise NotImplementedError

    def _frames(self, signal: torch.Tensor) -> torch.Tensor:
        """(window + hop (k - 1),) padded signal -> (k, n_mels) float32 features."""
        raise NotImplementedError
