"""What a command shows on a terminal besides its output: progress, and no log echo.

Progress is one line on stderr, only when someone is watching.

A command that runs longer than a second shows what it has done so far (files
scanned, bytes compressed, entries read) on one line that it redraws, at most a few
times a second. Nothing is shown when stderr is not a terminal (a pipe, a log file,
the journal) or when the output is machine-readable (``--json``): the caller decides
with ``enabled``. Concerns take a :class:`Progress` and call ``update``; they never
know where, or whether, it is shown.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Protocol, TextIO


class Progress(Protocol):
    """What a long-running concern reports as it goes."""

    def update(self, **counts: int) -> None:
        """The counts so far, e.g. ``update(files=1200, bytes=5_000_000)``."""

    def done(self) -> None:
        """The work is over: take the line away."""


class NoProgress:
    """Shows nothing (not a terminal, ``--json``, the daemon, tests)."""

    def update(self, **counts: int) -> None:
        return None

    def done(self) -> None:
        return None


NO_PROGRESS = NoProgress()


DELAY = 1.0  # seconds of work before the line appears (a quick command shows nothing)
INTERVAL = 0.2  # seconds between two redraws, at least


class TerminalProgress:
    """Redraws ``label: files 1200, bytes 4.8Mi`` on ``stream`` once ``delay`` passed."""

    def __init__(
        self,
        stream: TextIO,
        label: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        delay: float | None = None,
        interval: float | None = None,
    ) -> None:
        self.stream = stream
        self.label = label
        self.clock = clock
        self.start = clock()
        self.delay = DELAY if delay is None else delay
        self.interval = INTERVAL if interval is None else interval
        self.shown_at: float | None = None
        self.width = 0

    def update(self, **counts: int) -> None:
        now = self.clock()
        if now - self.start < self.delay:
            return
        if self.shown_at is not None and now - self.shown_at < self.interval:
            return
        text = f"{self.label}: " + ", ".join(
            f"{k.replace('_', ' ')} {v}" for k, v in counts.items()
        )
        self.stream.write("\r" + text.ljust(self.width))
        self.stream.flush()
        self.width = len(text)
        self.shown_at = now

    def done(self) -> None:
        if self.shown_at is not None:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
            self.shown_at = None


def progress_for(stream: TextIO, label: str, *, enabled: bool = True) -> Progress:
    """A terminal progress line on ``stream`` if it is a terminal and ``enabled``."""
    isatty = getattr(stream, "isatty", None)
    if enabled and isatty is not None and isatty():
        return TerminalProgress(stream, label)
    return NO_PROGRESS


@contextlib.contextmanager
def quiet_logs(concern: str, verbose: int = 0) -> Iterator[None]:
    """While a CLI command runs, its output is its rendered events: the records the
    concern logs for the same events (on ``nodeguard.<concern>``) would say each one a
    second time on stderr, so they stop there unless -v asks for them."""
    logger = logging.getLogger(f"nodeguard.{concern}")
    if verbose:
        yield
        return
    sink, propagate = logging.NullHandler(), logger.propagate
    logger.addHandler(sink)  # with no handler, logging's last resort would print them
    logger.propagate = False
    try:
        yield
    finally:
        logger.propagate = propagate
        logger.removeHandler(sink)
