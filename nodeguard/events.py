"""Events: what every concern reports, as data.

Rotation, containers, docker-config, the journal follower and the disk guard all
describe what they did, refused or found as :class:`Event` values. The CLI renders
them as text or JSON, the daemon logs them, and the alert sinks and metrics turn them
into alerts and counters; nothing below the CLI prints.

Each concern declares its own kinds as a :class:`enum.StrEnum` in its own module
(``RotationKind``, ``JournalKind``, ...), so kinds travel as data, never parsed back
from message text, and concerns add kinds without touching each other.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any


class Source(enum.StrEnum):
    """The concern that produced an event."""

    ROTATION = "rotation"
    CONTAINERS = "containers"
    DOCKER = "docker"
    JOURNAL = "journal"
    DISK = "disk"
    ALERTS = "alerts"
    DAEMON = "daemon"


class Severity(enum.IntEnum):
    """How much an event matters; ordered, so ``max()`` of a batch is its worst."""

    DEBUG = 0
    INFO = 1
    WARNING = 2
    ERROR = 3
    CRITICAL = 4

    @property
    def log_level(self) -> int:
        return _LOG_LEVELS[self]


_LOG_LEVELS = {
    Severity.DEBUG: logging.DEBUG,
    Severity.INFO: logging.INFO,
    Severity.WARNING: logging.WARNING,
    Severity.ERROR: logging.ERROR,
    Severity.CRITICAL: logging.CRITICAL,
}


def _frozen(facts: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(facts))


@dataclass(frozen=True)
class Event:
    """One thing a concern did, refused or found.

    ``subject`` names what it is about (a path, a container id, a mountpoint, a unit);
    ``reason`` is one human sentence; ``facts`` hold numbers and names for machines
    (JSON-able values only: str, int, float, bool, None, lists and dicts of them).
    """

    source: Source
    kind: enum.StrEnum
    subject: str
    severity: Severity
    reason: str
    facts: Mapping[str, Any] = field(default_factory=dict)
    time: datetime | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "facts", _frozen(self.facts))

    def as_dict(self) -> dict[str, Any]:
        """The event as plain JSON-able data (the shape of every ``--json`` output)."""
        return {
            "source": str(self.source),
            "kind": str(self.kind),
            "subject": self.subject,
            "severity": self.severity.name.lower(),
            "reason": self.reason,
            "facts": dict(self.facts),
            "time": self.time.isoformat() if self.time else None,
        }


def worst(events: Iterable[Event]) -> Severity | None:
    """The highest severity among ``events`` (None for none)."""
    return max((e.severity for e in events), default=None)


def log_event(logger: logging.Logger, event: Event) -> None:
    """Log one event at its severity, with its kind and subject as structured extras.

    The daemon's journald handler turns the extras into journal fields
    (NODEGUARD_SOURCE, NODEGUARD_KIND, NODEGUARD_SUBJECT).
    """
    logger.log(
        event.severity.log_level,
        "%s: %s",
        event.subject,
        event.reason,
        extra={
            "nodeguard_source": str(event.source),
            "nodeguard_kind": str(event.kind),
            "nodeguard_subject": event.subject,
        },
    )
