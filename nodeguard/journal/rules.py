"""Rules compiled for speed, and the evaluator that turns matches into events.

The reader hands every entry's unit, identifier and MESSAGE (bytes) to the evaluator.
Rules are grouped by scope once per (unit, identifier, kernel) seen, each group with one
combined regular expression as a pre-filter, so an entry no rule can match costs one
search. Conditions, rate windows and flood counters live in :class:`RuleState` so they
survive restarts (the follower saves them with the cursor).
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from nodeguard.config.sections.journal import FloodConfig, JournalConfig
from nodeguard.config.sections.journal_rules import RuleSpec
from nodeguard.events import Event, Severity
from nodeguard.journal.model import (
    SEVERITY_BY_NAME,
    ActiveCondition,
    JournalKind,
    entry_time,
    journal_event,
    printable,
)
from nodeguard.journal.needles import needle_filter

KERNEL_LABEL = "kernel"
SCOPE_CACHE_MAX = 4096


@dataclass(frozen=True)
class Rule:
    """A rule ready to run: its spec and compiled patterns."""

    spec: RuleSpec
    regex: re.Pattern[bytes]
    clear: re.Pattern[bytes] | None
    severity: Severity
    units: frozenset[bytes]
    identifiers: frozenset[bytes]

    @property
    def reason(self) -> str:
        return self.spec.reason

    def applies(self, unit: bytes | None, ident: bytes | None, kernel: bool) -> bool:
        spec = self.spec
        if not (self.units or self.identifiers or spec.kernel):
            return True
        return (
            (unit is not None and unit in self.units)
            or (ident is not None and ident in self.identifiers)
            or (kernel and spec.kernel)
        )


def compile_rule(spec: RuleSpec) -> Rule:
    clear = re.compile(spec.clear_pattern.encode()) if spec.clear_pattern else None
    return Rule(
        spec,
        re.compile(spec.pattern.encode()),
        clear,
        SEVERITY_BY_NAME[spec.severity],
        frozenset(u.encode() for u in spec.units),
        frozenset(i.encode() for i in spec.identifiers),
    )


@dataclass(frozen=True)
class Scope:
    """The rules that apply to one source of entries, and its metrics label."""

    label: str
    unit: str
    rules: tuple[Rule, ...]
    prefilter: re.Pattern[bytes] | None  # None: run every rule

    def may_match(self, message: bytes) -> bool:
        if not self.rules:
            return False
        return self.prefilter is None or self.prefilter.search(message) is not None


def _prefilter(rules: Sequence[Rule]) -> re.Pattern[bytes] | None:
    """The needles of every pattern (and clear pattern) of ``rules``; None: run them all."""
    patterns = [r.spec.pattern.encode() for r in rules] + [
        r.spec.clear_pattern.encode() for r in rules if r.spec.clear_pattern
    ]
    return needle_filter(patterns)


class RuleSet:
    """Compiled rules plus the scopes derived from them, cached per source."""

    def __init__(self, config: JournalConfig) -> None:
        self.rules = tuple(compile_rule(s) for s in config.rules)
        self._units = frozenset(u.encode() for u in config.units)
        self._identifiers = frozenset(i.encode() for i in config.identifiers)
        self._cache: dict[tuple[bytes | None, bytes | None, bool], Scope] = {}

    def scope(self, unit: bytes | None, ident: bytes | None, kernel: bool) -> Scope:
        key = (unit, ident, kernel)
        found = self._cache.get(key)
        if found is None:
            found = self._make_scope(unit, ident, kernel)
            if len(self._cache) < SCOPE_CACHE_MAX:
                self._cache[key] = found
        return found

    def _make_scope(self, unit: bytes | None, ident: bytes | None, kernel: bool) -> Scope:
        rules = tuple(r for r in self.rules if r.applies(unit, ident, kernel))
        label = self.label(unit, ident, kernel)
        shown = (unit or ident or b"").decode("utf-8", "replace") or label
        return Scope(label, printable(shown.encode(), 256), rules, _prefilter(rules))

    def label(self, unit: bytes | None, ident: bytes | None, kernel: bool) -> str:
        """The watched unit, identifier or ``kernel`` an entry was read for (bounded set)."""
        if unit is not None and unit in self._units:
            return unit.decode()
        if kernel:
            return KERNEL_LABEL
        if ident is not None and ident in self._identifiers:
            return ident.decode()
        return "other"


# --- the state that survives restarts -----------------------------------------------


@dataclass(frozen=True)
class RuleState:
    """Active conditions, rate windows and flood counters, as saved with the cursor."""

    conditions: Mapping[str, ActiveCondition] = field(default_factory=dict)
    rates: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    floods: Mapping[str, tuple[int, int, int, bool]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "conditions": {
                k: {
                    "unit": c.unit,
                    "since": c.since,
                    "last": c.last,
                    "message": c.message,
                    "cursor": c.cursor,
                }
                for k, c in self.conditions.items()
            },
            "rates": {k: list(v) for k, v in self.rates.items()},
            "floods": {k: list(v) for k, v in self.floods.items()},
        }


def rule_state_from_json(data: Any, rules: Iterable[Rule]) -> RuleState:
    """Rebuild the saved state, keeping only what still fits the configured rules.

    Raises ValueError naming the first malformed part (the caller reports and starts
    fresh: the state is a cache, never trusted blindly).
    """
    if not isinstance(data, dict):
        raise ValueError("rule state is not a mapping")
    by_reason = {r.reason: r for r in rules}
    conditions = {}
    for reason, raw in _mapping(data, "conditions").items():
        rule = by_reason.get(reason)
        if rule is not None and rule.spec.kind == "condition":
            conditions[reason] = _condition(reason, raw, rule.severity)
    rates = {}
    for reason, raw in _mapping(data, "rates").items():
        rule = by_reason.get(reason)
        if rule is not None and rule.spec.count > 1:
            rates[reason] = _floats(raw, rule.spec.count)
    floods = {str(k): _flood(v) for k, v in _mapping(data, "floods").items()}
    return RuleState(conditions, rates, floods)


def _mapping(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict) or len(value) > 10000:
        raise ValueError(f"{key}: not a mapping of at most 10000 items")
    return value


def _condition(reason: str, raw: Any, severity: Severity) -> ActiveCondition:
    if not isinstance(raw, dict):
        raise ValueError(f"conditions.{reason}: not a mapping")
    try:
        return ActiveCondition(
            reason,
            _text(raw["unit"]),
            severity,
            _time(raw["since"]),
            _time(raw["last"]),
            _text(raw["message"]),
            _text(raw["cursor"]),
        )
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"conditions.{reason}: malformed") from None


def _time(value: Any) -> float:
    """A stored POSIX time: a finite JSON number (not a string such as "nan", not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError("not a time")
    return float(value)


def _text(value: Any) -> str:
    if not isinstance(value, str) or len(value) > 4096:
        raise ValueError("not a short string")
    return value


def _floats(raw: Any, cap: int) -> tuple[float, ...]:
    if not isinstance(raw, list):
        raise ValueError("rates: not a list of numbers")
    try:
        return tuple(_time(x) for x in raw[-cap:])
    except ValueError:
        raise ValueError("rates: not a list of numbers") from None


def _flood(raw: Any) -> tuple[int, int, int, bool]:
    ok = isinstance(raw, list) and len(raw) == 4 and all(isinstance(x, int) for x in raw)
    if not ok:
        raise ValueError("floods: malformed")
    return (raw[0], raw[1], raw[2], bool(raw[3]))


# --- the evaluator ------------------------------------------------------------------------


CursorFn = Callable[[], str]


@dataclass
class _Suppressed:
    count: int = 0
    last_cursor: str = ""


class Evaluator:
    """Applies the rules to entries; collects the events of the current batch."""

    def __init__(self, config: JournalConfig, rules: RuleSet, state: RuleState) -> None:
        self.rules = rules
        self._flood = config.flood
        self._window_us = config.flood.window * 1_000_000
        self._max_entries = config.flood.max_entries or sys.maxsize
        self._max_bytes = config.flood.max_bytes or sys.maxsize
        self._cap = config.max_events_per_rule
        self._conditions = dict(state.conditions)
        self._rates = {k: list(v) for k, v in state.rates.items()}
        self._floods = {k: list(v) for k, v in state.floods.items()}
        self._events: list[Event] = []
        self._emitted: dict[str, int] = {}
        self._suppressed: dict[str, _Suppressed] = {}
        self.matches: dict[str, int] = {}

    # -- per entry --------------------------------------------------------------------

    def account_flood(self, label: str, nbytes: int, realtime_us: int) -> None:
        """Count one entry against its unit's flood window; report once per window."""
        counter = self._floods.get(label)
        bucket = realtime_us // self._window_us
        if counter is None or counter[0] != bucket:
            counter = self._floods[label] = [bucket, 0, 0, 0]
        counter[1] += 1
        counter[2] += nbytes
        if not counter[3] and (counter[1] > self._max_entries or counter[2] > self._max_bytes):
            counter[3] = 1
            self._events.append(_flood_event(label, self._flood, counter, realtime_us))

    def check(self, scope: Scope, message: bytes, realtime_us: int, cursor: CursorFn) -> None:
        """Run the scope's rules on one message (call only when ``scope.may_match``)."""
        for rule in scope.rules:
            if rule.regex.search(message) is not None:
                self._matched(rule, scope, message, realtime_us, cursor)
            elif self._clears(rule, message):
                self._clear(rule.reason, "clear_pattern", realtime_us / 1e6, cursor())

    def _clears(self, rule: Rule, message: bytes) -> bool:
        if rule.clear is None or rule.reason not in self._conditions:
            return False
        return rule.clear.search(message) is not None

    def _matched(
        self, rule: Rule, scope: Scope, message: bytes, realtime_us: int, cursor: CursorFn
    ) -> None:
        reason = rule.reason
        self.matches[reason] = self.matches.get(reason, 0) + 1
        seconds = realtime_us / 1e6
        if rule.spec.count > 1 and not self._rate_reached(rule, seconds):
            return
        if rule.spec.kind == "condition":
            self._activate(rule, scope, message, seconds, cursor())
        else:
            self._emit(rule, scope, message, realtime_us, cursor())

    def _rate_reached(self, rule: Rule, seconds: float) -> bool:
        window = self._rates.setdefault(rule.reason, [])
        window.append(seconds)
        horizon = seconds - (rule.spec.window or 0)
        while window and window[0] < horizon:
            window.pop(0)
        if len(window) >= rule.spec.count:
            window.clear()
            return True
        del window[: -rule.spec.count]
        return False

    def _emit(self, rule: Rule, scope: Scope, message: bytes, realtime_us: int, cur: str) -> None:
        reason = rule.reason
        if self._emitted.get(reason, 0) >= self._cap:
            held = self._suppressed.setdefault(reason, _Suppressed())
            held.count += 1
            held.last_cursor = cur
            return
        self._emitted[reason] = self._emitted.get(reason, 0) + 1
        self._events.append(_match_event(rule, scope, message, realtime_us, cur))

    def _activate(self, rule: Rule, scope: Scope, message: bytes, seconds: float, cur: str) -> None:
        text = printable(message)
        held = self._conditions.get(rule.reason)
        since = held.since if held else seconds
        self._conditions[rule.reason] = ActiveCondition(
            rule.reason, scope.unit, rule.severity, since, seconds, text, cur
        )
        if held is None:
            self._events.append(_condition_event(rule, scope.unit, text, seconds, cur))

    def _clear(self, reason: str, how: str, seconds: float, cur: str) -> None:
        held = self._conditions.pop(reason)
        self._events.append(
            journal_event(
                JournalKind.CONDITION_CLEARED,
                held.unit,
                Severity.INFO,
                f"{reason} cleared ({how})",
                facts={
                    "rule": reason,
                    "unit": held.unit,
                    "since": held.since,
                    "cleared_by": how,
                    "cursor": cur,
                    "time": entry_time(int(seconds * 1e6)).isoformat(),
                },
                time=entry_time(int(seconds * 1e6)),
            )
        )

    # -- per batch -------------------------------------------------------------------------

    def end_batch(self, now: float) -> list[Event]:
        """The batch's events, with suppression summaries and timed-out conditions."""
        for reason, held in self._suppressed.items():
            self._events.append(_suppressed_event(reason, held))
        for reason, saved in list(self._conditions.items()):
            rule = next((r for r in self.rules.rules if r.reason == reason), None)
            timeout = rule.spec.timeout if rule else 0
            # Saved ahead of the clock (stepped back, or forged): the timeout counts from now.
            cond = self._conditions[reason] = replace(saved, last=min(saved.last, now))
            if timeout is not None and now - cond.last > timeout:
                self._clear(reason, "timeout", now, cond.cursor)
        events, self._events = self._events, []
        self._emitted.clear()
        self._suppressed.clear()
        return events

    def active(self) -> tuple[ActiveCondition, ...]:
        return tuple(self._conditions[k] for k in sorted(self._conditions))

    def state(self) -> RuleState:
        return RuleState(
            dict(self._conditions),
            {k: tuple(v) for k, v in self._rates.items() if v},
            {k: (v[0], v[1], v[2], bool(v[3])) for k, v in self._floods.items()},
        )


def _match_facts(rule: Rule, scope: Scope, text: str, realtime_us: int, cur: str) -> dict[str, Any]:
    return {
        "rule": rule.reason,
        "unit": scope.unit,
        "message": text,
        "cursor": cur,
        "time": entry_time(realtime_us).isoformat(),
    }


def _match_event(rule: Rule, scope: Scope, message: bytes, realtime_us: int, cur: str) -> Event:
    text = printable(message)
    kind = JournalKind.RATE if rule.spec.count > 1 else JournalKind.MATCH
    facts = _match_facts(rule, scope, text, realtime_us, cur)
    if rule.spec.count > 1:
        facts.update(count=rule.spec.count, window=rule.spec.window)
    return journal_event(
        kind,
        scope.unit,
        rule.severity,
        f"{rule.reason}: {text[:300]}",
        facts=facts,
        time=entry_time(realtime_us),
    )


def _condition_event(rule: Rule, unit: str, text: str, seconds: float, cur: str) -> Event:
    when = entry_time(int(seconds * 1e6))
    facts = {
        "rule": rule.reason,
        "unit": unit,
        "message": text,
        "cursor": cur,
        "time": when.isoformat(),
        "timeout": rule.spec.timeout,
    }
    return journal_event(
        JournalKind.CONDITION_ACTIVE,
        unit,
        rule.severity,
        f"{rule.reason} active: {text[:300]}",
        facts=facts,
        time=when,
    )


def _suppressed_event(reason: str, held: _Suppressed) -> Event:
    return journal_event(
        JournalKind.SUPPRESSED,
        reason,
        Severity.INFO,
        f"{held.count} more matches of {reason} in this batch (not reported one by one)",
        facts={"rule": reason, "count": held.count, "cursor": held.last_cursor},
    )


def _flood_event(label: str, flood: FloodConfig, counter: list[int], realtime_us: int) -> Event:
    return journal_event(
        JournalKind.FLOOD,
        label,
        Severity.WARNING,
        f"{label} wrote more than the flood limit within {flood.window}s "
        f"({counter[1]} entries, {counter[2]} bytes so far)",
        facts={
            "rule": "JournalFlood",
            "unit": label,
            "entries": counter[1],
            "bytes": counter[2],
            "window": flood.window,
            "max_entries": flood.max_entries,
            "max_bytes": flood.max_bytes,
            "time": entry_time(realtime_us).isoformat(),
        },
        time=entry_time(realtime_us),
    )
