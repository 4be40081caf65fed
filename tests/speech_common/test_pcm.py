"""Caller PCM -> mono float32, one conversion for both recognizers; the chunk in ms -> encoder frames."""

from __future__ import annotations

import numpy as np
import pytest

from speech_common.chunking import chunk_frames_of
from speech_common.pcm import to_mono_float


def test_unsigned_pcm_is_offset_binary_in_the_onnxruntime_recognizer_too():
    """uint8 128 is silence (it was +1.0, full-scale DC, in speech_runtime); 0 is -1; uint16 alike."""
    import speech_runtime.recognizer as runtime

    assert runtime.to_mono_float is to_mono_float
    assert np.array_equal(to_mono_float(np.full(100, 128, np.uint8)), np.zeros(100, np.float32))
    assert to_mono_float(np.array([0, 255], np.uint8)).tolist() == [-1.0, 127 / 128]
    assert np.array_equal(to_mono_float(np.full(10, 32768, np.uint16)), np.zeros(10, np.float32))
    assert to_mono_float(np.array([-32768, 16384], np.int16)).tolist() == [-1.0, 0.5]
    assert to_mono_float(np.array([[0.5, -0.5], [1.0, 0.0]], np.float32)).tolist() == [0.0, 0.5]
    with pytest.raises(ValueError, match="NaN"):
        to_mono_float(np.array([np.nan], np.float32))
    with pytest.raises(ValueError, match="shape"):
        to_mono_float(np.zeros((2, 2, 2), np.float32))


def test_chunk_frames_of_is_the_one_ms_to_frames_rule():
    import speech_runtime.recognizer as runtime
    from speech_llm.model import speech_model

    assert runtime.chunk_frames_of is speech_model.chunk_frames_of is chunk_frames_of
    assert (chunk_frames_of(640, 40.0, 4), chunk_frames_of(640, 20.0, 8), chunk_frames_of(320, 40.0, 2)) == (16, 32, 8)
    with pytest.raises(ValueError, match="positive multiple of 160 ms"):
        chunk_frames_of(600, 40.0, 4)
