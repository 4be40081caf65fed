"""Data-dir and manifest I/O round trips, and audio reading (mono, resampling, errors)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data_prep.audio import AudioError, read_audio, write_audio
from data_prep.kaldi_dir import Utterance, read_data_dir, validate_data_dir, write_data_dir
from data_prep.manifest import data_dir_to_manifest, manifest_to_data_dir, read_manifest, write_manifest
from encoders.constants import SAMPLE_RATE


def _utts(tmp_path: Path) -> list[Utterance]:
    out = []
    for i, (spk, key) in enumerate([("b", "b-2"), ("a", "a-1"), ("a", "a-0"), ("b", "b-1")]):
        wav = tmp_path / "audio" / f"{key}.wav"
        write_audio(wav, 0.1 * np.ones(SAMPLE_RATE // 4 * (i + 1), dtype=np.float32))
        out.append(Utterance(key=key, wav=str(wav), text=f"WORD {i}", speaker=spk, duration=0.25 * (i + 1)))
    return out


def test_write_then_read_data_dir(tmp_path):
    d = tmp_path / "data" / "train"
    write_data_dir(d, _utts(tmp_path))
    assert (d / "spk2utt").read_text() == "a a-0 a-1\nb b-1 b-2\n"
    assert (d / "text").read_text().splitlines()[0] == "a-0 WORD 2"
    utts = read_data_dir(d)
    assert list(utts) == ["a-0", "a-1", "b-1", "b-2"]
    assert utts["b-2"].duration == pytest.approx(0.25) and utts["a-0"].speaker == "a"
    assert validate_data_dir(d) == utts
    (d / "utt2dur").unlink()   # durations then come from the audio headers
    assert read_data_dir(d)["a-0"].duration == pytest.approx(0.75)


def test_manifest_round_trip_with_extra_fields(tmp_path):
    d = tmp_path / "data" / "train"
    write_data_dir(d, _utts(tmp_path))
    extra = {"a-0": {"words": [{"word": "WORD", "start": 0.0, "end": 0.3}, {"word": "2", "start": 0.4, "end": 0.7}],
                     "translation": {"fr": "MOT 2"}}}
    records = data_dir_to_manifest(d, extra, out_path=d / "manifest.jsonl")
    assert [r["key"] for r in records] == ["a-0", "a-1", "b-1", "b-2"]
    back = read_manifest(d / "manifest.jsonl")
    assert back == records and back[0]["translation"] == {"fr": "MOT 2"} and "words" not in back[1]
    d2 = tmp_path / "data" / "copy"
    utts = manifest_to_data_dir(d / "manifest.jsonl", d2)
    assert utts["a-0"].words == extra["a-0"]["words"]
    for name in ("wav.scp", "text", "utt2spk", "spk2utt", "utt2dur"):
        assert (d2 / name).read_text() == (d / name).read_text()


def test_manifest_relative_audio_and_atomic_write(tmp_path):
    write_audio(tmp_path / "x.flac", np.zeros(1600, dtype=np.float32))
    rec = {"key": "x", "audio": "x.flac", "duration": 0.1, "text": "HI", "speaker": "s"}
    (tmp_path / "m.jsonl").write_text(json.dumps(rec) + "\n")
    assert read_manifest(tmp_path / "m.jsonl")[0]["audio"] == str(tmp_path / "x.flac")
    before = (tmp_path / "m.jsonl").read_bytes()
    with pytest.raises(Exception, match="empty transcript"):
        write_manifest(tmp_path / "m.jsonl", [dict(rec, text="")])
    assert (tmp_path / "m.jsonl").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.jsonl", "x.flac"]


def test_read_audio_downmixes_and_resamples(tmp_path):
    sr = 8000
    t = np.arange(sr) / sr
    left, right = 0.5 * np.sin(2 * np.pi * 440 * t), 0.1 * np.ones(sr)
    sf.write(tmp_path / "st.wav", np.stack([left, right], axis=1), sr, subtype="FLOAT")
    x = read_audio(tmp_path / "st.wav")
    assert x.dtype == np.float32 and x.shape == (SAMPLE_RATE,)
    assert float(x.mean()) == pytest.approx(0.05, abs=2e-3)              # (sine + 0.1) / 2 averages to 0.05
    spectrum = np.abs(np.fft.rfft(x - x.mean()))
    assert np.argmax(spectrum) == pytest.approx(440, abs=1)             # 1 s of audio: bin = Hz
    assert read_audio(tmp_path / "st.wav", target_sr=sr).shape == (sr,)


@pytest.mark.parametrize("content, message", [(None, "not found"), (b"", "cannot decode"),
                                              (b"RIFF1234garbage", "cannot decode")])
def test_read_audio_errors_name_the_path(tmp_path, content, message):
    path = tmp_path / "bad.flac"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(AudioError, match=message) as err:
        read_audio(path)
    assert str(path) in str(err.value)


def test_read_audio_rejects_a_valid_but_empty_file(tmp_path):
    sf.write(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32), SAMPLE_RATE)
    with pytest.raises(AudioError, match=f"empty .*{tmp_path / 'empty.wav'}"):
        read_audio(tmp_path / "empty.wav")


def test_atomic_writes_get_the_usual_permissions(tmp_path):
    """Not mkstemp's private 0600: other users (and a web server showing results) can read the files."""
    import os

    from data_prep.fileutil import atomic_write_files, atomic_write_text

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x\n")
        atomic_write_files(tmp_path / "d", {"b.txt": "y\n"})
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d" / "b.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "a.txt").read_text() == "x\n"
