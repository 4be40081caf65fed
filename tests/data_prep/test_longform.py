"""Long-form test sets: pauses in range, offsets that match the audio, the joined transcript, cycling,
seeded and resumable output, and errors on bad input that write nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from data_prep.audio import AudioError, read_audio, write_audio
from data_prep.kaldi_dir import DataError, Utterance, validate_data_dir, write_data_dir
from data_prep.longform import (
    build_longform,
    db_to_amplitude,
    noise_floor,
    parse_minutes,
    parse_pause,
    parse_pause_noise,
    read_segments,
)
from encoders.constants import SAMPLE_RATE
from speech_common.errors import UserError

TEXTS = {"a-1-0000": "THE CAT SAT", "a-1-0001": "ON THE MAT", "b-2-0000": "A DOG", "b-2-0001": "BARKED AT NIGHT TOO"}
SECONDS = {"a-1-0000": 1.2, "a-1-0001": 0.9, "b-2-0000": 0.6, "b-2-0001": 1.5}   # 4.2 s in all
NOISE = 0.01     # white-noise RMS of the source files (-40 dBFS)


def _utterance_audio(i: int, seconds: float) -> np.ndarray:
    """A tone burst in the middle, white noise of RMS NOISE everywhere (like a synthetic corpus at some SNR)."""
    rng = np.random.default_rng(100 + i)
    n = round(seconds * SAMPLE_RATE)
    x = NOISE * rng.standard_normal(n)
    t = np.arange(n // 2) / SAMPLE_RATE
    x[n // 4:n // 4 + len(t)] += 0.3 * np.sin(2 * np.pi * (300 + 100 * i) * t)
    return x.astype(np.float32)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    utts = []
    for i, key in enumerate(sorted(TEXTS)):
        wav = tmp_path / "audio" / f"{key}.flac"
        write_audio(wav, _utterance_audio(i, SECONDS[key]))
        utts.append(Utterance(key=key, wav=str(wav), text=TEXTS[key], speaker=key.split("-")[0],
                              duration=SECONDS[key]))
    write_data_dir(tmp_path / "src", utts)
    return tmp_path / "src"


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _build(source: Path, out: Path, minutes=(0.25,), **kw):
    return build_longform(source, out, list(minutes), **kw)


def test_offsets_match_the_audio_and_text_is_the_concatenation(source, tmp_path):
    out = tmp_path / "long"
    report = _build(source, out, minutes=(0.1,))            # 6 s: more than the 4.2 s of source, cycled once
    d = out / "long_0.1min"
    assert report.dirs[0].path == d and report.dirs[0].status == "built"
    utts = validate_data_dir(d, check_audio=True)          # a valid Kaldi dir, durations match the audio
    assert list(utts) == ["long_0.1min-000"]
    (rec,) = read_segments(d)
    long = read_audio(rec["audio"])
    assert rec["duration"] == len(long) / SAMPLE_RATE == pytest.approx(utts["long_0.1min-000"].duration, abs=1e-4)
    sources = {k: read_audio(source.parent / "audio" / f"{k}.flac") for k in TEXTS}
    for u in rec["utterances"]:
        a, b = round(u["start"] * SAMPLE_RATE), round(u["end"] * SAMPLE_RATE)
        assert a == u["start"] * SAMPLE_RATE and b == u["end"] * SAMPLE_RATE     # whole samples
        np.testing.assert_array_equal(long[a:b], sources[u["key"]])               # 16-bit exact round trip
        assert u["text"] == TEXTS[u["key"]]
    assert utts["long_0.1min-000"].text == " ".join(u["text"] for u in rec["utterances"])
    assert (d / "text").read_text() == "long_0.1min-000 " + " ".join(TEXTS[u["key"]] for u in rec["utterances"]) + "\n"
    assert (d / "utt2spk").read_text() == "long_0.1min-000 long_0.1min-000\n"
    assert oct((d).stat().st_mode & 0o777) == oct(0o777 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_pauses_are_in_range_and_hold_noise_at_the_corpus_floor(source, tmp_path):
    _build(source, tmp_path / "long", minutes=(0.5,), pause_s=(0.5, 1.0), seed=3)
    (rec,) = read_segments(tmp_path / "long" / "long_0.5min")
    long = read_audio(rec["audio"])
    utts = rec["utterances"]
    edges = [0.0] + [x for u in utts for x in (u["start"], u["end"])] + [rec["duration"]]
    pauses = [b - a for a, b in zip(edges[::2], edges[1::2])]
    assert len(pauses) == len(utts) + 1                     # one before every utterance, one after the last
    assert all(0.5 <= p <= 1.0 for p in pauses), pauses
    assert max(pauses) - min(pauses) > 0.1                  # drawn, not constant
    gaps = [long[round(a * SAMPLE_RATE):round(b * SAMPLE_RATE)] for a, b in zip(edges[::2], edges[1::2])]
    for g in gaps:
        rms = float(np.sqrt(np.mean(np.square(g, dtype=np.float64))))
        assert rms == pytest.approx(NOISE, rel=0.15)        # "match": the source's own noise floor
    assert noise_floor(_utterance_audio(0, 1.2)) == pytest.approx(NOISE, rel=0.2)


def test_digital_silence_and_fixed_level_pauses(source, tmp_path):
    _build(source, tmp_path / "a", pause_noise="none")
    (rec,) = read_segments(tmp_path / "a" / "long_0.25min")
    long = read_audio(rec["audio"])
    first = rec["utterances"][0]
    assert not long[:round(first["start"] * SAMPLE_RATE)].any()
    assert not long[round(rec["utterances"][-1]["end"] * SAMPLE_RATE):].any()
    _build(source, tmp_path / "b", pause_noise=-60)
    (rec,) = read_segments(tmp_path / "b" / "long_0.25min")
    gap = read_audio(rec["audio"])[:round(rec["utterances"][0]["start"] * SAMPLE_RATE)]
    assert float(np.sqrt(np.mean(np.square(gap, dtype=np.float64)))) == pytest.approx(db_to_amplitude(-60), rel=0.15)


def test_cycles_through_the_source_when_it_is_shorter(source, tmp_path):
    report = _build(source, tmp_path / "long", minutes=(0.05, 0.5))
    short, long = (read_segments(d.path)[0] for d in report.dirs)
    keys = sorted(TEXTS)
    assert [u["key"] for u in short["utterances"]] == keys[:len(short["utterances"])]
    assert 0.05 * 60 <= short["duration"] < 0.05 * 60 + 1.5 + 2 * 1.0     # < one utterance + two pauses over
    n = len(long["utterances"])
    assert [u["key"] for u in long["utterances"]] == [keys[i % 4] for i in range(n)]
    assert [u["pass"] for u in long["utterances"]] == [i // 4 for i in range(n)]
    assert report.dirs[1].passes == 1 + (n - 1) // 4 >= 5
    assert 30.0 <= long["duration"] < 30.0 + 1.5 + 2.0
    assert long["utterances"][:len(short["utterances"])] != short["utterances"]   # pauses differ by file key
    assert "cycled" in report.summary()


def test_several_files_per_length_carry_on_in_the_cycle(source, tmp_path):
    report = _build(source, tmp_path / "long", minutes=(0.05,), num_files=3)
    recs = read_segments(report.dirs[0].path)
    assert [r["key"] for r in recs] == ["long_0.05min-000", "long_0.05min-001", "long_0.05min-002"]
    keys = [u["key"] for r in recs for u in r["utterances"]]
    assert keys == [sorted(TEXTS)[i % 4] for i in range(len(keys))]
    assert len(validate_data_dir(report.dirs[0].path)) == 3


def test_seeded_idempotent_and_rebuilt_when_parameters_change(source, tmp_path):
    out = tmp_path / "long"
    _build(source, out, seed=1)
    first = _snapshot(out)
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    report = _build(source, out, seed=1)
    assert report.dirs[0].status == "up to date"
    assert _snapshot(out) == first and {p: p.stat().st_mtime_ns for p in out.rglob("*")} == mtimes
    report = _build(source, out, seed=2)                   # other pauses: built again
    assert report.dirs[0].status == "built" and _snapshot(out) != first
    _build(source, tmp_path / "again", seed=1)             # same arguments elsewhere: the same audio and text
    again = _snapshot(tmp_path / "again")
    assert {k: v for k, v in again.items() if k.endswith((".flac", "text", "utt2dur"))} == \
        {k: v for k, v in first.items() if k.endswith((".flac", "text", "utt2dur"))}
    (out / "long_0.25min" / "audio" / "long_0.25min-000.flac").unlink()   # incomplete: built again
    assert _build(source, out, seed=2).dirs[0].status == "built"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]         # no temporaries left


@pytest.mark.parametrize("minutes,match", [("0", "> 0"), ("-1", "> 0"), ("abc", "not a number"), ("", "at least"),
                                           ("1,1.0", "twice"), ("nan", "> 0")])
def test_bad_minutes(source, tmp_path, minutes, match):
    with pytest.raises(UserError, match=match):
        build_longform(source, tmp_path / "out", minutes)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kw,match", [(dict(pause_s="1.0,0.5"), "MIN <= MAX"), (dict(pause_s="-0.1,1"), "MIN <= MAX"),
                                      (dict(pause_s="a,b"), "MIN,MAX"), (dict(pause_s="1,2,3"), "MIN,MAX"),
                                      (dict(pause_noise="loud"), "match"), (dict(pause_noise="3"), "<= 0"),
                                      (dict(num_files=0), "num-files")])
def test_bad_arguments(source, tmp_path, kw, match):
    with pytest.raises(UserError, match=match):
        build_longform(source, tmp_path / "out", "1", **kw)
    assert not (tmp_path / "out").exists()


def test_parsers():
    assert parse_minutes("1, 5,20") == [1.0, 5.0, 20.0]
    assert parse_pause("0.7") == (0.7, 0.7) and parse_pause([0.5, 1.0]) == (0.5, 1.0)
    assert parse_pause_noise("none") is None and parse_pause_noise("MATCH") == "match"
    assert parse_pause_noise("-55") == -55.0


def test_bad_source_dir_and_unreadable_audio_write_nothing(source, tmp_path):
    with pytest.raises(DataError, match="not a directory"):
        build_longform(tmp_path / "nowhere", tmp_path / "out", "1")
    (source / "text").write_text("a-1-0000 THE CAT SAT\n")                 # utterances missing from text
    with pytest.raises(DataError, match="missing"):
        build_longform(source, tmp_path / "out", "1")
    assert not (tmp_path / "out").exists()


def test_a_failed_build_keeps_the_previous_output(source, tmp_path):
    out = tmp_path / "long"
    _build(source, out, seed=1)
    before = _snapshot(out)
    (source.parent / "audio" / "b-2-0000.flac").write_bytes(b"not audio" * 50)
    with pytest.raises(AudioError, match="b-2-0000.flac"):
        _build(source, out, seed=2)
    assert _snapshot(out) == before
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_prepare_longform_command(source, tmp_path, capsys):
    from speech_llm.cli import main

    out = tmp_path / "long"
    args = ["prepare", "longform", "--data", str(source), "--out", str(out), "--minutes", "0.05,0.1",
            "--pause", "0.5,0.6", "--pause-noise", "none", "--seed", "4"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert f"{out / 'long_0.05min'}: built" in text and f"{out / 'long_0.1min'}: built" in text
    params = json.loads((out / "long_0.1min" / "longform.json").read_text())
    assert params["pause_s"] == [0.5, 0.6] and params["pause_noise"] is None and params["seed"] == 4
    assert main(args) == 0
    assert "up to date" in capsys.readouterr().out
    assert main([*args[:-4], "--pause", "2,1"]) == 2
    assert "MIN <= MAX" in capsys.readouterr().err
