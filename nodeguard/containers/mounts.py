"""Which mount a file or folder is on, so a removal never crosses into another one.

The device number alone misses a bind mount of the same filesystem (of a folder or of
a single file), so the mount id from statx(2) (``STATX_MNT_ID``, Linux 5.8) is used
with it; where statx cannot say, the device number is all there is.
"""

from __future__ import annotations

import ctypes
import os

_libc = ctypes.CDLL(None, use_errno=True)
_statx = getattr(_libc, "statx", None)
_AT_EMPTY_PATH = 0x1000
_AT_SYMLINK_NOFOLLOW = 0x100
_STATX_MNT_ID = 0x1000
_MASK_OFFSET = 0
_MNT_ID_OFFSET = 144  # struct statx: stx_mnt_id after stx_dev_minor
_BUF_SIZE = 256


def _mount_id(dir_fd: int, name: str, flags: int) -> int | None:
    if _statx is None:
        return None
    buf = ctypes.create_string_buffer(_BUF_SIZE)
    if _statx(dir_fd, os.fsencode(name), flags, _STATX_MNT_ID, buf) != 0:
        return None
    mask = ctypes.c_uint32.from_buffer(buf, _MASK_OFFSET).value
    if not mask & _STATX_MNT_ID:
        return None
    return ctypes.c_uint64.from_buffer(buf, _MNT_ID_OFFSET).value


def mount_of(fd: int) -> tuple[int, int]:
    """(device, mount id) of the open file or folder ``fd`` (mount id -1 if unknown)."""
    mnt = _mount_id(fd, "", _AT_EMPTY_PATH | _AT_SYMLINK_NOFOLLOW)
    return os.fstat(fd).st_dev, -1 if mnt is None else mnt


def entry_mount(dir_fd: int, name: str, st: os.stat_result) -> tuple[int, int]:
    """(device, mount id) of ``name`` in ``dir_fd``, never following a symlink."""
    mnt = _mount_id(dir_fd, name, _AT_SYMLINK_NOFOLLOW)
    return st.st_dev, -1 if mnt is None else mnt
