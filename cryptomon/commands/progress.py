"""A one-line progress bar on stderr for long commands (``scorecard``, ``record``).

Drawn only when stderr is a terminal: redirected to a file or a pipe (CI, systemd, tests
reading the output) nothing is written, so logs and reports stay clean.
"""

from __future__ import annotations

import sys
from typing import TextIO


class ProgressBar:
    """``label [#####-----]  50% 30/60 s  extra``, redrawn in place (carriage return)."""

    def __init__(
        self, label: str, *, stream: TextIO | None = None, width: int = 30, unit: str = "s"
    ) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.unit = unit
        isatty = getattr(self.stream, "isatty", None)
        self.enabled = bool(isatty and isatty())
        self.drawn = False
        self._last = ""

    def update(self, done: float, total: float | None = None, extra: str = "") -> None:
        """Show ``done`` of ``total`` (no bar when the total is unknown)."""
        if not self.enabled:
            return
        if total is not None and total > 0:
            frac = min(1.0, max(0.0, done / total))
            fill = int(frac * self.width)
            bar = "#" * fill + "-" * (self.width - fill)
            text = f"{self.label} [{bar}] {frac * 100:3.0f}% {done:.0f}/{total:.0f} {self.unit}"
        else:
            text = f"{self.label} {done:.0f} {self.unit}"
        if extra:
            text += f"  {extra}"
        if text == self._last:
            return
        pad = " " * max(0, len(self._last) - len(text))
        self.stream.write(f"\r{text}{pad}")
        self.stream.flush()
        self._last = text
        self.drawn = True

    def close(self) -> None:
        """End the line (when something was drawn)."""
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = False
