"""Audio constants shared by the whole toolkit (one home each: never write these literals elsewhere)."""

SAMPLE_RATE = 16000
"""Every model works at 16 kHz; other rates are resampled on input."""

NUM_MEL_BINS = 80
"""Kaldi-compatible fbank dimension."""

FRAME_SHIFT_MS = 10.0
FRAME_LENGTH_MS = 25.0
