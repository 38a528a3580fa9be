"""Prove that a plain rotated file may go once its ``.gz`` exists.

Two checks, one for each way a plain file comes to sit beside its ``.gz``:

* After a compression (:func:`changed_since`): the plain file must still be the very
  file that was read, as large and with the same mtime. A process that still holds it
  open for writing (an application that has not reopened its log yet) and wrote while
  it was compressed makes it differ: the ``.gz`` lacks those lines, so it is dropped and
  the plain file kept. Whether a process holds it open is looked up in /proc before the
  compression starts (``steps.compress``); this check covers the writes since then.
* An interrupted compression leaves the plain rotated file beside its complete ``.gz``;
  the next pass removes the plain copy. A ``.gz`` of that name can also be empty, cut
  short, or hold something else (another tool, another log's file, a user). So the
  plain file is removed only when the ``.gz`` decompresses completely (zlib checks
  every member's CRC32 and length) to as many bytes as the plain file has, with the
  same CRC32 (:func:`gzip_mismatch`).
"""

from __future__ import annotations

import os
import stat
import zlib
from collections.abc import Callable, Iterator

_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_CHUNK = 1 << 20
_GZIP_WBITS = 31


class _Incomplete(Exception):
    """The .gz ends inside a member (cut short) or holds no member at all."""


def changed_since(fd: int, read: os.stat_result) -> str | None:
    """None when the open file ``fd`` is still as ``read`` found it; otherwise what changed.

    Same inode, size and mtime (nanoseconds): every byte a writer adds or rewrites moves
    the size or the mtime, so equal values mean the compressed bytes are all of it.
    """
    now = os.fstat(fd)
    if (now.st_dev, now.st_ino) != (read.st_dev, read.st_ino):
        return "it was replaced by another file"
    if now.st_size != read.st_size:
        return f"it grew from {read.st_size} to {now.st_size} bytes while it was compressed"
    if now.st_mtime_ns != read.st_mtime_ns:
        return "it was written to while it was compressed (its mtime changed)"
    return None


def renamed_since(dir_fd: int, name: str, read: os.stat_result) -> str | None:
    """None when ``name`` in ``dir_fd`` still names the file ``read`` describes; otherwise
    what happened to it (the plain file is removed by name, so this is checked first)."""
    try:
        now = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return "it was moved away while it was compressed"
    if (now.st_dev, now.st_ino) != (read.st_dev, read.st_ino):
        return "it was replaced by another file of its name while it was compressed"
    return None


def gzip_mismatch(dir_fd: int, plain: str, gz: str) -> str | None:
    """None when ``gz`` holds exactly ``plain``'s bytes; otherwise why it does not."""
    try:
        want = _crc_and_length(dir_fd, plain, _plain_chunks)
        # a .gz that inflates past the plain file's length is not it: stop reading there
        have = _crc_and_length(dir_fd, gz, _gzip_chunks, limit=want[1])
    except _Incomplete as exc:
        return str(exc)
    except zlib.error as exc:
        return f"the .gz is not valid gzip ({exc})"
    except OSError as exc:
        return f"cannot compare them ({exc.strerror or exc})"
    if have != want:
        return (
            f"the .gz holds {have[1]} bytes (CRC32 {have[0]:08x}), the file "
            f"{want[1]} bytes (CRC32 {want[0]:08x})"
        )
    return None


def _crc_and_length(
    dir_fd: int, name: str, chunks: Callable[[int], Iterator[bytes]], limit: int | None = None
) -> tuple[int, int]:
    fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            raise OSError(f"{name} is not a regular file with one name")
        crc, length = 0, 0
        for chunk in chunks(fd):
            crc = zlib.crc32(chunk, crc)
            length += len(chunk)
            if limit is not None and length > limit:
                break
        return crc, length
    finally:
        os.close(fd)


def _plain_chunks(fd: int) -> Iterator[bytes]:
    while chunk := os.read(fd, _CHUNK):
        yield chunk


def _gzip_chunks(fd: int) -> Iterator[bytes]:
    """The decompressed bytes of every member, in order, as ``gzip -d`` reads them."""
    decoder, members, started = zlib.decompressobj(_GZIP_WBITS), 0, False
    for chunk in _plain_chunks(fd):
        data = chunk
        while data:
            started = True
            yield decoder.decompress(data, _CHUNK)
            while decoder.unconsumed_tail and not decoder.eof:
                yield decoder.decompress(decoder.unconsumed_tail, _CHUNK)
            if not decoder.eof:
                break
            members += 1
            data, started = decoder.unused_data, False
            decoder = zlib.decompressobj(_GZIP_WBITS)
    if members == 0 or started:
        raise _Incomplete("the .gz is empty or cut short")
