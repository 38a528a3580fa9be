"""A small ctypes binding to libdeflate's gzip compressor (Debian: ``libdeflate0``).

libdeflate compresses a whole buffer at once, 2-3 times faster than zlib at the same
size on log text (docs/performance.md). Each call writes one complete gzip member;
:mod:`compress` writes several members into one ``.gz``, which every gzip reader
accepts. ctypes releases the GIL during the call, so threads compress in parallel.
A compressor is not thread-safe: each thread gets its own per level.
"""

from __future__ import annotations

import ctypes
import threading
from typing import Any

SONAMES = ("libdeflate.so.0", "libdeflate.so")  # Debian/Fedora/EPEL ship the soname .so.0
LEVELS = range(1, 13)  # libdeflate's levels; 10-12 are its slow near-optimal parser


class Unavailable(Exception):
    """libdeflate cannot be loaded (not installed) or lacks the functions used here."""


class Libdeflate:
    """The loaded library; ``compressor(level)`` hands each thread its own compressor."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        try:
            self._alloc = lib.libdeflate_alloc_compressor
            self._free = lib.libdeflate_free_compressor
            self._gzip = lib.libdeflate_gzip_compress
            self._bound = lib.libdeflate_gzip_compress_bound
        except AttributeError as exc:
            raise Unavailable(f"libdeflate lacks {exc}") from exc
        self._alloc.argtypes, self._alloc.restype = [ctypes.c_int], ctypes.c_void_p
        self._free.argtypes, self._free.restype = [ctypes.c_void_p], None
        self._gzip.argtypes = [
            ctypes.c_void_p,
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_void_p,
            ctypes.c_size_t,
        ]
        self._gzip.restype = ctypes.c_size_t
        self._bound.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        self._bound.restype = ctypes.c_size_t
        self._local = threading.local()

    def compressor(self, level: int) -> Compressor:
        """This thread's compressor for ``level`` (1-12), made on first use."""
        if level not in LEVELS:
            raise ValueError(f"libdeflate level must be 1-12, not {level}")
        cache: dict[int, Compressor] = self._local.__dict__.setdefault("compressors", {})
        if level not in cache:
            handle = self._alloc(level)
            if not handle:
                raise MemoryError(f"libdeflate could not allocate a level {level} compressor")
            cache[level] = Compressor(self, handle)
        return cache[level]

    def gzip(self, handle: int, data: Any, size: int, out: Any, capacity: int) -> int:
        return int(self._gzip(handle, data, size, out, capacity))

    def bound(self, handle: int, size: int) -> int:
        return int(self._bound(handle, size))

    def free(self, handle: int) -> None:
        self._free(handle)


class Compressor:
    """One libdeflate compressor; ``gzip`` turns a buffer into one gzip member."""

    def __init__(self, lib: Libdeflate, handle: int) -> None:
        self._lib, self._handle = lib, handle

    def __del__(self) -> None:  # the thread that owned it has ended
        self._lib.free(self._handle)

    def bound(self, size: int) -> int:
        """The most bytes a member of ``size`` input bytes can take."""
        return self._lib.bound(self._handle, size)

    def gzip(self, data: bytes) -> memoryview:
        """``data`` as one complete gzip member (header, deflate stream, CRC-32, size)."""
        out = bytearray(self.bound(len(data)))  # calloc'd: untouched pages cost no memory
        target = (ctypes.c_char * len(out)).from_buffer(out)
        written = self._lib.gzip(self._handle, data, len(data), target, len(out))
        del target  # releases the export, so ``out`` may be sliced and freed
        if written == 0:  # only when the output does not fit, and it is sized by the bound
            raise RuntimeError("libdeflate: output larger than its own bound")
        return memoryview(out)[:written]


def load() -> Libdeflate:
    """The system's libdeflate, or Unavailable (then the caller uses zlib)."""
    errors = []
    for name in SONAMES:
        try:
            return Libdeflate(ctypes.CDLL(name))
        except OSError as exc:
            errors.append(str(exc))
    raise Unavailable("; ".join(errors))
