"""Whisper log-mel front end: equals HF's WhisperFeatureExtractor (with Whisper's own normalisation);
streaming equals offline bit for bit for any block sizes; the fixed-ceiling normalisation."""

import math

import pytest
import torch

from encoders.constants import SAMPLE_RATE
from encoders.whisper_frontend import (
    DEFAULT_CEILING,
    DYNAMIC_RANGE,
    HOP,
    StreamingLogMel,
    compute_log_mel,
    num_frames,
)


def _audio(num_samples: int, seed: int, level: float = 0.5) -> torch.Tensor:
    """A chirp plus noise in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(num_samples) / SAMPLE_RATE
    tone = level * torch.sin(2 * math.pi * (200 + 400 * t) * t)
    return (tone + 0.1 * level * torch.randn(num_samples, generator=g)).clamp(-1, 1)


def _stream(samples: torch.Tensor, max_block: int, seed: int, **kwargs) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    fe, out, i = StreamingLogMel(**kwargs), [], 0
    while i < samples.numel():
        n = int(torch.randint(1, max_block + 1, (1,), generator=g))
        frames = fe.accept_waveform(samples[i:i + n])
        assert frames.shape[1:] == (fe.n_mels,) and frames.dtype == torch.float32
        out.append(frames)
        i += n
    out.append(fe.input_finished())
    return torch.cat(out)


@pytest.mark.parametrize("num_samples", [SAMPLE_RATE + 123, 7 * SAMPLE_RATE])
def test_utterance_normalisation_is_whisper_feature_extractor(num_samples):
    """Window, centre/reflect padding, slaney filters, dropped last frame and zeros after the end are
    Whisper's: with Whisper's own (utterance-max) normalisation the frames equal HF's extractor."""
    from transformers import WhisperFeatureExtractor

    x = _audio(num_samples, seed=1)
    ref = WhisperFeatureExtractor(feature_size=80)(x.numpy(), sampling_rate=SAMPLE_RATE,
                                                     return_tensors="pt").input_features[0].T  # (3000, 80)
    got = compute_log_mel(x, normalization="utterance")
    assert got.shape == (num_samples // HOP, 80) == (num_frames(num_samples), 80)
    assert (got - ref[:got.shape[0]]).abs().max() < 1e-4
    # the fixed ceiling differs only where Whisper's floor (max - 8) and ours (ceiling - 8) cut
    fixed = compute_log_mel(x)
    cut = (got <= (float(got.max()) * 4 - 4 - DYNAMIC_RANGE + 4) / 4 + 1e-6) | \
        (fixed <= (DEFAULT_CEILING - DYNAMIC_RANGE + 4) / 4 + 1e-6)
    assert torch.equal(fixed[~cut], got[~cut])


def test_fixed_ceiling_sets_the_floor():
    x = torch.cat([torch.zeros(SAMPLE_RATE // 2), _audio(SAMPLE_RATE, seed=2)])  # digital silence first
    feats = compute_log_mel(x, ceiling=0.5)
    floor = (0.5 - DYNAMIC_RANGE + 4) / 4
    assert torch.allclose(feats[:40], torch.full_like(feats[:40], floor))  # silence sits on the floor
    assert float(feats.min()) == pytest.approx(floor)
    assert float(compute_log_mel(x, ceiling=1.5).min()) == pytest.approx((1.5 - DYNAMIC_RANGE + 4) / 4)
    with pytest.raises(ValueError, match="normalization"):
        compute_log_mel(x, normalization="max")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_streaming_random_blocks_up_to_one_second_identical(seed):
    x = _audio(3 * SAMPLE_RATE + 37 * seed, seed)
    assert torch.equal(_stream(x, max_block=SAMPLE_RATE, seed=seed), compute_log_mel(x))


def test_streaming_tiny_blocks_identical_and_128_mels():
    x = _audio(SAMPLE_RATE // 8 + 11, seed=5)
    assert torch.equal(_stream(x, max_block=1, seed=0), compute_log_mel(x))  # one sample at a time
    x = _audio(SAMPLE_RATE // 3 + 5, seed=6)
    got = _stream(x, max_block=7, seed=1, n_mels=128, ceiling=0.3)
    assert got.shape == (num_frames(x.numel()), 128)
    assert torch.equal(got, compute_log_mel(x, n_mels=128, ceiling=0.3))


@pytest.mark.parametrize("num_samples", [0, 1, 159, 160, 199, 200, 201, 202, 359, 360, 399, 400, 401, 561, 1000])
def test_streaming_edge_lengths(num_samples):
    """Around one hop, the 200-sample reflection and one window: same frames, N // 160 of them."""
    x = _audio(num_samples, seed=num_samples)
    ref = compute_log_mel(x)
    assert ref.shape == (num_samples // HOP, 80)
    assert torch.equal(_stream(x, max_block=97, seed=3), ref)


def test_frames_are_emitted_as_soon_as_their_window_is_complete():
    x = _audio(1130, seed=7)
    ref = compute_log_mel(x)
    fe = StreamingLogMel()
    assert fe.accept_waveform(x[:200]).shape[0] == 0  # the start reflection needs 201 samples
    first = fe.accept_waveform(x[200:])  # frame i spans samples [160 i - 200, 160 i + 200)
    assert first.shape[0] == (1130 - 200) // HOP + 1 == fe.num_frames_emitted == 6
    assert torch.equal(first, ref[:6])
    rest = fe.input_finished()  # frame 6 reaches past the end: zeros
    assert rest.shape[0] == 1 and torch.equal(rest, ref[6:]) and ref.shape[0] == 1130 // HOP
    with pytest.raises(RuntimeError):
        fe.accept_waveform(x[:10])
    with pytest.raises(ValueError, match="1-D"):
        StreamingLogMel().accept_waveform(torch.zeros(2, 10))
