"""LibriSpeech-style English text normalisation, shared by the text corpus and the real-speech test sets.

LibriSpeech transcripts are upper case words, apostrophes kept and no other punctuation, with numbers and
abbreviations written as they are spoken. :func:`normalize_text` turns ordinary English text into that
form; :func:`spoken_text` gives the same words in lower case with the phrase punctuation kept (commas and a
final full stop or question mark), which is what a synthesizer is given, so that the audio says exactly
the transcript and still phrases it naturally::

    >>> normalize_text("Mr. Smith paid $3.50 at 10:30 a.m. on May 5th, 1999.")
    'MISTER SMITH PAID THREE DOLLARS AND FIFTY CENTS AT TEN THIRTY A M ON MAY FIFTH NINETEEN NINETY NINE'
    >>> spoken_text("Press 1, or 2.")
    'press one, or two.'

What is rewritten, in this order:

1. typography: curly quotes to straight ones, dashes to a phrase break, ellipses to a comma (or a full
   stop at the end);
2. web addresses (``www.asterisk.org`` -> ``W W W DOT ASTERISK DOT ORG``);
3. money (``$3.50``, ``£5``, ``$2 million``), percentages (``5%``), clock times (``10:30``, ``10:05``,
   ``7 p.m.``, ``7pm``), ordinals (``21st``), decades (``1990s``, ``'90s``);
4. digit strings after a *digit cue* word (``extension 1234`` -> ``ONE TWO THREE FOUR``; see
   :data:`DIGIT_CUES`), years (four digits from 1100 to 2099 read as years: ``1999`` -> ``NINETEEN NINETY
   NINE``), decimals (``28.8`` -> ``TWENTY EIGHT POINT EIGHT``), thousands separators (``1,000``), numbers
   with a leading zero (digit by digit), other integers (``123`` -> ``ONE HUNDRED AND TWENTY THREE``,
   num2words' British reading, as LibriSpeech's readers say it); digits glued to letters are split first
   (``3D`` -> ``THREE D``);
5. abbreviations (:data:`ABBREVIATIONS`: ``Mr.``, ``Mrs.``, ``Dr.``, ``etc.``, ``e.g.``, ...; ``St.`` is
   SAINT before a capitalised word and STREET otherwise, ``No.`` is NUMBER before a digit, which is looked
   at before step 3) and dotted initialisms (``U.S.`` -> ``U S``);
6. symbols (:data:`SYMBOLS`: ``&`` -> AND, ``+``, ``=``, ``@``; callers add their own, e.g. the phone
   keypad's ``*`` -> STAR and ``#`` -> POUND);
7. hyphens and slashes between words become spaces (``call-forward`` -> ``CALL FORWARD``);
8. optionally, upper case acronyms are spelled out (``PBX`` -> ``P B X``) unless listed as spoken words;
   only in text that has lower case letters, so that normalised text is left alone;
9. everything else that is not a letter or an apostrophe is dropped, apostrophes at the edges of a word
   are removed (quotes), and the words are upper-cased.

The result is stable: ``normalize_text(normalize_text(x)) == normalize_text(x)``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping

from num2words import num2words

ABBREVIATIONS: dict[str, str] = {
    "Mr.": "mister", "Mrs.": "missus", "Ms.": "miz", "Messrs.": "messieurs", "Prof.": "professor",
    "Rev.": "reverend", "Capt.": "captain", "Col.": "colonel", "Gen.": "general", "Lt.": "lieutenant",
    "Sgt.": "sergeant", "Gov.": "governor", "Sen.": "senator", "Pres.": "president", "Jr.": "junior",
    "Sr.": "senior", "Mt.": "mount", "Ave.": "avenue", "Rd.": "road", "Blvd.": "boulevard",
    "Co.": "company", "Inc.": "incorporated", "Ltd.": "limited", "Corp.": "corporation", "Dept.": "department",
    "Univ.": "university", "approx.": "approximately", "etc.": "et cetera", "vs.": "versus", "e.g.": "for example",
    "i.e.": "that is", "cf.": "compare", "Feb.": "february", "Apr.": "april", "Aug.": "august",
    "Sept.": "september", "Oct.": "october", "Nov.": "november", "Dec.": "december",
}
"""Abbreviations with their spoken form (matched case-sensitively, with the full stop). ``St.``, ``Dr.``
and ``No.`` depend on the context and are handled separately. Abbreviations that are also words or names
at the end of a sentence (``Jan.``, ``Mar.``, ``Sun.``, ``Wed.``) are left alone."""

SYMBOLS: dict[str, str] = {"&": "and", "+": "plus", "=": "equals", "@": "at"}
"""Symbols read as words wherever they appear (``%`` and currency signs are handled with their numbers)."""

DIGIT_CUES: frozenset[str] = frozenset({"extension", "password", "pin", "code", "phone", "telephone"})
"""After one of these words a number of three digits or more is read digit by digit (``extension 1234``)."""

CURRENCIES = {"$": ("dollar", "dollars", "cent", "cents"), "£": ("pound", "pounds", "penny", "pence"),
              "€": ("euro", "euros", "cent", "cents")}

_TYPOGRAPHY = str.maketrans({"\u2018": "'", "\u2019": "'", "\u02bc": "'", "`": "'", "\u201c": '"',
                             "\u201d": '"', "\u201e": '"', "\u00ab": '"', "\u00bb": '"', "\u00a0": " "})
_URL = re.compile(r"(?i)\b(?:https?://)?((?:www\.)?[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|org|net|edu|gov|io))\b")
_MONEY = re.compile(r"([$£€])\s?(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{2}))?(?:\s(thousand|million|billion)\b)?")
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s?%")
_AMPM = r"([AaPp])\.?\s?[Mm]\b\.?"
_CLOCK = re.compile(r"\b(\d{1,2}):(\d{2})\b(?:\s?" + _AMPM + ")?")
_HOUR_AMPM = re.compile(r"\b(\d{1,2})\s?" + _AMPM)
_ORDINAL = re.compile(r"\b(\d+)(st|nd|rd|th)\b", re.IGNORECASE)
_DECADE = re.compile(r"\b(1[1-9]\d0|20\d0)'?s\b")
_SHORT_DECADE = re.compile(r"(?<!\w)'(\d)0s\b")
_DIGIT_CUE = re.compile(r"(?i)\b(" + "|".join(sorted(DIGIT_CUES)) + r")((?:\s+(?:number|no\.?))?\s+)(\d{3,})\b")
_YEAR = re.compile(r"(?<![\d.,])\b(1[1-9]\d\d|20\d\d)\b(?![.,]\d)")
_DECIMAL = re.compile(r"\b(\d+)\.(\d+)\b")
_THOUSANDS = re.compile(r"\b\d{1,3}(?:,\d{3})+\b")
_LEADING_ZERO = re.compile(r"\b0\d+\b")
_INTEGER = re.compile(r"\d+")
_GLUED = re.compile(r"(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])")
_SAINT_STREET = re.compile(r"(?<![\w.])St\.(\s+)(?=([A-Z])?)")
_DOCTOR_DRIVE = re.compile(r"(?<![\w.])Dr\.(\s+)(?=([A-Z])?)")
_NUMBER_ABBR = re.compile(r"(?<![\w.])No\.(?=\s*\d)")
_INITIALISM = re.compile(r"(?<![\w.])((?:[A-Za-z]\.){2,})")
_ACRONYM = re.compile(r"\b[A-Z]{2,}\b")
_BETWEEN_WORDS = re.compile(r"(?<=\w)[-/](?=\w)")
_TOKEN = re.compile(r"[A-Za-z']+|[.,!?;:]")
_ABBREV = re.compile(r"(?<![\w.])(" + "|".join(re.escape(k) for k in sorted(ABBREVIATIONS, key=len, reverse=True))
                     + r")(?![\w])")
_DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def number_words(n: int, to: str = "cardinal") -> str:
    """``n`` in words without hyphens or commas (``to``: ``cardinal``, ``ordinal`` or ``year``)."""
    return " ".join(re.sub(r"[-,]", " ", num2words(n, to=to, lang="en")).split())


def digit_words(digits: str) -> str:
    """A digit string read digit by digit: ``"4242"`` -> ``"four two four two"``."""
    return " ".join(_DIGITS[int(d)] for d in digits)


def _plural(words: str) -> str:
    """``"nineteen ninety"`` -> ``"nineteen nineties"`` (the last word in the plural)."""
    head, _, last = words.rpartition(" ")
    last = last[:-1] + "ies" if last.endswith("y") else last + "s"
    return f"{head} {last}".strip()


def _money(m: re.Match) -> str:
    one, many, sub_one, sub_many = CURRENCIES[m.group(1)]
    whole = int(m.group(2).replace(",", ""))
    if m.group(4):
        return f" {number_words(whole)} {m.group(4)} {many} "
    words = f"{number_words(whole)} {one if whole == 1 else many}"
    cents = int(m.group(3) or 0)
    if cents:
        words += f" and {number_words(cents)} {sub_one if cents == 1 else sub_many}"
    return f" {words} "


def _clock(m: re.Match) -> str:
    hour, minute = int(m.group(1)), int(m.group(2))
    if hour > 24 or minute > 59:
        return m.group(0)
    ampm = f" {m.group(3).lower()} m" if m.group(3) else ""
    if minute == 0:
        minutes = "" if ampm else " o'clock"
    elif minute < 10:
        minutes = f" oh {number_words(minute)}"
    else:
        minutes = f" {number_words(minute)}"
    return f" {number_words(hour)}{minutes}{ampm} "


def _numbers(text: str) -> str:
    """Steps 3 and 4 of the module docstring: every digit becomes words."""
    text = _MONEY.sub(_money, text)
    text = _PERCENT.sub(lambda m: f" {_decimal_or_int(m.group(1))} percent ", text)
    text = _CLOCK.sub(_clock, text)
    text = _HOUR_AMPM.sub(lambda m: f" {number_words(int(m.group(1)))} {m.group(2).lower()} m ", text)
    text = _ORDINAL.sub(lambda m: f" {number_words(int(m.group(1)), 'ordinal')} ", text)
    text = _DECADE.sub(lambda m: f" {_plural(number_words(int(m.group(1)), 'year'))} ", text)
    text = _SHORT_DECADE.sub(lambda m: f" {_plural(number_words(10 * int(m.group(1))))} ", text)
    text = _DIGIT_CUE.sub(lambda m: f"{m.group(1)}{m.group(2)}{digit_words(m.group(3))}", text)
    text = _YEAR.sub(lambda m: f" {number_words(int(m.group(1)), 'year')} ", text)
    text = _DECIMAL.sub(lambda m: f" {_decimal_or_int(m.group(0))} ", text)
    text = _THOUSANDS.sub(lambda m: f" {number_words(int(m.group(0).replace(',', '')))} ", text)
    text = _LEADING_ZERO.sub(lambda m: f" {digit_words(m.group(0))} ", text)
    text = _GLUED.sub(" ", text)
    return _INTEGER.sub(lambda m: f" {number_words(int(m.group(0)))} ", text)


def _decimal_or_int(s: str) -> str:
    whole, _, frac = s.partition(".")
    words = number_words(int(whole))
    return f"{words} point {digit_words(frac)}" if frac else words


def _abbreviations(text: str) -> str:
    """Step 5: abbreviations, then dotted initialisms."""
    text = _SAINT_STREET.sub(lambda m: ("saint" if m.group(2) else "street") + m.group(1), text)
    text = _DOCTOR_DRIVE.sub(lambda m: ("doctor" if m.group(2) else "drive") + m.group(1), text)
    text = _ABBREV.sub(lambda m: ABBREVIATIONS[m.group(1)], text)
    return _INITIALISM.sub(lambda m: " " + " ".join(m.group(1).replace(".", "")) + " ", text)


def _typography(text: str) -> str:
    """Step 1: one form for quotes, dashes and ellipses."""
    text = unicodedata.normalize("NFKC", text).translate(_TYPOGRAPHY)
    text = re.sub(r"\s*(?:\.\s*){3,}|\s*\u2026", " , ", text)
    return re.sub(r"\s+[-\u2013\u2014]+\s+|\s*[\u2013\u2014]+\s*|\s*--+\s*", " , ", text)


def words_and_punctuation(text: str, symbols: Mapping[str, str] | None = None, spell_acronyms: bool = False,
                          spoken_acronyms: Iterable[str] = ()) -> list[tuple[str, str]]:
    """The normalised words of ``text`` (lower case) with the punctuation that follows each one.

    Returns:
        ``[(word, punctuation)]`` where punctuation is ``""``, ``","`` or a final ``"."``, ``"?"``, ``"!"``.
    Args:
        symbols: extra ``{symbol: word}`` read aloud (added to :data:`SYMBOLS`).
        spell_acronyms: spell upper case words of two letters or more (``PBX`` -> ``p b x``) in text that
            also has lower case letters.
        spoken_acronyms: upper case words said as words, never spelled (``NASA``).
    """
    text = _typography(text)
    text = _URL.sub(lambda m: " " + " dot ".join("w w w" if p.lower() == "www" else p
                                                 for p in m.group(1).split(".")) + " ", text)
    text = _numbers(_NUMBER_ABBR.sub("number", text))
    text = _abbreviations(text)
    for sym, word in {**SYMBOLS, **(symbols or {})}.items():
        text = text.replace(sym, f" {word} ")
    text = _BETWEEN_WORDS.sub(" ", text)
    if spell_acronyms and re.search(r"[a-z]", text):
        keep = {a.upper() for a in spoken_acronyms}
        text = _ACRONYM.sub(lambda m: m.group(0) if m.group(0) in keep else " ".join(m.group(0)), text)
    out: list[tuple[str, str]] = []
    for tok in _TOKEN.findall(text):
        if tok[0] in ".,!?;:":
            if out:
                mark = "," if tok in ",;:" else tok
                if out[-1][1] in ("", ","):
                    out[-1] = (out[-1][0], mark)
            continue
        word = tok.strip("'")
        if word:
            out.append((word.lower(), ""))
    return out


def normalize_text(text: str, **options) -> str:
    """LibriSpeech-style transcript of ``text`` (options as in :func:`words_and_punctuation`)."""
    return " ".join(w for w, _ in words_and_punctuation(text, **options)).upper()


def spoken_text(text: str, **options) -> str:
    """The words of :func:`normalize_text` in lower case with phrase punctuation, for a synthesizer.

    Commas stay where a phrase break is; the text ends with its own ``.``/``?``/``!`` (``.`` if it had none).
    """
    pairs = words_and_punctuation(text, **options)
    if not pairs:
        return ""
    if pairs[-1][1] in ("", ","):
        pairs[-1] = (pairs[-1][0], ".")
    return " ".join(w + p for w, p in pairs)
