"""Text-to-speech voices of the synthetic corpus (espeak-ng and flite, run as subprocesses).

A *speaker* of a corpus is one voice setting: engine, voice, speaking rate and pitch. Both speaker tables
live here: :data:`VOICES` (the template corpus, :mod:`data_prep.synth`) and :data:`SENTENCE_VOICES` (the
sentence corpus, synthesized by :mod:`data_prep.tts`). Waveforms come
back as float32 mono at ``SAMPLE_RATE`` (espeak-ng speaks at 22.05 kHz, flite at 16 kHz; both are
resampled when needed). :func:`trim_silence` cuts the synthesizer's leading and trailing silence so
that a word's samples start and end where the speech does.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from data_prep.audio import resample
from encoders.constants import SAMPLE_RATE
from speech_common.errors import UserError
from speech_common.levels import frame_rms

ENGINE_PACKAGES = {"espeak-ng": "espeak-ng", "flite": "flite"}


@dataclass(frozen=True)
class Voice:
    """A speaker of the synthetic corpus.

    Attributes:
        speaker: numeric speaker id as in LibriSpeech (directory name), e.g. ``"1001"``.
        engine: ``"espeak-ng"`` or ``"flite"``.
        name: espeak-ng voice (with ``+variant``) or flite voice name.
        rate: espeak-ng speed in words per minute; flite duration stretch (> 1 is slower).
        pitch: espeak-ng pitch 0-99; flite f0 shift factor.
    """

    speaker: str
    engine: str
    name: str
    rate: float
    pitch: float


VOICES: tuple[Voice, ...] = (
    Voice("1001", "espeak-ng", "en-us+m3", 165, 45),
    Voice("1002", "espeak-ng", "en-us+f3", 155, 60),
    Voice("1003", "espeak-ng", "en-gb+m1", 150, 40),
    Voice("1004", "espeak-ng", "en-gb+f2", 170, 55),
    Voice("1005", "espeak-ng", "en-us+m5", 140, 50),
    Voice("1006", "espeak-ng", "en-gb-x-rp+f4", 160, 65),
    Voice("2001", "flite", "slt", 1.0, 1.0),
    Voice("2002", "flite", "awb", 1.0, 1.0),
    Voice("2003", "flite", "rms", 1.0, 1.0),
    Voice("2004", "flite", "kal16", 1.0, 1.0),
    Voice("2005", "flite", "slt", 1.15, 0.9),
    Voice("2006", "flite", "awb", 0.9, 1.15),
)
"""The corpus speakers: six espeak-ng and six flite settings."""

PIPER_VOICE = "joe"

SENTENCE_VOICES: tuple[Voice, ...] = (
    Voice("3001", "espeak-ng", "en-us+m3", 165, 45),
    Voice("3002", "espeak-ng", "en-us+f3", 155, 60),
    Voice("3003", "espeak-ng", "en+m1", 150, 40),
    Voice("3004", "espeak-ng", "en+f2", 170, 55),
    Voice("3005", "espeak-ng", "en-us+m5", 140, 50),
    Voice("3006", "espeak-ng", "en-gb-x-rp+f4", 160, 65),
    Voice("4001", "flite", "slt", 1.0, 1.0),
    Voice("4002", "flite", "awb", 1.0, 1.0),
    Voice("4003", "flite", "rms", 1.0, 1.0),
    Voice("4004", "flite", "kal16", 1.0, 1.0),
    Voice("4005", "flite", "slt", 1.15, 0.9),
    Voice("4006", "flite", "rms", 0.9, 1.15),
    Voice("5001", "piper", PIPER_VOICE, 1.0, 1.0),
    Voice("5002", "piper", PIPER_VOICE, 0.88, 1.0),
    Voice("5003", "piper", PIPER_VOICE, 1.15, 1.0),
    Voice("5004", "piper", PIPER_VOICE, 1.0, 1.1),
    Voice("5005", "piper", PIPER_VOICE, 1.05, 0.92),
)
"""Speakers of the sentence corpus: six espeak-ng, six flite and five piper settings (speaker ids do not
overlap the template corpus's 1xxx/2xxx)."""


def check_engines(voices: tuple[Voice, ...] = VOICES) -> None:
    """Raise a :class:`UserError` naming the package to install when a synthesizer is missing."""
    missing = sorted({v.engine for v in voices if shutil.which(v.engine) is None})
    if missing:
        pkgs = " ".join(ENGINE_PACKAGES[m] for m in missing)
        raise UserError(f"text-to-speech program(s) not found: {', '.join(missing)} "
                        f"(install them, e.g. apt-get install {pkgs})")


def _command(voice: Voice, text: str) -> list[str]:
    if voice.engine == "espeak-ng":
        return ["espeak-ng", "-v", voice.name, "-s", str(int(voice.rate)), "-p", str(int(voice.pitch)),
                "--stdout", text]
    if voice.engine == "flite":
        return ["flite", "-voice", voice.name, "--setf", f"duration_stretch={voice.rate}",
                "--setf", f"f0_shift={voice.pitch}", "-t", text, "-o", "/dev/stdout"]
    raise UserError(f"unknown text-to-speech engine {voice.engine!r} for speaker {voice.speaker}")


def synthesize(voice: Voice, text: str) -> np.ndarray:
    """Speak ``text`` with ``voice`` -> float32 mono ``(N,)`` at ``SAMPLE_RATE`` (silence not trimmed).

    Raises:
        UserError: the synthesizer failed or produced no audio (its stderr is quoted).
    """
    cmd = _command(voice, text)
    proc = subprocess.run(cmd, capture_output=True, timeout=60)
    if proc.returncode != 0 or not proc.stdout:
        err = proc.stderr.decode(errors="replace").strip()[-300:]
        raise UserError(f"{voice.engine} failed for speaker {voice.speaker} on {text!r} "
                        f"(exit {proc.returncode}): {err}")
    try:
        data, sr = sf.read(io.BytesIO(proc.stdout), dtype="float32", always_2d=True)
    except sf.LibsndfileError as e:
        raise UserError(f"{voice.engine} wrote unreadable audio for speaker {voice.speaker} on {text!r}: {e}") from e
    return resample(data.mean(axis=1), sr, SAMPLE_RATE)


def loud_range(x: np.ndarray, threshold_db: float = -40.0, frame_ms: float = 5.0,
               min_rms: float = 0.0) -> tuple[int, int] | None:
    """Samples ``[start, end)`` of ``x`` (N,) from the first to the last ``frame_ms`` frame whose RMS is at most
    ``threshold_db`` below the loudest frame's (cut at frame boundaries, so up to one frame of near-silence is
    kept at each end); None when ``x`` is shorter than a frame or its loudest frame is below ``min_rms``."""
    hop = max(1, int(SAMPLE_RATE * frame_ms / 1000))
    n = len(x) // hop
    if n == 0:
        return None
    rms = frame_rms(x[: n * hop].reshape(n, hop))
    if rms.max() < min_rms:
        return None
    loud = np.flatnonzero(rms >= rms.max() * 10 ** (threshold_db / 20))
    return int(loud[0] * hop), int((loud[-1] + 1) * hop)


def trim_silence(x: np.ndarray, threshold_db: float = -40.0, frame_ms: float = 5.0) -> np.ndarray:
    """Cut leading/trailing frames whose RMS is ``threshold_db`` below the loudest frame; ``(N,) -> (M,)``
    (:func:`loud_range`). All-silent input gives an empty array.
    """
    loud = loud_range(x, threshold_db, frame_ms, min_rms=1e-4)
    return x[:0] if loud is None else x[loud[0]:loud[1]]
