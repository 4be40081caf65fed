"""JSONL manifests: the training-side view of a data dir, one utterance per line.

Each line is a JSON object::

    {"key": "1001-100-0000", "audio": "/abs/path/1001-100-0000.flac", "duration": 2.415,
     "text": "OPEN THE DOOR", "speaker": "1001",
     "words": [{"word": "OPEN", "start": 0.21, "end": 0.55}, ...],      (optional, seconds)
     "translation": {"fr": "ouvre la porte", "de": "öffne die Tür"}}      (optional)

Relative ``audio`` paths are taken relative to the manifest's directory when read. Records are written
sorted by key; the file is replaced atomically. Bad records follow the rule of :mod:`data_prep.kaldi_dir`:
every problem is collected and reported in one :class:`~data_prep.kaldi_dir.DataError` naming the file,
line and utterance, and nothing is written.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from pathlib import Path

from data_prep.fileutil import atomic_write_text
from data_prep.kaldi_dir import (
    DataError,
    Problems,
    Utterance,
    check_utterances,
    read_data_dir,
    write_data_dir,
)

WORD_TIME_TOLERANCE_S = 0.05
"""Word times may exceed the utterance duration by this much (rounding)."""


def utterance_to_record(u: Utterance) -> dict:
    """Manifest record of an utterance (``words``/``translation`` only when known)."""
    rec: dict = {"key": u.key, "audio": str(u.wav), "duration": round(float(u.duration), 4),
                 "text": u.text, "speaker": u.speaker}
    if u.words is not None:
        rec["words"] = u.words
    if u.translation is not None:
        rec["translation"] = u.translation
    return rec


def record_to_utterance(rec: dict) -> Utterance:
    """Inverse of :func:`utterance_to_record` (the record is assumed checked)."""
    return Utterance(key=rec["key"], wav=rec["audio"], text=rec["text"], speaker=str(rec["speaker"]),
                     duration=float(rec["duration"]), words=rec.get("words"),
                     translation=rec.get("translation"))


def _check_record(rec: object, where: str | Path, lineno: int | None, problems: Problems) -> bool:
    """Check one record's fields and types; ``True`` when it is usable."""
    if not isinstance(rec, dict):
        problems.add(where, f"not a JSON object: {str(rec)[:60]}", lineno)
        return False
    key = rec.get("key")
    if not isinstance(key, str) or not key:
        problems.add(where, "missing or empty 'key'", lineno)
        return False
    ok = True
    for field, types in (("audio", str), ("text", str), ("speaker", str), ("duration", (int, float))):
        if not isinstance(rec.get(field), types) or isinstance(rec.get(field), bool):
            problems.add(where, f"missing or ill-typed field {field!r}", lineno, key)
            ok = False
    if not ok:
        return False
    if not rec["text"].strip():
        problems.add(where, "empty transcript", lineno, key)
        ok = False
    duration = float(rec["duration"])
    if not (math.isfinite(duration) and duration > 0):
        problems.add(where, f"bad duration {rec['duration']!r}", lineno, key)
        ok = False
    words = rec.get("words")
    if words is not None:
        if not isinstance(words, list):
            problems.add(where, "'words' is not a list", lineno, key)
            ok = False
        else:
            for i, w in enumerate(words):
                good = (isinstance(w, dict) and isinstance(w.get("word"), str)
                        and all(isinstance(w.get(t), int | float) for t in ("start", "end")))
                if not good or not 0 <= w["start"] <= w["end"] <= duration + WORD_TIME_TOLERANCE_S:
                    problems.add(where, f"bad word entry {i}: {w!r} (want word, 0 <= start <= end <= "
                                 f"duration)", lineno, key)
                    ok = False
                    break
    tr = rec.get("translation")
    if tr is not None and not (isinstance(tr, dict) and all(isinstance(k, str) and isinstance(v, str)
                                                            for k, v in tr.items())):
        problems.add(where, "'translation' must map language codes to strings", lineno, key)
        ok = False
    return ok


def read_manifest(path: str | os.PathLike) -> list[dict]:
    """Read a JSONL manifest into a list of records (in file order), checking every line.

    Raises:
        DataError: listing every bad line (file, line, utterance): unparsable JSON, missing or
            ill-typed fields, empty transcript, non-positive duration, bad word times, duplicated key.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"manifest {path}", [f"{path}: file not found"], note="")
    problems = Problems()
    records: list[dict] = []
    first_line: dict[str, int] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                problems.add(path, "blank line", lineno)
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                problems.add(path, f"invalid JSON ({e.msg})", lineno)
                continue
            if not _check_record(rec, path, lineno, problems):
                continue
            if rec["key"] in first_line:
                problems.add(path, f"duplicated key (first at line {first_line[rec['key']]})", lineno, rec["key"])
                continue
            first_line[rec["key"]] = lineno
            if not os.path.isabs(rec["audio"]):
                rec["audio"] = str(path.parent / rec["audio"])
            records.append(rec)
    problems.raise_if_any(f"manifest {path}", note="")
    return records


def write_manifest(path: str | os.PathLike, records: Iterable[dict]) -> None:
    """Write records (sorted by key) as JSONL, atomically (temporary file + rename).

    Raises:
        DataError: listing every bad record; nothing is written then.
    """
    path = Path(path)
    problems = Problems()
    where = f"records for {path}"
    good = [r for r in records if _check_record(r, where, None, problems)]
    check_utterances([record_to_utterance(r) for r in good], where, problems)
    problems.raise_if_any(f"manifest {path}")
    good.sort(key=lambda r: r["key"])
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in good))


def data_dir_to_manifest(data_dir: str | os.PathLike, extra: dict[str, dict] | None = None,
                         out_path: str | os.PathLike | None = None) -> list[dict]:
    """Records of a data dir, with optional per-utterance fields merged in; written to ``out_path`` if given.

    Args:
        data_dir: a Kaldi data dir (read with :func:`~data_prep.kaldi_dir.read_data_dir`).
        extra: ``{key: {"words": [...], "translation": {...}}}`` added to the matching records; a key
            that is not in the data dir is an error.
        out_path: where to write the manifest (e.g. ``data_dir/manifest.jsonl``); ``None`` to only return.
    """
    utts = read_data_dir(data_dir)
    records = [utterance_to_record(u) for u in utts.values()]
    if extra:
        unknown = sorted(set(extra) - set(utts))
        if unknown:
            raise DataError(f"extra fields for {data_dir}",
                            [f"extra fields: utterance {k}: not in {data_dir}" for k in unknown])
        for rec in records:
            rec.update(extra.get(rec["key"], {}))
    if out_path is not None:
        write_manifest(out_path, records)
    return records


def manifest_to_data_dir(manifest: str | os.PathLike | list[dict], data_dir: str | os.PathLike) -> dict[str, Utterance]:
    """Write the data dir of a manifest (a path or a list of records); returns the utterances by key."""
    records = read_manifest(manifest) if isinstance(manifest, str | os.PathLike) else list(manifest)
    problems = Problems()
    good = [r for r in records if _check_record(r, f"records for {data_dir}", None, problems)]
    problems.raise_if_any(f"data dir {data_dir}")
    utts = [record_to_utterance(r) for r in good]
    write_data_dir(data_dir, utts)
    return {u.key: u for u in sorted(utts, key=lambda u: u.key)}
