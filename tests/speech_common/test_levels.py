"""The one frame RMS (speech_common.levels): endpointing and the TTS silence trimming use it."""

import numpy as np

from speech_common.levels import frame_levels_db, frame_rms


def test_frame_rms_of_rows():
    frames = np.array([[0.5, -0.5, 0.5, -0.5], [0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]], dtype=np.float32)
    np.testing.assert_allclose(frame_rms(frames), [0.5, 0.0, 0.5])
    assert frame_rms(frames).dtype == np.float64


def test_frame_levels_db_full_scale_square_is_0_db_and_silence_minus_inf():
    levels = frame_levels_db(np.array([[1.0, -1.0], [0.0, 0.0], [0.1, -0.1]]))
    np.testing.assert_allclose(levels[[0, 2]], [0.0, -20.0], atol=1e-9)
    assert levels[1] == -np.inf
