"""The journal, read through systemd-python's low-level reader (imported lazily).

``systemd._reader._Reader`` with ``_next``/``_get`` reads about a million entries a second
here; the dict-building ``systemd.journal.Reader`` a tenth of that. Only the fields the
rules and metrics need are fetched, as bytes, and a cursor only for a match and once per
batch.

Matches: ``_SYSTEMD_UNIT`` in the configured units, OR a configured ``SYSLOG_IDENTIFIER``
from uid 0 (an identifier is chosen by the logging process; requiring ``_UID=0``, a
trusted field journald sets, keeps users from forging kubelet or conmon lines), OR
``_TRANSPORT=kernel``.

Resuming: the cursor is checked on a reader without matches first (``seek_cursor``,
``_next``, ``test_cursor``): seeking with matches active to an entry they exclude would
make a valid cursor look lost. When it is found, the matches are added and reading
continues after it; the saved entry itself is never processed twice.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from nodeguard.config.sections.journal import JournalConfig
from nodeguard.journal.model import Counts
from nodeguard.journal.rules import Evaluator

MISSING = (
    "systemd-python is not installed, so journald cannot be read "
    "(Debian/Ubuntu: apt-get install python3-systemd; RHEL/Fedora: dnf install python3-systemd)"
)
NO_JOURNALD = "no journal on this host: neither /var/log/journal nor /run/log/journal exists"
SYSTEM_JOURNAL_DIRS = ("/var/log/journal", "/run/log/journal")
NOP, APPEND, INVALIDATE = 0, 1, 2


class JournalUnavailable(Exception):
    """No journal can be read here; the message says why and what to do."""


def systemd_reader_module() -> ModuleType:
    """``systemd._reader``, imported on first use; JournalUnavailable without it."""
    try:
        from systemd import _reader
    except ImportError:
        raise JournalUnavailable(MISSING) from None
    module: ModuleType = _reader
    return module


@dataclass(frozen=True)
class Batch:
    """What one bounded read did."""

    read: int
    cursor: str | None  # of the last entry read (None: nothing read)
    realtime_us: int  # of the last entry read (0: nothing read)
    at_end: bool  # reached the end of the journal (False: the batch limit stopped it)


class JournalReader:
    """One open journal with nodeguard's matches."""

    def __init__(self, config: JournalConfig) -> None:
        module = systemd_reader_module()
        self.source = str(config.directory) if config.directory else "system"
        if config.directory is not None:
            _check_directory(str(config.directory))
            self._reader: Any = module._Reader(flags=0, path=str(config.directory))
        else:
            if not any(os.path.isdir(d) for d in SYSTEM_JOURNAL_DIRS):
                raise JournalUnavailable(NO_JOURNALD)
            self._reader = module._Reader(flags=module.LOCAL_ONLY | module.SYSTEM)
        self._config = config
        self._units = frozenset(u.encode() for u in config.units)

    def close(self) -> None:
        self._reader.close()

    def position(self, cursor: str | None, since_us: int) -> str | None:
        """Resume right after ``cursor``, else start at ``since_us``; return why not resumed."""
        problem = None
        if cursor is not None:
            problem = self._find(cursor)
            if problem is None:
                self._add_matches()
                return None
        self._add_matches()
        self._reader.seek_realtime(max(0, since_us))
        return problem

    def _find(self, cursor: str) -> str | None:
        reader = self._reader
        try:
            reader.seek_cursor(cursor)
        except (ValueError, OSError):
            return "the journal does not accept the saved cursor"
        if reader._next() and reader.test_cursor(cursor):
            return None
        return "the saved cursor's entry is not in this journal (vacuumed, or another machine's)"

    def _add_matches(self) -> None:
        reader, config = self._reader, self._config
        for unit in config.units:
            reader.add_match(f"_SYSTEMD_UNIT={unit}")
        if config.identifiers:
            reader.add_disjunction()
            for ident in config.identifiers:
                reader.add_match(f"SYSLOG_IDENTIFIER={ident}")
            reader.add_match("_UID=0")
        if config.kernel:
            reader.add_disjunction()
            reader.add_match("_TRANSPORT=kernel")

    def wait(self, timeout_s: float) -> int:
        """NOP, APPEND or INVALIDATE (files added or removed: rotation, vacuum)."""
        result: int = self._reader.wait(max(0, int(timeout_s * 1_000_000)))
        return result

    def read(self, evaluator: Evaluator, counts: Counts, limit: int) -> Batch:
        """Read at most ``limit`` entries through the rules; the hot loop of the follower."""
        reader = self._reader
        nxt, get, realtime = reader._next, reader._get, reader._get_realtime
        scope_of, units = evaluator.rules.scope, self._units
        entries, nbytes = counts.entries, counts.bytes
        flood, check = evaluator.account_flood, evaluator.check
        n = rt = 0
        at_end = False
        while n < limit:
            if not nxt():
                at_end = True
                break
            n += 1
            rt = realtime()
            # Inline lookups (a missing field raises KeyError): this loop is the hot path.
            try:
                message = get("MESSAGE")
            except KeyError:
                message = b""
            try:
                unit = get("_SYSTEMD_UNIT")
            except KeyError:
                unit = None
            try:
                ident = get("SYSLOG_IDENTIFIER")
            except KeyError:
                ident = None
            try:
                priority = get("PRIORITY")
            except KeyError:
                priority = b""
            kernel = unit not in units and _field(get, "_TRANSPORT") == b"kernel"
            scope = scope_of(unit, ident, kernel)
            key = (scope.label, priority)
            entries[key] = entries.get(key, 0) + 1
            nbytes[key] = nbytes.get(key, 0) + len(message)
            flood(scope.label, len(message), rt)
            if scope.rules and (scope.prefilter is None or scope.prefilter.search(message)):
                check(scope, message, rt, reader._get_cursor)
        cursor = reader._get_cursor() if n else None
        return Batch(n, cursor, rt, at_end)


def _field(get: Any, name: str) -> bytes | None:
    try:
        value: bytes = get(name)
    except KeyError:
        return None
    return value


def _check_directory(path: str) -> None:
    try:
        st = os.stat(path)
    except OSError as exc:
        raise JournalUnavailable(f"{path}: cannot read the journal: {exc.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise JournalUnavailable(f"{path}: not a directory")
    if st.st_mode & stat.S_IWOTH:  # sticky or not: anyone can add a file
        # A journal file keeps whatever fields it was written with (journal-remote copies
        # _UID from its input): anyone who can add one could forge uid-0 kubelet lines.
        raise JournalUnavailable(f"{path}: writable by others: its entries could be forged")
