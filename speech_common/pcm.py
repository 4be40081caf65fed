"""Caller samples -> mono float32: the one conversion of PCM blocks that every recognizer accepts (the torch one,
:mod:`speech_llm.decoding.recognizer`, and the onnxruntime one, :mod:`speech_runtime.recognizer`).

Integer PCM is scaled by its full scale: signed ``x / 2**(bits-1)``; unsigned is offset binary as in 8-bit WAV
(``(x - 2**(bits-1)) / 2**(bits-1)``: uint8 128 is silence, 0 is -1). Floats are taken as they are (full scale
1.0). Channels (``(N, C)``) are averaged.
"""

from __future__ import annotations

import numpy as np


def to_mono_float(samples) -> np.ndarray:
    """``samples`` (N,) or (N, C), any int/uint/float dtype -> (N,) float32; ValueError on another shape or on
    NaN / infinite values."""
    x = np.asarray(samples)
    if x.dtype.kind in "iu":
        full_scale = float(2 ** (8 * x.dtype.itemsize - 1))
        if x.dtype.kind == "u":     # offset binary (8-bit WAV): full_scale is zero, 0 is -1
            x = (x.astype(np.float64) - full_scale) / full_scale
        else:
            x = x.astype(np.float64) / full_scale
    x = x.astype(np.float32)
    if x.ndim == 2:
        x = x.mean(axis=1)
    elif x.ndim != 1:
        raise ValueError(f"samples must have shape (N,) or (N, channels), got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("samples contain NaN or infinite values")
    return x
