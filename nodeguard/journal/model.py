"""What the journal follower reports: its event kinds, metrics and results, as data."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from nodeguard.events import Event, Severity, Source

MESSAGE_MAX = 2048  # characters of a message kept in an event


class JournalKind(enum.StrEnum):
    """Kinds of the journal's events."""

    MATCH = "match"  # an event rule matched an entry
    RATE = "rate"  # a rate rule saw `count` matches within its window
    CONDITION_ACTIVE = "condition-active"
    CONDITION_CLEARED = "condition-cleared"
    SUPPRESSED = "suppressed"  # more matches of one rule in a batch than events allowed
    FLOOD = "flood"  # a watched unit wrote more than the flood limits in one window
    CURSOR_RESET = "cursor-reset"  # saved cursor unusable: restarted from the lookback
    LAG = "lag"  # the reader is behind the journal
    UNAVAILABLE = "unavailable"  # no systemd-python, or no journal to read
    READ_ERROR = "read-error"
    TEXT_LOG_RESET = "text-log-reset"  # a text log truncated, or its rotated file gone
    STATE_UNWRITABLE = "state-unwritable"
    USAGE = "usage"
    VACUUMED = "vacuumed"
    VACUUM_FAILED = "vacuum-failed"


# Kinds found in the entries read: once the cursor moved past those entries, nothing
# finds them again, so the daemon records them durably before the cursor is saved. The
# other kinds (unavailable, lag, read errors, ...) describe a state the next run reports
# again.
FROM_ENTRIES = frozenset(
    {
        JournalKind.MATCH,
        JournalKind.RATE,
        JournalKind.CONDITION_ACTIVE,
        JournalKind.CONDITION_CLEARED,
        JournalKind.SUPPRESSED,
        JournalKind.FLOOD,
    }
)

SEVERITY_BY_NAME = {
    "info": Severity.INFO,
    "warning": Severity.WARNING,
    "error": Severity.ERROR,
    "critical": Severity.CRITICAL,
}


def printable(raw: bytes, limit: int = MESSAGE_MAX) -> str:
    """A journal message as safe text: UTF-8 (invalid bytes replaced), control characters
    escaped (a message is written by whoever logs; it must not drive a terminal), capped."""
    text = raw[: limit * 4].decode("utf-8", "replace")
    if not text.isprintable():
        text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def entry_time(realtime_us: int) -> datetime:
    return datetime.fromtimestamp(realtime_us / 1e6, UTC)


def journal_event(
    kind: JournalKind,
    subject: str,
    severity: Severity,
    reason: str,
    *,
    facts: Mapping[str, Any] | None = None,
    time: datetime | None = None,
) -> Event:
    return Event(Source.JOURNAL, kind, subject, severity, reason, facts or {}, time)


@dataclass(frozen=True)
class MetricSample:
    """One metric value for the metrics sinks (Prometheus naming, no client timestamps)."""

    name: str
    type: str  # "counter" or "gauge"
    help: str
    labels: Mapping[str, str]
    value: float


def _frozen(mapping: Mapping[Any, int]) -> Mapping[Any, int]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class JournalMetrics:
    """Counters of one run (or, from ``plus``, of many) and the reader's gauges.

    ``entries``/``bytes`` are keyed by (unit, priority): the watched unit, identifier or
    ``kernel`` the entry came from, and its syslog priority ("" when it has none).
    """

    entries: Mapping[tuple[str, str], int] = field(default_factory=dict)
    bytes: Mapping[tuple[str, str], int] = field(default_factory=dict)
    matches: Mapping[str, int] = field(default_factory=dict)
    lag_seconds: float = 0.0
    cursor_resets: int = 0
    invalidations: int = 0
    conditions: Mapping[str, int] = field(default_factory=dict)  # rule -> 1 active, 0 not

    def __post_init__(self) -> None:
        for name in ("entries", "bytes", "matches", "conditions"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))

    def plus(self, later: JournalMetrics) -> JournalMetrics:
        """Counters summed; gauges (lag, conditions) taken from ``later``."""
        return JournalMetrics(
            _sum(self.entries, later.entries),
            _sum(self.bytes, later.bytes),
            _sum(self.matches, later.matches),
            later.lag_seconds,
            self.cursor_resets + later.cursor_resets,
            self.invalidations + later.invalidations,
            {**self.conditions, **later.conditions},
        )

    def samples(self) -> tuple[MetricSample, ...]:
        """Every value as a metric sample (the metrics sinks render these)."""
        out: list[MetricSample] = []
        out += _per_unit("nodeguard_journal_entries_total", "Journal entries read", self.entries)
        out += _per_unit("nodeguard_journal_bytes_total", "MESSAGE bytes read", self.bytes)
        out += [
            MetricSample(
                "nodeguard_journal_matches_total", "counter", "Rule matches", {"rule": r}, n
            )
            for r, n in sorted(self.matches.items())
        ]
        out += [
            MetricSample(
                "nodeguard_journal_condition_active",
                "gauge",
                "1 while a condition rule is active",
                {"rule": r},
                v,
            )
            for r, v in sorted(self.conditions.items())
        ]
        out.append(_gauge("nodeguard_journal_reader_lag_seconds", "Reader lag", self.lag_seconds))
        out.append(_counter("nodeguard_journal_cursor_resets_total", self.cursor_resets))
        out.append(_counter("nodeguard_journal_invalidations_total", self.invalidations))
        return tuple(out)

    def as_dict(self) -> dict[str, Any]:
        return {
            "entries": [
                {"unit": u, "priority": p, "entries": n, "bytes": self.bytes.get((u, p), 0)}
                for (u, p), n in sorted(self.entries.items())
            ],
            "matches": dict(sorted(self.matches.items())),
            "conditions": dict(sorted(self.conditions.items())),
            "lag_seconds": self.lag_seconds,
            "cursor_resets": self.cursor_resets,
            "invalidations": self.invalidations,
        }


def _sum(a: Mapping[Any, int], b: Mapping[Any, int]) -> dict[Any, int]:
    out = dict(a)
    for key, value in b.items():
        out[key] = out.get(key, 0) + value
    return out


def _per_unit(name: str, text: str, values: Mapping[tuple[str, str], int]) -> list[MetricSample]:
    return [
        MetricSample(name, "counter", text, {"unit": u, "priority": p}, n)
        for (u, p), n in sorted(values.items())
    ]


def _gauge(name: str, text: str, value: float) -> MetricSample:
    return MetricSample(name, "gauge", text, {}, value)


def _counter(name: str, value: int) -> MetricSample:
    text = name.removeprefix("nodeguard_journal_").removesuffix("_total").replace("_", " ")
    return MetricSample(name, "counter", text.capitalize(), {}, value)


@dataclass(frozen=True)
class ActiveCondition:
    """A condition rule that is active: since when, and the entry that last matched."""

    rule: str
    unit: str
    severity: Severity
    since: float  # POSIX seconds
    last: float
    message: str
    cursor: str


@dataclass(frozen=True)
class JournalResult:
    """One follow or scan: its events, metrics and the conditions active at the end."""

    events: tuple[Event, ...] = ()
    metrics: JournalMetrics = field(default_factory=JournalMetrics)
    conditions: tuple[ActiveCondition, ...] = ()
    entries_read: int = 0
    caught_up: bool = True
    dropped_events: int = 0  # beyond the cap kept in a result (they went to the sink)

    def matches(self) -> Iterable[Event]:
        return (e for e in self.events if e.kind in (JournalKind.MATCH, JournalKind.RATE))


class Counts:
    """Mutable counters the reading loops update in place; frozen into JournalMetrics."""

    def __init__(self) -> None:
        self.entries: dict[tuple[str, bytes], int] = {}
        self.bytes: dict[tuple[str, bytes], int] = {}
        self.cursor_resets = 0
        self.invalidations = 0

    def freeze(
        self,
        matches: Mapping[str, int],
        lag: float,
        conditions: Iterable[str],
        rules: Iterable[str],
    ) -> JournalMetrics:
        active = set(conditions)
        return JournalMetrics(
            {(u, p.decode("ascii", "replace")): n for (u, p), n in self.entries.items()},
            {(u, p.decode("ascii", "replace")): n for (u, p), n in self.bytes.items()},
            dict(matches),
            lag,
            self.cursor_resets,
            self.invalidations,
            {r: int(r in active) for r in rules},
        )
