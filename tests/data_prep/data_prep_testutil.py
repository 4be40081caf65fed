"""Helpers shared by the data_prep tests (imported by conftest.py and test modules)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from data_prep.audio import write_audio
from encoders.constants import SAMPLE_RATE

TINY_TEXTS = {
    "19-198-0000": "NORTHANGER ABBEY",
    "19-198-0001": "NO ONE WHO HAD EVER SEEN CATHERINE",
    "19-198-0002": "HER FATHER WAS A CLERGYMAN",
    "26-495-0000": "THE DOG BARKED",
    "26-495-0001": "IT WAS A DARK NIGHT",
}


def make_tiny_corpus(root: Path, part: str = "dev-clean") -> Path:
    """Write ``root/<part>/<spk>/<chapter>/`` with tone FLACs and ``.trans.txt``; returns the part dir."""
    chapters: dict[tuple[str, str], list[str]] = {}
    for i, key in enumerate(sorted(TINY_TEXTS)):
        spk, chapter, _ = key.split("-")
        chapters.setdefault((spk, chapter), []).append(key)
        t = np.arange(int(SAMPLE_RATE * (0.5 + 0.1 * i))) / SAMPLE_RATE
        write_audio(root / part / spk / chapter / f"{key}.flac", 0.3 * np.sin(2 * np.pi * (200 + 50 * i) * t))
    for (spk, chapter), keys in chapters.items():
        trans = root / part / spk / chapter / f"{spk}-{chapter}.trans.txt"
        trans.write_text("".join(f"{k} {TINY_TEXTS[k]}\n" for k in keys))
    return root / part
