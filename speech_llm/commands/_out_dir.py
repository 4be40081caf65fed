"""The ``--out DIR`` check every command that writes a new directory shares (``export``, ``merge``,
``swap-projector``, ``build-llm``). Not a command module (the leading underscore)."""

from __future__ import annotations

from pathlib import Path

from speech_common.errors import UserError


def refuse_nonempty_out(out: Path, overwrite: bool, what: str = "replace it") -> None:
    """Raise :class:`UserError` when ``out`` exists and holds anything, unless ``--overwrite`` was given
    (``what`` says what --overwrite then does)."""
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise UserError(f"--out {out} exists and is not empty (add --overwrite to {what})")
