"""Alerts as data: conditions in, states kept, notifications out.

A rule (the disk guard's, or an event of another concern) yields a :class:`Condition`
each evaluation. :mod:`nodeguard.alerts.lifecycle` turns conditions into
:class:`AlertState` values (pending, firing, resolved) kept in the state folder, and
each transition into a :class:`Notification`, the one thing every sink delivers.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from nodeguard.digest import sha256

MAX_LABEL = 256  # characters of one label value
MAX_ANNOTATION = 4096
MAX_TIME = 253_402_300_799  # 9999-12-31T23:59:59Z


class Status(enum.StrEnum):
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


def _frozen(values: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(values))


def fingerprint(labels: Mapping[str, str]) -> str:
    """A stable id of a label set (what Alertmanager identifies an alert by)."""
    text = "\0".join(f"{k}\0{v}" for k, v in sorted(labels.items()))
    return sha256(text.encode()).hexdigest()[:16]


def rfc3339(ts: float) -> str:
    """A POSIX time as Alertmanager's RFC 3339 (UTC, milliseconds)."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Condition:
    """One rule's verdict now: fire when ``active`` for ``for_`` s; resolve when ``clear``.

    ``clear`` is looser than ``not active`` (hysteresis): between the two a firing
    alert stays firing and a pending one is dropped.
    """

    key: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    active: bool
    clear: bool
    for_: int
    value: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", _frozen(self.labels))
        object.__setattr__(self, "annotations", _frozen(self.annotations))


@dataclass(frozen=True)
class AlertState:
    """What is remembered of one alert between evaluations."""

    key: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    status: Status
    active_since: float
    fired_at: float | None = None
    resolved_at: float | None = None
    clear_since: float | None = None
    last_seen: float = 0.0
    value: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", _frozen(self.labels))
        object.__setattr__(self, "annotations", _frozen(self.annotations))

    @property
    def alertname(self) -> str:
        return self.labels.get("alertname", "")

    @property
    def severity(self) -> str:
        return self.labels.get("severity", "")

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "status": str(self.status),
            "active_since": self.active_since,
            "fired_at": self.fired_at,
            "resolved_at": self.resolved_at,
            "clear_since": self.clear_since,
            "last_seen": self.last_seen,
            "value": self.value,
        }

    @classmethod
    def from_json(cls, data: object) -> AlertState | None:
        """The state stored by to_json(), or None when anything is off."""
        if not isinstance(data, dict):
            return None
        try:
            return cls(
                key=_text(data["key"], MAX_LABEL * 4),
                labels=_strings(data["labels"], MAX_LABEL),
                annotations=_strings(data["annotations"], MAX_ANNOTATION),
                status=Status(data["status"]),
                active_since=_time(data["active_since"]),
                fired_at=_opt_time(data.get("fired_at")),
                resolved_at=_opt_time(data.get("resolved_at")),
                clear_since=_opt_time(data.get("clear_since")),
                last_seen=_time(data.get("last_seen", 0.0)),
                value=_opt_number(data.get("value")),
            )
        except (KeyError, ValueError, TypeError):
            return None


@dataclass(frozen=True)
class Notification:
    """A transition to deliver: an alert started firing or was resolved.

    ``id`` is unique per transition, so a receiver can drop a duplicate (a request
    that timed out after the receiver had taken it is sent again).
    """

    id: str
    key: str
    status: Status
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: float
    ends_at: float | None
    at: float
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", _frozen(self.labels))
        object.__setattr__(self, "annotations", _frozen(self.annotations))
        object.__setattr__(self, "extra", MappingProxyType(dict(self.extra)))

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "key": self.key,
            "status": str(self.status),
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
            "at": self.at,
        }

    @classmethod
    def from_json(cls, data: object) -> Notification | None:
        if not isinstance(data, dict):
            return None
        try:
            status = Status(data["status"])
            if status is Status.PENDING:
                return None
            return cls(
                id=_text(data["id"], 64),
                key=_text(data["key"], MAX_LABEL * 4),
                status=status,
                labels=_strings(data["labels"], MAX_LABEL),
                annotations=_strings(data["annotations"], MAX_ANNOTATION),
                starts_at=_time(data["starts_at"]),
                ends_at=_opt_time(data.get("ends_at")),
                at=_time(data["at"]),
            )
        except (KeyError, ValueError, TypeError):
            return None


def notification_for(state: AlertState, at: float) -> Notification:
    """The notification of ``state``'s latest transition (firing or resolved)."""
    digest = sha256(f"{state.key}\0{state.status}\0{at!r}".encode()).hexdigest()[:32]
    resolved = state.status is Status.RESOLVED
    return Notification(
        id=digest,
        key=state.key,
        status=state.status,
        labels=state.labels,
        annotations=state.annotations,
        starts_at=state.fired_at if state.fired_at is not None else state.active_since,
        ends_at=state.resolved_at if resolved else None,
        at=at,
    )


# --- validation of stored values ---------------------------------------------------


def _text(value: object, limit: int) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise ValueError("not a string")
    return value


def _strings(value: object, limit: int) -> Mapping[str, str]:
    if not isinstance(value, dict) or len(value) > 64:
        raise ValueError("not a mapping")
    return {_text(k, 128): _text(v, limit) for k, v in value.items()}


def _time(value: object) -> float:
    """A stored POSIX time: a number from 1970 to 9999 (what rfc3339 can render)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("not a time")
    if not 0 <= value <= MAX_TIME:  # also NaN (every comparison fails)
        raise ValueError("not a time")
    return float(value)


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError("not a number")
    return float(value)


def _opt_time(value: object) -> float | None:
    return None if value is None else _time(value)


def _opt_number(value: object) -> float | None:
    return None if value is None else _number(value)


def clip(text: str, limit: int) -> str:
    """``text`` shortened to ``limit`` characters (label and annotation values)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
