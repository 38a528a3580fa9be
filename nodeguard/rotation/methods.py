"""The in-place rotation methods, one signature each: ``method(log, target, policy, intents)
-> Outcome``; ``rename`` runs a folder at a time (:mod:`batch`).

Each re-checks that the live file is still the inode the pass planned for, records an
intent before the first change a crash could leave half-done, and places a fault
point between sub-steps (see :mod:`faults`). The caller ends the intents once the
rotation, postrotate included, is complete. Crash decisions: docs/crash-safety.md.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nodeguard import faults
from nodeguard.config.model import Policy
from nodeguard.fsutil import rename_noreplace
from nodeguard.rotation import lossless, naming, scan, sparse
from nodeguard.rotation.intents import CopytruncateIntent, LosslessIntent, OpenIntents

_RDWR_FLAGS = os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_TEMP_FLAGS = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class Changed(Exception):
    """The file is not the one that was checked (replaced, swapped for a link, ...)."""


class NeedsIntents(Exception):
    """A method that is only crash-safe with intent records was called without a store."""


def same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino) and stat.S_ISREG(a.st_mode)


@dataclass
class LiveLog:
    """The live log being worked on: its directory, name and checked stat."""

    directory: scan.Directory
    rotated_dir: scan.Directory
    name: str
    st: os.stat_result

    @property
    def path(self) -> str:
        return f"{self.directory.path}/{self.name}"

    def rotated_path(self, name: str) -> str:
        return f"{self.rotated_dir.path}/{name}"


@dataclass(frozen=True)
class Outcome:
    """How a rotation went: live size after it, a note for the report, whether it moved."""

    bytes_after: int
    note: str = ""
    rotated: bool = True


Method = Callable[[LiveLog, str, Policy, OpenIntents], Outcome]


# --- copytruncate ----------------------------------------------------------------------------


def copytruncate(log: LiveLog, target: str, policy: Policy, intents: OpenIntents) -> Outcome:
    """Copy the live file aside, then truncate it in place (logrotate's copytruncate).

    The copy is fsynced and renamed into place, and the intent recorded, before the
    truncate; right before truncating, bytes appended since the copy are copied too,
    which shrinks logrotate's loss window to the time between that catch-up and the
    truncate. Recovery undoes a copy whose live file was never truncated.
    """
    src = os.open(log.name, _RDWR_FLAGS, dir_fd=log.directory.fd)
    try:
        st = os.fstat(src)
        if not same_file(st, log.st):
            raise Changed(f"{log.path} changed since it was checked")
        out = _copy_into_place(log, target, src, st, intents, policy=policy.name)
        try:
            copy_range(src, out, os.fstat(out).st_size)  # catch up with the writer
            os.ftruncate(src, 0)
            faults.point("copytruncate.after-truncate")
            os.fsync(out)
        finally:
            os.close(out)
        return Outcome(os.fstat(src).st_size)
    finally:
        os.close(src)


def _copy_into_place(
    log: LiveLog, target: str, src: int, st: os.stat_result, intents: OpenIntents, *, policy: str
) -> int:
    """Copy ``src`` to a temp file, record the intent, rename it to ``target``; return its fd."""
    r = log.rotated_dir
    tmp = naming.temp_name(target)
    out = os.open(tmp, _CREATE_FLAGS, 0o600, dir_fd=r.fd)
    intent, renamed = "", False
    try:
        length = copy_range(src, out, 0)
        _copy_owner(out, st)
        os.fsync(out)
        faults.point("copytruncate.after-copy")
        intent = intents.begin(
            CopytruncateIntent(
                policy=policy,
                live=log.path,
                temp=log.rotated_path(tmp),
                final=log.rotated_path(target),
                dev=st.st_dev,
                ino=st.st_ino,
                length=length,
            )
        )
        faults.point("copytruncate.before-rename")
        rename_noreplace(r.fd, tmp, r.fd, target)
        renamed = True
        os.fsync(r.fd)
        faults.point("copytruncate.after-rename")
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=r.fd)
        if not renamed:
            intents.end(intent)  # the copy never got its name: nothing happened
        os.close(out)
        raise
    return out


def _copy_owner(fd: int, st: os.stat_result) -> None:
    os.fchown(fd, st.st_uid, st.st_gid)
    os.fchmod(fd, stat.S_IMODE(st.st_mode))


def copy_range(src: int, dst: int, offset: int) -> int:
    """Copy src[offset:EOF) to the same offsets of dst; return the new end offset.

    Only the data is copied: holes (SEEK_HOLE) stay holes, so a sparse log's copy
    takes the room its data takes, not its length. The destination is extended to
    the source's length at the end (a trailing hole).
    """
    while True:
        data = _seek_data(src, offset)
        if data is None:  # only a hole (or nothing) from offset to EOF
            end = max(offset, os.fstat(src).st_size)
            if end > os.fstat(dst).st_size:
                os.ftruncate(dst, end)
            return end
        end = os.lseek(src, data, os.SEEK_HOLE)
        _copy_extent(src, dst, data, end)
        offset = end


def _seek_data(fd: int, offset: int) -> int | None:
    """The next data offset at or after ``offset``; None if only a hole follows."""
    try:
        return os.lseek(fd, offset, os.SEEK_DATA)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            return None
        raise


def _copy_extent(src: int, dst: int, start: int, end: int) -> None:
    """Copy src[start:end) to the same offsets of dst (fewer if the file shrank)."""
    offset = start
    while offset < end:
        try:
            n = os.copy_file_range(src, dst, end - offset, offset, offset)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                raise
            n = _copy_chunk(src, dst, offset, end - offset)
        if n == 0:
            return
        offset += n


def _copy_chunk(src: int, dst: int, offset: int, limit: int) -> int:
    data = os.pread(src, min(1 << 20, limit), offset)
    done = 0
    while done < len(data):
        done += os.pwrite(dst, data[done:], offset + done)
    return len(data)


# --- lossless --------------------------------------------------------------------------------

FALLBACK_NOTE = "filesystem does not support collapse range ({why}): fell back to copytruncate"


def lossless_method(log: LiveLog, target: str, policy: Policy, intents: OpenIntents) -> Outcome:
    """Move a block-aligned prefix to ``target`` with COLLAPSE_RANGE; the tail stays live.

    Where the filesystem cannot collapse (tmpfs, ext4 without extents, ...), falls back
    to copytruncate and says so in the note: the disk must not fill because a method is
    unavailable, and the report tells the admin the loss window is back.
    """
    if intents.store is None:
        raise NeedsIntents("method lossless needs intent records (state_dir) to be crash-safe")
    src = os.open(log.name, _RDWR_FLAGS, dir_fd=log.directory.fd)
    try:
        st = os.fstat(src)
        if not same_file(st, log.st):
            raise Changed(f"{log.path} changed since it was checked")
        try:
            lossless.check_collapse_supported(src)
        except lossless.CollapseUnsupported as exc:
            unsupported = exc
        else:
            return _move_prefix(log, target, src, st, intents, policy=policy.name)
    finally:
        os.close(src)
    outcome = copytruncate(log, target, policy, intents)
    why = unsupported.strerror or str(unsupported)
    return Outcome(outcome.bytes_after, FALLBACK_NOTE.format(why=why))


def _move_prefix(
    log: LiveLog, target: str, src: int, st: os.stat_result, intents: OpenIntents, *, policy: str
) -> Outcome:
    r = log.rotated_dir
    tmp = naming.temp_name(target)
    splits: list[str] = []  # why a line was cut in two, when no block boundary allowed better
    out = os.open(tmp, _TEMP_FLAGS, 0o600, dir_fd=r.fd)
    try:
        _copy_owner(out, st)

        def record(facts: dict[str, Any]) -> str:
            faults.point("lossless.after-copy")
            paths = {"live": log.path, "temp": log.rotated_path(tmp)}
            raw = lossless.intent_record(facts, **paths, final=log.rotated_path(target))
            intent_id = intents.begin(LosslessIntent.from_facts(raw, policy))
            faults.point("lossless.before-collapse")
            return intent_id

        moved = lossless.lossless_move_prefix(
            src, out, journal=record, done=intents.end, on_split=splits.append
        )
        if moved:
            faults.point("lossless.after-collapse")
            rename_noreplace(r.fd, tmp, r.fd, target)
            os.fsync(r.fd)
            faults.point("lossless.after-rename")
    except BaseException:
        if not intents.open:  # nothing collapsed yet: the temp copy is redundant
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=r.fd)
        raise
    finally:
        os.close(out)
    if not moved:
        os.unlink(tmp, dir_fd=r.fd)
        return Outcome(os.fstat(src).st_size, "not larger than one filesystem block", False)
    return Outcome(os.fstat(src).st_size, "; ".join(splits))


# --- writers without O_APPEND ----------------------------------------------------------------

_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def append_symptom(log: LiveLog) -> str | None:
    """Why the live file looks written by a writer without O_APPEND after an in-place
    rotation (it starts with NUL bytes), naming such writers; None if it looks fine."""
    try:
        fd = os.open(log.name, _READ_FLAGS, dir_fd=log.directory.fd)
    except OSError:
        return None  # gone or replaced: the rotation step reports what matters
    try:
        if not same_file(os.fstat(fd), log.st):
            return None  # replaced since the scan: never read another file
        symptom = _nul_symptom(fd)
    finally:
        os.close(fd)
    if symptom is None:
        return None
    writers = sparse.open_writers({(log.st.st_dev, log.st.st_ino)}).get(
        (log.st.st_dev, log.st.st_ino), []
    )
    culprits = [f"pid {w.pid} ({w.command})" for w in writers if not w.append]
    if culprits:
        symptom += f"; open without O_APPEND by {', '.join(culprits)}"
    return symptom


def _nul_symptom(fd: int) -> str | None:
    """NUL bytes at the start (after a truncate) or holes inside (after a collapse)."""
    if os.pread(fd, 1, 0) == b"\0":
        return sparse.non_append_symptom(fd)
    holes = sparse.hole_bytes(fd)  # two lseeks for a file without holes
    if holes == 0:
        return None
    return (
        "writer does not use O_APPEND: file became sparse after an in-place rotation "
        f"({holes} of {os.fstat(fd).st_size} bytes are holes, read as NUL bytes)"
    )


METHODS: dict[str, Method] = {  # rename: batch.rotate_batch, a folder at a time
    "copytruncate": copytruncate,
    "lossless": lossless_method,
}
