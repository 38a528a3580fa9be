"""Bounded reads of the files nodeguard takes input from (config, kubelet's config).

A path that should hold a small text file may hold anything: a FIFO (an open would
block for good), a device (``/dev/zero`` never ends, opening a tape rewinds it), a
huge file. :func:`read_bounded` checks the type before opening, opens without
blocking, checks the open descriptor again, and reads at most ``cap`` bytes.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path

_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC

StatCheck = Callable[[os.stat_result], "str | None"]


class Refused(Exception):
    """The file is not one to read; ``reason`` says why (its content was never read)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def read_bounded(
    path: Path, cap: int, *, follow: bool = True, check: StatCheck | None = None
) -> bytes:
    """The whole content of the regular file ``path``, at most ``cap`` bytes.

    Raises :class:`Refused` ("is a symlink" when ``follow`` is false, "not a regular
    file", "larger than N bytes", or what ``check`` returns for the file's stat) or
    OSError (missing, no permission).
    """
    st = os.stat(path) if follow else os.lstat(path)
    _accept(st, cap, check)
    try:
        fd = os.open(path, _FLAGS | (0 if follow else os.O_NOFOLLOW))
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow:
            raise Refused("is a symlink") from None
        raise
    try:
        _accept(os.fstat(fd), cap, check)
        chunks: list[bytes] = []
        total = 0
        while chunk := os.read(fd, min(1 << 16, cap + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > cap:
                raise Refused(f"larger than {cap} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)


def _accept(st: os.stat_result, cap: int, check: StatCheck | None) -> None:
    if stat.S_ISLNK(st.st_mode):
        raise Refused("is a symlink")
    if not stat.S_ISREG(st.st_mode):
        raise Refused("not a regular file")
    reason = check(st) if check else None
    if reason:
        raise Refused(reason)
    if st.st_size > cap:
        raise Refused(f"larger than {cap} bytes")
