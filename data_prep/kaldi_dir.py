"""Kaldi-style data directories: read, write, validate.

A data dir holds one split (``data/dev_clean``) as plain text files, one record per line, keys sorted
(byte order, as ``LC_ALL=C sort``) and unique::

    wav.scp   <utt> <audio path>            (a plain file path; piped commands are not supported)
    text      <utt> <TRANSCRIPT WORDS>
    utt2spk   <utt> <speaker>
    spk2utt   <speaker> <utt> <utt> ...     (the inverse of utt2spk)
    utt2dur   <utt> <seconds>

Every utterance must appear in every file. ``wav.scp``, ``text`` and ``utt2spk`` are required to read a
directory; ``spk2utt`` and ``utt2dur`` are checked when present (durations are taken from the audio
headers when ``utt2dur`` is absent). Other files in the directory (``manifest.jsonl``, features,
statistics) are never touched.

Rule for bad records (the same in every reader and preparer of :mod:`data_prep`): **stop before writing
anything**. All input is checked first and every problem is collected; if there is any, one
:class:`DataError` lists them all, each naming the file, the line and the utterance, and no output file
is created or modified. Outputs are written atomically (temporary files, then renames), so a data dir,
manifest or corpus that was prepared before is never lost or left half-written by a failed run. Fix the
input (or remove the bad utterances from it) and run again.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from data_prep.audio import AudioError, audio_info, read_audio
from data_prep.fileutil import atomic_write_files
from encoders.constants import SAMPLE_RATE
from speech_common.errors import UserError

MAX_LISTED_PROBLEMS = 30
"""At most this many problems are spelled out in one error message (the rest are counted)."""

DURATION_TOLERANCE_S = 0.01
"""``utt2dur`` and the decoded audio may differ by this much (rounding of the written value)."""

_WHITESPACE = re.compile(r"\s")


@dataclass
class Utterance:
    """One utterance of a data dir.

    Attributes:
        key: utterance id (no whitespace), e.g. ``1272-128104-0000``.
        wav: path of the audio file.
        text: transcript (non-empty; LibriSpeech style is upper case).
        speaker: speaker id (no whitespace).
        duration: seconds.
        words: optional word times ``[{"word", "start", "end"}]`` in seconds (manifest only).
        translation: optional reference translations ``{"fr": ..., "de": ...}`` (manifest only).
    """

    key: str
    wav: str
    text: str
    speaker: str
    duration: float
    words: list[dict] | None = None
    translation: dict[str, str] | None = None


class DataError(UserError):
    """Bad input data; ``problems`` lists each one as ``file:line: utterance KEY: what``."""

    def __init__(self, what: str, problems: list[str], note: str = "nothing was written"):
        self.problems = list(problems)
        shown = self.problems[:MAX_LISTED_PROBLEMS]
        lines = [f"{what}: {len(self.problems)} problem(s) found" + (f", {note}:" if note else ":")]
        lines += [f"  {p}" for p in shown]
        if len(self.problems) > len(shown):
            lines.append(f"  ... and {len(self.problems) - len(shown)} more")
        super().__init__("\n".join(lines))


class Problems:
    """Collects problems so that all of them are reported at once (see the module docstring)."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str | os.PathLike, msg: str, line: int | None = None, key: str | None = None) -> None:
        loc = f"{where}:{line}" if line is not None else f"{where}"
        utt = f" utterance {key}:" if key is not None else ""
        self.items.append(f"{loc}:{utt} {msg}")

    def raise_if_any(self, what: str, note: str = "nothing was written") -> None:
        if self.items:
            raise DataError(what, self.items, note)

    def __bool__(self) -> bool:
        return bool(self.items)


# ----------------------------------------------------------------------------------------------- reading

def _read_table(path: Path, problems: Problems, allow_empty_value: bool = False) -> dict[str, tuple[str, int]]:
    """``{key: (value, line number)}`` of a ``<key> <value>`` file, checking order and uniqueness."""
    table: dict[str, tuple[str, int]] = {}
    prev = None
    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, start=1):
            line = raw.rstrip("\n")
            if not line.strip():
                problems.add(path, "blank line", lineno)
                continue
            parts = line.strip().split(maxsplit=1)
            key, value = parts[0], (parts[1].strip() if len(parts) > 1 else "")
            if not value and not allow_empty_value:
                problems.add(path, "empty value (nothing after the key)", lineno, key)
                continue
            if key in table:
                problems.add(path, f"duplicated key (first at line {table[key][1]})", lineno, key)
                continue
            if prev is not None and key < prev:
                problems.add(path, f"not sorted: comes after {prev} (sort with LC_ALL=C sort)", lineno, key)
            prev = key
            table[key] = (value, lineno)
    return table


def _read_spk2utt(path: Path, utt2spk: dict[str, tuple[str, int]], problems: Problems) -> None:
    """Check ``spk2utt`` against ``utt2spk``: every utterance listed once, under its own speaker."""
    seen: dict[str, int] = {}
    for spk, (utts, lineno) in _read_table(path, problems).items():
        for utt in utts.split():
            if utt in seen:
                problems.add(path, f"listed twice (first at line {seen[utt]})", lineno, utt)
            seen[utt] = lineno
            if utt not in utt2spk:
                problems.add(path, "not in utt2spk", lineno, utt)
            elif utt2spk[utt][0] != spk:
                problems.add(path, f"under speaker {spk} but utt2spk says {utt2spk[utt][0]}", lineno, utt)
    for utt, (_, lineno) in utt2spk.items():
        if utt not in seen:
            problems.add(path, f"missing (utt2spk line {lineno} has it)", None, utt)


def _load(data_dir: str | os.PathLike, problems: Problems) -> dict[str, Utterance]:
    """Parse a data dir into utterances, adding every structural problem to ``problems``."""
    d = Path(data_dir)
    if not d.is_dir():
        raise DataError(f"data dir {d}", [f"{d}: not a directory"], note="")
    for name in ("wav.scp", "text", "utt2spk"):
        if not (d / name).is_file():
            problems.add(d / name, "required file is missing")
    problems.raise_if_any(f"data dir {d}", note="")

    wav = _read_table(d / "wav.scp", problems)
    text = _read_table(d / "text", problems, allow_empty_value=True)
    utt2spk = _read_table(d / "utt2spk", problems)
    utt2dur = _read_table(d / "utt2dur", problems) if (d / "utt2dur").is_file() else None
    if (d / "spk2utt").is_file():
        _read_spk2utt(d / "spk2utt", utt2spk, problems)

    for key, (value, lineno) in text.items():
        if not value:
            problems.add(d / "text", "empty transcript", lineno, key)
    for key, (value, lineno) in wav.items():
        if value.endswith("|"):
            problems.add(d / "wav.scp", "piped commands are not supported; give an audio file path", lineno, key)
        elif _WHITESPACE.search(value):
            problems.add(d / "wav.scp", "audio path contains whitespace", lineno, key)
    tables = {"wav.scp": wav, "text": text, "utt2spk": utt2spk}
    if utt2dur is not None:
        tables["utt2dur"] = utt2dur
    all_keys = sorted(set().union(*(t.keys() for t in tables.values())))
    for name, table in tables.items():
        for key in all_keys:
            if key not in table:
                others = [f"{n} line {t[key][1]}" for n, t in tables.items() if key in t]
                problems.add(d / name, f"missing (present in {', '.join(others)})", None, key)

    durations: dict[str, float] = {}
    if utt2dur is not None:
        for key, (value, lineno) in utt2dur.items():
            try:
                dur = float(value)
            except ValueError:
                dur = float("nan")
            if not math.isfinite(dur) or dur <= 0:
                problems.add(d / "utt2dur", f"bad duration {value!r} (want seconds > 0)", lineno, key)
            else:
                durations[key] = dur

    utts: dict[str, Utterance] = {}
    for key in all_keys:
        if all(key in t for t in tables.values()):
            utts[key] = Utterance(key=key, wav=wav[key][0], text=text[key][0], speaker=utt2spk[key][0],
                                  duration=durations.get(key, float("nan")))
    return utts


def read_data_dir(data_dir: str | os.PathLike) -> dict[str, Utterance]:
    """Read a data dir into ``{key: Utterance}`` (keys sorted), checking its structure.

    Checks: required files present, no blank lines, keys unique and sorted, every utterance in every
    file, non-empty transcripts, positive durations, ``spk2utt`` consistent with ``utt2spk``. Audio is not
    decoded; durations missing from ``utt2dur`` (no such file) are read from the audio headers.

    Raises:
        DataError: listing every problem found (file, line, utterance).
    """
    problems = Problems()
    utts = _load(data_dir, problems)
    for utt in utts.values():
        if math.isnan(utt.duration):
            try:
                frames, sr = audio_info(utt.wav)
                utt.duration = frames / sr
            except AudioError as e:
                problems.add(Path(data_dir) / "wav.scp", str(e), None, utt.key)
    problems.raise_if_any(f"data dir {data_dir}", note="")
    return utts


def validate_data_dir(data_dir: str | os.PathLike, check_audio: bool = True) -> dict[str, Utterance]:
    """Validate a data dir completely and return its utterances.

    Everything :func:`read_data_dir` checks, plus: every audio file exists and has a readable header;
    with ``check_audio`` every file is decoded completely (catching truncated or corrupt files) and
    its duration must match ``utt2dur`` within :data:`DURATION_TOLERANCE_S`.

    Raises:
        DataError: listing every problem found (file, line, utterance).
    """
    problems = Problems()
    utts = _load(data_dir, problems)
    wav_scp = Path(data_dir) / "wav.scp"
    for utt in utts.values():
        try:
            if check_audio:
                seconds = len(read_audio(utt.wav)) / SAMPLE_RATE
            else:
                frames, sr = audio_info(utt.wav)
                seconds = frames / sr
        except AudioError as e:
            problems.add(wav_scp, str(e), None, utt.key)
            continue
        if math.isnan(utt.duration):
            utt.duration = seconds
        elif abs(seconds - utt.duration) > DURATION_TOLERANCE_S:
            problems.add(Path(data_dir) / "utt2dur",
                         f"duration {utt.duration:.4f} s but the audio lasts {seconds:.4f} s", None, utt.key)
    problems.raise_if_any(f"data dir {data_dir}", note="")
    return utts


# ----------------------------------------------------------------------------------------------- writing

def check_utterances(utts: Iterable[Utterance], where: str, problems: Problems) -> list[Utterance]:
    """Check records before they are written; returns them sorted by key. Problems go to ``problems``."""
    by_key: dict[str, Utterance] = {}
    for u in utts:
        if not u.key or _WHITESPACE.search(u.key):
            problems.add(where, "bad key (empty or containing whitespace)", None, repr(u.key))
            continue
        if u.key in by_key:
            problems.add(where, "duplicated key", None, u.key)
            continue
        by_key[u.key] = u
        if not u.text or not u.text.strip():
            problems.add(where, "empty transcript", None, u.key)
        elif "\n" in u.text:
            problems.add(where, "transcript contains a line break", None, u.key)
        if not u.speaker or _WHITESPACE.search(u.speaker):
            problems.add(where, f"bad speaker id {u.speaker!r}", None, u.key)
        if not u.wav or _WHITESPACE.search(str(u.wav)):
            problems.add(where, f"bad audio path {u.wav!r} (empty or containing whitespace)", None, u.key)
        if not (isinstance(u.duration, int | float) and math.isfinite(u.duration) and u.duration > 0):
            problems.add(where, f"bad duration {u.duration!r}", None, u.key)
    return [by_key[k] for k in sorted(by_key)]


def format_data_dir(utts: list[Utterance]) -> dict[str, str]:
    """The five files of a data dir as ``{file name: text}`` for utterances sorted by key."""
    spk2utt: dict[str, list[str]] = {}
    for u in utts:
        spk2utt.setdefault(u.speaker, []).append(u.key)
    return {
        "wav.scp": "".join(f"{u.key} {u.wav}\n" for u in utts),
        "text": "".join(f"{u.key} {' '.join(u.text.split())}\n" for u in utts),
        "utt2spk": "".join(f"{u.key} {u.speaker}\n" for u in utts),
        "spk2utt": "".join(f"{s} {' '.join(spk2utt[s])}\n" for s in sorted(spk2utt)),
        "utt2dur": "".join(f"{u.key} {u.duration:.4f}\n" for u in utts),
    }


def write_data_dir(data_dir: str | os.PathLike, utts: dict[str, Utterance] | Iterable[Utterance]) -> None:
    """Write ``wav.scp``, ``text``, ``utt2spk``, ``spk2utt``, ``utt2dur`` (sorted by key) into ``data_dir``.

    The records are checked first (unique keys, non-empty text, ids without whitespace, positive
    durations); on any problem nothing is written. The five files are replaced atomically; other
    files in ``data_dir`` are kept.

    Raises:
        DataError: listing every bad record.
    """
    records = list(utts.values()) if isinstance(utts, dict) else list(utts)
    problems = Problems()
    ordered = check_utterances(records, f"records for {data_dir}", problems)
    if not ordered and not problems:
        problems.add(f"records for {data_dir}", "no utterances to write")
    problems.raise_if_any(f"data dir {data_dir}")
    atomic_write_files(data_dir, format_data_dir(ordered))


def read_text_file(path: str | os.PathLike, allow_empty: bool) -> dict[str, str]:
    """``{utt: text}`` of a Kaldi ``text`` file (``<utt> <words...>``), in file order.

    For a decode dir's ``text`` (hypotheses: possibly unsorted, possibly empty) or a data dir's references,
    without the rest of a data dir. Blank lines are skipped.

    Raises:
        DataError: the file is missing, a key is duplicated, or a text is empty while ``allow_empty`` is
            False.
    """
    path = Path(path)
    problems = Problems()
    if not path.is_file():
        raise DataError(f"{path}", [f"{path}: file not found"], note="")
    out: dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            parts = line.strip().split(maxsplit=1)
            if not parts:
                continue
            key, text = parts[0], (parts[1] if len(parts) > 1 else "")
            if key in out:
                problems.add(path, "duplicated utterance", lineno, key)
            elif not text and not allow_empty:
                problems.add(path, "empty text", lineno, key)
            else:
                out[key] = text
    problems.raise_if_any(f"{path}", note="")
    return out
