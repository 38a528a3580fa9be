"""Pending, firing, resolved: the life of an alert, as Prometheus's rule manager has it.

A condition that holds starts a *pending* alert; one that keeps holding for its
``for`` duration *fires* (a notification). A firing alert resolves only once its
clear condition (looser than the firing one: hysteresis) has held for ``clear_for``
(a notification with the end time). Pure functions of the previous states, the
conditions and the time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from nodeguard.alerts.model import AlertState, Condition, Notification, Status, notification_for

RESOLVED_KEEP = 900  # a resolved alert stays visible (nodeguard disk, metrics) for 15 min


def step(
    prev: AlertState | None, cond: Condition, now: float, clear_for: int
) -> tuple[AlertState | None, Notification | None]:
    """The next state of one alert, and the notification when it fired or resolved."""
    prev = _not_ahead(prev, now)
    if prev is None or prev.status is Status.RESOLVED:
        if not cond.active:
            return _linger(prev, now), None
        return _start(cond, now)
    if prev.status is Status.PENDING:
        if not cond.active:
            return None, None
        pending = _refresh(prev, cond, now)
        if now - prev.active_since >= cond.for_:
            return _fire(pending, now)
        return pending, None
    return _firing(prev, cond, now, clear_for)


def vanish(prev: AlertState, now: float) -> tuple[AlertState | None, Notification | None]:
    """The rule is gone (its filesystem unmounted, its concern silent): end the alert."""
    prev = _not_ahead(prev, now) or prev
    if prev.status is Status.FIRING:
        return _resolve(prev, now)
    if prev.status is Status.PENDING:
        return None, None
    return _linger(prev, now), None


def advance(
    states: Mapping[str, AlertState],
    conditions: Iterable[Condition],
    now: float,
    clear_for: int,
) -> tuple[dict[str, AlertState], list[Notification]]:
    """Step every alert; an alert without a condition this time vanishes."""
    out: dict[str, AlertState] = {}
    notes: list[Notification] = []
    seen: set[str] = set()
    for cond in conditions:
        seen.add(cond.key)
        state, note = step(states.get(cond.key), cond, now, clear_for)
        _keep(out, notes, state, note)
    for key, prev in states.items():
        if key not in seen:
            state, note = vanish(prev, now)
            _keep(out, notes, state, note)
    return out, notes


def _not_ahead(prev: AlertState | None, now: float) -> AlertState | None:
    """``prev`` with every time ahead of ``now`` brought back to ``now``.

    A stored time in the future (the clock stepped back, or a forged state file) would
    keep a pending alert from ever reaching its ``for`` and a clearing one from ever
    resolving; counted from now, both proceed as if they had just begun.
    """
    if prev is None:
        return None
    times = (prev.active_since, prev.fired_at, prev.resolved_at, prev.clear_since, prev.last_seen)
    if all(t is None or t <= now for t in times):
        return prev
    return replace(
        prev,
        active_since=min(prev.active_since, now),
        fired_at=_at_most(prev.fired_at, now),
        resolved_at=_at_most(prev.resolved_at, now),
        clear_since=_at_most(prev.clear_since, now),
        last_seen=min(prev.last_seen, now),
    )


def _at_most(value: float | None, now: float) -> float | None:
    return None if value is None else min(value, now)


def _keep(
    out: dict[str, AlertState],
    notes: list[Notification],
    state: AlertState | None,
    note: Notification | None,
) -> None:
    if state is not None:
        out[state.key] = state
    if note is not None:
        notes.append(note)


def _linger(prev: AlertState | None, now: float) -> AlertState | None:
    if prev is None or prev.resolved_at is None or now - prev.resolved_at >= RESOLVED_KEEP:
        return None
    return prev


def _start(cond: Condition, now: float) -> tuple[AlertState | None, Notification | None]:
    state = AlertState(
        key=cond.key,
        labels=cond.labels,
        annotations=cond.annotations,
        status=Status.PENDING,
        active_since=now,
        last_seen=now,
        value=cond.value,
    )
    return _fire(state, now) if cond.for_ <= 0 else (state, None)


def _refresh(prev: AlertState, cond: Condition, now: float) -> AlertState:
    return replace(
        prev,
        labels=cond.labels,
        annotations=cond.annotations,
        last_seen=now,
        value=cond.value,
        clear_since=None,
    )


def _fire(state: AlertState, now: float) -> tuple[AlertState, Notification]:
    fired = replace(state, status=Status.FIRING, fired_at=now, resolved_at=None)
    return fired, notification_for(fired, now)


def _resolve(state: AlertState, now: float) -> tuple[AlertState, Notification]:
    resolved = replace(state, status=Status.RESOLVED, resolved_at=now, clear_since=None)
    return resolved, notification_for(resolved, now)


def _firing(
    prev: AlertState, cond: Condition, now: float, clear_for: int
) -> tuple[AlertState | None, Notification | None]:
    if cond.clear:
        since = prev.clear_since if prev.clear_since is not None else now
        if now - since >= clear_for:
            return _resolve(replace(prev, value=cond.value), now)
        return replace(prev, clear_since=since, value=cond.value), None
    if cond.active:
        return _refresh(prev, cond, now), None
    return replace(prev, clear_since=None, value=cond.value), None
