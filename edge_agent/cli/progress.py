"""A one-line progress bar on stderr for batch commands, drawn only on a terminal.

Why our own (a dozen lines) and not rich's live display: result lines go to stdout in between,
and the bar must be wiped before each of them and redrawn after, never left in a log file, a
pipe or JSON output. Whether to draw is decided once, from the stream itself.
"""

from __future__ import annotations

import sys
from typing import TextIO

from edge_agent.printable import printable

CLEAR = "\r\x1b[K"  # back to the line start, erase it


class ProgressBar:
    """``show(done, label)`` redraws the bar, ``clear()`` wipes it before other output."""

    def __init__(self, total: int, stream: TextIO | None = None, enabled: bool | None = None,
                 width: int = 28) -> None:
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.is_terminal(self.stream) if enabled is None else enabled
        self.width = width
        self._drawn = False

    @staticmethod
    def is_terminal(stream: TextIO) -> bool:
        """Whether ``stream`` is a terminal (False for a closed or replaced stream)."""
        try:
            return stream.isatty()
        except (AttributeError, ValueError):  # a closed or replaced stream
            return False

    def show(self, done: int, label: str = "") -> None:
        if not self.enabled or self.total <= 0:
            return
        filled = self.width * done // self.total
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"{CLEAR}[{bar}] {done}/{self.total} {printable(label)[:40]}")
        self.stream.flush()
        self._drawn = True

    def clear(self) -> None:
        if self._drawn:
            self.stream.write(CLEAR)
            self.stream.flush()
            self._drawn = False
