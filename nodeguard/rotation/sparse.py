"""Detect the mark a non-O_APPEND writer leaves after a truncate, and find such writers.

After copytruncate (or a collapse), a writer that did not open its log with O_APPEND
writes at its old offset: the file gets a hole, read back as NUL bytes, in front of the
new lines. nodeguard reports that ("writer does not use O_APPEND") rather than hide it,
and can name the processes from /proc before choosing an in-place method.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

_CHUNK = 1 << 16
DEFAULT_SCAN_LIMIT = 64 << 20
DEFAULT_MIN_RUN = 512


@dataclass(frozen=True)
class NulPrefix:
    """How a file starts: ``leading`` NUL bytes (holes included) of ``size``."""

    size: int
    leading: int
    hole_bytes: int
    capped: bool  # the explicit-NUL scan stopped at its limit: ``leading`` is a lower bound

    @property
    def ratio(self) -> float:
        return self.leading / self.size if self.size else 0.0


def _seek(fd: int, offset: int, whence: int) -> int | None:
    """lseek for SEEK_DATA/SEEK_HOLE; None when there is no data at or after offset."""
    try:
        return os.lseek(fd, offset, whence)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            return None
        raise


def hole_bytes(fd: int) -> int:
    """Bytes of the file inside holes (unallocated ranges), found without reading."""
    size = os.fstat(fd).st_size
    holes, offset = 0, 0
    while offset < size:
        data = _seek(fd, offset, os.SEEK_DATA)
        if data is None:
            return holes + size - offset
        holes += data - offset
        hole = _seek(fd, data, os.SEEK_HOLE)
        offset = size if hole is None else hole
    return holes


def _nul_run(fd: int, offset: int, size: int, limit: int) -> tuple[int, bool]:
    """Where the NUL run starting at offset ends (skipping holes), and whether capped."""
    scanned = 0
    while offset < size:
        data = _seek(fd, offset, os.SEEK_DATA)
        if data is None:
            return size, False
        offset = data
        chunk = os.pread(fd, min(_CHUNK, size - offset), offset)
        if not chunk:
            return offset, False
        stripped = chunk.lstrip(b"\0")
        if stripped:
            return offset + len(chunk) - len(stripped), False
        offset += len(chunk)
        scanned += len(chunk)
        if scanned >= limit:
            return offset, True
    return size, False


def nul_prefix(fd: int, *, limit: int = DEFAULT_SCAN_LIMIT) -> NulPrefix:
    """Measure the NUL run at the start of the file; holes cost no reads, explicit NULs
    are read up to ``limit`` bytes."""
    size = os.fstat(fd).st_size
    leading, capped = _nul_run(fd, 0, size, limit)
    return NulPrefix(size=size, leading=leading, hole_bytes=hole_bytes(fd), capped=capped)


def nul_prefix_ratio(fd: int) -> float:
    """The share of the file that is a NUL run from offset 0 (0.0 for an empty file)."""
    return nul_prefix(fd).ratio


def non_append_symptom(fd: int, *, min_run: int = DEFAULT_MIN_RUN) -> str | None:
    """A report line if the file starts with ``min_run`` NUL bytes or has that much hole.

    No text log starts with NUL bytes or has holes: a writer without O_APPEND leaves a
    run at the start after a truncate, and a hole after the kept tail after a collapse.
    """
    found = nul_prefix(fd)
    leading = found.leading >= min(min_run, found.size) > 0
    if not leading and found.hole_bytes < min_run:
        return None
    more = "at least " if found.capped else ""
    return (
        "writer does not use O_APPEND: file became sparse after truncate "
        f"({more}{found.leading} of {found.size} bytes are NUL from the start, "
        f"{found.hole_bytes} in holes)"
    )


@dataclass(frozen=True)
class Writer:
    """A process holding a file open for writing."""

    pid: int
    fd: int
    append: bool
    command: str


FileId = tuple[int, int]  # (st_dev, st_ino)
_FDINFO_CAP = 64 * 1024  # fdinfo is a few lines; anything longer is not trusted whole
_COMM_CAP = 64  # TASK_COMM_LEN is 16


def open_writers(targets: set[FileId], *, proc: Path = Path("/proc")) -> dict[FileId, list[Writer]]:
    """Every process fd open for writing on one of ``targets``, from /proc (one scan).

    Lets the engine see, before rotating in place, whether each writer uses O_APPEND
    (fdinfo ``flags``); processes that exit during the scan are skipped.
    """
    return _scan(proc, lambda file_id: file_id in targets)


def all_writers(*, proc: Path = Path("/proc")) -> dict[FileId, list[Writer]]:
    """Every regular file some process holds open for writing, with its writers.

    One pass over /proc for a whole rotation pass: an fd's link mode tells whether it
    was opened for writing (no read needed), and fdinfo is read only for those that
    point at a regular file. Processes this uid may not inspect are not seen.
    """
    return _scan(proc, lambda file_id: True)


def _scan(proc: Path, wanted: Callable[[FileId], bool]) -> dict[FileId, list[Writer]]:
    found: dict[FileId, list[Writer]] = {}
    try:
        pids = [n for n in os.listdir(proc) if n.isdigit()]
    except OSError:
        return found
    for pid in pids:
        pid_dir = proc / pid
        for fd, file_id in _fds_on(pid_dir, wanted):
            writer = _writer(pid_dir, fd)
            if writer is not None:
                found.setdefault(file_id, []).append(writer)
    return found


def _fds_on(pid_dir: Path, wanted: Callable[[FileId], bool]) -> list[tuple[int, FileId]]:
    try:
        names = os.listdir(pid_dir / "fd")
    except OSError:
        return []
    out = []
    for name in names:
        link = pid_dir / "fd" / name
        try:
            if not os.lstat(link).st_mode & stat.S_IWUSR:  # the link's mode is the fd's
                continue
            st = os.stat(link)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and name.isdigit() and wanted((st.st_dev, st.st_ino)):
            out.append((int(name), (st.st_dev, st.st_ino)))
    return out


def _writer(pid_dir: Path, fd: int) -> Writer | None:
    """Parse fdinfo's octal ``flags``; None for read-only fds or a vanished process.

    Everything here is bytes until proven otherwise: a process names itself (its comm
    may be any bytes), so the name is decoded with escapes, never trusted as UTF-8.
    """
    try:
        info = _read_small(pid_dir / "fdinfo" / str(fd), _FDINFO_CAP)
        comm = _read_small(pid_dir / "comm", _COMM_CAP)
    except OSError:
        return None
    flags = _flags(info)
    if flags is None or flags & os.O_ACCMODE == os.O_RDONLY:
        return None
    command = _escaped(comm.rstrip(b"\n"))
    return Writer(pid=int(pid_dir.name), fd=fd, append=bool(flags & os.O_APPEND), command=command)


def _read_small(path: Path, cap: int) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        return os.read(fd, cap)
    finally:
        os.close(fd)


def _flags(info: bytes) -> int | None:
    for line in info.splitlines():
        key, _, value = line.partition(b":")
        if key == b"flags":
            try:
                return int(value.strip(), 8)
            except ValueError:
                return None
    return None


def _escaped(raw: bytes) -> str:
    """Bytes as text: undecodable bytes and control characters as backslash escapes."""
    text = raw.decode("utf-8", "backslashreplace")
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)
