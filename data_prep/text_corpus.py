"""Real English sentences for the sentence corpus: the usage examples of WordNet, from a Debian package.

Source: Princeton WordNet 3.0 as packaged by Debian (``apt-get install wordnet-base``; files
``/usr/share/wordnet/data.{noun,verb,adj,adv}``). Licence: the WordNet 3.0 licence, a permissive BSD-style
one ("permission to use, copy, modify and distribute this software and database ... for any purpose and
without fee or royalty", keeping Princeton's copyright notice; ``/usr/share/doc/wordnet-base/copyright``).
Every synset line ends with a gloss, ``| definition; "example"; "example"``: the quoted examples are about
48,000 short sentences and phrases written by the lexicographers to show a word in use ("the runners
reached the finish line, panting heavily"), over a vocabulary of tens of thousands of words.

Selection, deterministic (no randomness until the final seeded shuffle):

1. every quoted example of the four files, in file order;
2. rejected when a synthesizer would not read it as written (:func:`reject_reason`): non-ASCII letters or
   foreign scripts, symbols and formulas (``f(x)``, ``/``, ``^``, ``*`` ...), parentheses (editorial
   asides: "alcohol (or drink) ruined him"), elisions (``...``), upper case acronyms and initialisms
   (``DNA``, ``U.S.``), lone letters other than ``a`` and ``I``, number ranges (``3-4``);
3. normalised with :func:`data_prep.normalize.normalize_text` (numbers and abbreviations spelled out) and
   rejected when it has fewer than ``min_words`` or more than ``max_words`` words, a word longer than
   :data:`MAX_WORD_LETTERS` letters, or a word without a vowel (``HMM``, ``TSK``: spelled or mumbled);
4. de-duplicated on the normalised text, minus the excluded sentences (compared after normalisation, so
   a test set's transcripts can be passed as they are), sorted, then shuffled with ``seed``.

Each :class:`CorpusSentence` carries the transcript (``text``, LibriSpeech style) and what a synthesizer
is given (``spoken``: the same words in lower case with the example's commas and final punctuation).
"""

from __future__ import annotations

import functools
import os
import random
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from data_prep.normalize import normalize_text, spoken_text
from speech_common.errors import UserError

WORDNET_DIR = Path("/usr/share/wordnet")
WORDNET_FILES = ("data.noun", "data.verb", "data.adj", "data.adv")
APT_PACKAGE = "wordnet-base"

MIN_WORDS = 4
MAX_WORDS = 30
MAX_WORD_LETTERS = 18

_EXAMPLE = re.compile(r'"([^"]+)"')
_ALLOWED = re.compile(r"[A-Za-z0-9 ,.;:!?'`\-$%&]*")
_ACRONYM = re.compile(r"[A-Z]{2,}|\b(?:[A-Za-z]\.){2,}")
_LONE_LETTER = re.compile(r"(?<![\w'])(?![aAI]\b)[A-Za-z](?![\w'])")
_RANGE = re.compile(r"\d\s*-\s*\d")
_VOWEL = re.compile(r"[AEIOUY]")


@dataclass(frozen=True)
class CorpusSentence:
    """One selected sentence: the transcript ``text``, the synthesizer's input ``spoken``, the ``source``."""

    text: str
    spoken: str
    source: str

    @property
    def words(self) -> list[str]:
        return self.text.split()


def find_wordnet(wordnet_dir: str | os.PathLike | None = None) -> Path:
    """The directory holding WordNet's ``data.*`` files (default :data:`WORDNET_DIR`).

    Raises:
        UserError: the files are missing (naming the Debian package to install).
    """
    d = Path(wordnet_dir) if wordnet_dir is not None else WORDNET_DIR
    missing = [f for f in WORDNET_FILES if not (d / f).is_file()]
    if missing:
        raise UserError(f"WordNet data not found in {d} (missing {', '.join(missing)}): the sentence corpus reads "
                        f"its text from WordNet; install it with: apt-get install {APT_PACKAGE}")
    return d


def wordnet_examples(wordnet_dir: str | os.PathLike | None = None) -> list[str]:
    """Every quoted usage example of WordNet's four data files, in file order (duplicates kept)."""
    d = find_wordnet(wordnet_dir)
    out: list[str] = []
    for name in WORDNET_FILES:
        with open(d / name, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("  ") or "|" not in line:     # licence header
                    continue
                out += [ex.strip() for ex in _EXAMPLE.findall(line.split("|", 1)[1])]
    return out


def reject_reason(raw: str) -> str | None:
    """Why ``raw`` is not read well by a synthesizer as written, or ``None`` (step 2 of the module doc)."""
    if not raw.isascii():
        return "non-ascii"
    if "..." in raw:
        return "elision"
    if "(" in raw or ")" in raw:
        return "parentheses"
    if not _ALLOWED.fullmatch(raw):
        return "symbol"
    if _ACRONYM.search(raw):
        return "acronym"
    if _LONE_LETTER.search(raw):
        return "lone letter"
    if _RANGE.search(raw):
        return "number range"
    return None


def _normalised_reason(text: str, min_words: int, max_words: int) -> str | None:
    words = text.split()
    if len(words) < min_words:
        return "too short"
    if len(words) > max_words:
        return "too long"
    if any(len(w) > MAX_WORD_LETTERS for w in words):
        return "long word"
    if any(not _VOWEL.search(w) for w in words):
        return "word without vowel"
    return None


def usable_sentences(examples: Iterable[str], min_words: int = MIN_WORDS, max_words: int = MAX_WORDS,
                     stats: Counter | None = None) -> list[CorpusSentence]:
    """The examples that pass every filter, one per normalised text, sorted by text.

    ``stats``, when given, counts the examples by outcome (``kept``, ``duplicate`` or the reject reason).
    """
    stats = Counter() if stats is None else stats
    by_text: dict[str, CorpusSentence] = {}
    for raw in examples:
        reason = reject_reason(raw)
        text = ""
        if reason is None:
            text = normalize_text(raw)
            reason = _normalised_reason(text, min_words, max_words)
        if reason is None and text in by_text:
            reason = "duplicate"
        if reason is not None:
            stats[reason] += 1
            continue
        stats["kept"] += 1
        by_text[text] = CorpusSentence(text=text, spoken=spoken_text(raw), source=raw)
    return [by_text[t] for t in sorted(by_text)]


def available_sentences(wordnet_dir: str | os.PathLike | None = None, min_words: int = MIN_WORDS,
                        max_words: int = MAX_WORDS) -> tuple[CorpusSentence, ...]:
    """Every usable sentence of WordNet (:func:`usable_sentences` of all examples), sorted by text.

    Normalising all examples takes seconds, so the result is cached per directory and bounds.
    """
    return _available(find_wordnet(wordnet_dir).resolve(), min_words, max_words)


@functools.lru_cache(maxsize=4)
def _available(wordnet_dir: Path, min_words: int, max_words: int) -> tuple[CorpusSentence, ...]:
    return tuple(usable_sentences(wordnet_examples(wordnet_dir), min_words, max_words))


def select_sentences(num: int, seed: int, exclude: Iterable[str] = (), wordnet_dir: str | os.PathLike | None = None,
                     min_words: int = MIN_WORDS, max_words: int = MAX_WORDS) -> list[CorpusSentence]:
    """``num`` distinct sentences in a seeded order, none equal (after normalisation) to one of ``exclude``.

    The same arguments give the same list; a larger ``num`` with the same seed extends it (a prefix of the
    shuffled pool).

    Raises:
        UserError: WordNet is not installed, or fewer than ``num`` sentences are left.
    """
    if num <= 0:
        raise UserError(f"the number of sentences must be positive, got {num}")
    excluded = {normalize_text(t) for t in exclude}
    pool = [s for s in available_sentences(wordnet_dir, min_words, max_words) if s.text not in excluded]
    if len(pool) < num:
        raise UserError(f"only {len(pool)} usable sentences of {min_words}-{max_words} words in WordNet "
                        f"(after excluding {len(excluded)}), {num} wanted")
    random.Random(seed).shuffle(pool)
    return pool[:num]

