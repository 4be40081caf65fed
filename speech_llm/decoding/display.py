"""Terminal display of a changing transcript: committed text plus the current partial hypothesis.

On a terminal the current line is rewritten in place (carriage return + clear to end of line); when the
output is a file or a pipe, a line is printed each time the text changes, so logs stay readable.
"""

from __future__ import annotations

import shutil
import sys
from typing import TextIO


class TranscriptLine:
    """Show ``committed`` and ``partial`` text for one segment; :meth:`final` ends the line."""

    def __init__(self, out: TextIO | None = None, prefix: str = ""):
        self.out = out or sys.stdout
        self.prefix = prefix
        self.tty = self.out.isatty()
        self._last = None

    def update(self, committed: str, partial: str = "") -> None:
        shown = (committed, partial)
        if shown == self._last:
            return
        self._last = shown
        text = self.prefix + committed + (f" [{partial}]" if partial else "")
        if self.tty:
            width = shutil.get_terminal_size((100, 20)).columns
            if len(text) >= width:
                text = "…" + text[-(width - 2):]
            self.out.write("\r\033[K" + text)
        else:
            self.out.write(text + "\n")
        self.out.flush()

    def clear(self) -> None:
        """Erase the line being updated (on a terminal; a file or pipe keeps what was printed)."""
        if self.tty and self._last is not None:
            self.out.write("\r\033[K")
            self.out.flush()
        self._last = None

    def final(self, text: str) -> None:
        line = self.prefix + text
        self.out.write(("\r\033[K" + line + "\n") if self.tty else (line + "\n"))
        self.out.flush()
        self._last = None


def format_time(seconds: float) -> str:
    """``mm:ss.s`` (``h:mm:ss.s`` from one hour)."""
    m, s = divmod(max(0.0, seconds), 60)
    h, m = divmod(int(m), 60)
    return f"{h}:{m:02d}:{s:04.1f}" if h else f"{m:02d}:{s:04.1f}"


def segment_line(seg) -> str:
    """A finished segment as one line, ``[start - end] text`` (``format_time``), `` [truncated]`` appended
    when it hit the token cap; ``seg`` has ``start_s``, ``end_s``, ``text`` and ``truncated``."""
    return (f"[{format_time(seg.start_s)} - {format_time(seg.end_s)}] {seg.text}"
            + (" [truncated]" if seg.truncated else ""))
