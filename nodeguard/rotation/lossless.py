"""Lossless in-place rotation: move a file's block-aligned prefix out with COLLAPSE_RANGE.

copytruncate loses what a writer appends between the copy and the truncate. Here the
prefix is copied first and then removed with ``fallocate(FALLOC_FL_COLLAPSE_RANGE)``,
which the kernel serialises against ``write()``: an O_APPEND writer keeps appending at
the new end of file, and rotated + live always equals what was written. Only ext4 (with
extents) and xfs collapse; elsewhere :class:`CollapseUnsupported` tells the caller to fall
back. The cut falls after a newline whenever a block boundary allows it (a line split
in two is reported). The crash-safety order and the recovery rules are in docs/lossless.md.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import stat
import struct
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from nodeguard import fsutil

FALLOC_FL_COLLAPSE_RANGE = 0x08
RECORD_KIND = "lossless-collapse"
RECORD_VERSION = 1
PATH_KEYS = ("live", "temp", "final")
_FACT_KEYS = ("dev", "ino", "length", "unit", "prefix_sha256", "tail_length", "tail_sha256")
_CHUNK = 1 << 20
_MAX_UNIT = 1 << 30
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK

_libc = ctypes.CDLL(None, use_errno=True)
_fallocate = _libc.fallocate
_fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
_fallocate.restype = ctypes.c_int

OpenDir = Callable[[str], AbstractContextManager[int]]


class CollapseUnsupported(OSError):
    """The filesystem (or this file) cannot collapse a range; the caller falls back."""


class RecoveryConflict(Exception):
    """recover_intent found a state it must not resolve alone; everything was left as is."""


def fs_block_size(fd: int) -> int:
    """The collapse alignment unit on most filesystems: the block size (see docs for bigalloc)."""
    return os.fstatvfs(fd).f_bsize


def _fallocate_checked(fd: int, mode: int, offset: int, length: int) -> None:
    if _fallocate(fd, mode, offset, length) == 0:
        return
    err = ctypes.get_errno()
    if err in (errno.EOPNOTSUPP, errno.ENOSYS):
        raise CollapseUnsupported(err, f"cannot collapse a range here: {os.strerror(err)}")
    raise OSError(err, os.strerror(err))


def collapse_prefix(fd: int, length: int) -> None:
    """Remove the first ``length`` bytes of the file; all or nothing (kernel guarantee)."""
    _fallocate_checked(fd, FALLOC_FL_COLLAPSE_RANGE, 0, length)


def check_collapse_supported(fd: int) -> None:
    """Raise CollapseUnsupported if this file cannot collapse; never changes the file.

    The probe asks for an unaligned range past end of file: filesystems that collapse
    refuse it with EINVAL, the others with EOPNOTSUPP, before looking at the range.
    """
    offset = os.fstat(fd).st_size + 1
    try:
        _fallocate_checked(fd, FALLOC_FL_COLLAPSE_RANGE, offset, fs_block_size(fd))
    except CollapseUnsupported:
        raise
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        return
    raise OSError(errno.EIO, "collapse probe unexpectedly succeeded")  # no known fs does this


def _chunks(fd: int, start: int, length: int) -> Iterator[bytes]:
    end = start + length
    while start < end:
        data = os.pread(fd, min(_CHUNK, end - start), start)
        if not data:
            raise OSError(errno.EIO, f"unexpected end of file at {start} (file shrank?)")
        yield data
        start += len(data)


_SCAN_FIRST = 64 << 10  # bytes read by the first step of the line-end search
_SCAN_MAX = 4 << 20  # the step doubles up to this


@dataclass(frozen=True)
class Cut:
    """Where a move cuts the file: ``length`` bytes move; ``split`` says why a line is cut."""

    length: int
    split: str | None = None


def _pread_exact(fd: int, length: int, offset: int) -> bytes:
    data = os.pread(fd, length, offset)
    if len(data) < length:
        data += b"".join(_chunks(fd, offset + len(data), length - len(data)))
    return data


def aligned_line_end(fd: int, limit: int, unit: int) -> int:
    """The largest multiple of ``unit`` up to ``limit`` whose last byte is a newline, or 0.

    Reads backwards from ``limit`` in growing steps and looks only at the last byte of
    each unit, so a file of short lines costs one small read; units as large as a step
    (ext4 bigalloc clusters) are probed one byte each.
    """
    end = limit // unit * unit
    if unit >= _SCAN_FIRST:
        for length in range(end, 0, -unit):
            if os.pread(fd, 1, length - 1) == b"\n":
                return length
        return 0
    step = _SCAN_FIRST // unit * unit
    while end > 0:
        start = max(0, end - step)
        last_bytes = _pread_exact(fd, end - start, start)[unit - 1 :: unit]
        hit = last_bytes.rfind(b"\n")
        if hit >= 0:
            return start + (hit + 1) * unit
        end, step = start, min(step * 2, _SCAN_MAX // unit * unit)
    return 0


def choose_cut(fd: int, size: int, unit: int) -> Cut:
    """The bytes to move from a file of ``size``: whole lines whenever a unit allows it.

    A collapse moves a multiple of ``unit`` and cannot reach end of file. The cut is the
    largest such length ending with a newline; only when the movable prefix has none is
    the largest length taken, splitting a line (``split`` says so and why).
    """
    limit = (size - 1) // unit * unit if size > 0 else 0
    if limit == 0:
        return Cut(0)
    length = aligned_line_end(fd, limit, unit)
    if length:
        return Cut(length)
    why = (
        f"no line ends at a {unit}-byte block boundary in the first {limit} bytes, so the "
        "rotated file ends mid-line and the live file starts with the rest of that line"
    )
    return Cut(limit, why)


def _sha_range(fd: int, start: int, length: int) -> str:
    import hashlib  # here: OpenSSL's libcrypto costs ~3.5 MiB of RSS once loaded

    digest = hashlib.sha256()
    for data in _chunks(fd, start, length):
        digest.update(data)
    return digest.hexdigest()


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def _copy_prefix(src_fd: int, dst_fd: int, length: int) -> str:
    """Copy src[0:length) to dst (holes stay holes), fsync dst; return the sha256."""
    import hashlib  # here: OpenSSL's libcrypto costs ~3.5 MiB of RSS once loaded

    os.ftruncate(dst_fd, 0)  # a retry with a larger unit copies afresh
    digest = hashlib.sha256()
    zero = memoryview(bytes(_CHUNK))
    offset = 0
    for data in _chunks(src_fd, 0, length):
        digest.update(data)
        if data != zero[: len(data)]:
            _pwrite_all(dst_fd, data, offset)
        offset += len(data)
    os.ftruncate(dst_fd, length)
    os.fsync(dst_fd)
    # drop the now clean pages: the read-back then comes from disk, and rotated data
    # does not crowd the page cache
    os.posix_fadvise(dst_fd, 0, length, os.POSIX_FADV_DONTNEED)
    return digest.hexdigest()


_FS_IOC_FIEMAP = 0xC020660B
_FIEMAP_FLAG_SYNC = 0x1
_FIEMAP_HEAD = struct.Struct("=QQIIII")
_FIEMAP_EXTENT = struct.Struct("=QQQQQIIII")
_FIEMAP_EXTENT_UNKNOWN = 0x2
_FIEMAP_EXTENT_NOT_ALIGNED = 0x100


def physical_offset(fd: int, offset: int) -> int | None:
    """The disk address holding byte ``offset`` (FIEMAP), or None (hole, inline, no FIEMAP).

    A collapse shifts extents without moving data, so the address seen at logical 0
    tells recovery whether the collapse happened even when the content cannot.
    """
    buf = bytearray(_FIEMAP_HEAD.size + _FIEMAP_EXTENT.size)
    _FIEMAP_HEAD.pack_into(buf, 0, offset, 1, _FIEMAP_FLAG_SYNC, 0, 1, 0)
    try:
        fcntl.ioctl(fd, _FS_IOC_FIEMAP, buf, True)
    except OSError:
        return None
    if _FIEMAP_HEAD.unpack_from(buf, 0)[3] < 1:
        return None
    logical, physical, length, _, _, flags, *_ = _FIEMAP_EXTENT.unpack_from(buf, _FIEMAP_HEAD.size)
    unusable = _FIEMAP_EXTENT_UNKNOWN | _FIEMAP_EXTENT_NOT_ALIGNED
    if flags & unusable or not logical <= offset < logical + length:
        return None
    return int(physical + offset - logical)


_FS_IOC_GETVERSION = 0x80087601


def inode_generation(fd: int) -> int | None:
    """The inode's generation number (ext4, xfs), or None where there is none.

    A deleted file's inode number is soon reused (ext4 does it at once); the
    generation tells the reused inode from the one an intent record names.
    """
    buf = bytearray(8)
    try:
        fcntl.ioctl(fd, _FS_IOC_GETVERSION, buf, True)
    except OSError:
        return None
    return int.from_bytes(buf[:4], "little")


def _facts(src_fd: int, size: int, length: int, unit: int, prefix_sha: str) -> dict[str, Any]:
    """What recovery needs to tell "collapsed" from "intact" (see docs/lossless.md)."""
    os.fsync(src_fd)  # allocates delayed blocks, so FIEMAP gives real addresses
    st = os.fstat(src_fd)
    return {
        "kind": RECORD_KIND,
        "version": RECORD_VERSION,
        "dev": st.st_dev,
        "ino": st.st_ino,
        "generation": inode_generation(src_fd),
        "length": length,
        "unit": unit,
        "prefix_sha256": prefix_sha,
        "tail_length": size - length,
        "tail_sha256": _sha_range(src_fd, length, size - length),
        "phys_start": physical_offset(src_fd, 0),
        "phys_at_length": physical_offset(src_fd, length),
    }


def _check_dst(dst_fd: int) -> None:
    """dst must be empty and opened O_RDWR without O_APPEND (pwrite, read-back)."""
    flags = fcntl.fcntl(dst_fd, fcntl.F_GETFL)
    if os.fstat(dst_fd).st_size != 0:
        raise ValueError("lossless_move_prefix: the destination must be empty")
    if flags & os.O_APPEND or flags & os.O_ACCMODE != os.O_RDWR:
        raise ValueError("lossless_move_prefix: open the destination O_RDWR, without O_APPEND")


def lossless_move_prefix(
    src_fd: int,
    dst_fd: int,
    *,
    verify: bool = True,
    journal: Callable[[dict[str, Any]], str] | None = None,
    done: Callable[[str], None] | None = None,
    unit: int | None = None,
    on_split: Callable[[str], None] | None = None,
) -> int:
    """Move src's block-aligned prefix into the empty temp file dst; return bytes moved.

    The prefix ends with a newline whenever a block boundary allows it (:func:`choose_cut`);
    otherwise a line is split and ``on_split(reason)`` is called once the move is done.
    At least one byte stays in src (a collapse cannot reach end of file), so 0 is
    returned for a file of one unit or less. ``journal(facts)`` is called after dst is
    complete and durable and before src changes; it must store the facts plus the
    ``live``, ``temp`` and ``final`` paths durably and return an id. On success that
    intent stays open: the caller renames dst to final, then ends it. When the kernel
    refuses the collapse, src is unchanged and ``done(id)`` is called before raising.
    """
    _check_dst(dst_fd)
    check_collapse_supported(src_fd)
    unit = unit or fs_block_size(src_fd)
    size = os.fstat(src_fd).st_size
    while True:
        cut = choose_cut(src_fd, size, unit)
        if cut.length == 0:
            os.ftruncate(dst_fd, 0)
            return 0
        prefix_sha = _copy_prefix(src_fd, dst_fd, cut.length)
        if verify and _sha_range(dst_fd, 0, cut.length) != prefix_sha:
            raise OSError(errno.EIO, "the copied prefix does not read back identically")
        if _collapse_journaled(
            src_fd,
            size=size,
            length=cut.length,
            unit=unit,
            prefix_sha=prefix_sha,
            journal=journal,
            done=done,
        ):
            break
        unit *= 2  # ext4 bigalloc and xfs realtime need a cluster/extent multiple
    os.fsync(src_fd)
    if cut.split is not None and on_split is not None:
        on_split(cut.split)
    return cut.length


def _collapse_journaled(
    src_fd: int,
    *,
    size: int,
    length: int,
    unit: int,
    prefix_sha: str,
    journal: Callable[[dict[str, Any]], str] | None,
    done: Callable[[str], None] | None,
) -> bool:
    """Journal, then collapse; False if the kernel wants a larger alignment unit."""
    intent = journal(_facts(src_fd, size, length, unit, prefix_sha)) if journal else None
    try:
        collapse_prefix(src_fd, length)
    except OSError as exc:
        if intent is not None and done is not None:
            done(intent)  # the collapse is all-or-nothing: src is as it was
        if exc.errno != errno.EINVAL:
            raise
        if unit >= _MAX_UNIT:
            raise CollapseUnsupported(errno.EINVAL, "collapse refused at every alignment") from exc
        return False
    return True


@dataclass(frozen=True)
class LiveState:
    """Recovery's verdict on the live file: "collapsed", "intact" or "unknown", and why."""

    verdict: str
    reason: str


def intent_record(facts: dict[str, Any], *, live: str, temp: str, final: str) -> dict[str, Any]:
    """The journal record recover_intent expects: the facts plus three absolute paths."""
    return {**facts, "live": live, "temp": temp, "final": final}


def _validate(record: dict[str, Any]) -> None:
    missing = [key for key in (*PATH_KEYS, *_FACT_KEYS) if key not in record]
    if missing or record.get("kind") != RECORD_KIND:
        raise ValueError(f"not a {RECORD_KIND} intent record (missing: {', '.join(missing)})")
    for key in PATH_KEYS:
        _split(record[key])


def _split(path: str) -> tuple[str, str]:
    if not isinstance(path, str):
        raise ValueError(f"intent record path must be a string: {path!r}")
    head, name = os.path.split(path)
    if not os.path.isabs(path) or not name or name in (".", ".."):
        raise ValueError(f"intent record path must be absolute and name a file: {path!r}")
    return head, name


def _lstat(name: str, dir_fd: int) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _sha_if_long_enough(fd: int, start: int, length: int, size: int) -> str | None:
    return _sha_range(fd, start, length) if start + length <= size else None


def classify_live(fd: int, record: dict[str, Any]) -> LiveState:
    """Decide whether the recorded collapse happened, from content, then from extents."""
    size = os.fstat(fd).st_size
    length, tail = record["length"], record["tail_length"]
    collapsed = _sha_if_long_enough(fd, 0, tail, size) == record["tail_sha256"]
    intact = (
        _sha_if_long_enough(fd, length, tail, size) == record["tail_sha256"]
        and _sha_if_long_enough(fd, 0, length, size) == record["prefix_sha256"]
    )
    if collapsed != intact:
        verdict = "collapsed" if collapsed else "intact"
        return LiveState(verdict, f"the live file starts with the {verdict} layout")
    if not collapsed:
        return LiveState("unknown", "the live file matches neither layout (rewritten?)")
    return _classify_by_extents(fd, record)


def _classify_by_extents(fd: int, record: dict[str, Any]) -> LiveState:
    """Both layouts match (periodic content): the block now at offset 0 decides."""
    now, before, after = physical_offset(fd, 0), record["phys_start"], record["phys_at_length"]
    if now is not None and before != after:
        if now == after:
            return LiveState("collapsed", "periodic content; the extent map shows the collapse")
        if now == before:
            return LiveState("intact", "periodic content; the extent map shows no collapse")
    return LiveState("unknown", "periodic content and an inconclusive extent map")


def _live_state(record: dict[str, Any], opener: OpenDir) -> LiveState:
    directory, name = _split(record["live"])
    try:
        with opener(directory) as dir_fd:
            fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        return LiveState("unknown", f"the live file cannot be opened ({exc.strerror})")
    try:
        st = os.fstat(fd)
        same = (st.st_dev, st.st_ino) == (record["dev"], record["ino"])
        generation = record.get("generation")
        if generation is not None and same:
            same = inode_generation(fd) in (None, generation)
        if not stat.S_ISREG(st.st_mode) or not same:
            return LiveState("unknown", "the live file was replaced by another file")
        return classify_live(fd, record)
    finally:
        os.close(fd)


def _check_temp(dir_fd: int, name: str, record: dict[str, Any]) -> None:
    """The temp copy must be exactly the journaled prefix, or recovery touches nothing."""
    fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    try:
        st = os.fstat(fd)
        ok = stat.S_ISREG(st.st_mode) and st.st_size == record["length"]
        if not ok or _sha_range(fd, 0, record["length"]) != record["prefix_sha256"]:
            raise RecoveryConflict(f"{record['temp']} is not the recorded prefix; left alone")
    finally:
        os.close(fd)


def _finish_both_present(
    temp_fd: int, temp: os.stat_result, final: os.stat_result, record: dict[str, Any]
) -> str:
    """Temp and final both exist: one file under two names, or a name clash."""
    _, name = _split(record["temp"])
    if (final.st_dev, final.st_ino) != (temp.st_dev, temp.st_ino):
        raise RecoveryConflict(f"{record['final']} exists and is another file; left alone")
    os.unlink(name, dir_fd=temp_fd)
    os.fsync(temp_fd)
    return "completed: the rotated file was in place; removed its second name"


def recover_intent(record: dict[str, Any], *, open_dir: OpenDir = fsutil.open_dir) -> str:
    """Finish or undo an interrupted lossless move; return what was done.

    Never loses a byte: when it cannot tell whether the collapse happened it keeps the
    temp copy as the rotated file (lines may then appear twice) and says so. Raises
    RecoveryConflict, touching nothing, when the temp copy or the final name is not
    what the record describes; raises ValueError for a malformed record.
    """
    _validate(record)
    temp_dir, temp_name = _split(record["temp"])
    final_dir, final_name = _split(record["final"])
    with open_dir(temp_dir) as temp_fd, open_dir(final_dir) as final_fd:
        temp = _lstat(temp_name, temp_fd)
        final = _lstat(final_name, final_fd)
        if temp is None:
            if final is not None:
                return "completed: the rotated file was already in place"
            return "nothing to do: neither the temp copy nor the rotated file exists"
        if final is not None:
            return _finish_both_present(temp_fd, temp, final, record)
        _check_temp(temp_fd, temp_name, record)
        state = _live_state(record, open_dir)
        if state.verdict == "intact":
            os.unlink(temp_name, dir_fd=temp_fd)
            os.fsync(temp_fd)
            return f"undone: {state.reason}; the collapse never happened, temp copy removed"
        fsutil.rename_noreplace(temp_fd, temp_name, final_fd, final_name)
        os.fsync(final_fd)
        os.fsync(temp_fd)
        if state.verdict == "collapsed":
            return f"completed: {state.reason}; temp copy renamed to the rotated file"
        return f"kept: {state.reason}; temp copy kept as the rotated file (may duplicate)"
