"""Bad data: each error names the file and the utterance; nothing is written and nothing prepared is lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from data_prep.kaldi_dir import DataError, validate_data_dir, write_data_dir
from data_prep.librispeech import prepare_librispeech
from data_prep.manifest import read_manifest, write_manifest

CH19 = "dev-clean/19/198"


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _corrupt_flac(corpus: Path) -> tuple[str, str]:
    (corpus / CH19 / "19-198-0001.flac").write_bytes(b"this is not a flac file" * 20)
    return "19-198-0001", "19-198.trans.txt:2"


def _missing_flac(corpus: Path) -> tuple[str, str]:
    (corpus / CH19 / "19-198-0002.flac").unlink()
    return "19-198-0002", "19-198.trans.txt:3"


def _empty_transcript(corpus: Path) -> tuple[str, str]:
    trans = corpus / CH19 / "19-198.trans.txt"
    lines = trans.read_text().splitlines()
    lines[0] = "19-198-0000"
    trans.write_text("\n".join(lines) + "\n")
    return "19-198-0000", "19-198.trans.txt:1"


def _duplicated_key(corpus: Path) -> tuple[str, str]:
    trans = corpus / CH19 / "19-198.trans.txt"
    trans.write_text(trans.read_text() + "19-198-0001 SAID AGAIN\n")
    return "19-198-0001", "19-198.trans.txt:4"


BREAKERS = {"corrupt flac": (_corrupt_flac, "cannot read audio header"),
            "missing file": (_missing_flac, "audio file missing"),
            "empty transcript": (_empty_transcript, "empty transcript"),
            "duplicated key": (_duplicated_key, "duplicated key")}


@pytest.mark.parametrize("case", sorted(BREAKERS))
def test_bad_corpus_names_file_and_utterance_and_keeps_prepared_data(tiny_corpus, tmp_path, case):
    out = tmp_path / "data"
    prepare_librispeech(tiny_corpus, ["dev-clean"], out)
    before = _snapshot(out)
    assert "dev_clean/manifest.jsonl" in before and "dev_clean/utt2dur" in before

    breaker, what = BREAKERS[case]
    key, file_line = breaker(tiny_corpus)
    with pytest.raises(DataError) as err:
        prepare_librispeech(tiny_corpus, ["dev-clean"], out)
    msg = str(err.value)
    assert f"{file_line}: utterance {key}: {what}" in msg
    assert str(tiny_corpus / CH19) in msg and "nothing was written" in msg
    assert _snapshot(out) == before                       # the earlier preparation is untouched
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]   # no temporaries left

    fresh = tmp_path / "fresh"
    with pytest.raises(DataError):
        prepare_librispeech(tiny_corpus, ["dev-clean"], fresh)
    assert not fresh.exists()                             # stop before writing anything


def test_all_problems_are_reported_at_once(tiny_corpus, tmp_path):
    _corrupt_flac(tiny_corpus)
    _missing_flac(tiny_corpus)
    (tiny_corpus / "dev-clean/26/495/26-495-0009.flac").write_bytes(b"")
    with pytest.raises(DataError) as err:
        prepare_librispeech(tiny_corpus, ["dev-clean", "test-clean"], tmp_path / "data")
    problems = err.value.problems
    assert len(problems) == 4
    assert any("19-198-0001" in p for p in problems) and any("19-198-0002" in p for p in problems)
    assert any("26-495-0009" in p and "no line for it in 26-495.trans.txt" in p for p in problems)
    assert any("test-clean: corpus part not found" in p for p in problems)


@pytest.fixture
def data_dir(tiny_corpus, tmp_path) -> Path:
    return prepare_librispeech(tiny_corpus, ["dev-clean"], tmp_path / "data")["dev_clean"]


def _edit(path: Path, fn) -> None:
    lines = path.read_text().splitlines()
    path.write_text("\n".join(fn(lines)) + "\n")


def test_validate_truncated_and_missing_audio(data_dir):
    validate_data_dir(data_dir)
    wavs = dict(line.split() for line in (data_dir / "wav.scp").read_text().splitlines())
    flac = Path(wavs["26-495-0000"])
    flac.write_bytes(flac.read_bytes()[: len(flac.read_bytes()) // 2])   # header fine, samples cut
    validate_data_dir(data_dir, check_audio=False)  # headers alone do not see the truncation ...
    Path(wavs["19-198-0002"]).unlink()
    with pytest.raises(DataError) as err:           # ... decoding does, and the missing file
        validate_data_dir(data_dir, check_audio=True)
    msg = str(err.value)
    assert f"{data_dir / 'wav.scp'}: utterance 26-495-0000: cannot decode audio file {flac}" in msg
    assert "utterance 19-198-0002: audio file not found" in msg


@pytest.mark.parametrize("case, file, fn, expected", [
    ("empty text", "text", lambda ls: [ls[0], "19-198-0001"] + ls[2:],
     "text:2: utterance 19-198-0001: empty transcript"),
    ("duplicate", "utt2spk", lambda ls: ls[:2] + [ls[1]] + ls[2:],
     "utt2spk:3: utterance 19-198-0001: duplicated key (first at line 2)"),
    ("unsorted", "wav.scp", lambda ls: [ls[1], ls[0]] + ls[2:], "wav.scp:2: utterance 19-198-0000: not sorted"),
    ("missing utt", "text", lambda ls: ls[:-1], "text: utterance 26-495-0001: missing (present in wav.scp line 5"),
    ("bad duration", "utt2dur", lambda ls: ls[:-1] + ["26-495-0001 -1"],
     "utt2dur:5: utterance 26-495-0001: bad duration"),
    ("wrong duration", "utt2dur", lambda ls: ls[:-1] + ["26-495-0001 9.5"],
     "utt2dur: utterance 26-495-0001: duration 9.5000 s but the audio lasts"),
    ("spk2utt", "spk2utt", lambda ls: [ls[0] + " 26-495-0000"] + ls[1:],
     "spk2utt:1: utterance 26-495-0000: under speaker 19 but utt2spk says 26"),
])
def test_validate_names_file_line_and_utterance(data_dir, case, file, fn, expected):
    _edit(data_dir / file, fn)
    with pytest.raises(DataError) as err:
        validate_data_dir(data_dir)
    assert f"{data_dir / expected}" in str(err.value) or f"{data_dir}/{expected}" in str(err.value)


def test_writers_refuse_bad_records_and_keep_existing_files(data_dir):
    utts = validate_data_dir(data_dir)
    before = _snapshot(data_dir)
    bad = list(utts.values())
    bad[2].text = "  "
    with pytest.raises(DataError, match="utterance 19-198-0002: empty transcript"):
        write_data_dir(data_dir, bad)
    records = read_manifest(data_dir / "manifest.jsonl")
    records.append(dict(records[0]))
    with pytest.raises(DataError, match="utterance 19-198-0000: duplicated key"):
        write_manifest(data_dir / "manifest.jsonl", records)
    assert _snapshot(data_dir) == before


def test_read_manifest_names_line_and_utterance(data_dir):
    path = data_dir / "manifest.jsonl"
    lines = path.read_text().splitlines()
    lines[1] = lines[1].replace('"duration": ', '"duration": -')
    lines[3] = "{not json"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as err:
        read_manifest(path)
    assert err.value.problems == [f"{path}:2: utterance 19-198-0001: bad duration -0.6",
                                  f"{path}:4: invalid JSON (Expecting property name enclosed in double quotes)"]
