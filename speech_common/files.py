"""File helpers every package may use."""

from __future__ import annotations

import hashlib
import os

CHUNK_BYTES = 1 << 20


def file_digest(path: str | os.PathLike, algo: str = "sha256") -> str:
    """Hex digest of a file's bytes (``algo``: any ``hashlib`` name), read in 1 MiB blocks."""
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK_BYTES), b""):
            h.update(block)
    return h.hexdigest()
