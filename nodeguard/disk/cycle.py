"""One evaluation of the disk guard: the public entry point the daemon and the CLI call.

``disk_cycle(config, world, events_in)`` samples every watched filesystem, forecasts,
reclaims where a filesystem holding logs is critical, evaluates the alert rules (and
turns the other concerns' events into alerts), keeps its state in the state folder
and queues each alert transition in the spool. ``nodeguard.alerts.deliver.deliver``
then sends what is queued. With ``dry_run`` nothing is written and nothing reclaimed:
``nodeguard disk`` and ``nodeguard check`` show the same evaluation read-only.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from nodeguard.alerts import lifecycle
from nodeguard.alerts.events import event_conditions
from nodeguard.alerts.metrics import (
    FsMetrics,
    count_events,
    load_counters,
    record_pass,
    save_counters,
)
from nodeguard.alerts.model import AlertState, Condition, Notification, Status
from nodeguard.alerts.registry import spooled_sinks
from nodeguard.alerts.spool import load_spool, save_spool
from nodeguard.alerts.statelock import StateBusy, state_lock
from nodeguard.config.model import Config
from nodeguard.disk import consumers as cons
from nodeguard.disk import rules
from nodeguard.disk.filesystems import Filesystem, MountTable, discover, journal_dir
from nodeguard.disk.forecast import Forecast, forecast
from nodeguard.disk.reclaim import ReclaimHooks, ReclaimOutcome, RotationHooks, reclaim
from nodeguard.disk.samples import Sample, SampleStore, load_store, save_store
from nodeguard.events import Event, Severity, Source, log_event
from nodeguard.state import LockUnusable, StateDirUnsafe, StateDocument, ensure_state_dir
from nodeguard.world import DiskUsage, World

log = logging.getLogger("nodeguard.disk")

ALERTS_NAME = "disk-alerts.json"
JUMP_FLOOR = 0.001  # a change of 0.1% of the filesystem between samples can be a jump
MIN_JUMP_BYTES = 1024 * 1024
MIN_JUMP_INODES = 64


class DiskKind(enum.StrEnum):
    """What the disk guard reports."""

    ALERT_FIRING = "alert_firing"
    ALERT_RESOLVED = "alert_resolved"
    RECLAIM_STEP = "reclaim_step"
    RECLAIMED = "reclaimed"
    RECLAIM_SHORT = "reclaim_short"
    RECLAIM_DEFERRED = "reclaim_deferred"
    WOULD_RECLAIM = "would_reclaim"
    PROBLEM = "problem"


@dataclass(frozen=True)
class FsReport:
    """One filesystem in this evaluation."""

    fs: Filesystem
    usage: DiskUsage | None
    space: Forecast | None = None
    inodes: Forecast | None = None
    top: tuple[cons.Growth, ...] = ()
    reclaim: ReclaimOutcome | None = None
    window: tuple[tuple[float, int], ...] = ()  # (time, free bytes) of the window

    def to_json(self) -> dict[str, Any]:
        u = self.usage
        return {
            **self.fs.to_json(),
            "usage": None
            if u is None
            else {
                "size_bytes": u.total,
                "used_bytes": u.used,
                "avail_bytes": u.free,
                "avail_ratio": u.free / u.total if u.total else None,
                "inodes": u.inodes_total,
                "inodes_free": u.inodes_free,
            },
            "forecast": {
                "bytes": self.space.to_json() if self.space else None,
                "inodes": self.inodes.to_json() if self.inodes else None,
            },
            "top_consumers": [g.to_json() for g in self.top],
            "reclaim": self.reclaim.to_json() if self.reclaim else None,
        }


@dataclass(frozen=True)
class DiskResult:
    """What one evaluation found and did; ``deliver`` and the metrics take it from here."""

    at: float
    node: str
    filesystems: tuple[FsReport, ...]
    alerts: tuple[AlertState, ...]
    notifications: tuple[Notification, ...]
    events: tuple[Event, ...]
    dry_run: bool
    window: int = 0
    unqueued: tuple[Notification, ...] = ()  # not in the spool (it could not be written)

    def fs_metrics(self) -> tuple[FsMetrics, ...]:
        out: list[FsMetrics] = []
        for r in self.filesystems:
            if r.usage is None:
                continue
            out.append(
                FsMetrics(
                    r.fs.mountpoint,
                    r.fs.device,
                    r.fs.fstype,
                    r.usage.total,
                    r.usage.free,
                    r.usage.inodes_total,
                    r.usage.inodes_free,
                    r.space.rate if r.space else None,
                    _ttf(r.space),
                    _ttf(r.inodes),
                    tuple((g.name, g.kind, g.rate) for g in r.top),
                )
            )
        return tuple(out)

    def alerts_of(self, fs: Filesystem) -> list[AlertState]:
        return [a for a in self.alerts if a.key.endswith(f"|{fs.key}")]

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "node": self.node,
            "dry_run": self.dry_run,
            "filesystems": [
                {**r.to_json(), "alerts": [_alert_json(a) for a in self.alerts_of(r.fs)]}
                for r in self.filesystems
            ],
            "alerts": [_alert_json(a) for a in self.alerts],
            "events": [e.as_dict() for e in self.events],
        }


def _alert_json(a: AlertState) -> dict[str, Any]:
    return {
        "alertname": a.alertname,
        "severity": a.severity,
        "state": str(a.status),
        "labels": dict(a.labels),
        "annotations": dict(a.annotations),
        "active_since": a.active_since,
        "fired_at": a.fired_at,
        "resolved_at": a.resolved_at,
    }


def _ttf(fc: Forecast | None) -> float | None:
    if fc is None:
        return None
    return fc.seconds_to_full if fc.seconds_to_full is not None else float("inf")


# --- the cycle --------------------------------------------------------------------------


@dataclass
class _Run:
    """The working set of one evaluation (local to disk_cycle, never shared)."""

    config: Config
    world: World
    now: float
    dry_run: bool
    base: dict[str, str]
    events: list[Event] = field(default_factory=list)
    unqueued: tuple[Notification, ...] = ()  # transitions the spool could not take

    def problem(self, text: str, severity: Severity = Severity.WARNING) -> None:
        self.event(DiskKind.PROBLEM, str(self.config.state_dir), severity, text)

    def event(
        self, kind: DiskKind, subject: str, severity: Severity, reason: str, **facts: Any
    ) -> None:
        e = Event(Source.DISK, kind, subject, severity, reason, facts, self.world.now())
        log_event(log, e)
        self.events.append(e)


def disk_cycle(
    config: Config,
    world: World | None = None,
    events_in: Iterable[Event] = (),
    *,
    dry_run: bool = False,
    hooks: ReclaimHooks | None = None,
    mounts: MountTable | None = None,
) -> DiskResult:
    """Sample, forecast, reclaim, evaluate; keep state and queue transitions (unless dry)."""
    world = world or World()
    events_in = list(events_in)
    node = config.alerts.node or world.hostname
    run = _Run(config, world, world.timestamp(), dry_run, {"node": node, **config.alerts.labels})
    writable = not dry_run and _state_ready(run)
    if not writable:
        run = replace(run, dry_run=True)  # no state, no reclaim: the engine needs both
    try:
        if writable:
            with state_lock(config.state_dir):
                return _evaluate(run, events_in, hooks, mounts, True)
        return _evaluate(run, events_in, hooks, mounts, False)
    except StateBusy as exc:
        run.problem(f"{exc}; evaluated without saving", Severity.WARNING)
        return _evaluate(replace(run, dry_run=True), events_in, hooks, mounts, False)
    except LockUnusable as exc:  # raised by state_lock before _evaluate began
        why = f"{exc.filename}: {exc.strerror}"
        run.problem(f"state folder unusable ({why}); nothing saved or queued", Severity.ERROR)
        return _evaluate(replace(run, dry_run=True), events_in, hooks, mounts, False)


def _state_ready(run: _Run) -> bool:
    try:
        ensure_state_dir(run.config.state_dir, run.world.euid)
    except (StateDirUnsafe, OSError) as exc:
        run.problem(f"state folder unusable ({exc}); nothing saved or queued", Severity.ERROR)
        return False
    return True


def _evaluate(
    run: _Run,
    events_in: list[Event],
    hooks: ReclaimHooks | None,
    mounts: MountTable | None,
    save: bool,
) -> DiskResult:
    config, state_dir = run.config, run.config.state_dir
    filesystems, problems = discover(config, mounts)
    for p in problems:
        run.problem(p)
    trusted = save or _readable_state(run)
    store, load_problems = load_store(state_dir) if trusted else (SampleStore({}, {}), [])
    cstore, cproblems = (
        cons.load_consumers(state_dir) if trusted else (cons.ConsumerStore(None, {}), [])
    )
    states, memory, aproblems = _load_alerts(state_dir) if trusted else ({}, {}, [])
    for p in load_problems + cproblems + aproblems:
        run.problem(p)
    usages = _probe(run, filesystems)
    cstore = _measure(run, cstore)
    original = store
    store, coarse_changed = _add_samples(store, usages, run)
    views = {
        fs.key: _view(run, fs, usages[fs.key], store, cstore)
        for fs in filesystems
        if fs.key in usages
    }
    outcomes: dict[str, ReclaimOutcome] = {}
    for key, before in list(views.items()):
        hooks = hooks or RotationHooks(config, run.world)
        after, outcome = _reclaim_stage(run, before, memory, hooks)
        if outcome is not None:
            outcomes[key] = outcome
            usages[key] = run.world.disk_usage(after.fs.probe)
        views[key] = after
    if outcomes:
        store, coarse_changed = _add_samples(original, usages, run)
        for key in outcomes:
            old = views[key]
            fresh = _view(run, old.fs, usages[key], store, cstore)
            views[key] = replace(
                fresh, reclaim_short=old.reclaim_short, reclaim_target=old.reclaim_target
            )
    new_states, notes = _advance(run, views.values(), states, events_in)
    if save:
        _save(
            run,
            store=store,
            coarse_changed=coarse_changed,
            cstore=cstore,
            states=new_states,
            memory=memory,
            notes=notes,
            events_in=events_in,
        )
    reports = tuple(
        _report(fs, usages.get(fs.key), views.get(fs.key), store, outcomes.get(fs.key))
        for fs in filesystems
    )
    return DiskResult(
        run.now,
        run.base["node"],
        reports,
        tuple(sorted(new_states.values(), key=lambda s: s.key)),
        tuple(notes),
        tuple(run.events),
        run.dry_run or not save,
        config.disk.window,
        run.unqueued,
    )


# --- state ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ReclaimMemory:
    """The last reclaim on a filesystem: for the cooldown and the shortfall alert."""

    at: float
    target: float
    short: str | None


def _alerts_doc(state_dir: Any) -> StateDocument:
    return StateDocument(state_dir / ALERTS_NAME, "disk-alerts")


def _readable_state(run: _Run) -> bool:
    """A dry run reads the state only from a folder nobody else could have written."""
    import os

    from nodeguard.state import check_state_dir

    state_dir = run.config.state_dir
    if not os.path.lexists(state_dir):
        return False  # nothing kept yet
    if not state_dir.is_dir():
        if not any(e.subject == str(state_dir) for e in run.events):  # said once
            run.problem(f"state folder not used ({state_dir}: not a directory); no history used")
        return False
    if not os.access(state_dir, os.R_OK | os.X_OK):
        return False
    try:
        check_state_dir(state_dir, run.world.euid)
    except StateDirUnsafe as exc:
        run.problem(f"state folder not trusted ({exc}); no history used")
        return False
    return True


def _load_alerts(
    state_dir: Any,
) -> tuple[dict[str, AlertState], dict[str, ReclaimMemory], list[str]]:
    loaded = _alerts_doc(state_dir).load()
    problems = [f"{loaded.problem}; alert states restart"] if loaded.problem else []
    data = loaded.data or {}
    states: dict[str, AlertState] = {}
    raw_states = data.get("states")
    for raw in raw_states[:2000] if isinstance(raw_states, list) else []:
        state = AlertState.from_json(raw)
        if state is None:
            problems.append(f"{_alerts_doc(state_dir).path}: a malformed alert state dropped")
        else:
            states[state.key] = state
    memory: dict[str, ReclaimMemory] = {}
    raw_memory = data.get("reclaim")
    for key, raw in raw_memory.items() if isinstance(raw_memory, dict) else []:
        parsed = _memory(raw)
        if isinstance(key, str) and parsed is not None:
            memory[key] = parsed
    return states, memory, problems


def load_alert_states(state_dir: Any) -> list[AlertState]:
    """The alert states the last evaluation saved (empty when none are usable)."""
    return list(_load_alerts(state_dir)[0].values())


def _memory(raw: object) -> ReclaimMemory | None:
    if not isinstance(raw, dict):
        return None
    at, target, short = raw.get("at"), raw.get("target"), raw.get("short")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (at, target)):
        return None
    if short is not None and not isinstance(short, str):
        return None
    return ReclaimMemory(float(at), float(target), short)  # type: ignore[arg-type]


def _save(
    run: _Run,
    *,
    store: SampleStore,
    coarse_changed: bool,
    cstore: cons.ConsumerStore,
    states: Mapping[str, AlertState],
    memory: Mapping[str, ReclaimMemory],
    notes: Sequence[Notification],
    events_in: Sequence[Event],
) -> None:
    state_dir = run.config.state_dir
    # The spool first: if the states could not be saved after it, the next evaluation
    # repeats the transition (a duplicate); the other order could lose it.
    try:
        _queue(run, notes)
    except OSError as exc:
        run.unqueued = tuple(notes)
        run.problem(
            f"cannot queue alert transitions ({exc}); sending them from memory", Severity.ERROR
        )
    try:
        _alerts_doc(state_dir).save(
            {
                "states": [s.to_json() for s in states.values()],
                "reclaim": {
                    k: {"at": m.at, "target": m.target, "short": m.short} for k, m in memory.items()
                },
            }
        )
        save_store(state_dir, store, coarse_changed)
        if cstore.at == run.now:  # measured this time
            cons.save_consumers(state_dir, cstore)
    except OSError as exc:
        run.problem(f"cannot save disk state: {exc}", Severity.ERROR)
    _count(run, events_in)


def _queue(run: _Run, notes: Sequence[Notification]) -> None:
    if not notes:
        return
    cfg = run.config.alerts
    state_dir = run.config.state_dir
    spool, problems = load_spool(state_dir, cfg.delivery.spool_max)
    for p in problems:
        run.problem(p)
    spool, dropped = spool.enqueue(spooled_sinks(run.config), notes, cfg.delivery.spool_max)
    save_spool(state_dir, spool)
    if dropped:
        from nodeguard.alerts.metrics import count_dropped

        counters, _ = load_counters(state_dir)
        for sink, n in dropped.items():
            counters = count_dropped(counters, sink, n)
            run.problem(f"alert spool for {sink} full: {n} oldest notifications dropped")
        save_counters(state_dir, counters)


def _count(run: _Run, events_in: Sequence[Event]) -> None:
    state_dir = run.config.state_dir
    counters, problem = load_counters(state_dir)
    if problem:
        run.problem(problem)
    counters = count_events(counters, [*events_in, *run.events])
    took = max(0.0, run.world.timestamp() - run.now)
    ok = not any(e.severity >= Severity.ERROR for e in run.events)
    counters = record_pass(counters, "disk", run.now, took, ok)
    try:
        save_counters(state_dir, counters)
    except OSError as exc:
        log.error("cannot save counters: %s", exc)


# --- steps --------------------------------------------------------------------------------


def _probe(run: _Run, filesystems: Sequence[Filesystem]) -> dict[str, DiskUsage]:
    usages: dict[str, DiskUsage] = {}
    for fs in filesystems:
        try:
            usages[fs.key] = run.world.disk_usage(fs.probe)
        except OSError as exc:
            run.problem(f"{fs.mountpoint}: cannot read usage: {exc.strerror or exc}")
    return usages


def _measure(run: _Run, cstore: cons.ConsumerStore) -> cons.ConsumerStore:
    cfg = run.config.disk
    if not cstore.due(run.now, cfg.consumers_interval):
        return cstore
    found, problems = cons.measure(run.config, journal_dir(run.config), run.now)
    for p in problems[:10]:
        run.problem(p, Severity.INFO)
    return cstore.add(found, run.now, cfg.window * 1.25)


def _add_samples(
    store: SampleStore, usages: Mapping[str, DiskUsage], run: _Run
) -> tuple[SampleStore, bool]:
    cfg = run.config.disk
    changed = False
    for key, u in usages.items():
        sample = Sample(run.now, u.free, u.inodes_free, u.total, u.inodes_total)
        store, coarse = store.add(key, sample, cfg.window, cfg.history)
        changed = changed or coarse
    return store.prune(set(usages), run.now, cfg.history), changed


def _view(
    run: _Run,
    fs: Filesystem,
    usage: DiskUsage,
    store: SampleStore,
    cstore: cons.ConsumerStore,
) -> rules.FsView:
    cfg = run.config.disk
    fine, coarse = store.fine.get(fs.key), store.coarse.get(fs.key)
    floor = max(JUMP_FLOOR * usage.total, MIN_JUMP_BYTES)
    ifloor = max(JUMP_FLOOR * usage.inodes_total, MIN_JUMP_INODES)
    space = inodes = None
    if fine is not None:
        history = coarse.points("free") if coarse else []
        space = forecast(fine.points("free"), run.now, cfg.window, floor, history)
        if usage.inodes_total:
            ihistory = coarse.points("ifree") if coarse else []
            inodes = forecast(fine.points("ifree"), run.now, cfg.window, ifloor, ihistory)
    growth = cons.growth_on(cstore, fs.dev, run.now, cfg.window, floor)
    top = cons.top_growth(growth, space.rate if space else None, cfg.top_consumers)
    return rules.FsView(fs, usage, space, inodes, tuple(top))


def _reclaim_stage(
    run: _Run, view: rules.FsView, memory: dict[str, ReclaimMemory], hooks: ReclaimHooks
) -> tuple[rules.FsView, ReclaimOutcome | None]:
    from nodeguard.disk.reclaim import policies_on

    cfg = run.config.disk
    key = view.fs.key
    targets = rules.critical_targets(view, cfg)
    mem = memory.get(key)
    if not targets:
        if mem is not None and mem.short is not None:
            memory[key] = replace(mem, short=None)
        return view, None
    target = max(targets)
    able = bool(policies_on(view.fs, run.config)) or "journal" in view.fs.roles
    if not able or not cfg.reclaim.enabled:
        return view, None
    if run.dry_run:
        run.event(
            DiskKind.WOULD_RECLAIM,
            view.fs.mountpoint,
            Severity.INFO,
            f"critical: a real run would reclaim log space to reach {target:.0%} free",
        )
        return _with_memory(view, mem), None
    if mem is not None and 0 <= run.now - mem.at < cfg.reclaim.cooldown:
        return _with_memory(view, mem), None
    outcome = reclaim(view.fs, target, run.config, run.world, hooks)
    _report_reclaim(run, view.fs, outcome)
    if outcome.deferred:
        return _with_memory(view, mem), None
    memory[key] = ReclaimMemory(run.now, target, None if outcome.reached else outcome.shortfall())
    return _with_memory(view, memory[key]), outcome


def _with_memory(view: rules.FsView, mem: ReclaimMemory | None) -> rules.FsView:
    if mem is None:
        return view
    return replace(view, reclaim_short=mem.short, reclaim_target=mem.target)


def _report_reclaim(run: _Run, fs: Filesystem, outcome: ReclaimOutcome) -> None:
    mp = fs.mountpoint
    for step in outcome.steps:
        severity = Severity.INFO if step.ok else Severity.WARNING
        run.event(
            DiskKind.RECLAIM_STEP,
            mp,
            severity,
            f"reclaim step {step.step}: freed {step.bytes_freed} bytes ({step.detail})",
            reclaim_step=step.step,
            bytes_freed=step.bytes_freed,
            files=step.files,
            ok=step.ok,
            left_plain=step.left_plain,
        )
    facts = {
        "free_before": outcome.free_before,
        "free_after": outcome.free_after,
        "target": outcome.target,
        "total_freed": outcome.bytes_freed,
    }
    if outcome.deferred:
        run.event(
            DiskKind.RECLAIM_DEFERRED,
            mp,
            Severity.WARNING,
            "reclaim deferred: a rotation pass holds the lock",
            **facts,
        )
    elif outcome.reached:
        run.event(
            DiskKind.RECLAIMED,
            mp,
            Severity.WARNING,
            f"reclaimed log space: {outcome.free_before:.1%} -> {outcome.free_after:.1%} free",
            **facts,
        )
    else:
        run.event(DiskKind.RECLAIM_SHORT, mp, Severity.ERROR, outcome.shortfall(), **facts)


def _advance(
    run: _Run,
    views: Iterable[rules.FsView],
    states: Mapping[str, AlertState],
    events_in: Sequence[Event],
) -> tuple[dict[str, AlertState], list[Notification]]:
    cfg = run.config.disk
    views = list(views)
    conds: list[Condition] = []
    for view in views:
        conds += rules.conditions(view, cfg, run.base)
    evs = event_conditions(events_in, states, run.now, run.config.alerts.events, run.base)
    if evs.dropped:
        run.problem(f"{evs.dropped} events not turned into alerts (too many distinct ones)")
    evaluated = {c.key for c in conds} | {c.key for c in evs.conditions}
    # Alerts of a filesystem that could not be read this time stay as they are.
    kept = {k: s for k, s in states.items() if k not in evaluated and _unprobed(k, views)}
    live = {k: s for k, s in states.items() if k not in kept}
    new_states, notes = lifecycle.advance(live, conds + evs.conditions, run.now, cfg.clear_for)
    new_states.update(kept)
    for note in notes:
        _note_event(run, note)
    return new_states, notes


def _unprobed(key: str, views: Sequence[rules.FsView]) -> bool:
    fs_key = key.split("|", 2)[-1]
    is_fs_alert = key.split("|", 1)[0] in rules.FS_ALERTS
    return is_fs_alert and all(v.fs.key != fs_key for v in views) and _known_fs(fs_key)


def _known_fs(fs_key: str) -> bool:
    """A filesystem still mounted (its usage just could not be read) keeps its alerts."""
    mountpoint = fs_key.split("@", 1)[-1]
    import os

    return os.path.ismount(mountpoint) or mountpoint == "/"


def _note_event(run: _Run, note: Notification) -> None:
    name = note.labels.get("alertname", "?")
    subject = note.labels.get("mountpoint") or note.labels.get("subject") or name
    if note.status is Status.FIRING:
        severity = Severity.ERROR if note.labels.get("severity") == "critical" else Severity.WARNING
        reason = f"{name} firing: {note.annotations.get('summary', '')}"
        run.event(DiskKind.ALERT_FIRING, subject, severity, reason, alertname=name)
    else:
        run.event(
            DiskKind.ALERT_RESOLVED, subject, Severity.INFO, f"{name} resolved", alertname=name
        )


def _report(
    fs: Filesystem,
    usage: DiskUsage | None,
    view: rules.FsView | None,
    store: SampleStore,
    outcome: ReclaimOutcome | None,
) -> FsReport:
    series = store.fine.get(fs.key)
    window = tuple(zip(series.t, series.free, strict=True)) if series else ()
    if view is None:
        return FsReport(fs, usage, window=window)
    return FsReport(fs, usage, view.space, view.inodes, view.top, outcome, window)
