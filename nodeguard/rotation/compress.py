"""gzip compression of a rotated file, crash-safe.

The output is written to a hidden temporary name, fsynced, renamed to
``<name>.gz``, and only then is the plain file removed: at every instant one
complete copy exists (one fsync on ext4 and xfs, which persist the rename before
the unlink; three elsewhere). Each gzip level maps to the fastest installed encoder whose
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
import mmap
import os
import stat
import threading
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from nodeguard import faults
from nodeguard.fsutil import rename_noreplace
from nodeguard.rotation import ordering, verify
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


class NotSettled(Exception):
    """The file changed while it was compressed (a process still writes it): the plain
    file is kept whole, the ``.gz`` dropped; a later pass compresses it."""


def gzip_file(
    dir_fd: int,
    name: str,
    level: int,
    *,
    allow_links: bool = False,
    expect: tuple[int, int] | None = None,
) -> int:
    """Compress ``name`` to ``name.gz`` in the same directory; return the .gz size.

    Raises OSError on failure, after removing the partial output; the plain file
    is then still whole. A file with other hard links is refused unless
    ``allow_links``: the other name may be outside the policy. Raises
    :class:`NotSettled`, the plain file kept and no ``.gz`` left, when ``name`` is not
    the file ``expect`` (device, inode) names, or when it is written to while it is
    compressed (checked once the ``.gz`` is complete and again before the plain file is
    removed: :func:`verify.changed_since`).
    """
    out_name = name + ".gz"
    tmp = temp_name(out_name)
    src = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
    try:
        st = os.fstat(src)
        _check_source(name, st, allow_links, expect)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=dir_fd)  # leftover of an interrupted pass
        size = _write_gzip(src, dir_fd, tmp, st, level)
        faults.point("compress.after-tmp")
        _settled_or_drop(src, st, dir_fd, tmp)
        _publish(src, st, dir_fd, tmp, name)
    finally:
        os.close(src)
    return size


def _check_source(
    name: str, st: os.stat_result, allow_links: bool, expect: tuple[int, int] | None
) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise OSError(f"{name}: not a regular file")
    if st.st_nlink > 1 and not allow_links:  # swapped for a hard link since the check
        raise OSError(f"{name}: has {st.st_nlink} hard links; left alone")
    if expect is not None and (st.st_dev, st.st_ino) != expect:
        raise NotSettled("it was replaced since its writers were looked up")


def _settled_or_drop(
    src: int, st: os.stat_result, dir_fd: int, gz: str, name: str | None = None
) -> None:
    """Raise NotSettled, after removing ``gz``, if the source changed since ``st`` (or,
    with ``name``, that name no longer holds it)."""
    changed = verify.changed_since(src, st)
    if changed is None and name is not None:
        changed = verify.renamed_since(dir_fd, name, st)
    if changed is not None:
        _remove_quietly(gz, dir_fd)
        raise NotSettled(changed)


def _publish(src: int, st: os.stat_result, dir_fd: int, tmp: str, name: str) -> None:
    """Rename the complete temp to ``name.gz``, then remove the plain file if unchanged."""
    out_name = name + ".gz"
    # ext4 with a journal and xfs persist metadata changes in order: the unlink is never
    # durable without the rename before it, and a plain file that comes back after a
    # crash beside its complete .gz is removed by the next pass. Elsewhere (ext4 without
    # a journal too) each step is fsynced.
    ordered = ordering.fsync_orders(dir_fd)
    try:
        rename_noreplace(dir_fd, tmp, dir_fd, out_name)
    except OSError:
        _remove_quietly(tmp, dir_fd)
        raise
    if not ordered:
        os.fsync(dir_fd)
    faults.point("compress.after-rename")
    _settled_or_drop(src, st, dir_fd, out_name, name)  # the .gz is ours: never replaced
    os.unlink(name, dir_fd=dir_fd)
    if not ordered:
        os.fsync(dir_fd)
    faults.point("compress.after-unlink")


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
        try:
            return _members(src, out, functools.partial(_member, module, mapped, src), size_hint)
        finally:
            _buffers.release()  # this thread's; the pool's threads end with their own
    return _stream(src, out, module.compressobj(mapped, zlib.DEFLATED, _GZIP_WBITS))


def _stream(src: int, out: int, comp: Any) -> int:
    """Deflate ``src`` through a zlib-style compressor object: one gzip member."""
    written = 0
    while chunk := os.read(src, CHUNK):
        written += _write_all(out, comp.compress(chunk))
    return written + _write_all(out, comp.flush())


class _Buffers(threading.local):
    """Each thread's input and output buffers, made once per file: no allocation per
    member, and the output (an anonymous mapping) holds only the pages a member really
    fills. Released after each file (:func:`write_gzip`), so an idle daemon holds none
    (they would be up to 2 x MEMBER of resident memory for good)."""

    def __init__(self) -> None:
        self.input: bytearray | None = None
        self.output: mmap.mmap | None = None

    def inp(self) -> bytearray:
        if self.input is None:
            self.input = bytearray(MEMBER)
        return self.input

    def out(self, size: int) -> mmap.mmap:
        if self.output is None or len(self.output) < size:
            self.output = mmap.mmap(-1, size)
        return self.output

    def release(self) -> None:
        if self.output is not None:
            self.output.close()
        self.input = self.output = None


_buffers = _Buffers()


def _member(lib: Any, level: int, src: int, offset: int) -> tuple[int, bytes]:
    """Read the member at ``offset`` and gzip it: (input bytes, the member)."""
    data = _buffers.inp()
    size = _pread_full(src, data, offset)
    if size == 0 and offset > 0:
        return 0, b""
    compressor = lib.compressor(level)
    out = _buffers.out(compressor.bound(MEMBER))
    length = compressor.gzip_into(data, size, out)
    return size, out[:length]


Member = Callable[[int], tuple[int, bytes]]


def _members(src: int, out: int, member: Member, size_hint: int) -> int:
    """Independent gzip members of MEMBER input bytes each, written in order.

    A file of several members has them compressed on up to _MAX_THREADS threads
    (each with its own compressor and buffers) while this thread writes; at most one
    member per thread is in memory, so memory stays bounded whatever the file's size.
    An empty file gets one empty member.
    """
    threads = min(_MAX_THREADS, len(os.sched_getaffinity(0)), -(-size_hint // MEMBER))
    if threads <= 1:
        return sum(_write_all(out, piece) for piece in _in_order(member))
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(threads, thread_name_prefix="gzip-member") as pool:
        pieces = _in_order(lambda offset: pool.submit(member, offset), ahead=threads)
        return sum(_write_all(out, piece) for piece in pieces)


def _in_order(start: Callable[[int], Any], ahead: int = 0) -> Iterator[bytes]:
    """The members from offset 0 on, in order, until one is short (end of file).

    With ``ahead``, ``start`` returns futures and that many run at once; members started
    past the end come back empty (or from a file that grew) and are dropped.
    """
    pending: deque[Any] = deque()
    offset = 0
    while True:
        while len(pending) < max(1, ahead):
            pending.append(start(offset))
            offset += MEMBER
        size, piece = pending.popleft().result() if ahead else pending.popleft()
        if piece:  # empty past the end; an empty file's only member is not
            yield piece
        if size < MEMBER:
            return


def _pread_full(fd: int, buffer: bytearray, offset: int) -> int:
    """Fill ``buffer`` from ``offset``; fewer bytes only at end of file."""
    view, done = memoryview(buffer), 0
    while done < len(buffer):
        got = os.preadv(fd, [view[done:]], offset + done)
        if got == 0:
            break
        done += got
    return done


def _write_all(fd: int, data: bytes | memoryview) -> int:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    return len(data)


def _remove_quietly(name: str, dir_fd: int) -> None:
    with contextlib.suppress(OSError):
        os.unlink(name, dir_fd=dir_fd)
