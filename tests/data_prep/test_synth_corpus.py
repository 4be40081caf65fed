"""The synthetic corpus: generated, prepared with the LibriSpeech code, validated, loaded; seeds and splits."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from num2words import num2words

from data_prep.audio import read_audio
from data_prep.kaldi_dir import read_data_dir, validate_data_dir
from data_prep.librispeech import prepare_librispeech
from data_prep.manifest import read_manifest
from data_prep.sentences import generate_sentences, number_words, vocabulary
from data_prep.synth import generate_corpus, plan_corpus, render
from data_prep.voices import VOICES
from encoders.constants import SAMPLE_RATE
from speech_common.errors import UserError

SPLITS = ["train", "dev", "test"]


@pytest.fixture(scope="module")
def prepared(synth_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return prepare_librispeech(synth_corpus, SPLITS, tmp_path_factory.mktemp("data"))


def test_prepared_corpus_validates_loads_and_matches_generator(prepared):
    plan = {u.key + "/" + u.split: u for u in plan_corpus(30, seed=0)}
    assert list(prepared) == SPLITS
    total = 0
    for split, data_dir in prepared.items():
        utts = validate_data_dir(data_dir, check_audio=True)
        utt2dur = dict(line.split() for line in (data_dir / "utt2dur").read_text().splitlines())
        for key, utt in utts.items():
            wave = read_audio(utt.wav)
            assert wave.dtype == np.float32 and wave.ndim == 1
            assert abs(len(wave) / SAMPLE_RATE - float(utt2dur[key])) < 1e-3
            planned = plan[f"{key}/{split}"]
            assert utt.text == planned.sentence.text
            assert utt.speaker == planned.voice.speaker
        total += len(utts)
    assert total == 30
    assert len(read_data_dir(prepared["train"])) == 24


def test_manifest_carries_exact_word_times_and_translations(prepared):
    plan = {u.key: u for u in plan_corpus(30, seed=0) if u.split == "dev"}
    records = read_manifest(prepared["dev"] / "manifest.jsonl")
    assert sorted(r["key"] for r in records) == sorted(plan)
    for rec in records:
        assert rec["translation"] == plan[rec["key"]].sentence.translation
        assert [w["word"] for w in rec["words"]] == rec["text"].split()
        wave = read_audio(rec["audio"])
        bounds = [(int(round(w["start"] * SAMPLE_RATE)), int(round(w["end"] * SAMPLE_RATE)))
                  for w in rec["words"]]
        for (s, e), (next_s, _) in zip(bounds, bounds[1:] + [(len(wave), None)]):
            word_rms = np.sqrt(np.mean(wave[s:e] ** 2))
            assert word_rms > 0.02, rec["key"]
            gap = wave[e + 16:next_s - 16]   # one-millisecond guard for rounding of the times
            assert gap.size > 0 and np.abs(gap).max() < 1e-3, rec["key"]   # pauses are pure silence


def test_translations_are_written_as_kaldi_text_per_language(prepared, tmp_path, capsys):
    plan = {u.key + "/" + u.split: u for u in plan_corpus(30, seed=0)}
    for split, data_dir in prepared.items():
        keys = [line.split()[0] for line in (data_dir / "text").read_text().splitlines()]
        assert sorted(p.name for p in data_dir.glob("text.*")) == ["text.de", "text.fr"]
        for lang in ("fr", "de"):
            lines = (data_dir / f"text.{lang}").read_text(encoding="utf-8").splitlines()
            assert [line.split(" ", 1)[0] for line in lines] == keys        # same utterance ids, same order
            for line in lines:
                key, text = line.split(" ", 1)
                assert text == plan[f"{key}/{split}"].sentence.translation[lang]
    # a recipe trains the LLM tokenizer on the transcripts and the French text together
    from transformers import AutoTokenizer

    from speech_llm.cli import main

    train = prepared["train"]
    out = tmp_path / "llm"
    assert main(["build-llm", "--text", str(train / "text"), "--text", str(train / "text.fr"), "--kaldi-text",
                 "--out", str(out), "--vocab-size", "300", "--hidden-size", "16", "--num-layers", "1",
                 "--intermediate-size", "32"]) == 0
    assert f"{2 * 24} lines of text" in capsys.readouterr().out
    vocab = AutoTokenizer.from_pretrained(out).get_vocab()
    assert any(t.startswith("Ġ") and t[1:].islower() and len(t) > 3 for t in vocab)    # French words, lower case
    assert any(t.startswith("Ġ") and t[1:].isupper() and len(t) > 3 for t in vocab)    # English, upper case


def test_speakers_are_voice_settings_of_both_engines(synth_corpus):
    speakers = {p.name for split in SPLITS for p in (synth_corpus / split).iterdir()}
    engines = {v.engine for v in VOICES if v.speaker in speakers}
    assert engines == {"espeak-ng", "flite"}
    assert len(speakers) >= 10


def test_generator_output_is_pinned():
    """A seed gives the same sentences across refactorings of the grammar (corpora, recipes and results
    depend on it): the first sentences of seed 7, and one of each slot template's agreement cases."""
    got = [(s.text, s.translation, s.kind) for s in generate_sentences(3000, 7)]
    assert got[:3] == [
        ("TURN ON THE TELEVISION IN THE BEDROOM",
         {"fr": "Allume la télévision dans la chambre", "de": "Schalte den Fernseher im Schlafzimmer ein"}, "switch"),
        ("THE SHOE IS IN THE KITCHEN",
         {"fr": "La chaussure est dans la cuisine", "de": "Der Schuh ist in der Küche"}, "thing_in"),
        ("HENRY WANTS A CUP OF TEA", {"fr": "Henry veut une tasse de thé", "de": "Henry möchte eine Tasse Tee"},
         "wants"),
    ]
    first = {}
    for text, translation, kind in got:
        first.setdefault(kind, (text, translation))
    assert first["gives"] == ("HANNA GIVES THE CHAIR TO OLIVIA",
                              {"fr": "Hanna donne la chaise à Olivia", "de": "Hanna gibt Olivia den Stuhl"})
    assert first["weather"] == ("IT IS SUNNY TODAY",
                                {"fr": "Il y a du soleil aujourd'hui", "de": "Es ist heute sonnig"})
    two_in = [text.split() for text, _, kind in got if kind == "two_in"]
    assert two_in and all(words[0] != words[2] for words in two_in)  # two different people


def test_same_seed_same_corpus_different_seed_different(tmp_path):
    a = generate_corpus(tmp_path / "a", num_utts=4, seed=5, num_workers=1, progress=False)
    b = generate_corpus(tmp_path / "b", num_utts=4, seed=5, num_workers=2, progress=False)
    c = generate_corpus(tmp_path / "c", num_utts=4, seed=6, num_workers=1, progress=False)

    def transcripts(root):
        return {p.relative_to(root): p.read_text() for p in sorted(root.rglob("*.trans.txt"))}

    assert transcripts(a) == transcripts(b)
    for flac in sorted(a.rglob("*.flac")):
        assert np.array_equal(read_audio(flac), read_audio(b / flac.relative_to(a)))
    assert transcripts(a) != transcripts(c)
    texts = [[u.sentence.text for u in plan_corpus(200, seed)] for seed in (0, 0, 1)]
    assert texts[0] == texts[1] and texts[0] != texts[2]


def test_splits_are_disjoint(prepared):
    texts = {split: set((d / "text").read_text().split("\n")) for split, d in prepared.items()}
    sentences = {s: {line.split(" ", 1)[1] for line in t if line} for s, t in texts.items()}
    assert not sentences["train"] & sentences["dev"]
    assert not sentences["train"] & sentences["test"]
    assert not sentences["dev"] & sentences["test"]
    big = plan_corpus(500, seed=3)
    by_split = {s: {u.sentence.text for u in big if u.split == s} for s in SPLITS}
    assert sum(map(len, by_split.values())) == 500
    assert [len(by_split[s]) for s in SPLITS] == [400, 50, 50]


def test_existing_output_is_kept(synth_corpus, tmp_path):
    before = sorted(p.relative_to(synth_corpus) for p in synth_corpus.rglob("*"))
    assert generate_corpus(synth_corpus, num_utts=30, seed=0, progress=False) == synth_corpus
    with pytest.raises(UserError, match="remove it or choose another --out"):
        generate_corpus(synth_corpus, num_utts=31, seed=0, progress=False)
    assert sorted(p.relative_to(synth_corpus) for p in synth_corpus.rglob("*")) == before


def test_noise_is_added_at_the_requested_snr():
    utt = plan_corpus(3, seed=2)[0]
    clean, words = render(utt, seed=2)
    noisy, words_noisy = render(utt, seed=2, noise_snr_db=10.0)
    assert words == words_noisy
    noise = noisy - clean
    speech = np.concatenate([clean[int(w["start"] * SAMPLE_RATE):int(w["end"] * SAMPLE_RATE)] for w in words])
    snr = 10 * np.log10(np.mean(speech ** 2) / np.mean(noise ** 2))
    assert abs(snr - 10.0) < 0.5


def test_sentences_translations_and_vocabulary():
    assert len(vocabulary()) >= 200
    sents = generate_sentences(400, seed=1)
    assert len({s.text for s in sents}) == 400
    assert all(re.fullmatch(r"[A-Z']+( [A-Z']+)*", s.text) for s in sents)
    assert all(s.translation["fr"] and s.translation["de"] for s in sents)
    numbers = {number_words(n, "en").upper(): n for n in range(1000)}
    checked = 0
    for s in sents:
        if s.kind == "number":
            n = numbers[s.text.removeprefix("THE NUMBER IS ")]
            assert s.translation["fr"] == f"Le nombre est {num2words(n, lang='fr')}"
            assert s.translation["de"] == f"Die Zahl ist {num2words(n, lang='de')}"
            checked += 1
    assert checked > 5
    kinds = {s.kind for s in sents}
    assert {"number", "switch", "call", "goes", "thing_is"} <= kinds


def test_cli_prepare_synth_with_data_out(tmp_path, capsys):
    from speech_llm.cli import main

    rc = main(["prepare", "synth", "--out", str(tmp_path / "corpus"), "--num-utts", "3", "--seed", "4",
               "--noise-snr", "30", "--num-workers", "1", "--data-out", str(tmp_path / "data")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "train" in out and "test" in out
    keys = [u.key for u in plan_corpus(3, seed=4)]
    got = [k for s in SPLITS for k in validate_data_dir(tmp_path / "data" / s)]
    assert sorted(got) == sorted(keys)
    assert main(["prepare", "synth", "--out", str(tmp_path / "x"), "--num-utts", "0"]) == 2
    assert "--num-utts must be positive" in capsys.readouterr().err
