"""Atomic file and directory writes, so that a failed or interrupted run never leaves half-written output.

A file is written to a temporary sibling and renamed over the target (``os.replace`` is atomic on one
file system). A set of files (a Kaldi data dir) is first written completely under temporary names, then
renamed one after the other; other files already in that directory are left alone. A whole directory (a
generated corpus) is built under a temporary sibling and swapped in: the old one is moved aside, the new
one renamed into place, then the old one removed. An existing output therefore survives every failure
that happens before the renames.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _umask_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give a new file (0o666 minus the umask)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file and a rename (the file gets the usual
    permissions, not mkstemp's private 0600)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.chmod(tmp, _umask_mode())
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_files(directory: str | os.PathLike, files: dict[str, str]) -> None:
    """Write ``{file name: text}`` into ``directory``: all temporaries first, then all renames."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    temps: list[tuple[str, Path]] = []
    try:
        for name, text in files.items():
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
            temps.append((name, Path(tmp)))
            os.chmod(tmp, _umask_mode())
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
                f.write(text)
        for name, tmp in temps:
            os.replace(tmp, directory / name)
    finally:
        for _, tmp in temps:
            tmp.unlink(missing_ok=True)


@contextmanager
def staged_dir(final: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary directory next to ``final``; on success it replaces ``final``.

    On an exception the temporary directory is removed and ``final`` is left exactly as it was.
    Files of ``final`` that the new content does not contain are not kept: the swap is whole-directory.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    replace_dir(tmp, final)


def replace_dir(new: Path, final: Path) -> None:
    """Rename directory ``new`` to ``final``, replacing an existing ``final`` (moved aside, then removed)."""
    old = None
    if final.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".old", dir=final.parent))
        os.rmdir(old)
        os.replace(final, old)
    try:
        os.replace(new, final)
    except BaseException:
        if old is not None:
            os.replace(old, final)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
