"""Reading and writing audio files (FLAC, WAV, anything libsndfile reads).

Every waveform handed to the rest of the toolkit is float32 mono at ``SAMPLE_RATE``: stereo is averaged
down to one channel and other rates are resampled with soxr (the high-quality resampler librosa uses).
A missing, unreadable, truncated or empty file raises :class:`AudioError` naming the path.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from encoders.constants import SAMPLE_RATE
from speech_common.errors import UserError


class AudioError(UserError):
    """An audio file is missing, unreadable or empty (the message names the path)."""


def resample(samples: np.ndarray, orig_sr: int, target_sr: int = SAMPLE_RATE) -> np.ndarray:
    """Resample a mono float waveform ``(N,)`` from ``orig_sr`` to ``target_sr`` -> float32 ``(M,)``."""
    samples = np.asarray(samples, dtype=np.float32)
    if orig_sr == target_sr or samples.size == 0:
        return samples
    return soxr.resample(samples, orig_sr, target_sr, quality="HQ").astype(np.float32, copy=False)


def read_audio(path: str | os.PathLike, target_sr: int = SAMPLE_RATE) -> np.ndarray:
    """Load an audio file as float32 mono ``(N,)`` at ``target_sr`` (values in [-1, 1]).

    Raises:
        AudioError: the file does not exist, cannot be decoded completely, or holds no samples.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"audio file not found: {path}")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError) as e:
        raise AudioError(f"cannot decode audio file {path}: {e}") from e
    if data.shape[0] == 0:
        raise AudioError(f"audio file is empty (0 samples): {path}")
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    return resample(mono, sr, target_sr)


def audio_blocks(path: str | os.PathLike, block_s: float) -> Iterator[tuple[np.ndarray, int]]:
    """Read a file block by block, whatever its length (memory bounded by one block): float32 mono
    blocks ``(n,)`` of about ``block_s`` seconds at the file's own rate, as ``(samples, rate)``.

    Raises:
        AudioError: the file does not exist, cannot be decoded, or holds no samples.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"audio file not found: {path}")
    try:
        with sf.SoundFile(str(path)) as f:
            if f.frames == 0:
                raise AudioError(f"audio file is empty (0 samples): {path}")
            n = max(1, int(round(block_s * f.samplerate)))
            for block in f.blocks(blocksize=n, dtype="float32", always_2d=True):
                yield (block.mean(axis=1) if block.shape[1] > 1 else block[:, 0]), f.samplerate
    except (sf.LibsndfileError, RuntimeError, ValueError) as e:
        raise AudioError(f"cannot decode audio file {path}: {e}") from e


def audio_info(path: str | os.PathLike) -> tuple[int, int]:
    """``(num_frames, sample_rate)`` from the file header only (fast; does not decode the samples).

    Raises:
        AudioError: the file does not exist, its header is unreadable, or it holds no samples.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"audio file not found: {path}")
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, ValueError) as e:
        raise AudioError(f"cannot read audio header of {path}: {e}") from e
    if info.frames <= 0:
        raise AudioError(f"audio file is empty (0 samples): {path}")
    return int(info.frames), int(info.samplerate)


def audio_duration(path: str | os.PathLike) -> float:
    """Duration in seconds from the file header (see :func:`audio_info`)."""
    frames, sr = audio_info(path)
    return frames / sr


def write_audio(path: str | os.PathLike, samples: np.ndarray, sr: int = SAMPLE_RATE) -> None:
    """Write a mono float waveform ``(N,)`` as 16-bit PCM; the format follows the extension (.flac, .wav)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    samples = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
    sf.write(str(path), samples, sr, subtype="PCM_16")
