"""Replace daemon.json atomically, keeping its mode, owner and extended attributes.

An admin's daemon.json may carry an SELinux label (``container_config_t``), POSIX ACLs
(``system.posix_acl_access``) or tags from config management (``user.*``). A rewrite
that dropped them could stop dockerd or widen access, so every attribute of the old
file is set on the new one before it takes the old one's name; if one cannot be set,
nothing is replaced.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from nodeguard.fsutil import fsync_dir, unique_temp_name

MAX_XATTRS_BYTES = 1024 * 1024


@dataclass(frozen=True)
class FileMeta:
    """What a replacement keeps of the file it replaces."""

    mode: int
    uid: int
    gid: int
    xattrs: Mapping[str, bytes]


def read_meta(path: Path) -> FileMeta:
    """Mode, owner and extended attributes of ``path`` (never following a symlink)."""
    st = os.lstat(path)
    return FileMeta(st.st_mode & 0o7777, st.st_uid, st.st_gid, read_xattrs(path))


def read_xattrs(path: Path) -> dict[str, bytes]:
    """Every extended attribute of ``path``; none where the filesystem has none."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return {}
        raise
    out: dict[str, bytes] = {}
    total = 0
    for name in sorted(names):
        try:
            value = os.getxattr(path, name, follow_symlinks=False)
        except OSError as exc:
            if exc.errno == errno.ENODATA:  # removed since it was listed
                continue
            raise
        total += len(value)
        if total > MAX_XATTRS_BYTES:
            raise OSError(errno.E2BIG, "extended attributes larger than 1 MiB", str(path))
        out[name] = value
    return out


def replace_file(path: Path, data: bytes, meta: FileMeta) -> None:
    """Write ``data`` to ``path`` atomically with ``meta``'s mode, owner and xattrs.

    Temp file in the same folder (unique name), fsync, rename, fsync of the folder. An
    attribute that cannot be set raises OSError naming it, and ``path`` is untouched.
    """
    tmp = path.with_name(unique_temp_name(path.name))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(tmp, flags, 0o600)
    try:
        _fill(fd, data, meta)
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def _fill(fd: int, data: bytes, meta: FileMeta) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    # Owner first (chown clears set-id bits), then mode, then the attributes: an ACL
    # sets the group bits from its mask, which matches the old file's mode.
    os.fchown(fd, meta.uid, meta.gid)
    os.fchmod(fd, meta.mode)
    for name, value in meta.xattrs.items():
        try:
            os.setxattr(fd, name, value)
        except OSError as exc:
            raise OSError(
                exc.errno, f"cannot keep extended attribute {name}: {exc.strerror}"
            ) from None
    os.fsync(fd)
