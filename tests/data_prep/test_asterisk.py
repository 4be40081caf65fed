"""The Asterisk prompts as a real-speech test set: a validated data dir, normalised text, 8 kHz audio kept."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from data_prep.asterisk import APT_PACKAGES, prepare_asterisk, prompt_text, read_transcripts
from data_prep.audio import audio_info, read_audio
from data_prep.kaldi_dir import validate_data_dir
from data_prep.manifest import read_manifest
from data_prep.normalize import normalize_text
from data_prep.text_corpus import select_sentences
from encoders.constants import SAMPLE_RATE
from speech_common.errors import UserError

LIBRISPEECH = re.compile(r"[A-Z']+( [A-Z']+)*")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("asterisk") / "asterisk"
    return out, prepare_asterisk(out)


def test_data_dir_validates_with_the_counts_of_the_package(prepared):
    out, report = prepared
    utts = validate_data_dir(out, check_audio=True)      # every file decoded and resampled, durations checked
    assert len(utts) == report.utterances == 551
    assert 24.0 < report.seconds / 60 < 24.6 and report.words == sum(len(u.text.split()) for u in utts.values())
    assert 3200 < report.words < 3400
    assert {u.speaker for u in utts.values()} == {"allison"}
    assert len(report.dropped["silence"]) == 10 and "beep" in report.dropped["non-speech sound"]
    assert report.dropped["no recording"] == ["pls-try-call-later"]
    records = read_manifest(out / "manifest.jsonl")
    assert sorted(r["key"] for r in records) == sorted(utts)
    assert "551 prompts, 24.3 minutes" in report.summary()


def test_texts_are_normalised(prepared):
    out, _ = prepared
    text = dict(line.split(" ", 1) for line in (out / "text").read_text().splitlines())
    for key, t in text.items():
        assert LIBRISPEECH.fullmatch(t), key
        assert normalize_text(t) == t, key
    assert text["allison-digits-a-m"] == "A M"
    assert text["allison-digits-7"] == "SEVEN"
    assert text["allison-dictate-both_help"] == ("PRESS STAR TO TOGGLE PAUSE PRESS POUND TO ENTER A NEW DICTATION "
                                                 "FILENAME")
    assert text["allison-spy-iax2"] == "IAX"                        # the note in parentheses is not spoken
    assert text["allison-spy-h323"] == "H THREE TWO THREE"
    assert "VISIT W W W DOT ASTERISK DOT ORG" in text["allison-demo-moreinfo"]
    assert "OPEN SOURCE FULL FEATURED P B X AND I V R PLATFORM" in text["allison-demo-moreinfo"]
    assert "TWENTY EIGHT POINT EIGHT KILOBIT" in text["allison-demo-instruct"]
    assert "MUTE OR UNMUTE ALL" in text["allison-conf-adminmenu-menu8"]   # the transcript's typo "umute"


def test_audio_is_kept_at_8_khz_and_read_at_16_khz(prepared):
    out, _ = prepared
    wav = dict(line.split(" ", 1) for line in (out / "wav.scp").read_text().splitlines())["allison-vm-options"]
    assert Path(wav).is_file() and wav.startswith("/usr/share/asterisk/sounds/")
    frames, sr = audio_info(wav)
    assert sr == 8000
    samples = read_audio(wav)
    assert abs(len(samples) - frames * SAMPLE_RATE // sr) <= 2


def test_prompts_that_are_not_speech_are_dropped():
    assert prompt_text("beep", "[this is a simple beep tone]") == (None, "non-speech sound")
    assert prompt_text("confbridge-join", "<beep ascending>") == (None, "non-speech sound")
    assert prompt_text("silence/3", "(3 seconds of silence)") == (None, "silence")
    assert prompt_text("letters/at", "at [@]") == ("AT", "")
    assert prompt_text("x", "(a note only)") == (None, "no speech text")


def test_test_set_sentences_can_be_kept_out_of_training(prepared):
    out, _ = prepared
    prompts = [line.split(" ", 1)[1] for line in (out / "text").read_text().splitlines()]
    raw = read_transcripts("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
    assert len(raw) == 569
    pool = {s.text for s in select_sentences(20000, seed=0, exclude=prompts)}
    assert not pool & set(prompts)


def test_missing_packages_are_named(tmp_path, capsys):
    with pytest.raises(UserError, match=f"apt-get install {' '.join(APT_PACKAGES)}") as err:
        prepare_asterisk(tmp_path / "out", sounds_dir=tmp_path / "nowhere")
    assert "asterisk-core-sounds-en-wav" in str(err.value)
    with pytest.raises(UserError, match=r"package asterisk-core-sounds-en\)"):
        prepare_asterisk(tmp_path / "out", transcripts=tmp_path / "none.txt.gz")
    assert not (tmp_path / "out").exists()
    from speech_llm.cli import main

    assert main(["prepare", "asterisk", "--out", str(tmp_path / "out"), "--sounds-dir", str(tmp_path)]) == 2
    assert "apt-get install asterisk-core-sounds-en-wav asterisk-core-sounds-en" in capsys.readouterr().err
