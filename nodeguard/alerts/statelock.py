"""A short lock on the alert and disk state documents.

The disk guard and the delivery both read, change and write documents in the state
folder (samples, alert states, the spool, counters). ``nodeguard run --once`` may run
while the daemon does, so each read-modify-write holds ``disk.lock``. It is held for
milliseconds (never across a network request); a waiter gives up after ``timeout``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from nodeguard.state import open_lock

LOCK_NAME = "disk.lock"


class StateBusy(Exception):
    """Another nodeguard process held the state lock for too long."""


@contextlib.contextmanager
def state_lock(state_dir: Path, timeout: float = 10.0) -> Iterator[None]:
    path = state_dir / LOCK_NAME
    fd = open_lock(path)  # LockUnusable (an OSError): not a regular file
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise
                if time.monotonic() >= deadline:
                    raise StateBusy(f"{path} is held by another nodeguard process") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)
