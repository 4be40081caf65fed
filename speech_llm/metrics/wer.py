"""Word (and character) error rate with jiwer, per utterance and in total, after text normalisation.

References and hypotheses are normalised by the same :class:`Normalizer` and then aligned word by word
with jiwer (Levenshtein, equal costs). Totals are sums over utterances, so the corpus WER is
``(S + D + I) / N`` with ``N`` the number of reference words — the usual micro average, not a mean of
per-utterance WERs.

Normalisation
-------------
A normaliser is written as a comma list of steps (``--normalize`` on ``speech-llm score``):

- ``unicode``: NFKC, then typographic quotes and dashes to ASCII (``’`` → ``'``, ``–`` → ``-``).
- ``case``: case folding (``str.casefold``), so ``DON'T`` and ``Don't`` match.
- ``punct``: drop Unicode punctuation, except an apostrophe between two letters or digits (``don't``
  stays, ``'quoted'`` loses its quotes); dashes and slashes become spaces (``twenty-one`` →
  ``twenty one``), everything else is deleted (``U.S.`` → ``us``).
- ``apostrophe``: also drop in-word apostrophes (``don't`` → ``dont``).

Whitespace is always collapsed (words are split on whitespace). ``default`` is ``unicode,case,punct``:
it suits LibriSpeech references (upper case, in-word apostrophes, no other punctuation) against LLM
hypotheses (mixed case, punctuation, typographic apostrophes). ``none`` keeps the text as written.
Numbers are not spelled out: ``10`` against ``TEN`` is an error.

Example::

    >>> r = compute_wer({"u1": "THE CAT SAT"}, {"u1": "The cat sat down."})
    >>> (r.hits, r.substitutions, r.deletions, r.insertions, r.ref_words)
    (3, 0, 0, 1, 3)
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field

import jiwer

from speech_common.errors import UserError

NORMALIZE_STEPS = ("unicode", "case", "punct", "apostrophe")
DEFAULT_NORMALIZE = "unicode,case,punct"

_TYPOGRAPHIC = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201b": "'", "\u02bc": "'", "\u2032": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"',
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2212": "-",
})
_SPLITTING_PUNCT = {"/", "\\"}


@dataclass(frozen=True)
class Normalizer:
    """Text normalisation applied to references and hypotheses before alignment (see module docstring)."""

    unicode: bool = True
    case: bool = True
    punct: bool = True
    apostrophe: bool = False

    @classmethod
    def from_spec(cls, spec: str) -> Normalizer:
        """Parse ``"default"``, ``"none"`` or a comma list of :data:`NORMALIZE_STEPS`."""
        spec = spec.strip()
        if spec == "default":
            spec = DEFAULT_NORMALIZE
        if spec == "none":
            return cls(unicode=False, case=False, punct=False, apostrophe=False)
        steps = [s.strip() for s in spec.split(",") if s.strip()]
        unknown = [s for s in steps if s not in NORMALIZE_STEPS]
        if unknown or not steps:
            raise UserError(f"--normalize {spec!r}: unknown step(s) {unknown}; use 'default', 'none' or "
                            f"a comma list of {', '.join(NORMALIZE_STEPS)}")
        return cls(**{s: (s in steps) for s in NORMALIZE_STEPS})

    @property
    def spec(self) -> str:
        """The comma list this normaliser was built from (``"none"`` when it does nothing)."""
        return ",".join(s for s in NORMALIZE_STEPS if getattr(self, s)) or "none"

    def __call__(self, text: str) -> str:
        if self.unicode:
            text = unicodedata.normalize("NFKC", text).translate(_TYPOGRAPHIC)
        if self.case:
            text = text.casefold()
        if self.punct or self.apostrophe:
            text = self._strip(text)
        return " ".join(text.split())

    def _strip(self, text: str) -> str:
        out = []
        for i, ch in enumerate(text):
            if ch == "'":
                in_word = 0 < i < len(text) - 1 and text[i - 1].isalnum() and text[i + 1].isalnum()
                if in_word and not self.apostrophe:
                    out.append(ch)
                elif not in_word and not self.punct:
                    out.append(ch)
                continue
            if not self.punct or not unicodedata.category(ch).startswith("P"):
                out.append(ch)
            elif unicodedata.category(ch) == "Pd" or ch in _SPLITTING_PUNCT:
                out.append(" ")
        return "".join(out)


@dataclass
class UttErrors:
    """Alignment of one utterance: counts and the aligned word pairs.

    ``alignment`` lists ``(op, ref_word, hyp_word)`` in order, ``op`` one of ``"C"`` (correct), ``"S"``,
    ``"D"`` (``hyp_word`` is ``None``) and ``"I"`` (``ref_word`` is ``None``).
    """

    key: str
    ref: list[str]
    hyp: list[str]
    hits: int
    substitutions: int
    deletions: int
    insertions: int
    alignment: list[tuple[str, str | None, str | None]]
    missing: bool = False   # no hypothesis was given for this utterance (counted as all deletions)

    @property
    def ref_words(self) -> int:
        return len(self.ref)

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def wer(self) -> float:
        """Errors over reference words (``inf`` for an empty reference with insertions, 0 when both empty)."""
        if not self.ref:
            return float("inf") if self.errors else 0.0
        return self.errors / len(self.ref)


@dataclass
class ErrorTotals:
    """Summed counts over utterances; ``rate`` = (S + D + I) / N."""

    hits: int = 0
    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    ref_units: int = 0

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def rate(self) -> float:
        return self.errors / self.ref_units if self.ref_units else (float("inf") if self.errors else 0.0)

    def as_dict(self, unit: str) -> dict:
        """JSON form; ``unit`` names the counted thing (``"words"``, ``"chars"``)."""
        return {"percent": round(100.0 * self.rate, 4), "errors": self.errors, "hits": self.hits,
                "substitutions": self.substitutions, "deletions": self.deletions,
                "insertions": self.insertions, f"ref_{unit}": self.ref_units}


@dataclass
class WerResult:
    """Word error totals, per-utterance alignments, and optionally character error totals."""

    utts: list[UttErrors]
    words: ErrorTotals
    chars: ErrorTotals | None = None
    missing: list[str] = field(default_factory=list)   # utterances without a hypothesis

    # shortcuts to the word totals
    @property
    def wer(self) -> float:
        return self.words.rate

    @property
    def hits(self) -> int:
        return self.words.hits

    @property
    def substitutions(self) -> int:
        return self.words.substitutions

    @property
    def deletions(self) -> int:
        return self.words.deletions

    @property
    def insertions(self) -> int:
        return self.words.insertions

    @property
    def ref_words(self) -> int:
        return self.words.ref_units

    @property
    def cer(self) -> float | None:
        return None if self.chars is None else self.chars.rate


def align_words(ref: list[str], hyp: list[str]) -> list[tuple[int | None, int | None]]:
    """Index pairs ``(ref_i, hyp_j)`` along jiwer's minimum-edit alignment of two word lists.

    Hits and substitutions give both indices; a deletion gives ``(ref_i, None)``, an insertion
    ``(None, hyp_j)``. Example: ``align_words(["a", "b", "c", "d"], ["a", "c", "d", "e"])`` →
    ``[(0, 0), (1, None), (2, 1), (3, 2), (None, 3)]``.
    """
    if not ref or not hyp:
        return [(i, None) for i in range(len(ref))] + [(None, j) for j in range(len(hyp))]
    out = jiwer.process_words(" ".join(ref), " ".join(hyp))
    pairs: list[tuple[int | None, int | None]] = []
    for c in out.alignments[0]:
        if c.type in ("equal", "substitute"):
            pairs += zip(range(c.ref_start_idx, c.ref_end_idx), range(c.hyp_start_idx, c.hyp_end_idx))
        elif c.type == "delete":
            pairs += [(i, None) for i in range(c.ref_start_idx, c.ref_end_idx)]
        else:
            pairs += [(None, j) for j in range(c.hyp_start_idx, c.hyp_end_idx)]
    return pairs


def _utt_errors(key: str, ref: list[str], hyp: list[str], chunks, missing: bool) -> UttErrors:
    counts = {"C": 0, "S": 0, "D": 0, "I": 0}
    alignment: list[tuple[str, str | None, str | None]] = []
    op_of = {"equal": "C", "substitute": "S", "delete": "D", "insert": "I"}
    for c in chunks:
        op = op_of[c.type]
        rs, hs = ref[c.ref_start_idx:c.ref_end_idx], hyp[c.hyp_start_idx:c.hyp_end_idx]
        if op in ("C", "S"):
            alignment += [(op, r, h) for r, h in zip(rs, hs)]
            counts[op] += len(rs)
        elif op == "D":
            alignment += [("D", r, None) for r in rs]
            counts["D"] += len(rs)
        else:
            alignment += [("I", None, h) for h in hs]
            counts["I"] += len(hs)
    return UttErrors(key=key, ref=ref, hyp=hyp, hits=counts["C"], substitutions=counts["S"],
                     deletions=counts["D"], insertions=counts["I"], alignment=alignment, missing=missing)


def compute_wer(refs: Mapping[str, str], hyps: Mapping[str, str], normalizer: Normalizer | None = None,
                cer: bool = False) -> WerResult:
    """WER of ``hyps`` against ``refs`` (both ``{utterance key: text}``), in the order of ``refs``.

    A reference key absent from ``hyps`` is scored against an empty hypothesis (all deletions) and
    listed in ``result.missing``. With ``cer=True`` character totals (spaces included, after the same
    normalisation) are computed too.

    Raises:
        ValueError: when ``hyps`` has keys that ``refs`` lacks (named in the message).
    """
    extra = [k for k in hyps if k not in refs]
    if extra:
        raise ValueError(f"hypotheses without a reference: {', '.join(extra[:10])}"
                         + (f" and {len(extra) - 10} more" if len(extra) > 10 else ""))
    norm = normalizer or Normalizer()
    keys = list(refs)
    missing = [k for k in keys if k not in hyps]
    ref_txt = [norm(refs[k]) for k in keys]
    hyp_txt = [norm(hyps.get(k, "")) for k in keys]
    utts: list[UttErrors] = []
    totals = ErrorTotals()
    if keys:
        out = jiwer.process_words(ref_txt, hyp_txt)
        for k, r, h, chunks in zip(keys, out.references, out.hypotheses, out.alignments):
            u = _utt_errors(k, list(r), list(h), chunks, missing=k not in hyps)
            utts.append(u)
        totals = ErrorTotals(hits=out.hits, substitutions=out.substitutions, deletions=out.deletions,
                             insertions=out.insertions, ref_units=sum(len(r) for r in out.references))
    chars = None
    if cer:
        chars = ErrorTotals()
        if keys:
            co = jiwer.process_characters(ref_txt, hyp_txt)
            chars = ErrorTotals(hits=co.hits, substitutions=co.substitutions, deletions=co.deletions,
                                insertions=co.insertions, ref_units=sum(len(r) for r in co.references))
    return WerResult(utts=utts, words=totals, chars=chars, missing=missing)


def format_details(result: WerResult) -> str:
    """Per-utterance alignments in Kaldi's ``wer_per_utt_details`` layout (``***`` marks a gap)::

        <utt> ref  the  cat  ***  sat
        <utt> hyp  the  bat  big  sat
        <utt> op   C    S    I    C
        <utt> #csid 2 1 1 0
    """
    lines = []
    if result.missing:
        lines.append(f"# {len(result.missing)} utterance(s) had no hypothesis (scored as deletions): "
                     + " ".join(result.missing))
    for u in result.utts:
        cols = [(r or "***", h or "***", op) for op, r, h in u.alignment]
        widths = [max(len(r), len(h), len(op)) for r, h, op in cols]
        lines.append(f"{u.key} ref  " + "  ".join(r.ljust(w) for (r, _, _), w in zip(cols, widths)).rstrip())
        lines.append(f"{u.key} hyp  " + "  ".join(h.ljust(w) for (_, h, _), w in zip(cols, widths)).rstrip())
        lines.append(f"{u.key} op   " + "  ".join(o.ljust(w) for (_, _, o), w in zip(cols, widths)).rstrip())
        lines.append(f"{u.key} #csid {u.hits} {u.substitutions} {u.insertions} {u.deletions}")
    return "\n".join(lines) + "\n"
