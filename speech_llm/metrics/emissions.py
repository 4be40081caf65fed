"""The emission-times file ``emissions.jsonl``: ``speech-llm decode`` writes it, ``score`` reads it.

One JSON object per line, one line per utterance::

    {"key": "1001-100-0000",
     "duration": 2.415,              # seconds of audio in the utterance (speech input; required there)
     "words": [{"word": "open", "audio_s": 0.64, "wall_s": 0.071},
               {"word": "the",  "audio_s": 1.28, "wall_s": 0.139}, ...],
     "wall_time": 0.412,             # wall-clock seconds from stream start to the final result
     "input_end_wall_s": 0.301,      # optional: wall clock when input_finished() was called
     "compute_s": 0.350,             # optional: seconds spent decoding this stream (for the RTF)
     "realtime": false,              # optional (default false): was the audio fed at playback pace?
     "src_len": 7}                   # optional, text input only: number of source words

Fields of each word, in the order the words were written (committed):

- ``word``: the word as written (before any scoring normalisation).
- ``audio_s``: seconds of audio the stream had consumed when the word was written — the *ideal*
  emission time. Speech input.
- ``src_words``: instead of ``audio_s`` for text input (``--task mt``): how many source words had been
  read when the word was written.
- ``wall_s``: wall-clock seconds since the stream started (the first ``accept_waveform`` call, or the
  first source word for text input) when the word was written.

``realtime`` says how to read the wall clock (see :func:`speech_llm.metrics.latency.computation_aware_time`):
``true`` when audio was given to the stream no faster than it plays (live microphone,
``transcribe --realtime``), so ``wall_s`` is already on the audio timeline; ``false`` when audio was
given as fast as the decoder took it (the usual test-set decoding), so ``wall_s`` is the computation time
spent so far. ``compute_s`` lets batched decoding report each stream's share of the computation; without
it the real-time factor uses ``wall_time`` (and is not defined for ``realtime`` streams).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from speech_common.errors import UserError


class WordEmission(NamedTuple):
    """One written word: ``audio_s`` (speech input) or ``src_words`` (text input), and ``wall_s``."""

    word: str
    audio_s: float | None
    wall_s: float
    src_words: int | None = None


@dataclass
class UttEmissions:
    """One line of ``emissions.jsonl`` (field meanings in the module docstring)."""

    key: str
    words: list[WordEmission]
    wall_time: float
    duration: float | None = None
    input_end_wall_s: float | None = None
    compute_s: float | None = None
    realtime: bool = False
    src_len: int | None = None
    extra: dict = field(default_factory=dict)   # unknown fields, kept as read

    @property
    def text_input(self) -> bool:
        """True when the words carry ``src_words`` (text source) rather than ``audio_s``."""
        return bool(self.words) and self.words[0].src_words is not None

    def to_json(self) -> dict:
        words = []
        for w in self.words:
            d: dict = {"word": w.word}
            if w.src_words is not None:
                d["src_words"] = w.src_words
            else:
                d["audio_s"] = w.audio_s
            d["wall_s"] = w.wall_s
            words.append(d)
        rec: dict = {"key": self.key}
        if self.duration is not None:
            rec["duration"] = self.duration
        rec["words"] = words
        rec["wall_time"] = self.wall_time
        for name in ("input_end_wall_s", "compute_s", "src_len"):
            if getattr(self, name) is not None:
                rec[name] = getattr(self, name)
        rec["realtime"] = self.realtime
        rec.update(self.extra)
        return rec


_KNOWN = {"key", "duration", "words", "wall_time", "input_end_wall_s", "compute_s", "realtime", "src_len"}


def _number(rec: dict, name: str, where: str, required: bool) -> float | None:
    v = rec.get(name)
    if v is None:
        if required:
            raise UserError(f"{where}: missing field {name!r}")
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
        raise UserError(f"{where}: field {name!r} must be a non-negative number, got {v!r}")
    return float(v)


def _parse_word(w: object, where: str) -> WordEmission:
    if not isinstance(w, dict) or not isinstance(w.get("word"), str):
        raise UserError(f"{where}: want {{'word', 'audio_s' or 'src_words', 'wall_s'}}, got {w!r}")
    wall = _number(w, "wall_s", where, required=True)
    if "src_words" in w:
        n = w["src_words"]
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise UserError(f"{where}: 'src_words' must be a non-negative integer, got {n!r}")
        return WordEmission(w["word"], None, wall, n)
    return WordEmission(w["word"], _number(w, "audio_s", where, required=True), wall)


def parse_record(rec: object, where: str) -> UttEmissions:
    """Check and convert one decoded JSON line; ``where`` (``file:line``) prefixes every error."""
    if not isinstance(rec, dict) or not isinstance(rec.get("key"), str) or not rec["key"]:
        raise UserError(f"{where}: want a JSON object with a non-empty 'key'")
    where = f"{where} ({rec['key']})"
    if not isinstance(rec.get("words"), list):
        raise UserError(f"{where}: missing list field 'words'")
    words = [_parse_word(w, f"{where} word {i}") for i, w in enumerate(rec["words"])]
    if len({w.src_words is None for w in words}) > 1:
        raise UserError(f"{where}: mixes words with 'audio_s' and words with 'src_words'")
    text_input = bool(words) and words[0].src_words is not None
    realtime = rec.get("realtime", False)
    if not isinstance(realtime, bool):
        raise UserError(f"{where}: 'realtime' must be true or false, got {realtime!r}")
    src_len = rec.get("src_len")
    if src_len is not None and (isinstance(src_len, bool) or not isinstance(src_len, int) or src_len < 0):
        raise UserError(f"{where}: 'src_len' must be a non-negative integer, got {src_len!r}")
    return UttEmissions(
        key=rec["key"], words=words, wall_time=_number(rec, "wall_time", where, required=True),
        duration=_number(rec, "duration", where, required=not text_input and "src_len" not in rec),
        input_end_wall_s=_number(rec, "input_end_wall_s", where, required=False),
        compute_s=_number(rec, "compute_s", where, required=False), realtime=realtime, src_len=src_len,
        extra={k: v for k, v in rec.items() if k not in _KNOWN})


def read_emissions(path: str | os.PathLike) -> dict[str, UttEmissions]:
    """Read ``emissions.jsonl`` into ``{key: UttEmissions}`` (file order).

    Raises:
        UserError: naming the file, line and utterance of the first bad line or duplicated key.
    """
    path = Path(path)
    out: dict[str, UttEmissions] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"{where}: invalid JSON ({e.msg})") from None
            utt = parse_record(rec, where)
            if utt.key in out:
                raise UserError(f"{where}: duplicated utterance {utt.key!r}")
            out[utt.key] = utt
    return out


def write_emissions(path: str | os.PathLike, utts: Iterable[UttEmissions]) -> None:
    """Write one JSON line per utterance (the inverse of :func:`read_emissions`)."""
    with open(path, "w", encoding="utf-8") as f:
        for u in utts:
            f.write(json.dumps(u.to_json(), ensure_ascii=False) + "\n")
