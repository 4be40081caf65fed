"""Signal levels of framed audio: the one frame RMS (endpointing, silence trimming of synthesized speech,
noise floors of long-form audio).

Frames are the rows of a (F, L) array of float samples, full scale 1.0 (``x[: n * L].reshape(n, L)`` cuts a
signal into ``n`` frames of ``L`` samples).
"""

from __future__ import annotations

import numpy as np


def frame_rms(frames: np.ndarray) -> np.ndarray:
    """RMS of each row of ``frames`` (F, L) -> (F,), accumulated in float64."""
    return np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=1))


def frame_levels_db(frames: np.ndarray) -> np.ndarray:
    """RMS level in dBFS of each row of ``frames`` (F, L) -> (F,); ``-inf`` for a silent frame."""
    with np.errstate(divide="ignore"):
        return 20.0 * np.log10(frame_rms(frames))
