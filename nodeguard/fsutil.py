"""Crash-safe file writes and symlink-proof directory handles.

Every write of state, daemon.json or metrics goes through :func:`atomic_write`:
a temp file in the same folder, fsync, rename over the target, fsync of the
folder. A reader sees the old content or the new, never a torn file.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

TMP_MARK = ".nodeguard-tmp"

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def read_fd_capped(fd: int, cap: int) -> bytes:
    """Read the open file ``fd`` to its end, refusing more than ``cap`` bytes.

    The size is checked while reading (a file may grow after fstat); raises
    OSError(EFBIG, "larger than CAP bytes"). ``fd`` stays open.
    """
    chunks: list[bytes] = []
    total = 0
    while chunk := os.read(fd, min(1 << 20, cap + 1 - total)):
        chunks.append(chunk)
        total += len(chunk)
        if total > cap:
            raise OSError(errno.EFBIG, f"larger than {cap} bytes")
    return b"".join(chunks)


def unique_temp_name(name: str) -> str:
    """A hidden temp name for a write of ``name``, unique per write (pid and a random tag).

    The pid alone repeats across restarts (a container's main process is always pid 1),
    so a temp left by a crash must never block the next write.
    """
    return f".{name}.{os.getpid()}-{os.urandom(4).hex()}{TMP_MARK}"


def fsync_dir(path: Path | str) -> None:
    """Make a rename or unlink in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(
    path: Path,
    data: bytes,
    *,
    mode: int | None = None,
    owner: tuple[int, int] | None = None,
) -> None:
    """Replace ``path`` with ``data`` atomically.

    Mode and owner default to the existing file's (0644/root for a new file), so a
    rewrite never widens or narrows access by accident. Only a regular file lends them:
    a symlink at the name is replaced, and what it points to is never looked at.
    """
    try:
        old: os.stat_result | None = os.lstat(path)
    except FileNotFoundError:
        old = None
    if old is not None and stat.S_ISREG(old.st_mode):
        mode = stat.S_IMODE(old.st_mode) if mode is None else mode
        owner = (old.st_uid, old.st_gid) if owner is None else owner
    mode = 0o644 if mode is None else mode
    tmp = path.with_name(unique_temp_name(path.name))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb", closefd=False) as handle:
            handle.write(data)
            handle.flush()
        if owner is not None:
            os.fchown(fd, *owner)
        os.fchmod(fd, mode)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    os.close(fd)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


@contextlib.contextmanager
def open_dir(path: Path | str, dir_fd: int | None = None) -> Iterator[int]:
    """Open a directory without following a symlink in its last component."""
    fd = os.open(path, DIR_FLAGS, dir_fd=dir_fd)
    try:
        yield fd
    finally:
        os.close(fd)


_RENAME_NOREPLACE = 1
_libc = ctypes.CDLL(None, use_errno=True)
_renameat2 = getattr(_libc, "renameat2", None)


# statfs(2) f_type of filesystems where fsync of a file also makes durable every metadata
# change made on that filesystem before it, the file's own new directory entry included:
# ext4 (jbd2 commits transactions in order; without a journal, ext4_sync_parent writes the
# directory of a new entry) and xfs (the log is forced, in order, up to the inode's last
# change). Elsewhere (btrfs, NFS, ...) a directory is fsynced explicitly, as POSIX asks.
ORDERED_FS = frozenset({0xEF53, 0x58465342})
_STATFS_SIZE = 256  # larger than struct statfs on every Linux ABI; f_type comes first
_fstatfs = getattr(_libc, "fstatfs", None)


def fs_type(fd: int) -> int | None:
    """The statfs(2) f_type of the filesystem holding ``fd`` (None if unknown)."""
    if _fstatfs is None:
        return None
    buf = ctypes.create_string_buffer(_STATFS_SIZE)
    if _fstatfs(fd, buf) != 0:
        return None
    return ctypes.c_long.from_buffer(buf).value & 0xFFFFFFFF


def fsync_covers_entries(fd: int) -> bool:
    """Whether fsync of a new file on ``fd``'s filesystem also persists its directory
    entry and every earlier rename or create there (see ORDERED_FS)."""
    return fs_type(fd) in ORDERED_FS


def create_durable(dir_fd: int, name: str, data: bytes, mode: int) -> None:
    """Create ``name`` (O_EXCL) holding ``data``; return once file and entry are durable.

    One fsync where it also persists the entry (ext4, xfs), else a second one of the
    directory. A crash before it returns leaves the file absent, empty, whole, or (data
    of several pages) cut at a page: readers treat a cut record as torn.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(name, flags, mode, dir_fd=dir_fd)
    try:
        os.fchmod(fd, mode)
        _write_all(fd, data)  # a full disk stops it with ENOSPC, not a short count
        os.fsync(fd)
        ordered = fsync_covers_entries(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=dir_fd)
        raise
    os.close(fd)
    if not ordered:
        os.fsync(dir_fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def rename_noreplace(src_dir_fd: int, src: str, dst_dir_fd: int, dst: str) -> None:
    """Rename within directory fds, failing with EEXIST instead of replacing ``dst``.

    Neither name is followed if it is a symlink (rename acts on directory entries).
    Filesystems without RENAME_NOREPLACE fall back to a check then rename.
    """
    if _renameat2 is not None:
        rc = _renameat2(
            src_dir_fd, os.fsencode(src), dst_dir_fd, os.fsencode(dst), _RENAME_NOREPLACE
        )
        if rc == 0:
            return
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOSYS):
            raise OSError(err, os.strerror(err), dst)
    if entry_exists(dst, dst_dir_fd):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), dst)
    os.rename(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)


def entry_exists(name: str, dir_fd: int) -> bool:
    """Whether a directory entry exists (a dangling symlink counts)."""
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True
