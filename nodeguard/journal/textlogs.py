"""The same rules over text logs, for hosts without systemd.

Each file is identified by device and inode, not by its name. The saved offset is the byte
after the last complete line processed. When the name points to a new inode (rotated), the
old inode is looked up among the names beside it (``kubelet.log.1``, ``kubelet.log-DATE``)
and read to its end first; when it is gone, the gap is reported. A file that shrank below
the offset was truncated in place (copytruncate): reading restarts at 0, reported. A file
never seen before is read from its last ``TAIL_START`` bytes (the text-log lookback).

A log others can write (or owned by someone but root) is not read: its lines could be
forged. Only complete lines are processed; a line longer than ``LINE_MAX`` is cut there.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from nodeguard.config.sections.journal import TextLog
from nodeguard.digest import sha256
from nodeguard.events import Event, Severity
from nodeguard.journal.model import Counts, JournalKind, journal_event
from nodeguard.journal.rules import KERNEL_LABEL, Evaluator
from nodeguard.journal.state import TextOffset

TAIL_START = 1024 * 1024
LINE_MAX = 64 * 1024
CHUNK = 1024 * 1024
HEAD_LEN = 256
_KLOG = re.compile(rb"^([IWEF])\d{4} ")
_LOGRUS = re.compile(rb"\blevel=(\w+)")
_KLOG_PRIORITY = {b"I": b"6", b"W": b"4", b"E": b"3", b"F": b"2"}
_LOGRUS_PRIORITY = {
    b"trace": b"7",
    b"debug": b"7",
    b"info": b"6",
    b"warning": b"4",
    b"warn": b"4",
    b"error": b"3",
    b"fatal": b"2",
    b"panic": b"0",
}


def guess_priority(line: bytes) -> bytes:
    """The syslog priority a klog or logrus line states ("" when it states none)."""
    klog = _KLOG.match(line)
    if klog:
        return _KLOG_PRIORITY[klog.group(1)]
    logrus = _LOGRUS.search(line, 0, 200)
    return _LOGRUS_PRIORITY.get(logrus.group(1), b"") if logrus else b""


@dataclass(frozen=True)
class TextBatch:
    offsets: Mapping[str, TextOffset]
    events: tuple[Event, ...]
    read: int  # lines
    at_end: bool


@dataclass(frozen=True)
class _Source:
    log: TextLog
    unit: bytes
    ident: bytes
    kernel: bool


class TextLogReader:
    """Follows the configured text logs from their saved offsets."""

    def __init__(self, files: tuple[TextLog, ...], euid: int) -> None:
        self._sources = [_source(log) for log in files]
        self._euid = euid

    def read(
        self,
        evaluator: Evaluator,
        counts: Counts,
        saved: Mapping[str, TextOffset],
        now_us: int,
        budget: int,
    ) -> TextBatch:
        """Read up to ``budget`` bytes over all files; offsets to save, problems found."""
        offsets = dict(saved)
        events: list[Event] = []
        lines = 0
        at_end = True
        for source in self._sources:
            key = str(source.log.path)
            state = _FileRead(source, evaluator, counts, now_us, events=events, euid=self._euid)
            offset = state.follow(saved.get(key), budget)
            if offset is not None:
                offsets[key] = offset
            lines += state.lines
            budget -= state.consumed
            at_end = at_end and state.at_end
        return TextBatch(offsets, tuple(events), lines, at_end)


def _source(log: TextLog) -> _Source:
    kernel = log.unit == KERNEL_LABEL
    ident = log.unit.removesuffix(".service")
    return _Source(log, b"" if kernel else log.unit.encode(), ident.encode(), kernel)


class _FileRead:
    """One file's read: where to start, then its complete lines through the rules."""

    def __init__(
        self,
        source: _Source,
        ev: Evaluator,
        counts: Counts,
        now_us: int,
        *,
        events: list[Event],
        euid: int,
    ) -> None:
        self.source, self.ev, self.counts, self.now_us = source, ev, counts, now_us
        self.euid = euid
        self.events = events
        self.lines = self.consumed = 0
        self.at_end = True

    def follow(self, saved: TextOffset | None, budget: int) -> TextOffset | None:
        path = self.source.log.path
        with _open_log(path, self.euid, self._problem) as opened:
            if opened is None:
                return saved
            fd, st = opened
            start = self._start(fd, saved, st, budget)
            end = self._consume(fd, st.st_ino, start, budget - self.consumed)
            head_len = min(HEAD_LEN, max(end, st.st_size))
            return TextOffset(st.st_dev, st.st_ino, end, _head(fd, head_len), head_len)

    def _start(self, fd: int, saved: TextOffset | None, st: os.stat_result, budget: int) -> int:
        if saved is None:
            return _line_start(fd, max(0, st.st_size - TAIL_START))  # the text-log lookback
        if (saved.dev, saved.ino) != (st.st_dev, st.st_ino):
            self._finish_rotated(saved, budget)
            return 0
        if st.st_size < saved.offset:
            self._problem(
                f"truncated to {st.st_size} bytes below offset {saved.offset}; "
                "reading from the start"
            )
            return 0
        if _head(fd, saved.head_len) != saved.head:
            self._problem(
                "replaced (same inode number, different first bytes): reading the new file "
                f"from the start; lines after offset {saved.offset} of the old one were not checked"
            )
            return 0
        return saved.offset

    def _finish_rotated(self, saved: TextOffset, budget: int) -> None:
        path = self.source.log.path
        for name in _siblings(path):
            if self._finish_one(path.parent / name, saved, budget):
                return
        self._problem(
            "rotated away before it was read to the end; lines written after offset "
            f"{saved.offset} of the old file were not checked"
        )

    def _finish_one(self, candidate: Path, saved: TextOffset, budget: int) -> bool:
        """Read the rest of ``candidate`` if it is the saved file (checked on the open fd)."""
        try:
            st = os.lstat(candidate)
            if (st.st_dev, st.st_ino) != (saved.dev, saved.ino):
                return False
            fd = os.open(candidate, _OPEN_FLAGS)
        except OSError:
            return False
        try:
            st = os.fstat(fd)
            same = (
                (st.st_dev, st.st_ino) == (saved.dev, saved.ino)
                and _untrusted(st, self.euid) is None
                and _head(fd, saved.head_len) == saved.head
            )
            if same:
                self._consume(fd, st.st_ino, min(saved.offset, st.st_size), budget)
            return same
        finally:
            os.close(fd)

    def _consume(self, fd: int, ino: int, start: int, budget: int) -> int:
        """Process complete lines from ``start``; return the offset after the last one."""
        offset = start
        pending = b""
        while budget > 0:
            chunk = os.pread(fd, min(CHUNK, budget), offset + len(pending))
            if not chunk:
                break
            budget -= len(chunk)
            self.consumed += len(chunk)
            data = pending + chunk
            cut = data.rfind(b"\n") + 1
            if cut == 0 and len(data) >= LINE_MAX:
                cut = LINE_MAX  # a line without end: cut, so reading never stalls on it
            self._lines(data[:cut], ino, offset)
            offset += cut
            pending = data[cut:]
        self.at_end = self.at_end and budget > 0
        return offset

    def _lines(self, data: bytes, ino: int, base: int) -> None:
        source, ev, counts = self.source, self.ev, self.counts
        scope = ev.rules.scope(source.unit or None, source.ident, source.kernel)
        position = base
        for raw in data.splitlines(keepends=True):
            line = raw.rstrip(b"\r\n")[:LINE_MAX]
            key = (scope.label, guess_priority(line))
            counts.entries[key] = counts.entries.get(key, 0) + 1
            counts.bytes[key] = counts.bytes.get(key, 0) + len(line)
            ev.account_flood(scope.label, len(line), self.now_us)
            if scope.may_match(line):
                where = f"{source.log.path}:{ino}:{position}"
                ev.check(scope, line, self.now_us, _constant(where))
            position += len(raw)
            self.lines += 1

    def _problem(self, text: str) -> None:
        path = str(self.source.log.path)
        self.events.append(
            journal_event(
                JournalKind.TEXT_LOG_RESET,
                path,
                Severity.WARNING,
                f"{path}: {text}",
                facts={"path": path, "unit": self.source.log.unit},
            )
        )


_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY


@contextlib.contextmanager
def _open_log(
    path: Path, euid: int, report: Callable[[str], None]
) -> Iterator[tuple[int, os.stat_result] | None]:
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        yield None
        return
    except OSError as exc:
        why = "a symlink, not followed" if exc.errno == errno.ELOOP else exc.strerror
        report(f"cannot open: {why}")
        yield None
        return
    try:
        st = os.fstat(fd)
        why = _untrusted(st, euid)
        if why:
            report(f"{why}: its lines could be forged, so it is not read")
        yield None if why else (fd, st)
    finally:
        os.close(fd)


def _line_start(fd: int, offset: int) -> int:
    """``offset`` if a line starts there, else the start of the next line."""
    if offset == 0:
        return 0
    data = os.pread(fd, LINE_MAX + 1, offset - 1)
    newline = data.find(b"\n")
    return offset + newline if newline >= 0 else offset + len(data) - 1


def _head(fd: int, length: int) -> str:
    """Fingerprint of the first ``length`` bytes ("" for none)."""
    if length <= 0:
        return ""
    data = os.pread(fd, length, 0)
    return sha256(data).hexdigest() if len(data) == length else "short"


def _constant(value: str) -> Callable[[], str]:
    return lambda: value


def _untrusted(st: os.stat_result, euid: int) -> str | None:
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if st.st_uid not in (0, euid):
        return f"owned by uid {st.st_uid}"
    if st.st_mode & stat.S_IWOTH:
        return "writable by others"
    if st.st_mode & stat.S_IWGRP and st.st_gid != 0:
        return f"writable by group {st.st_gid}"
    return None


def _siblings(path: Path) -> list[str]:
    try:
        names = os.listdir(path.parent)
    except OSError:
        return []
    base = path.name
    return sorted(n for n in names if n != base and n.startswith(base))
