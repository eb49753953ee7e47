"""A one-line progress bar on stderr (only when stderr is a terminal, unless forced)."""

import sys
import time

__all__ = ["Progress"]


class Progress:
    """``with Progress("streaming", total) as p: p.advance(n)`` draws ``label [####  ] 42%``."""

    def __init__(self, label, total, *, stream=sys.stderr, enabled=None, width=30):
        self.label, self.total, self.stream, self.width = label, max(total, 1), stream, width
        self.enabled = stream.isatty() if enabled is None else enabled
        self.done = 0
        self._last = 0.0
        self._start = time.monotonic()

    def advance(self, n):
        self.done += n
        now = time.monotonic()
        if self.enabled and (now - self._last > 0.1 or self.done >= self.total):
            self._last = now
            self._draw()

    def _draw(self, end=""):
        frac = min(self.done / self.total, 1.0)
        bar = "#" * int(frac * self.width)
        self.stream.write(f"\r{self.label} [{bar:<{self.width}}] {frac:4.0%} "
                          f"{time.monotonic() - self._start:5.1f} s{end}")
        self.stream.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.enabled:
            self._draw(end="\n")
