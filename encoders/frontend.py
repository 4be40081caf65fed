"""Audio front end: Kaldi-compatible fbank (offline and streaming), global CMVN, SpecAugment.

Features are 80-dim log-mel filter banks from :func:`torchaudio.compliance.kaldi.fbank` at
:data:`~encoders.constants.SAMPLE_RATE` with a 25 ms window every 10 ms, no dither, and
``snip_edges=False``: frame ``i`` is centred at ``i * 10 ms + 5 ms``, an utterance of ``N`` samples gives
``(N + 80) // 160`` frames, and the window is reflected at both ends of the audio (Kaldi's convention).
Audio shorter than one window (25 ms) gives no frames, because Kaldi cannot frame it.

Streaming (:class:`StreamingFbank`) emits frame ``i`` as soon as its whole window has arrived and the
frames whose window runs past the end of the audio when the input is finished, so the concatenation of
everything it emits is exactly (bit for bit) :func:`compute_fbank` of the whole audio. The fbank is
computed in float64 and returned as float32: torch's float32 matrix product is not batch-invariant (a
frame's value changes in the last bit with the number of frames computed together), float64 rounded to
float32 is.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path

import torch
import torchaudio
from torch import nn

from encoders.constants import FRAME_LENGTH_MS, FRAME_SHIFT_MS, NUM_MEL_BINS, SAMPLE_RATE
from encoders.streaming_frontend import StreamingFrames, check_samples
from speech_common.errors import UserError

WINDOW_SAMPLES = int(SAMPLE_RATE * FRAME_LENGTH_MS / 1000)  # 400
SHIFT_SAMPLES = int(SAMPLE_RATE * FRAME_SHIFT_MS / 1000)  # 160
# Kaldi's snip_edges=False framing: frame i covers padded samples [i*shift, i*shift + window) of
# reflect(start, LEFT_PAD) ++ audio ++ reversed(audio).
LEFT_PAD = WINDOW_SAMPLES // 2 - SHIFT_SAMPLES // 2  # 120
PCM_SCALE = 32768.0  # Kaldi works on 16-bit sample values


def _check_samples(samples: torch.Tensor, name: str) -> torch.Tensor:
    """(N,) float samples in [-1, 1] -> (N,) float64 at Kaldi's 16-bit scale."""
    return check_samples(samples, name) * PCM_SCALE


def _kaldi_fbank(waveform: torch.Tensor, snip_edges: bool) -> torch.Tensor:
    """(N,) float64 PCM-scaled samples -> (T, NUM_MEL_BINS) float32."""
    feats = torchaudio.compliance.kaldi.fbank(
        waveform.unsqueeze(0), num_mel_bins=NUM_MEL_BINS, frame_length=FRAME_LENGTH_MS,
        frame_shift=FRAME_SHIFT_MS, dither=0.0, sample_frequency=SAMPLE_RATE,
        snip_edges=snip_edges)
    return feats.to(torch.float32)


def _empty(device: torch.device | None = None) -> torch.Tensor:
    return torch.zeros(0, NUM_MEL_BINS, dtype=torch.float32, device=device)


def num_frames(num_samples: int) -> int:
    """Number of fbank frames :func:`compute_fbank` gives for ``num_samples`` samples."""
    if num_samples < WINDOW_SAMPLES:
        return 0
    return (num_samples + SHIFT_SAMPLES // 2) // SHIFT_SAMPLES


def compute_fbank(samples: torch.Tensor) -> torch.Tensor:
    """Offline fbank of one utterance.

    Args:
        samples: (N,) float samples in [-1, 1] at SAMPLE_RATE.

    Returns:
        (T, NUM_MEL_BINS) float32 with ``T = num_frames(N)`` (0 when the audio is shorter than 25 ms).
    """
    wav = _check_samples(samples, "compute_fbank(samples)")
    if wav.numel() < WINDOW_SAMPLES:
        return _empty(wav.device)
    return _kaldi_fbank(wav, snip_edges=False)


class StreamingFbank(StreamingFrames):
    """Fbank of audio that arrives in blocks of any size; emits exactly the frames of :func:`compute_fbank`.

    Usage::

        fb = StreamingFbank()
        for block in blocks:               # (n,) float samples in [-1, 1]
            frames = fb.accept_waveform(block)   # (k, 80), k >= 0: the frames that became complete
        frames = fb.input_finished()             # (k, 80): the last frames (window reflected at the end)

    Internally the buffer holds the padded signal ``reflect(start) ++ audio`` from the first sample that a
    not yet emitted frame needs; nothing is emitted before 25 ms of audio have arrived (shorter audio has
    no frames offline either). Buffering: :class:`encoders.streaming_frontend.StreamingFrames`.
    """

    n_mels = NUM_MEL_BINS
    window = WINDOW_SAMPLES
    hop = SHIFT_SAMPLES

    def _samples(self, samples: torch.Tensor, name: str) -> torch.Tensor:
        return _check_samples(samples, name)

    def _start(self, pending: torch.Tensor) -> torch.Tensor | None:
        if pending.numel() < WINDOW_SAMPLES:  # Kaldi cannot frame less than one window
            return None
        return torch.cat([pending[:LEFT_PAD].flip(0), pending])

    def _total_frames(self, num_samples: int) -> int:
        return num_frames(num_samples)

    def _pad_end(self, remaining: int) -> bool:
        if self._buffer is None:  # shorter than one window: no frames at all
            return False
        # Kaldi reflects the audio at its end: the padded signal continues with reversed(audio).
        self._extend_buffer(remaining, lambda needed: self._buffer.flip(0)[:needed])
        return True

    def _frames(self, signal: torch.Tensor) -> torch.Tensor:
        return _kaldi_fbank(signal, snip_edges=True)


class GlobalCMVN(nn.Module):
    """Global mean/variance normalisation: ``(x - mean) / std`` per feature dimension.

    Stats come from a data set (:meth:`compute_stats`) and live in a small JSON file
    (``{"dim": 80, "num_frames": N, "mean": [...], "std": [...]}``) written by :meth:`save` and read by
    :meth:`from_file`. They are buffers, so they are also saved in the model's state dict.
    """

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, num_frames: int = 0) -> None:
        super().__init__()
        mean = torch.as_tensor(mean, dtype=torch.float32).flatten()
        std = torch.as_tensor(std, dtype=torch.float32).flatten()
        if mean.shape != std.shape:
            raise ValueError(f"GlobalCMVN: mean {tuple(mean.shape)} and std {tuple(std.shape)} differ")
        self.register_buffer("mean", mean)
        self.register_buffer("std", std.clamp_min(1e-5))
        self.num_frames = int(num_frames)

    @property
    def dim(self) -> int:
        return self.mean.numel()

    @classmethod
    def compute_stats(cls, features: Iterable[torch.Tensor]) -> GlobalCMVN:
        """Stats over every frame of an iterable of (T, D) feature tensors (accumulated in float64)."""
        total = squares = None
        count = 0
        for i, feats in enumerate(features):
            if feats.dim() != 2:
                raise ValueError(f"GlobalCMVN.compute_stats: item {i} has shape {tuple(feats.shape)}, "
                                 "expected (T, D)")
            f = feats.detach().to(torch.float64)
            if total is None:
                total, squares = torch.zeros(f.size(1), dtype=torch.float64), \
                    torch.zeros(f.size(1), dtype=torch.float64)
            elif f.size(1) != total.numel():
                raise ValueError(f"GlobalCMVN.compute_stats: item {i} has dim {f.size(1)}, "
                                 f"earlier items {total.numel()}")
            total += f.sum(0)
            squares += (f * f).sum(0)
            count += f.size(0)
        if count == 0:
            raise ValueError("GlobalCMVN.compute_stats: no feature frames given")
        mean = total / count
        var = (squares / count - mean * mean).clamp_min(0.0)
        return cls(mean, var.sqrt(), num_frames=count)

    def save(self, path: str | Path) -> None:
        data = {"dim": self.dim, "num_frames": self.num_frames,
                "mean": [float(v) for v in self.mean.tolist()], "std": [float(v) for v in self.std.tolist()]}
        Path(path).write_text(json.dumps(data, indent=1) + "\n")

    @classmethod
    def from_file(cls, path: str | Path) -> GlobalCMVN:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise UserError(f"CMVN stats file not found: {path}") from None
        except json.JSONDecodeError as e:
            raise UserError(f"CMVN stats file {path} is not valid JSON: {e}") from None
        for key in ("mean", "std"):
            if key not in data or not isinstance(data[key], list) or not data[key]:
                raise UserError(f"CMVN stats file {path}: key '{key}' missing or not a non-empty list")
        if len(data["mean"]) != len(data["std"]):
            raise UserError(f"CMVN stats file {path}: 'mean' has {len(data['mean'])} values, "
                            f"'std' has {len(data['std'])}")
        if any(not math.isfinite(v) for v in data["mean"] + data["std"]):
            raise UserError(f"CMVN stats file {path}: non-finite values in 'mean' or 'std'")
        return cls(torch.tensor(data["mean"]), torch.tensor(data["std"]), data.get("num_frames", 0))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, T, D) or (T, D) -> same shape, normalised."""
        if feats.size(-1) != self.dim:
            raise ValueError(f"GlobalCMVN: features have dim {feats.size(-1)}, stats have {self.dim}")
        return (feats - self.mean) / self.std


class SpecAugment(nn.Module):
    """SpecAugment (frequency and time masking, torchaudio.transforms) on (B, T, F); identity in eval mode.

    Each utterance of the batch gets its own masks (masked values become 0). Defaults: two frequency masks
    of up to 27 bins (the LibriSpeech "LD" policy) and two time masks of up to 40 frames, each at most 5 %
    of the padded length.
    """

    def __init__(self, freq_mask_param: int = 27, num_freq_masks: int = 2, time_mask_param: int = 40,
                 num_time_masks: int = 2, time_mask_ratio: float = 0.05) -> None:
        super().__init__()
        self.freq_masks = nn.ModuleList(
            torchaudio.transforms.FrequencyMasking(freq_mask_param, iid_masks=True)
            for _ in range(num_freq_masks))
        self.time_masks = nn.ModuleList(
            torchaudio.transforms.TimeMasking(time_mask_param, iid_masks=True, p=time_mask_ratio)
            for _ in range(num_time_masks))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, T, F) -> (B, T, F) with masked regions set to 0 (training mode only)."""
        if not self.training:
            return feats
        if feats.dim() != 3:
            raise ValueError(f"SpecAugment expects (B, T, F), got shape {tuple(feats.shape)}")
        x = feats.transpose(1, 2).unsqueeze(1)  # (B, 1, F, T): torchaudio's (..., freq, time)
        for mask in [*self.freq_masks, *self.time_masks]:
            x = mask(x)
        return x.squeeze(1).transpose(1, 2)
