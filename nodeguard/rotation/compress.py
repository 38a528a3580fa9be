"""gzip compression of a rotated file, crash-safe.

The output is written to a hidden temporary name, fsynced, renamed to
``<name>.gz``, and only then is the plain file removed: at every instant one
complete copy exists. Each gzip level maps to the fastest installed encoder whose
output stayed within 10% of ``gzip -N``'s on every corpus of bench/gzip_levels.py
(levels 7-9: no larger): libdeflate (Debian's ``libdeflate0``, through a ctypes
binding) where the table says so, ISA-L or zlib-ng if installed, zlib otherwise.
libdeflate compresses whole buffers, so its output is a multi-member gzip of
independent members of MEMBER bytes (every gzip reader takes it; memory stays
bounded; one large file's members are compressed on several cores). All encoders
release the GIL, so the engine's worker threads use every core.
"""

from __future__ import annotations

import contextlib
import functools
import os
import stat
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from nodeguard.fsutil import rename_noreplace
from nodeguard.rotation import faults
from nodeguard.rotation.naming import temp_name

CHUNK = 1 << 20  # read size of the streaming encoders
MEMBER = 2 << 20  # input bytes per gzip member (libdeflate): costs about 0.15% in size
_GZIP_WBITS = 31  # zlib container = gzip
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_MAX_THREADS = 4  # members of one file compressed at once, at most

COMPRESSOR_ENV = "NODEGUARD_COMPRESSOR"  # auto | zlib | libdeflate | isal | zlibng
BACKENDS = ("libdeflate", "isal", "zlibng", "zlib")
Encoder = tuple[str, int]

# compress_level N -> the encoders whose output was within 10% of `gzip -N`'s on every
# corpus of bench/gzip_levels.py (7-9: no larger), fastest first; the first installed
# one is used. Measured there (docs/performance.md); a zlib level ends every list.
PREFERENCES: dict[int, tuple[Encoder, ...]] = {
    1: (("isal", 1), ("libdeflate", 1), ("zlibng", 2), ("zlib", 1)),
    2: (("libdeflate", 1), ("zlibng", 2), ("isal", 3), ("zlib", 2)),
    3: (("zlibng", 3), ("libdeflate", 3), ("zlib", 3)),
    4: (("zlibng", 3), ("libdeflate", 3), ("zlib", 4)),
    5: (("zlibng", 5), ("libdeflate", 5), ("zlib", 5)),
    6: (("libdeflate", 6), ("zlibng", 6), ("zlib", 5)),
    7: (("zlib", 7), ("zlibng", 8), ("libdeflate", 10)),
    8: (("zlib", 8), ("libdeflate", 10)),
    9: (("zlib", 9), ("libdeflate", 10)),
}


def _load(backend: str) -> Any:
    """The backend's module (or libdeflate binding), or None when it is not installed."""
    if backend == "libdeflate":
        from nodeguard.rotation import deflate

        try:
            return deflate.load()
        except deflate.Unavailable:  # the deb depends on libdeflate0; elsewhere optional
            return None
    try:
        if backend == "isal":
            from isal import isal_zlib

            return isal_zlib
        if backend == "zlibng":
            from zlib_ng import zlib_ng

            return zlib_ng
    except ImportError:
        return None
    return zlib


@functools.cache
def _backends(choice: str) -> dict[str, Any]:
    """The usable backends: zlib, plus the accelerators ``choice`` allows that load."""
    allowed = BACKENDS if choice == "auto" else (choice, "zlib")
    loaded = {name: _load(name) for name in BACKENDS if name in allowed}
    return {name: module for name, module in loaded.items() if module is not None}


def _choice() -> str:
    choice = os.environ.get(COMPRESSOR_ENV, "auto")
    return choice if choice in (*BACKENDS, "auto") else "auto"


def encoder(level: int, choice: str | None = None) -> Encoder:
    """The encoder ``compress_level`` ``level`` uses here (first installed of its list)."""
    available = _backends(choice or _choice())
    for backend, mapped in PREFERENCES[level]:
        if backend in available:
            return backend, mapped
    return "zlib", level  # unreachable: every list holds a zlib level


def compressor_name(level: int = 6) -> str:
    """The encoder used for ``level``, e.g. ``libdeflate-6`` or ``zlib-5``."""
    backend, mapped = encoder(level)
    return f"{backend}-{mapped}"


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
        size = write_gzip(src, out, level, st.st_size)
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


def write_gzip(src: int, out: int, level: int, size_hint: int = 0) -> int:
    """gzip everything readable from ``src`` into ``out``; return the bytes written."""
    backend, mapped = encoder(level)
    module = _backends(_choice())[backend]
    if backend == "libdeflate":
        return _members(src, out, lambda data: module.compressor(mapped).gzip(data), size_hint)
    return _stream(src, out, module.compressobj(mapped, zlib.DEFLATED, _GZIP_WBITS))


def _stream(src: int, out: int, comp: Any) -> int:
    """Deflate ``src`` through a zlib-style compressor object: one gzip member."""
    written = 0
    while chunk := os.read(src, CHUNK):
        written += _write_all(out, comp.compress(chunk))
    return written + _write_all(out, comp.flush())


Member = Callable[[bytes], memoryview]


def _members(src: int, out: int, gzip: Member, size_hint: int) -> int:
    """Independent gzip members of MEMBER input bytes each, written in order.

    A file of several members has them compressed on up to _MAX_THREADS threads
    (each with its own compressor) while this thread writes; at most one member per
    thread is in memory, so memory stays bounded whatever the file's size.
    """
    threads = min(_MAX_THREADS, len(os.sched_getaffinity(0)), -(-size_hint // MEMBER))
    if threads <= 1:
        pieces: Iterator[memoryview] = map(gzip, _read_members(src))
        return _write_members(out, pieces, gzip)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(threads, thread_name_prefix="gzip-member") as pool:
        return _write_members(out, _parallel(pool, src, gzip, threads), gzip)


def _write_members(out: int, pieces: Iterator[memoryview], gzip: Member) -> int:
    written = sum(_write_all(out, piece) for piece in pieces)
    return written or _write_all(out, gzip(b""))  # an empty file: one empty member


def _read_members(src: int) -> Iterator[bytes]:
    offset = 0
    while data := _pread_full(src, MEMBER, offset):
        yield data
        offset += len(data)


def _parallel(pool: Any, src: int, gzip: Member, ahead: int) -> Iterator[memoryview]:
    """Members compressed on the pool (each thread reads its own), yielded in order."""
    pending: deque[Any] = deque()
    offset, eof = 0, False
    while pending or not eof:
        while not eof and len(pending) < ahead:
            pending.append(pool.submit(_read_and_gzip, src, offset, gzip))
            offset += MEMBER
        data_length, piece = pending.popleft().result()
        if data_length and not eof:
            yield piece
        # members after a short one are past the end: read empty, or a file that grew
        eof = eof or data_length < MEMBER


def _read_and_gzip(src: int, offset: int, gzip: Member) -> tuple[int, memoryview]:
    data = _pread_full(src, MEMBER, offset)
    return len(data), gzip(data) if data else memoryview(b"")


def _pread_full(fd: int, length: int, offset: int) -> bytes:
    """Up to ``length`` bytes at ``offset``; fewer only at end of file."""
    data = os.pread(fd, length, offset)
    while data and len(data) < length:
        more = os.pread(fd, length - len(data), offset + len(data))
        if not more:
            break
        data += more
    return data


def _write_all(fd: int, data: bytes | memoryview) -> int:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    return len(data)


def _remove_quietly(name: str, dir_fd: int) -> None:
    with contextlib.suppress(OSError):
        os.unlink(name, dir_fd=dir_fd)
