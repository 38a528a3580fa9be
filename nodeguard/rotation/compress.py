"""gzip compression of a rotated file, crash-safe.

The output is written to a hidden temporary name, fsynced, renamed to
``<name>.gz``, and only then is the plain file removed: at every instant one
complete copy exists. Each gzip level maps to the fastest encoder that keeps
the output within 15% of gzip's at that level: ISA-L (python-isal, when
installed) for levels 1-4, zlib-ng (python-zlib-ng, when installed) for 5-6,
zlib otherwise. All write standard gzip that any zcat reads, and all release
the GIL, so the engine's worker threads use every core. Neither accelerator is
packaged in Debian 12: the deb runs on zlib alone.
"""

from __future__ import annotations

import contextlib
import os
import stat
import zlib
from typing import Any

from nodeguard.fsutil import rename_noreplace
from nodeguard.rotation import faults
from nodeguard.rotation.naming import temp_name

CHUNK = 1 << 20
_GZIP_WBITS = 31  # zlib container = gzip
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC

COMPRESSOR_ENV = "NODEGUARD_COMPRESSOR"  # auto | zlib | isal | zlibng: benchmarks, debugging

# compress_level N (gzip's 1-9) -> (backend, backend level): the fastest encoder whose
# output stayed within 15% of `gzip -N` on every reference log (docs/performance.md).
# ISA-L's best is 12-29% larger than gzip -6 on log text, so from level 5 zlib's faster
# levels win; 7-9 ask for size and get zlib's own level.
_WITH_ISAL = {1: ("isal", 1), 2: ("isal", 1), 3: ("isal", 1), 4: ("isal", 3)}
_ZLIB_ONLY = {1: ("zlib", 1), 2: ("zlib", 1), 3: ("zlib", 1), 4: ("zlib", 2)}
_UPPER = {5: ("zlib", 4), 6: ("zlib", 4), 7: ("zlib", 7), 8: ("zlib", 8), 9: ("zlib", 9)}
_ISAL_FIRST = {n: ("isal", 1 if n <= 3 else 3) for n in range(1, 10)}  # speed over size
# zlib-ng level 4 on log text: at most 1.11x gzip -6's size (1.08x gzip -5's) over the
# reference logs, at about 1.3x zlib-4's speed (bench/gzip_levels.py).
_WITH_ZLIB_NG = {5: ("zlibng", 4), 6: ("zlibng", 4)}


def _load_isal(choice: str) -> Any:
    """ISA-L's zlib-compatible module, or None for zlib (asked for, or isal missing)."""
    if choice == "zlib":
        return None
    try:
        from isal import isal_zlib
    except ImportError:  # the deb does not depend on it; zlib is the fallback
        return None
    return isal_zlib


def _load_zlib_ng(choice: str) -> Any:
    """zlib-ng's zlib-compatible module, or None (not asked for, or not installed)."""
    if choice not in ("auto", "zlibng"):
        return None
    try:
        from zlib_ng import zlib_ng
    except ImportError:
        return None
    return zlib_ng


def _table(choice: str, isal: Any, zlib_ng: Any) -> dict[int, tuple[str, int]]:
    if isal is not None and choice == "isal":
        return _ISAL_FIRST
    table = {**(_ZLIB_ONLY if isal is None else _WITH_ISAL), **_UPPER}
    return table if zlib_ng is None else {**table, **_WITH_ZLIB_NG}


_CHOICE = os.environ.get(COMPRESSOR_ENV, "auto")
_isal: Any = _load_isal(_CHOICE if _CHOICE != "zlibng" else "zlib")
_zlib_ng: Any = _load_zlib_ng(_CHOICE)
_ENCODERS = _table(_CHOICE, _isal, _zlib_ng)
_MODULES: dict[str, Any] = {"zlib": zlib, "isal": _isal, "zlibng": _zlib_ng}


def compressor_name(level: int = 6) -> str:
    """The encoder used for ``level``, e.g. ``zlib-4`` or ``isal-1``."""
    backend, mapped = _ENCODERS[level]
    return f"{backend}-{mapped}"


def _compressobj(level: int) -> Any:
    backend, mapped = _ENCODERS[level]
    return _MODULES[backend].compressobj(mapped, zlib.DEFLATED, _GZIP_WBITS)


def gzip_file(dir_fd: int, name: str, level: int, *, allow_links: bool = False) -> int:
    """Compress ``name`` to ``name.gz`` in the same directory; return the .gz size.

    Raises OSError on failure, after removing the partial output; the plain file
    is then still whole. A file with other hard links is refused unless
    ``allow_links``: the other name may be outside the policy.
    """
    out_name = name + ".gz"
    tmp = temp_name(out_name)
    src = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
    try:
        st = os.fstat(src)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"{name}: not a regular file")
        if st.st_nlink > 1 and not allow_links:  # swapped for a hard link since the check
            raise OSError(f"{name}: has {st.st_nlink} hard links; left alone")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=dir_fd)  # leftover of an interrupted pass
        size = _write_gzip(src, dir_fd, tmp, st, level)
    finally:
        os.close(src)
    faults.point("compress.after-tmp")
    try:
        rename_noreplace(dir_fd, tmp, dir_fd, out_name)
    except OSError:
        _remove_quietly(tmp, dir_fd)
        raise
    os.fsync(dir_fd)
    faults.point("compress.after-rename")
    os.unlink(name, dir_fd=dir_fd)
    os.fsync(dir_fd)
    faults.point("compress.after-unlink")
    return size


def _write_gzip(src: int, dir_fd: int, tmp: str, st: os.stat_result, level: int) -> int:
    out = os.open(tmp, _CREATE_FLAGS, 0o600, dir_fd=dir_fd)
    try:
        size = _stream(src, out, level)
        os.fchown(out, st.st_uid, st.st_gid)
        os.fchmod(out, stat.S_IMODE(st.st_mode))
        os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.fsync(out)
    except BaseException:
        os.close(out)
        _remove_quietly(tmp, dir_fd)
        raise
    os.close(out)
    return size


def _stream(src: int, out: int, level: int) -> int:
    """Deflate everything readable from ``src`` into ``out``; return bytes written."""
    comp = _compressobj(level)
    written = 0
    while chunk := os.read(src, CHUNK):
        written += _write_all(out, comp.compress(chunk))
    return written + _write_all(out, comp.flush())


def _write_all(fd: int, data: bytes) -> int:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    return len(data)


def _remove_quietly(name: str, dir_fd: int) -> None:
    with contextlib.suppress(OSError):
        os.unlink(name, dir_fd=dir_fd)
