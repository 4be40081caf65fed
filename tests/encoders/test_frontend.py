"""Front end: streaming fbank equals offline fbank bit for bit; CMVN stats and file; SpecAugment."""

import json
import math

import pytest
import torch
import torchaudio

from encoders.constants import NUM_MEL_BINS, SAMPLE_RATE
from encoders.frontend import GlobalCMVN, SpecAugment, StreamingFbank, compute_fbank, num_frames
from speech_common.errors import UserError


def _audio(num_samples: int, seed: int) -> torch.Tensor:
    """A chirp plus noise in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(num_samples) / SAMPLE_RATE
    tone = 0.5 * torch.sin(2 * math.pi * (200 + 400 * t) * t)
    return (tone + 0.1 * torch.randn(num_samples, generator=g)).clamp(-1, 1)


def _stream(samples: torch.Tensor, max_block: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    fb, out, i = StreamingFbank(), [], 0
    while i < samples.numel():
        n = int(torch.randint(1, max_block + 1, (1,), generator=g))
        frames = fb.accept_waveform(samples[i:i + n])
        assert frames.shape[1:] == (NUM_MEL_BINS,)
        out.append(frames)
        i += n
    out.append(fb.input_finished())
    return torch.cat(out)


def test_compute_fbank_is_kaldi_fbank_without_snipped_edges():
    x = _audio(SAMPLE_RATE + 123, seed=1)
    feats = compute_fbank(x)
    assert feats.shape == (num_frames(x.numel()), NUM_MEL_BINS) == ((x.numel() + 80) // 160, NUM_MEL_BINS)
    ref = torchaudio.compliance.kaldi.fbank(x.unsqueeze(0) * 32768, num_mel_bins=NUM_MEL_BINS, dither=0.0,
                                            snip_edges=False, sample_frequency=SAMPLE_RATE)
    assert torch.allclose(feats, ref, atol=1e-3)
    assert feats.dtype == torch.float32


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_streaming_fbank_random_blocks_up_to_one_second_identical(seed):
    x = _audio(3 * SAMPLE_RATE + 37 * seed, seed)
    got = _stream(x, max_block=SAMPLE_RATE, seed=seed)
    assert torch.equal(got, compute_fbank(x))


def test_streaming_fbank_tiny_blocks_identical():
    x = _audio(SAMPLE_RATE // 8 + 11, seed=5)
    assert torch.equal(_stream(x, max_block=1, seed=0), compute_fbank(x))  # one sample at a time
    x = _audio(SAMPLE_RATE // 3 + 5, seed=6)
    assert torch.equal(_stream(x, max_block=7, seed=1), compute_fbank(x))


@pytest.mark.parametrize("num_samples", [0, 1, 399, 400, 401, 519, 520, 559, 560, 719, 1000])
def test_streaming_fbank_edge_lengths(num_samples):
    x = _audio(num_samples, seed=num_samples)
    ref = compute_fbank(x)
    assert ref.shape == (num_frames(num_samples), NUM_MEL_BINS)
    assert torch.equal(_stream(x, max_block=97, seed=3), ref)


def test_streaming_fbank_emits_frames_as_soon_as_their_window_is_complete():
    x = _audio(2 * SAMPLE_RATE, seed=7)
    ref = compute_fbank(x)
    fb = StreamingFbank()
    first = fb.accept_waveform(x[:1000])  # frame i spans samples [160 i - 120, 160 i + 280)
    assert first.shape[0] == (1000 - 280) // 160 + 1
    assert torch.equal(first, ref[:first.shape[0]])
    fb.input_finished()
    with pytest.raises(RuntimeError):
        fb.accept_waveform(x[:10])


def test_cmvn_stats_save_load_and_normalise(tmp_path):
    g = torch.Generator().manual_seed(0)
    feats = [torch.randn(n, NUM_MEL_BINS, generator=g) * 3 + 7 for n in (50, 80, 13)]
    cmvn = GlobalCMVN.compute_stats(feats)
    assert cmvn.num_frames == 143
    normed = cmvn(torch.cat(feats))
    assert normed.mean(0).abs().max() < 1e-4
    assert (normed.std(0, unbiased=False) - 1).abs().max() < 1e-4
    path = tmp_path / "cmvn.json"
    cmvn.save(path)
    loaded = GlobalCMVN.from_file(path)
    batch = torch.stack([feats[0][:13], feats[2]])  # (B, T, D)
    assert torch.allclose(loaded(batch), cmvn(batch), atol=1e-6)
    assert json.loads(path.read_text())["num_frames"] == 143


def test_cmvn_file_errors_name_the_file(tmp_path):
    with pytest.raises(UserError, match="not found"):
        GlobalCMVN.from_file(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"mean": [0.0, 1.0]}))
    with pytest.raises(UserError, match="bad.json.*'std'"):
        GlobalCMVN.from_file(bad)
    with pytest.raises(ValueError, match="dim"):
        GlobalCMVN(torch.zeros(3), torch.ones(3))(torch.zeros(2, 4))


def test_specaugment_masks_in_training_only():
    aug = SpecAugment(freq_mask_param=10, time_mask_param=20, time_mask_ratio=0.2)
    x = torch.rand(4, 200, NUM_MEL_BINS) + 1.0  # no zeros before masking
    aug.eval()
    assert torch.equal(aug(x), x)
    aug.train()
    y = aug(x)
    assert y.shape == x.shape
    zero = y == 0
    assert zero.any()
    assert torch.equal(y[~zero], x[~zero])
    # each utterance gets its own masks
    assert not all(torch.equal(zero[0], zero[b]) for b in range(1, 4))
