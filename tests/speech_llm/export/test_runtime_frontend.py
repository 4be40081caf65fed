"""The runtime's numpy front end equals the torch one: Kaldi fbank (max abs diff 1e-3 on log-mel values of
about 5..25; measured 3e-5), its streaming form, and the streaming resampler (max abs diff 1e-6)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchaudio.functional as AF

from encoders.frontend import StreamingFbank as TorchStreamingFbank
from encoders.frontend import compute_fbank as torch_fbank
from speech_llm.decoding.resample import StreamingResampler as TorchResampler
from speech_runtime import frontend


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
