"""A progress bar on stderr for long runs: only when stderr is a terminal and the input is large."""

from __future__ import annotations

import sys
import time
from typing import TextIO

LARGE = 8 * 1024 * 1024  # below this a run takes well under a second


class Progress:
    def __init__(self, total: int | None, stream: TextIO | None = None, label: str = "reading") -> None:
        self.stream = stream or sys.stderr
        self.total = total
        self.label = label
        self.enabled = bool(total and total >= LARGE and hasattr(self.stream, "isatty") and self.stream.isatty())
        self._last = 0.0

    def __call__(self, done: int) -> None:
        if not self.enabled or self.total is None:
            return
        now = time.monotonic()
        if now - self._last < 0.1 and done < self.total:
            return
        self._last = now
        share = min(done / self.total, 1.0)
        filled = int(share * 30)
        self.stream.write(f"\r{self.label} [{'#' * filled}{' ' * (30 - filled)}] {share * 100:5.1f}% "
                          f"{done / 1e6:.1f}/{self.total / 1e6:.1f} MB")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
