"""The runtime's numpy front end equals the torch one: Kaldi fbank (max abs diff 1e-3 on log-mel values of
about 5..25; measured 3e-5), its streaming form, the streaming resampler (max abs diff 1e-6), and Whisper's
log-mel: slaney filters as librosa's (1e-12), offline and streaming frames as the torch ones (1e-5; measured 0)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchaudio.functional as AF

from encoders.frontend import StreamingFbank as TorchStreamingFbank
from encoders.frontend import compute_fbank as torch_fbank
from speech_llm.decoding.resample import StreamingResampler as TorchResampler
from speech_runtime import frontend, log_mel


def signal(n: int, seed: int = 0) -> np.ndarray:
    g = np.random.default_rng(seed)
    t = np.arange(n) / 16000
    return (0.4 * np.sin(2 * np.pi * 440 * t) + 0.1 * g.standard_normal(n)).astype(np.float32)


@pytest.mark.parametrize("n", [0, 399, 400, 401, 16000 + 123, 3 * 16000])
def test_fbank_equals_torchaudio_kaldi(n):
    x = signal(n)
    ref = torch_fbank(torch.from_numpy(x)).numpy()
    got = frontend.compute_fbank(x)
    assert got.shape == ref.shape == (frontend.num_frames(n), 80)
    assert got.dtype == np.float32
    if got.size:
        assert np.abs(got - ref).max() < 1e-3


def test_streaming_fbank_equals_torch_streaming_for_random_blocks():
    x = signal(16000 * 2 + 77, seed=1)
    g = np.random.default_rng(0)
    ours, theirs = frontend.StreamingFbank(), TorchStreamingFbank()
    a, b, pos = [], [], 0
    while pos < len(x):
        n = int(g.integers(1, 3000))
        a.append(ours.accept_waveform(x[pos:pos + n]))
        b.append(theirs.accept_waveform(torch.from_numpy(x[pos:pos + n])).numpy())
        assert a[-1].shape == b[-1].shape            # the same frames become ready at the same time
        pos += n
    a.append(ours.input_finished())
    b.append(theirs.input_finished().numpy())
    a, b = np.concatenate(a), np.concatenate(b)
    assert a.shape == b.shape and np.abs(a - b).max() < 1e-3
    np.testing.assert_allclose(a, frontend.compute_fbank(x), atol=1e-5)   # streaming == offline


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_resampler_equals_torch(rate):
    x = signal(rate + 321, seed=2)
    whole = AF.resample(torch.from_numpy(x), rate, 16000, lowpass_filter_width=6, rolloff=0.99).numpy()
    np.testing.assert_allclose(frontend.resample(x, rate, 16000), whole, atol=1e-6)
    ours, theirs = frontend.StreamingResampler(rate), TorchResampler(rate, 16000)
    g = np.random.default_rng(rate)
    a, b, pos = [], [], 0
    while pos < len(x):
        n = int(g.integers(1, rate // 5))
        a.append(ours.accept(x[pos:pos + n]))
        b.append(theirs.accept(torch.from_numpy(x[pos:pos + n])).numpy())
        assert a[-1].shape == b[-1].shape
        pos += n
    a.append(ours.flush())
    b.append(theirs.flush().numpy())
    np.testing.assert_allclose(np.concatenate(a), np.concatenate(b), atol=1e-6)


# ---------------------------------------------------------------------------------------------- Whisper log-mel
@pytest.mark.parametrize("n_mels", [80, 128])
def test_slaney_mel_filters_equal_librosa(n_mels):
    from encoders.whisper_frontend import mel_filters

    ref = mel_filters(n_mels).numpy()
    got = log_mel.mel_filters(n_mels)
    assert got.shape == ref.shape == (n_mels, 201)
    assert np.abs(got - ref).max() < 1e-12          # the same formula in float64 (measured 5e-16)


@pytest.mark.parametrize("n", [0, 200, 201, 399, 16000 + 123, 3 * 16000])
def test_log_mel_equals_torch(n):
    """Whisper log-mel (values about -1..2; max abs diff 1e-5, measured 0): offline and with another ceiling."""
    from encoders.whisper_frontend import compute_log_mel

    x = signal(n, seed=3)
    for ceiling in (1.0, -1.5):
        ref = compute_log_mel(torch.from_numpy(x), ceiling=ceiling).numpy()
        got = log_mel.compute_log_mel(x, ceiling=ceiling)
        assert got.shape == ref.shape == (n // 160, 80) and got.dtype == np.float32
        if got.size:
            assert np.abs(got - ref).max() < 1e-5


def test_streaming_log_mel_equals_torch_streaming_for_random_blocks():
    from encoders.whisper_frontend import StreamingLogMel

    x = signal(16000 * 2 + 77, seed=4)
    g = np.random.default_rng(1)
    ours, theirs = log_mel.StreamingLogMel(), StreamingLogMel()
    a, b, pos = [], [], 0
    while pos < len(x):
        n = int(g.integers(1, 3000)) if pos else 150       # the first block is shorter than the reflection
        a.append(ours.accept_waveform(x[pos:pos + n]))
        b.append(theirs.accept_waveform(torch.from_numpy(x[pos:pos + n])).numpy())
        assert a[-1].shape == b[-1].shape
        pos += n
    a.append(ours.input_finished())
    b.append(theirs.input_finished().numpy())
    a, b = np.concatenate(a), np.concatenate(b)
    assert a.shape == (len(x) // 160, 80) and np.abs(a - b).max() < 1e-5
    np.testing.assert_array_equal(a, log_mel.compute_log_mel(x))      # streaming == offline, bit for bit


def test_streaming_log_mel_of_a_very_short_input():
    """Fewer samples than the start's reflection needs: the frames come at the input end."""
    x = signal(180, seed=5)
    fe = log_mel.StreamingLogMel()
    assert fe.accept_waveform(x).shape == (0, 80)
    np.testing.assert_array_equal(fe.input_finished(), log_mel.compute_log_mel(x))
