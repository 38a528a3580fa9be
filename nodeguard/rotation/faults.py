"""Named crash points for the crash-safety trials.

``point(name)`` does nothing unless the environment variable ``NODEGUARD_FAULT`` is
``"name:N"`` (read once, at import): then the Nth time the point named ``name`` is
reached, the process kills itself with SIGKILL, exactly as a power cut or the OOM
killer would stop it between two sub-steps. Unset, a point costs one comparison.
"""

from __future__ import annotations

import itertools
import os
import signal
import threading

ENV = "NODEGUARD_FAULT"


def _parse(value: str | None) -> tuple[str, int] | None:
    """``"name:N"`` as (name, N); anything else disarms (a typo must never kill a pass)."""
    if not value or ":" not in value:
        return None
    name, _, count = value.rpartition(":")
    if not name or not count.isdigit() or int(count) < 1:
        return None
    return name, int(count)


_target = _parse(os.environ.get(ENV))
_hits = itertools.count(1)
_lock = threading.Lock()  # compression threads reach points too


def point(name: str) -> None:
    """A place where a crash must be survivable; SIGKILL here when armed for it."""
    if _target is None or _target[0] != name:
        return
    with _lock:
        if next(_hits) == _target[1]:
            os.kill(os.getpid(), signal.SIGKILL)


def armed() -> tuple[str, int] | None:
    """The point and hit count this process will die at, if any (for reports and tests)."""
    return _target
