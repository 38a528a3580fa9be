"""Alertable events waiting for the disk part, kept in the state folder (at-least-once).

The journal part records each batch's alertable events (WARNING or worse) here BEFORE
the follower saves its cursor; the disk part takes them with its in-memory inbox,
evaluates them, and removes them only once that evaluation was saved and its alert
transitions queued in the spool. A SIGKILL, an OOM kill or a power cut anywhere between
the cursor save and the spool therefore repeats an evaluation (an event alert already
firing stays one alert), never loses one.

One document, ``state_dir/pending-events.json`` (``StateDocument``: capped, versioned,
atomic, mode 0600), changed under its own lock file (``pending-events.lock``: the
journal's lane and the disk's lane, or a ``run --once`` next to the daemon, never
interleave a read-modify-write). Every entry read back is checked (source, kind,
severity, text sizes, JSON facts): the folder is root's, but a state file is still
never trusted. At most ``PENDING_MAX`` events wait; beyond that the oldest go (counted).
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from nodeguard.events import Event, Severity, Source
from nodeguard.state import StateDocument, open_lock

NAME = "pending-events.json"
LOCK_NAME = "pending-events.lock"
PENDING_MAX = 1000  # events waiting; the oldest are dropped beyond
FILE_CAP = 8 * 1024 * 1024  # 1,000 events of a 2,048-character message each fit
TEXT_MAX = 8192  # characters of a subject or reason read back
ALERTABLE = Severity.WARNING  # the lowest alerts.events.min_severity
_E = TypeVar("_E", bound=enum.StrEnum)


@dataclass(frozen=True)
class Taken:
    """The events waiting (oldest first), their ids, and what was wrong with the file."""

    events: tuple[Event, ...] = ()
    ids: frozenset[int] = frozenset()
    problems: tuple[str, ...] = ()


def alertable(events: Sequence[Event]) -> list[Event]:
    """The journal's findings in entries (matches, rates, conditions) that can become
    alerts: lost with the cursor if not kept. Its state events (unavailable, lag) are
    reported again by the next run and stay in memory."""
    from nodeguard.journal.model import FROM_ENTRIES

    return [e for e in events if e.severity >= ALERTABLE and e.kind in FROM_ENTRIES]


class PendingEvents:
    """The durable queue between a producing part and the disk part."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.doc = StateDocument(state_dir / NAME, kind="pending-events", version=1, cap=FILE_CAP)

    def record(self, events: Sequence[Event]) -> int:
        """Append ``events`` durably (fsync'ed before this returns); the number dropped.

        Raises OSError when it cannot be written: the caller must not move its cursor.
        """
        if not events:
            return 0
        with self._locked():
            entries, next_id = self._entries()
            for event in events:
                entries.append({"id": next_id, **event.as_dict()})
                next_id += 1
            dropped = max(0, len(entries) - PENDING_MAX)
            self.doc.save({"next": next_id, "events": entries[dropped:]})
        return dropped

    def take(self) -> Taken:
        """The events waiting, without removing them (see :meth:`settle`)."""
        loaded = self.doc.load()
        if loaded.data is None:
            return Taken(problems=(loaded.problem,) if loaded.problem else ())
        events, ids, problems = [], set(), []
        for raw in _list(loaded.data.get("events")):
            try:
                ident, event = _entry(raw)
            except ValueError as exc:
                problems.append(f"{self.doc.path}: an entry ignored: {exc}")
                continue
            events.append(event)
            ids.add(ident)
        return Taken(tuple(events), frozenset(ids), tuple(problems[:10]))

    def settle(self, ids: frozenset[int]) -> None:
        """Remove the events ``ids`` (evaluated and queued); unreadable entries go too.

        Raises OSError when the file cannot be rewritten (they are evaluated again).
        """
        if not ids and not self.doc.path.exists():
            return
        with self._locked():
            entries, next_id = self._entries()
            kept = [e for e in entries if e.get("id") not in ids]
            if len(kept) != len(entries) or not ids:
                self.doc.save({"next": next_id, "events": kept})

    def _entries(self) -> tuple[list[dict[str, Any]], int]:
        """The valid entries on file and the next id (an unusable file counts as empty)."""
        loaded = self.doc.load()
        data = loaded.data or {}
        entries, top = [], 0
        for raw in _list(data.get("events")):
            with contextlib.suppress(ValueError):
                ident, _ = _entry(raw)
                entries.append(raw)
                top = max(top, ident)
        stored = data.get("next")
        next_id = stored if isinstance(stored, int) and _count(stored) else 0
        return entries, max(next_id, top + 1)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = open_lock(self.state_dir / LOCK_NAME)  # LockUnusable (an OSError)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


# --- reading one entry back -------------------------------------------------------------


def _list(value: object) -> list[Any]:
    return value[: PENDING_MAX * 2] if isinstance(value, list) else []


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**62


def _entry(raw: object) -> tuple[int, Event]:
    """One entry as (id, Event); ValueError naming what is wrong."""
    if not isinstance(raw, dict):
        raise ValueError("not a mapping")
    ident = raw.get("id")
    if not isinstance(ident, int) or not _count(ident):
        raise ValueError("no id")
    source = _enum(Source, raw.get("source"), "source")
    kind = _enum(_kinds(source), raw.get("kind"), "kind")
    severity = _enum(_Severities, raw.get("severity"), "severity")
    subject, reason = _text(raw.get("subject"), "subject"), _text(raw.get("reason"), "reason")
    facts = raw.get("facts")
    if not isinstance(facts, dict) or not all(_json_value(v, 4) for v in facts.values()):
        raise ValueError("facts are not JSON values")
    return ident, Event(
        source, kind, subject, Severity[severity.name], reason, facts, _time(raw.get("time"))
    )


class _Severities(enum.StrEnum):
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


def _kinds(source: Source) -> type[enum.StrEnum]:
    """The kinds a source may record (only the journal records today)."""
    if source is Source.JOURNAL:
        from nodeguard.journal.model import JournalKind

        return JournalKind
    raise ValueError(f"source {source} does not record events")


def _enum(cls: type[_E], value: object, what: str) -> _E:
    try:
        return cls(str(value)) if isinstance(value, str) else cls("\0")
    except ValueError:
        raise ValueError(f"{what} {str(value)[:40]!r} unknown") from None


def _text(value: object, what: str) -> str:
    if not isinstance(value, str) or len(value) > TEXT_MAX:
        raise ValueError(f"{what} is not a string of at most {TEXT_MAX} characters")
    return value


def _json_value(value: object, depth: int) -> bool:
    if value is None or isinstance(value, str | int | float | bool):
        return True
    if depth <= 0:
        return False
    if isinstance(value, list):
        return all(_json_value(v, depth - 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_value(v, depth - 1) for k, v in value.items())
    return False


def _time(value: object) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 64:
        raise ValueError("time is not an ISO 8601 string")
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("time is not an ISO 8601 string") from None
