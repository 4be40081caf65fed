"""WER/CER against jiwer on hand-made pairs, normalisation, per-utterance details."""

import jiwer
import pytest

from speech_common.errors import UserError
from speech_llm.metrics.wer import Normalizer, align_words, compute_wer, format_details

REFS = {"u1": "THE QUICK BROWN FOX JUMPS", "u2": "HELLO WORLD", "u3": "A B C"}
HYPS = {"u1": "The quick brown box jumps over.", "u2": "hello"}   # u3 missing


def test_counts_are_exact_and_agree_with_jiwer():
    r = compute_wer(REFS, HYPS)
    # by hand: u1 fox->box (S) + "over" (I); u2 "world" deleted; u3 missing -> 3 deletions
    assert (r.hits, r.substitutions, r.deletions, r.insertions, r.ref_words) == (5, 1, 4, 1, 10)
    assert r.wer == pytest.approx(0.6)
    assert r.missing == ["u3"]
    ref_l = ["the quick brown fox jumps", "hello world", "a b c"]
    hyp_l = ["the quick brown box jumps over", "hello", ""]
    j = jiwer.process_words(ref_l, hyp_l)
    assert (r.hits, r.substitutions, r.deletions, r.insertions) == (j.hits, j.substitutions, j.deletions,
                                                                    j.insertions)
    assert r.wer == pytest.approx(jiwer.wer(ref_l, hyp_l))
    per = {u.key: (u.hits, u.substitutions, u.deletions, u.insertions, u.missing) for u in r.utts}
    assert per == {"u1": (4, 1, 0, 1, False), "u2": (1, 0, 1, 0, False), "u3": (0, 0, 3, 0, True)}
    assert r.utts[0].alignment[3] == ("S", "fox", "box")
    assert r.utts[0].alignment[-1] == ("I", None, "over")


def test_cer_agrees_with_jiwer():
    r = compute_wer({"a": "CAT SAT"}, {"a": "cut sat"}, cer=True)
    assert r.cer == pytest.approx(jiwer.cer("cat sat", "cut sat"))
    assert r.chars.substitutions == 1 and r.chars.ref_units == 7


def test_default_normalizer_matches_librispeech_style_reference():
    norm = Normalizer()
    hyp = "Don\u2019t stop\u2014twenty-one U.S. 'quoted' words!"
    assert norm(hyp) == "don't stop twenty one us quoted words"
    assert compute_wer({"x": "DON'T STOP TWENTY ONE US QUOTED WORDS"}, {"x": hyp}).wer == 0.0


def test_normalizer_specs():
    assert Normalizer.from_spec("default") == Normalizer()
    assert Normalizer.from_spec("case,punct,apostrophe")("Don't, STOP") == "dont stop"
    none = Normalizer.from_spec("none")
    assert none.spec == "none"
    assert none("Don't,  STOP ") == "Don't, STOP"
    assert compute_wer({"x": "A B"}, {"x": "a b"}, none).substitutions == 2
    with pytest.raises(UserError, match="unknown step"):
        Normalizer.from_spec("case,stemming")


def test_hypothesis_without_reference_is_an_error():
    with pytest.raises(ValueError, match="zz"):
        compute_wer({"a": "X"}, {"a": "x", "zz": "y"})


def test_align_words_pairs_by_position():
    assert align_words(list("abcd"), list("acde")) == [(0, 0), (1, None), (2, 1), (3, 2), (None, 3)]
    assert align_words(["a", "b"], ["a", "x"]) == [(0, 0), (1, 1)]   # substitution: matched
    assert align_words([], ["x"]) == [(None, 0)]


def test_format_details_kaldi_layout():
    text = format_details(compute_wer(REFS, HYPS))
    lines = text.splitlines()
    assert lines[0].startswith("# 1 utterance(s) had no hypothesis") and "u3" in lines[0]
    assert "u1 #csid 4 1 1 0" in lines
    assert "u3 #csid 0 0 0 3" in lines
    op_line = next(line for line in lines if line.startswith("u1 op"))
    assert op_line.split()[2:] == ["C", "C", "C", "S", "C", "I"]
