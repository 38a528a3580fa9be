"""Events of the other concerns as alerts: journal matches, rotation failures, ...

An event at or above ``alerts.events.min_severity`` fires an alert at once, keyed by
its source, kind and subject; each repeat keeps it firing, and it resolves once
``alerts.events.hold`` passed without one (plus ``disk.clear_for``). The alert name
is ``Nodeguard`` + source + kind in CamelCase (a rotation that failed ->
NodeguardRotationFailed, a journal match -> NodeguardJournalMatch); the labels carry
source, kind, subject and, for an action's outcome, the action.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from nodeguard.alerts.model import MAX_LABEL, AlertState, Condition, clip
from nodeguard.config.sections.alerts import EventAlerts
from nodeguard.events import Event, Severity, Source

PREFIX = "event|"
MAX_EVENT_ALERTS = 200
OWN_SOURCES = frozenset({Source.DISK, Source.ALERTS})  # those have their own alerts
_MIN = {"warning": Severity.WARNING, "error": Severity.ERROR, "critical": Severity.CRITICAL}


def alert_kind(event: Event) -> str:
    """The kind an alert is named by: an action's outcome where the event carries one.

    A rotation event's kind is the action (rotate, compress, ...) and its ``result``
    fact says whether it failed or was refused: the alert is about the failure, so
    ``NodeguardRotationFailed`` with the action as a label, not one name per action.
    """
    result = event.facts.get("result")
    return str(result) if result in _OUTCOMES else str(event.kind)


_OUTCOMES = ("failed", "refused")


def alertname(event: Event) -> str:
    """``Nodeguard`` + CamelCase source + CamelCase kind (see :func:`alert_kind`)."""
    return "Nodeguard" + _camel(str(event.source)) + _camel(alert_kind(event))


def _camel(text: str) -> str:
    return "".join(p[:1].upper() + p[1:] for p in text.replace("-", "_").split("_") if p)


def severity_label(severity: Severity) -> str:
    return "warning" if severity <= Severity.WARNING else "critical"


@dataclass(frozen=True)
class EventConditions:
    conditions: list[Condition]
    dropped: int  # distinct events beyond MAX_EVENT_ALERTS


def event_conditions(
    events: Iterable[Event],
    states: Mapping[str, AlertState],
    now: float,
    cfg: EventAlerts,
    base: Mapping[str, str],
) -> EventConditions:
    """Conditions for this round's qualifying events and the event alerts still held."""
    least = _MIN[cfg.min_severity]
    fresh: dict[str, Condition] = {}
    dropped = 0
    held = sum(1 for k in states if k.startswith(PREFIX))
    for event in events:
        if event.severity < least or event.source in OWN_SOURCES:
            continue
        key = f"{PREFIX}{event.source}|{alert_kind(event)}|{clip(event.subject, MAX_LABEL)}"
        if key not in states and key not in fresh and held + len(fresh) >= MAX_EVENT_ALERTS:
            dropped += 1
            continue
        fresh[key] = _condition(key, event, base)
    out = list(fresh.values())
    for key, state in states.items():
        if key.startswith(PREFIX) and key not in fresh:
            quiet = now - state.last_seen >= cfg.hold
            out.append(
                Condition(key, state.labels, state.annotations, active=False, clear=quiet, for_=0)
            )
    return EventConditions(out, dropped)


def _condition(key: str, event: Event, base: Mapping[str, str]) -> Condition:
    labels = {
        **base,
        "alertname": alertname(event),
        "severity": severity_label(event.severity),
        "source": str(event.source),
        "kind": alert_kind(event),
        "subject": clip(event.subject, MAX_LABEL),
    }
    if alert_kind(event) != str(event.kind):
        labels["action"] = str(event.kind)
    facts = ", ".join(f"{k}={v}" for k, v in sorted(event.facts.items()))
    description = event.reason + (f" ({facts})" if facts else "")
    return Condition(
        key=key,
        labels=labels,
        annotations={
            "summary": clip(f"{event.subject}: {event.reason}", 512),
            "description": clip(description, 4000),
        },
        active=True,
        clear=False,
        for_=0,
    )
