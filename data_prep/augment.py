"""Augmented copies of a training set: speed perturbation, additive noise, telephone band.

A frozen encoder's frames are cached per audio file, so a head trained on them (the proj stage) sees the
same frames every epoch; augmented copies of the audio are new files, hence new frames, at the one-off cost
of encoding them. Each copy is named by a *variant*, a ``+``-joined list of effects applied in order:

=========  ========================================================================================
effect     what it does
=========  ========================================================================================
``spX``    speed perturbation by factor X (Kaldi/sox ``speed``: tempo and pitch both change; the
           audio is resampled from ``X * rate`` to ``rate``): ``sp0.9``, ``sp1.1``. Word times / X.
``noise``  white noise at an SNR drawn uniformly in [10, 30] dB of the utterance's RMS
``tel``    telephone channel: band-pass 300-3400 Hz, 8 kHz, 8-bit mu-law (the file is written at 8 kHz;
           readers resample it, as they do the 8 kHz Asterisk prompts)
=========  ========================================================================================

Random draws come from a generator seeded by ``seed`` and the utterance key, so a copy is the same whatever
else is built. Keys and file names get the variant as a suffix (``3001-100-0000-sp0.9+noise``); speakers,
transcripts and translations are kept.

Usage::

    speech-llm prepare augment --manifest data/train/manifest.jsonl --out data/train_aug \\
        --variants sp0.9+noise,sp1.1+tel [--seed 0] [--with-originals]
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.signal import butter, sosfilt

from data_prep.audio import read_audio, resample, write_audio
from data_prep.kaldi_dir import DataError
from data_prep.manifest import manifest_to_data_dir, read_manifest, write_manifest
from encoders.constants import SAMPLE_RATE
from speech_common.levels import frame_rms

TELEPHONE_RATE = 8000
"""Sample rate of the telephone channel (``tel``)."""
TELEPHONE_BAND = (300.0, 3400.0)
NOISE_SNR_DB = (10.0, 30.0)
MU = 255.0
_SPEED = re.compile(r"^sp(\d+(?:\.\d+)?)$")


def parse_variants(value: str | Sequence[str]) -> list[str]:
    """``"sp0.9+noise,tel"`` -> ``["sp0.9+noise", "tel"]``; an unknown effect or a speed outside (0.5, 2)
    is a :class:`DataError`."""
    variants = [v.strip() for v in (value.split(",") if isinstance(value, str) else value) if v.strip()]
    problems = []
    for v in variants:
        for effect in v.split("+"):
            m = _SPEED.match(effect)
            if m and not 0.5 < float(m.group(1)) < 2.0:
                problems.append(f"variant {v!r}: speed {m.group(1)} outside (0.5, 2)")
            elif not m and effect not in ("noise", "tel"):
                problems.append(f"variant {v!r}: unknown effect {effect!r} (spX, noise, tel)")
    if not variants:
        problems.append("no variant given (e.g. sp0.9+noise,sp1.1+tel)")
    if len(set(variants)) != len(variants):
        problems.append(f"variants repeat: {variants}")
    if problems:
        raise DataError("--variants", problems)
    return variants


def speed_perturb(samples: np.ndarray, factor: float, sr: int = SAMPLE_RATE) -> np.ndarray:
    """``samples`` played ``factor`` times faster (length / factor, pitch x factor)."""
    return resample(samples, int(round(sr * factor)), sr)


def add_noise(samples: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """White noise at ``snr_db`` below the waveform's RMS (digital silence stays silent)."""
    rms = float(frame_rms(samples.reshape(1, -1))[0]) if samples.size else 0.0
    noise = rng.standard_normal(samples.size).astype(np.float32) * rms * 10.0 ** (-snr_db / 20.0)
    return (samples + noise).astype(np.float32)


def telephone(samples: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Band-pass 300-3400 Hz, resample to 8 kHz, 8-bit mu-law encode and decode -> float32 at 8 kHz."""
    sos = butter(4, TELEPHONE_BAND, btype="bandpass", fs=sr, output="sos")
    x = resample(sosfilt(sos, samples).astype(np.float32), sr, TELEPHONE_RATE)
    x = np.clip(x, -1.0, 1.0)
    code = np.round((np.sign(x) * np.log1p(MU * np.abs(x)) / np.log1p(MU) + 1.0) / 2.0 * MU)
    y = 2.0 * code / MU - 1.0
    return (np.sign(y) * np.expm1(np.abs(y) * np.log1p(MU)) / MU).astype(np.float32)


def variant_speed(variant: str) -> float:
    """The product of a variant's speed factors (1.0 without ``spX``)."""
    out = 1.0
    for effect in variant.split("+"):
        m = _SPEED.match(effect)
        if m:
            out *= float(m.group(1))
    return out


def apply_variant(samples: np.ndarray, variant: str, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """The effects of ``variant`` in order on 16 kHz ``samples`` -> (waveform, its sample rate)."""
    sr = SAMPLE_RATE
    for effect in variant.split("+"):
        m = _SPEED.match(effect)
        if m:
            samples = speed_perturb(samples, float(m.group(1)), sr)
        elif effect == "noise":
            samples = add_noise(samples, float(rng.uniform(*NOISE_SNR_DB)), rng)
        elif effect == "tel":
            samples, sr = telephone(samples, sr), TELEPHONE_RATE
    return samples, sr


def _rng(seed: int, key: str, variant: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}:{key}:{variant}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def augment_record(rec: dict, variant: str, out_dir: Path, seed: int = 0) -> dict:
    """Write ``rec``'s audio under ``variant`` into ``out_dir/audio/`` and return its manifest record."""
    key = f"{rec['key']}-{variant}"
    samples, sr = apply_variant(read_audio(rec["audio"]), variant, _rng(seed, rec["key"], variant))
    path = out_dir / "audio" / str(rec["speaker"]) / f"{key}.flac"
    write_audio(path, samples, sr)
    out = {**rec, "key": key, "audio": str(path.resolve()), "duration": round(samples.size / sr, 4)}
    speed = variant_speed(variant)
    if rec.get("words") and speed != 1.0:
        out["words"] = [{**w, "start": round(w["start"] / speed, 3), "end": round(w["end"] / speed, 3)}
                        for w in rec["words"]]
    return out


def build_augmented(manifest: str | os.PathLike, out_dir: str | os.PathLike, variants: str | Sequence[str],
                    seed: int = 0, with_originals: bool = False, progress: bool = True) -> list[dict]:
    """One copy of every utterance of ``manifest`` per variant -> ``out_dir/{manifest.jsonl, wav.scp, ...}``
    (with ``with_originals`` the original records too). Files already written are rewritten (same draws,
    same bytes). Returns the records written."""
    from tqdm import tqdm

    variants = parse_variants(variants)
    out_dir = Path(out_dir)
    records = read_manifest(manifest)
    out = list(records) if with_originals else []
    jobs = [(r, v) for v in variants for r in records]
    for rec, variant in tqdm(jobs, desc="augment", unit="utt", disable=not progress):
        out.append(augment_record(rec, variant, out_dir, seed))
    write_manifest(out_dir / "manifest.jsonl", out)
    manifest_to_data_dir(out, out_dir)
    return out
