"""The sentence corpus: LibriSpeech layout read by the LibriSpeech preparation, held-out voice, resume, CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

import data_prep.sentence_corpus as sc
from data_prep.audio import read_audio
from data_prep.kaldi_dir import validate_data_dir
from data_prep.librispeech import prepare_librispeech
from data_prep.manifest import read_manifest
from data_prep.sentence_corpus import generate_sentence_corpus, plan_sentences, split_names
from encoders.constants import SAMPLE_RATE
from speech_common.errors import UserError

NUM, SEED, HELD = 26, 0, "slt"
EXCLUDE = ["Thank you for calling Super Awesome Company."]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_sentence_corpus(tmp_path_factory.mktemp("sentences") / "corpus", NUM, SEED, heldout_voice=HELD,
                                    exclude=EXCLUDE, num_workers=2, progress=False)


@pytest.fixture(scope="module")
def prepared(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return prepare_librispeech(corpus, split_names(corpus), tmp_path_factory.mktemp("data"))


def test_librispeech_preparation_reads_the_corpus_and_it_validates(prepared):
    plan = {u.key: u for u in plan_sentences(NUM, SEED, heldout_voice=HELD, exclude=EXCLUDE)}
    assert list(prepared) == ["train", "dev", "test", "test_heldout"]
    seen = {}
    for split, data_dir in prepared.items():
        for key, utt in validate_data_dir(data_dir, check_audio=True).items():
            planned = plan[key]
            assert split == planned.split.replace("-", "_")
            assert utt.text == planned.sentence.text and utt.speaker == planned.voice.speaker
            assert re.fullmatch(r"[A-Z']+( [A-Z']+)*", utt.text)
            seen[key] = split
    assert sorted(seen) == sorted(plan)
    engines = {plan[k].voice.engine for k, s in seen.items() if s == "train"}
    assert engines == {"espeak-ng", "flite", "piper"}
    texts = [plan[k].sentence.text for k in plan]
    assert len(set(texts)) == NUM                                   # no sentence in two splits


def test_heldout_voice_is_only_in_its_split(corpus, prepared):
    held = {"4001", "4005"}                                        # both flite slt settings
    for split, data_dir in prepared.items():
        speakers = {line.split()[1] for line in (data_dir / "utt2spk").read_text().splitlines()}
        assert (speakers <= held) if split == "test_heldout" else not (speakers & held), split
    assert sorted(p.name for p in (corpus / "test-heldout").iterdir()) == sorted(held)
    info = json.loads((corpus / "corpus.json").read_text())
    assert {s["speaker"]: s["split"] for s in info["speakers"] if s["speaker"] in held} == \
        {"4001": ["test-heldout"], "4005": ["test-heldout"]}


def test_word_times_where_the_engine_gives_them(prepared):
    records = [r for d in prepared.values() for r in read_manifest(d / "manifest.jsonl")]
    timed = [r for r in records if "words" in r]
    by_engine = {r["speaker"][0] for r in timed}
    assert by_engine == {"3", "4", "5"}                             # espeak-ng, flite and piper all give some
    assert not any(r["speaker"] == "4004" for r in timed)           # flite's diphone voice gives none
    assert all("words" in r for r in records if r["speaker"].startswith("5"))
    for rec in timed:
        assert [w["word"] for w in rec["words"]] == rec["text"].split()
        wave = read_audio(rec["audio"])
        inside = sum(float(np.sum(wave[int(w["start"] * SAMPLE_RATE):int(w["end"] * SAMPLE_RATE)] ** 2))
                     for w in rec["words"])
        assert inside / float(np.sum(wave ** 2)) > 0.85, rec["key"]
        assert rec["words"][0]["start"] >= 0.14 and rec["duration"] - rec["words"][-1]["end"] >= 0.14  # pauses


def test_rerun_is_a_no_op_and_other_parameters_are_refused(corpus, monkeypatch):
    before = {p: p.stat().st_mtime_ns for p in corpus.rglob("*")}
    monkeypatch.setattr(sc, "render_sentence", lambda *a, **k: pytest.fail("re-synthesized"))
    assert generate_sentence_corpus(corpus, NUM, SEED, heldout_voice=HELD, exclude=EXCLUDE, progress=False) == corpus
    assert {p: p.stat().st_mtime_ns for p in corpus.rglob("*")} == before
    with pytest.raises(UserError, match="remove it or choose another --out"):
        generate_sentence_corpus(corpus, NUM, SEED, progress=False)


def test_interrupted_run_resumes_and_gives_the_same_corpus(tmp_path, monkeypatch):
    args = dict(num_utts=8, seed=3, engines=["espeak-ng", "piper"], num_workers=1, progress=False)
    whole = generate_sentence_corpus(tmp_path / "whole", **args)
    calls = []
    real = sc.render_sentence

    def interrupted(utt, *a, **k):
        calls.append(utt.key)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(utt, *a, **k)

    monkeypatch.setattr(sc, "render_sentence", interrupted)
    with pytest.raises(KeyboardInterrupt):
        generate_sentence_corpus(tmp_path / "resumed", **args)
    assert len(list((tmp_path / "resumed").rglob("*.flac"))) == 3 and not (tmp_path / "resumed/corpus.json").exists()
    calls.clear()
    monkeypatch.setattr(sc, "render_sentence", real)
    resumed = generate_sentence_corpus(tmp_path / "resumed", **args)
    files = sorted(p.relative_to(whole) for p in whole.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(resumed) for p in resumed.rglob("*") if p.is_file())
    for rel in files:
        if rel.suffix == ".flac":
            assert np.array_equal(read_audio(whole / rel), read_audio(resumed / rel)), rel
        else:
            assert (whole / rel).read_text() == (resumed / rel).read_text(), rel


def test_heldout_voice_errors():
    with pytest.raises(UserError, match="matches no voice"):
        plan_sentences(10, 0, heldout_voice="nobody")
    with pytest.raises(UserError, match="nothing would be left for training"):
        plan_sentences(10, 0, engines=["piper"], heldout_voice="joe")


def test_cli_prepare_sentences(tmp_path, capsys):
    from speech_llm.cli import main

    exclude = tmp_path / "text"
    first = plan_sentences(6, 5, engines=["espeak-ng"])[0].sentence
    exclude.write_text(f"utt-1 {first.text}\n")
    rc = main(["prepare", "sentences", "--out", str(tmp_path / "c"), "--num-utts", "6", "--seed", "5",
               "--engines", "espeak", "--heldout-voice", "en-us+m3", "--exclude-text", str(exclude),
               "--num-workers", "1", "--data-out", str(tmp_path / "data")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "test_heldout" in out
    texts = [line.split(" ", 1)[1] for d in (tmp_path / "data").iterdir()
             for line in (d / "text").read_text().splitlines()]
    assert len(texts) == 6 and first.text not in texts
    assert set((tmp_path / "data/test_heldout/utt2spk").read_text().split()[1::2]) == {"3001"}
    assert main(["prepare", "sentences", "--out", str(tmp_path / "x"), "--num-utts", "3", "--engines", "festival"]) == 2
    assert "unknown engine" in capsys.readouterr().err
