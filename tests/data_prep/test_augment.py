"""Augmented copies: speed perturbation, noise, telephone band; manifests with scaled word times."""

import numpy as np
import pytest

from data_prep.audio import read_audio, write_audio
from data_prep.augment import (
    add_noise,
    build_augmented,
    parse_variants,
    speed_perturb,
    telephone,
)
from data_prep.kaldi_dir import DataError, read_data_dir
from data_prep.manifest import read_manifest, write_manifest
from encoders.constants import SAMPLE_RATE


def _tone(freq: float, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x))
    return float(np.fft.rfftfreq(x.size, 1.0 / sr)[spec.argmax()])


def test_speed_perturbation_changes_length_and_pitch():
    x = _tone(440.0)
    fast = speed_perturb(x, 1.1)
    assert abs(fast.size - x.size / 1.1) < 2
    assert abs(_peak_hz(fast, SAMPLE_RATE) - 484.0) < 3.0
    assert abs(speed_perturb(x, 0.9).size - x.size / 0.9) < 2


def test_noise_snr_and_telephone_band():
    x = _tone(440.0)
    rng = np.random.default_rng(0)
    noisy = add_noise(x, 20.0, rng)
    snr = 10 * np.log10(np.mean(x ** 2) / np.mean((noisy - x) ** 2))
    assert abs(snr - 20.0) < 0.5
    assert not add_noise(np.zeros(100, np.float32), 20.0, rng).any()    # silence stays silent
    low, mid = telephone(_tone(100.0)), telephone(x)
    assert mid.size == x.size // 2                                       # 8 kHz
    assert np.sqrt(np.mean(low ** 2)) < 0.3 * np.sqrt(np.mean(mid ** 2))  # 100 Hz is below the band
    assert len(np.unique(np.round(mid, 6))) <= 256                        # 8-bit mu-law


def test_variants_are_checked():
    assert parse_variants("sp0.9+noise, tel") == ["sp0.9+noise", "tel"]
    for bad in ("sp3", "reverb", "tel,tel", ""):
        with pytest.raises(DataError):
            parse_variants(bad)


def test_build_augmented_writes_copies_with_scaled_times(tmp_path):
    wav = tmp_path / "a.flac"
    write_audio(wav, _tone(300.0, 2.0))
    rec = {"key": "s1-1-0001", "audio": str(wav), "duration": 2.0, "text": "HELLO WORLD", "speaker": "s1",
           "words": [{"word": "HELLO", "start": 0.0, "end": 0.9}, {"word": "WORLD", "start": 0.9, "end": 1.8}]}
    write_manifest(tmp_path / "m.jsonl", [rec])
    out = tmp_path / "aug"
    recs = build_augmented(tmp_path / "m.jsonl", out, "sp0.9+noise,sp1.1+tel", seed=3, progress=False)
    assert [r["key"] for r in recs] == ["s1-1-0001-sp0.9+noise", "s1-1-0001-sp1.1+tel"]
    slow, tel = recs
    assert slow["words"][1]["end"] == pytest.approx(2.0, abs=1e-3)
    assert slow["duration"] == pytest.approx(2.0 / 0.9, abs=1e-3)
    assert tel["words"][1]["end"] == pytest.approx(1.8 / 1.1, abs=1e-3)
    assert read_audio(tel["audio"]).size == pytest.approx(2.0 / 1.1 * SAMPLE_RATE, abs=8)   # 8 kHz file, read at 16 kHz
    assert {r["key"] for r in read_manifest(out / "manifest.jsonl")} == {r["key"] for r in recs}
    assert set(read_data_dir(out)) == {r["key"] for r in recs}
    again = build_augmented(tmp_path / "m.jsonl", tmp_path / "aug2", "sp0.9+noise", seed=3, progress=False)
    assert np.array_equal(read_audio(again[0]["audio"]), read_audio(slow["audio"]))   # same seed, same draw
    both = build_augmented(tmp_path / "m.jsonl", tmp_path / "aug3", "tel", with_originals=True, progress=False)
    assert sorted(r["key"] for r in both) == ["s1-1-0001", "s1-1-0001-tel"]
