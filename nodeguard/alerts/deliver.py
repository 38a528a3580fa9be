"""Delivery: every sink in its own thread, with timeouts, retries and the spool.

``deliver(config, world, result)`` sends each enabled sink what it is due: the
spooled transitions (after its backoff), Alertmanager's periodic re-send of the
alerts firing, the textfile's metrics. A sink that is slow or down never holds up
the others or the caller: each round waits at most a bounded time, a sink still busy
is left running (its outcome is collected next round) and skipped until it finishes.
A transition leaves the spool only once its sink accepted it.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from nodeguard.alerts.metrics import (
    Counters,
    Sample,
    count_delivery,
    count_events,
    load_counters,
    record_pass,
    save_counters,
    snapshot_of,
)
from nodeguard.alerts.model import AlertState, Notification, Status
from nodeguard.alerts.registry import (
    Batch,
    DeliveryError,
    SinkSpec,
    enabled_sinks,
    get_sink,
    spooled_sinks,
)
from nodeguard.alerts.spool import Spool, load_spool, save_spool
from nodeguard.alerts.statelock import StateBusy, state_lock
from nodeguard.config.model import Config
from nodeguard.events import Event, Severity, Source, log_event
from nodeguard.exitcodes import Exit
from nodeguard.state import StateDirUnsafe, ensure_state_dir
from nodeguard.world import World

if TYPE_CHECKING:
    from nodeguard.alerts.endpoint import MetricsServer
    from nodeguard.disk.cycle import DiskResult

log = logging.getLogger("nodeguard.alerts")
MAX_ROUND = 60.0  # seconds one round waits for its sinks at most


class DeliveryKind(enum.StrEnum):
    """What delivery reports."""

    DELIVERED = "delivered"
    FAILED = "delivery_failed"
    DROPPED = "delivery_dropped"
    PROBLEM = "problem"


@dataclass
class _Job:
    """One sink's delivery running in its thread; the thread fills in the outcome."""

    sink: str
    ids: frozenset[str]
    resend: bool
    thread: threading.Thread | None = None
    error: DeliveryError | None = None
    done: bool = False


@dataclass(frozen=True)
class DeliveryReport:
    events: tuple[Event, ...]
    sent: Mapping[str, int] = field(default_factory=dict)  # sink -> notifications taken
    failed: Mapping[str, str] = field(default_factory=dict)  # sink -> error
    busy: tuple[str, ...] = ()  # sinks still running from an earlier round
    kept: tuple[str, ...] = ()  # sinks that failed; their notifications stay spooled
    dropped: tuple[str, ...] = ()  # sinks whose notifications were dropped (no retry helps)
    refused: tuple[str, ...] = ()  # sinks whose configuration was refused (kept or dropped)
    queued: Mapping[str, int] = field(default_factory=dict)  # still spooled after the round

    def exit_code(self) -> Exit:
        """``run --once``'s verdict on this round (docs/operations.md, "Exit codes"):
        2 a sink's configuration refused, 1 notifications dropped or delivery impossible
        (an error), 4 not all delivered: kept in the spool (a sink failed, is still busy,
        or waits out its backoff), 0 everything delivered or nothing to send."""
        if self.refused:
            return Exit.USAGE
        if self.dropped or any(e.severity >= Severity.ERROR for e in self.events):
            return Exit.FAILED
        if self.kept or self.busy or self.queued:
            return Exit.UNDELIVERED
        return Exit.OK


class Deliverer:
    """Keeps sinks that outlive a round (the daemon holds one for its lifetime)."""

    def __init__(self) -> None:
        self._running: dict[str, _Job] = {}

    def deliver(
        self,
        config: Config,
        world: World,
        result: DiskResult | None = None,
        *,
        dry_run: bool = False,
        server: MetricsServer | None = None,
        extra: Sequence[Sample] = (),
    ) -> DeliveryReport:
        """One round; ``extra`` are other concerns' metric samples (the journal's)."""
        events: list[Event] = []
        if dry_run:
            return DeliveryReport(())
        try:
            ensure_state_dir(config.state_dir, world.euid)
            return self._round(config, world, result, server, events, extra=extra)
        except (StateDirUnsafe, StateBusy, OSError) as exc:
            _event(
                events,
                world,
                DeliveryKind.PROBLEM,
                "state",
                severity=Severity.ERROR,
                reason=f"alert delivery skipped: {exc}",
            )
            return DeliveryReport(tuple(events))

    def _round(
        self,
        config: Config,
        world: World,
        result: DiskResult | None,
        server: MetricsServer | None,
        events: list[Event],
        *,
        extra: Sequence[Sample] = (),
    ) -> DeliveryReport:
        now = world.timestamp()
        with state_lock(config.state_dir):
            spool, problems = load_spool(config.state_dir, config.alerts.delivery.spool_max)
            counters, _ = load_counters(config.state_dir)
        for p in problems:
            _event(
                events, world, DeliveryKind.PROBLEM, "spool", severity=Severity.WARNING, reason=p
            )
        snapshot = snapshot_of(result, counters, spool.sizes(), extra)
        if server is not None:
            server.update(snapshot)
        firing = tuple(a for a in _alerts(config, result) if a.status is Status.FIRING)
        node = result.node if result else (config.alerts.node or world.hostname)
        started: list[_Job] = []
        busy = tuple(s for s, job in self._running.items() if not job.done)
        for spec in enabled_sinks(config):
            if spec.name in busy:
                continue
            batch = _batch(
                spec,
                spool,
                firing,
                snapshot=snapshot,
                now=now,
                node=node,
                config=config,
                unqueued=result.unqueued if result else (),
            )
            if batch is None:
                continue
            job = _start(spec, batch, config, world)
            self._running[spec.name] = job
            started.append(job)
        _wait(started, _round_limit(config))
        finished = [j for j in self._running.values() if j.done]
        for job in finished:
            del self._running[job.sink]
        ledger = _settle(config, world, finished, events)
        return DeliveryReport(
            tuple(events),
            ledger.sent,
            ledger.failed,
            busy,
            tuple(ledger.kept),
            tuple(ledger.dropped),
            tuple(ledger.refused),
            _queued(config, ledger.spool),
        )


def _queued(config: Config, spool: Spool) -> dict[str, int]:
    """The enabled sinks' notifications still in the spool (not delivered yet)."""
    sizes = spool.sizes()
    return {s: sizes[s] for s in spooled_sinks(config) if sizes.get(s)}


def deliver(
    config: Config,
    world: World | None = None,
    result: DiskResult | None = None,
    *,
    dry_run: bool = False,
    deliverer: Deliverer | None = None,
    server: MetricsServer | None = None,
) -> DeliveryReport:
    """One delivery round (``run --once``; the daemon passes its own Deliverer)."""
    return (deliverer or Deliverer()).deliver(
        config, world or World(), result, dry_run=dry_run, server=server
    )


def _alerts(config: Config, result: DiskResult | None) -> Sequence[AlertState]:
    if result is not None:
        return result.alerts
    from nodeguard.disk.cycle import load_alert_states

    return load_alert_states(config.state_dir)


def _batch(
    spec: SinkSpec,
    spool: Spool,
    firing: tuple[AlertState, ...],
    *,
    snapshot: Any,
    now: float,
    node: str,
    config: Config,
    unqueued: Sequence[Notification] = (),
) -> Batch | None:
    if not spec.spooled:
        return Batch((), firing, snapshot, now, node, False)
    queue = spool.queue(spec.name)
    known = {n.id for n in queue.items}
    items = (*queue.items, *(n for n in unqueued if n.id not in known))
    # A next_try further ahead than any backoff means the clock stepped back: try now.
    waiting = now < queue.next_try <= now + config.alerts.delivery.max_backoff
    if waiting and not unqueued:
        return None
    resend = (
        spec.name == "alertmanager"
        and bool(firing)
        and (
            now - queue.last_resend >= config.alerts.alertmanager.resend_interval
            or now < queue.last_resend
        )
    )
    if not items and not resend:
        return None
    return Batch(items, firing, snapshot, now, node, resend)


def _start(spec: SinkSpec, batch: Batch, config: Config, world: World) -> _Job:
    job = _Job(spec.name, frozenset(n.id for n in batch.notifications), batch.resend)

    def work() -> None:
        try:
            _attempts(spec.name, batch, config, world)
        except DeliveryError as exc:
            job.error = exc
        except Exception as exc:  # a sink's own bug must not kill delivery
            log.exception("alert sink %s failed", spec.name)
            job.error = DeliveryError(f"{type(exc).__name__}: {exc}")
        finally:
            job.done = True

    job.thread = threading.Thread(target=work, name=f"nodeguard-sink-{spec.name}", daemon=True)
    job.thread.start()
    return job


def _attempts(name: str, batch: Batch, config: Config, world: World) -> None:
    cfg = config.alerts.delivery
    sink = get_sink(name)
    delay = float(cfg.backoff)
    for attempt in range(1, cfg.attempts + 1):
        try:
            sink.send(batch, config, world)
            return
        except DeliveryError as exc:
            if not exc.retry or attempt == cfg.attempts or exc.delivered:
                raise
        if world.stop.wait(delay):
            raise DeliveryError("stopping")
        delay *= 2


def _round_limit(config: Config) -> float:
    a = config.alerts
    timeout = max(a.alertmanager.timeout, a.webhook.timeout)
    tries = a.delivery.attempts
    backoffs = float(a.delivery.backoff * (2**tries - 1))
    return min(MAX_ROUND, float(timeout * tries) + backoffs + 1.0)


def _wait(jobs: Sequence[_Job], limit: float) -> None:
    import time

    deadline = time.monotonic() + limit
    for job in jobs:
        if job.thread is not None:
            job.thread.join(max(0.0, deadline - time.monotonic()))


@dataclass
class _Ledger:
    """The spool and counters being updated by one round's finished jobs."""

    spool: Spool
    counters: Counters
    events: list[Event]
    world: World
    config: Config
    now: float
    sent: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    kept: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def apply(self, job: _Job) -> None:
        err = job.error
        if err is None:
            self.spool = self.spool.acknowledge(job.sink, set(job.ids), self.now)
            if job.resend:
                queue = replace(self.spool.queue(job.sink), last_resend=self.now)
                self.spool = self.spool.with_queue(job.sink, queue)
            self.sent[job.sink] = len(job.ids)
            self.counters = count_delivery(self.counters, job.sink, "ok")
            return
        self.failed[job.sink] = str(err)
        if err.config:
            self.refused.append(job.sink)
        (self.kept if err.retry else self.dropped).append(job.sink)
        if err.delivered:
            self.spool = self.spool.acknowledge(job.sink, set(err.delivered), self.now)
        if not err.retry:
            self._drop(job, err)
            return
        cfg = self.config.alerts.delivery
        self.spool = self.spool.failed(job.sink, str(err), self.now, cfg.backoff, cfg.max_backoff)
        _event(
            self.events,
            self.world,
            DeliveryKind.FAILED,
            job.sink,
            severity=Severity.WARNING,
            reason=f"{job.sink}: {err}; kept in the spool, retried later",
        )
        self.counters = count_delivery(self.counters, job.sink, "failed")

    def _drop(self, job: _Job, err: DeliveryError) -> None:
        lost = set(job.ids) - set(err.delivered)
        self.spool = self.spool.acknowledge(job.sink, lost, self.now)
        _event(
            self.events,
            self.world,
            DeliveryKind.DROPPED,
            job.sink,
            severity=Severity.ERROR,
            reason=f"{job.sink}: {err}; {len(lost)} notifications dropped (retrying cannot help)",
            dropped=len(lost),
        )
        self.counters = count_delivery(self.counters, job.sink, "dropped")


def _settle(config: Config, world: World, finished: Sequence[_Job], events: list[Event]) -> _Ledger:
    """Apply the finished jobs to the spool (re-read under the lock) and the counters."""
    now = world.timestamp()
    with state_lock(config.state_dir):
        spool, _ = load_spool(config.state_dir, config.alerts.delivery.spool_max)
        counters, _ = load_counters(config.state_dir)
        ledger = _Ledger(spool, counters, events, world, config, now)
        for job in finished:
            ledger.apply(job)
        counters = count_events(ledger.counters, events)
        took = max(0.0, world.timestamp() - now)
        counters = record_pass(counters, "alerts", now, took, not ledger.failed)
        try:
            save_spool(config.state_dir, ledger.spool)
            save_counters(config.state_dir, counters)
        except OSError as exc:  # a full disk: what was sent may be sent again, never lost
            _event(
                events,
                world,
                DeliveryKind.PROBLEM,
                "spool",
                severity=Severity.ERROR,
                reason=f"cannot save the spool ({exc}); delivered entries may repeat",
            )
    return ledger


def _event(
    events: list[Event],
    world: World,
    kind: DeliveryKind,
    subject: str,
    *,
    severity: Severity,
    reason: str,
    **facts: Any,
) -> None:
    e = Event(Source.ALERTS, kind, subject, severity, reason, facts, world.now())
    log_event(log, e)
    events.append(e)
