"""Sentence selection from WordNet's usage examples: real text, filtered, deterministic, exclusions honoured."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from data_prep.normalize import normalize_text
from data_prep.text_corpus import (
    MAX_WORDS,
    MIN_WORDS,
    available_sentences,
    reject_reason,
    select_sentences,
    usable_sentences,
    wordnet_examples,
)
from speech_common.errors import UserError

LIBRISPEECH = re.compile(r"[A-Z']+( [A-Z']+)*")


def test_wordnet_gives_tens_of_thousands_of_usable_sentences():
    examples = wordnet_examples()
    assert len(examples) > 45000
    assert "the runners reached the finish line, panting heavily" in {e.lower() for e in examples}
    stats = Counter()
    sample = usable_sentences(examples[::5], stats=stats)
    assert stats["kept"] == len(sample) and sum(stats.values()) == len(examples[::5])
    assert {"acronym", "parentheses", "elision", "too short"} <= set(stats)
    usable = available_sentences()
    assert len(usable) > 30000 and [s.text for s in usable] == sorted({s.text for s in usable})
    assert len({w for s in usable for w in s.words}) > 20000          # a real vocabulary, not a template grammar
    for s in usable[::97]:
        assert LIBRISPEECH.fullmatch(s.text) and MIN_WORDS <= len(s.words) <= MAX_WORDS
        assert reject_reason(s.source) is None and normalize_text(s.source) == s.text
        assert s.spoken.replace(",", "").rstrip(".?!").upper().replace(".", "").replace("?", "").replace("!", "") \
            == s.text


@pytest.mark.parametrize("raw, reason", [
    ("alcohol (or drink) ruined him", "parentheses"),
    ("DNA is the substance of our genes", "acronym"),
    ("the U.S. government", "acronym"),
    ("he ordered a caf\u00e9 au lait", "non-ascii"),
    ("if f=y, y is the dependent variable", "symbol"),
    ("the expansion of a/b", "symbol"),
    ("he needs vitamin C every day", "lone letter"),
    ("it takes 3-4 days to arrive", "number range"),
    ("dark, medium...and light", "elision"),
    ("she sighed sadly", None),
    ("a number 13 shoe", None),
    ("I can breathe better when the air is clean", None),
])
def test_reject_reason(raw, reason):
    assert reject_reason(raw) == reason


def test_selection_is_deterministic_and_seeded():
    a = select_sentences(200, seed=1)
    assert [s.text for s in a] == [s.text for s in select_sentences(200, seed=1)]
    assert [s.text for s in select_sentences(50, seed=1)] == [s.text for s in a[:50]]    # prefix of the same order
    assert [s.text for s in select_sentences(200, seed=2)] != [s.text for s in a]
    assert len({s.text for s in a}) == 200


def test_excluded_sentences_are_left_out_after_normalisation():
    first = select_sentences(30, seed=4)
    raw = [s.source.capitalize() + "." for s in first[:10]]        # written differently, same transcript
    kept = select_sentences(20000, seed=4, exclude=raw)
    assert not {s.text for s in first[:10]} & {s.text for s in kept}
    everything = select_sentences(20000, seed=4)
    assert len({s.text for s in first[:10]} & {s.text for s in everything}) == 10
    unrelated = select_sentences(30, seed=4, exclude=["Thank you for calling Super Awesome Company."])
    assert [s.text for s in unrelated] == [s.text for s in first]     # nothing excluded, nothing changed


def test_missing_wordnet_and_too_many_sentences_are_clear_errors(tmp_path):
    with pytest.raises(UserError, match="apt-get install wordnet-base"):
        select_sentences(5, seed=0, wordnet_dir=tmp_path)
    with pytest.raises(UserError, match="usable sentences"):
        select_sentences(10 ** 6, seed=0)
