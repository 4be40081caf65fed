"""The decode dir: what every decoder writes and the scorer and the report read (one format for speech
recognition, speech translation and text translation).

    text             hypotheses, Kaldi format ("<utt> <words...>"; "<utt>" alone for an empty output)
    emissions.jsonl  per-utterance word emission times (:mod:`speech_llm.metrics.emissions`)
    summary.json     :class:`DecodeSummary`: task, mode, options, counts, compute time

``speech-llm score`` copies the summary into ``results.json`` (as ``decode_summary``); ``speech-llm report``
takes each row's mode and chunk from it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from speech_common.errors import UserError
from speech_llm.metrics.emissions import UttEmissions, write_emissions

SUMMARY = "summary.json"
MODES = ("streaming", "batch", "wait-k")


@dataclass
class DecodeSummary:
    """How a decode dir was made.

    task: ``asr``, ``st`` or ``mt``. mode: ``streaming`` / ``batch`` (speech) or ``wait-k`` / ``batch`` (text).
    options: the decoder's options (chunk, look-ahead, caps, endpointing; ``k`` for wait-k).
    chunk_ms: the streaming chunk (speech); k: the wait-k lag (text).
    audio_s, compute_s, rtf: seconds of input audio (speech), decoding compute, their ratio.
    info: where it came from (``exp_dir``, ``target_lang``, ...).
    """

    task: str
    mode: str
    num_utts: int
    compute_s: float
    options: dict = field(default_factory=dict)
    chunk_ms: float | None = None
    k: int | None = None
    audio_s: float | None = None
    rtf: float | None = None
    info: dict = field(default_factory=dict)
    finished_at: str = ""

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.rtf is None and self.audio_s:
            self.rtf = round(self.compute_s / self.audio_s, 4)


def write_decode_dir(out_dir: str | Path, texts: Iterable[tuple[str, str]], summary: DecodeSummary,
                     emissions: Iterable[UttEmissions] | None = None) -> dict:
    """Write a decode dir: ``text`` (one ``<utt> <text>`` line per ``(utt, text)`` pair, in the given order;
    ``<utt>`` alone for an empty text), ``emissions.jsonl`` when ``emissions`` are given, then
    ``summary.json`` (:func:`write_summary`, last: a dir with a summary is complete). Returns the summary."""
    from data_prep.fileutil import atomic_write_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "text", "".join(f"{k} {t}".rstrip() + "\n" for k, t in texts))
    if emissions is not None:
        write_emissions(out / "emissions.jsonl", emissions)
    return write_summary(out, summary)


def write_summary(out_dir: str | Path, summary: DecodeSummary) -> dict:
    """Write ``summary.json`` (atomically) with the finishing time; returns what was written."""
    from data_prep.fileutil import atomic_write_text

    summary.finished_at = summary.finished_at or time.strftime("%Y-%m-%d %H:%M:%S")
    data = asdict(summary)
    atomic_write_text(Path(out_dir) / SUMMARY, json.dumps(data, indent=2) + "\n")
    return data


def read_summary(decode_dir: str | Path) -> dict | None:
    """The summary of a decode dir as a dict, or None when it has none."""
    path = Path(decode_dir) / SUMMARY
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: invalid JSON ({e.msg}, line {e.lineno})") from None
