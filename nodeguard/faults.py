"""Named crash points for the crash-safety trials.

``point(name)`` does nothing unless the environment variable ``NODEGUARD_FAULT`` is
``"name:N"``: then the Nth time the point named ``name`` is reached, the process kills
itself with SIGKILL, exactly as a power cut or the OOM killer would stop it between two
sub-steps. The variable is read where a point is reached (never at import), so the value
in force is the caller's; unset, a point costs one lookup.
"""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter
from collections.abc import Callable

ENV = "NODEGUARD_FAULT"

_hits: Counter[tuple[str, int]] = Counter()  # per armed target: a new value counts afresh
_lock = threading.Lock()  # compression threads reach points too


def _parse(value: str | None) -> tuple[str, int] | None:
    """``"name:N"`` as (name, N); anything else disarms (a typo must never kill a pass)."""
    if not value or ":" not in value:
        return None
    name, _, count = value.rpartition(":")
    if not name or not count.isdigit() or int(count) < 1:
        return None
    return name, int(count)


def point(name: str) -> None:
    """A place where a crash must be survivable; SIGKILL here when armed for it."""
    target = armed()
    if target is None or target[0] != name:
        return
    with _lock:
        _hits[target] += 1
        if _hits[target] == target[1]:
            os.kill(os.getpid(), signal.SIGKILL)


def armed() -> tuple[str, int] | None:
    """The point and hit count this process will die at, if any (for reports and tests)."""
    return _parse(os.environ.get(ENV))


def trap() -> Callable[[str], None]:
    """:func:`point` if a fault is armed now, else a no-op: for a loop that passes points
    once per file (one look at the environment per loop, not per point)."""
    return point if armed() is not None else _disarmed


def _disarmed(name: str) -> None:
    return None
