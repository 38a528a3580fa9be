"""The journal, the disk guard and alert delivery as daemon parts.

Each adapter calls its concern's public entry point and turns the result into an
:class:`Outcome`; no decision is taken here.

- ``journal``: ``follow_once`` from the saved cursor (a dry run: ``scan`` over the
  lookback, nothing saved). Its events (rule matches) go to the disk part's inbox.
- ``journal_retention``: ``enforce_retention`` (max_use / max_age; nothing when unset).
- ``AlertPath.disk``: ``disk_cycle`` with the other parts' events (journal matches,
  rotation failures and refusals become alerts there); reclaim through the disk
  guard's ``RotationHooks`` (the rotation engine's pass and the journal's
  ``vacuum_to_floor``).
- ``AlertPath.deliver``: one round of ``Deliverer.deliver`` with the latest disk
  result (the textfile each round, the spool, Alertmanager's re-sends), and the
  ``/metrics`` endpoint the running daemon serves when ``alerts.metrics_listen`` is set.

A dry run changes nothing and sends nothing: no cursor, no samples, no spool, no
textfile, no HTTP.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING

from nodeguard.daemon.parts import Context, DaemonKind, Outcome
from nodeguard.daemon.pending import PendingEvents, Taken, alertable
from nodeguard.events import Event, Severity, Source
from nodeguard.exitcodes import Exit
from nodeguard.state import LockBusy, StateDirUnsafe

if TYPE_CHECKING:
    from nodeguard.alerts.deliver import Deliverer, DeliveryReport
    from nodeguard.alerts.endpoint import MetricsServer
    from nodeguard.disk.cycle import DiskResult
    from nodeguard.journal.model import JournalMetrics

log = logging.getLogger("nodeguard.daemon")
INBOX_EVENTS = 10_000  # events of one journal run passed on (the loop's inbox holds as many)


# --- journal ---------------------------------------------------------------------------


def journal(ctx: Context, on_metrics: Callable[[JournalMetrics], None] | None = None) -> Outcome:
    """Follow from the saved cursor to the end (dry run: the rules over the lookback).

    ``on_metrics`` receives the run's metrics (not a dry run's): the alert path adds
    them up for /metrics and the textfile.
    """
    from nodeguard.journal.command import result_document
    from nodeguard.journal.follow import follow_once, scan

    pending = None if ctx.dry_run else PendingEvents(ctx.config.state_dir)
    kept = _Kept(pending)  # every event (a JournalResult keeps at most 1,000 of them)
    try:
        if ctx.dry_run:
            since = ctx.world.now() - timedelta(seconds=ctx.config.journal.lookback)
            result = scan(ctx.config, ctx.world, since, sink=kept, progress=ctx.progress)
        else:
            result = follow_once(ctx.config, ctx.world, sink=kept, progress=ctx.progress)
    except LockBusy as exc:
        return _skipped("journal", f"another follower holds the lock: {exc}")
    except StateDirUnsafe as exc:
        return _failed("journal", f"unsafe state folder: {exc}")
    except _NotRecorded as exc:
        return _failed("journal", str(exc), Exit.FAILED)
    events = tuple(kept.events)
    result = replace(result, events=events)
    if on_metrics is not None and not ctx.dry_run:
        on_metrics(result.metrics)
    summary = {
        "entries_read": result.entries_read,
        "matches": sum(1 for _ in result.matches()),
        "caught_up": result.caught_up,
        "lag_seconds": result.metrics.lag_seconds,
        "events_dropped": kept.dropped,
        "recorded": kept.recorded,
        "recorded_dropped": kept.recorded_dropped,
    }
    forward = events if pending is None else tuple(e for e in events if id(e) not in kept.durable)
    if not ctx.render:
        return Outcome(events, summary, forward=forward)
    return Outcome(
        events,
        summary,
        _journal_text(events, result.entries_read, ctx.dry_run),
        result_document(result),
        forward=forward,
    )


class _NotRecorded(Exception):
    """The batch's alertable events could not be recorded: its cursor must not move."""


class _Kept:
    """The follower's sink: its events for the other parts, up to the daemon's inbox cap.

    With ``pending`` (not a dry run), each batch's alertable events are recorded there
    durably BEFORE the follower saves the batch's cursor (the sink is called first):
    the disk part takes them from the file, so a crash in between loses none. They are
    not forwarded in memory too (each event is counted once).
    """

    def __init__(self, pending: PendingEvents | None) -> None:
        self.pending = pending
        self.events: list[Event] = []
        self.durable: dict[int, Event] = {}  # the events recorded, by id() (kept alive here)
        self.dropped = 0
        self.recorded = 0
        self.recorded_dropped = 0

    def __call__(self, events: Sequence[Event]) -> None:
        if self.pending is not None:
            self._record(self.pending, alertable(events))
        room = max(0, INBOX_EVENTS - len(self.events))
        self.events.extend(events[:room])
        self.dropped += max(0, len(events) - room)

    def _record(self, pending: PendingEvents, events: list[Event]) -> None:
        try:
            self.recorded_dropped += pending.record(events)
        except OSError as exc:
            path = pending.doc.path
            raise _NotRecorded(
                f"cannot record the journal's alertable events in {path}: "
                f"{exc.strerror or exc}; the cursor was not moved (read again next run)"
            ) from None
        self.recorded += len(events)
        self.durable.update((id(e), e) for e in events)


def _journal_text(events: tuple[Event, ...], read: int, dry_run: bool) -> str:
    scope = "the lookback" if dry_run else "the saved cursor to the end"
    lines = [f"{read} entries read from {scope}"]
    for e in events:
        f = e.facts
        if str(e.kind) in ("match", "rate", "condition-active"):
            lines.append(
                f"{e.severity.name.lower()}: {f.get('time', '-')} {f.get('rule')} "
                f"{f.get('unit')}: {f.get('message')}"
            )
        else:
            lines.append(f"{e.severity.name.lower()}: {e.subject}: {e.reason}")
    if len(lines) == 1:
        lines.append("no findings")
    return "\n".join(lines) + "\n"


def journal_retention(ctx: Context) -> Outcome:
    """The journal's disk use; archived files beyond max_use / max_age vacuumed."""
    from nodeguard.journal.retention import enforce_retention

    result = enforce_retention(ctx.config, ctx.world, dry_run=ctx.dry_run)
    usage = result.after if not ctx.dry_run else result.before
    summary = {"journal_bytes": usage.total, "freed_bytes": result.freed}
    if not ctx.render:
        return Outcome(result.events, summary)
    text = f"journal: {usage.text()}\n" + "".join(
        f"{e.severity.name.lower()}: {e.reason}\n" for e in result.events
    )
    data = {"usage": usage.as_dict(), "events": [e.as_dict() for e in result.events]}
    failed = any(e.severity >= Severity.ERROR for e in result.events)
    return Outcome(result.events, summary, text, data, Exit.FAILED if failed else Exit.OK)


# --- disk guard and delivery -------------------------------------------------------------


class AlertPath:
    """The disk part and the delivery part, sharing the latest disk result.

    Built once per daemon (``parts.table()``); the two parts run on different lanes, so
    a slow sink never delays the disk evaluation. The result is handed over by one
    reference assignment; the Deliverer and the metrics server live as long as the
    daemon.
    """

    def __init__(self) -> None:
        self._latest: DiskResult | None = None
        self._deliverer: Deliverer | None = None
        self._server: MetricsServer | None = None
        self._listen: tuple[str, int] | None = None
        self._journal: JournalMetrics | None = None  # summed over the daemon's journal runs
        self._lock = threading.Lock()

    def add_journal_metrics(self, metrics: JournalMetrics) -> None:
        """Add one journal run's counters (gauges: the latest) for /metrics and the textfile."""
        with self._lock:
            self._journal = metrics if self._journal is None else self._journal.plus(metrics)

    def disk(self, ctx: Context) -> Outcome:
        """Sample, forecast, reclaim when critical, evaluate the alerts (the inbox included)."""
        from nodeguard.disk.cycle import disk_cycle
        from nodeguard.disk.reclaim import RotationHooks
        from nodeguard.disk.render import render_text

        hooks = RotationHooks(ctx.config, ctx.world)
        pending = PendingEvents(ctx.config.state_dir)
        taken = Taken() if ctx.dry_run else pending.take()
        events_in = (*ctx.inbox, *taken.events)
        result = disk_cycle(ctx.config, ctx.world, events_in, dry_run=ctx.dry_run, hooks=hooks)
        self._latest = result
        events = (*result.events, *_settle(pending, taken, result))
        firing = [a.alertname for a in result.alerts if str(a.status) == "firing"]
        summary = {
            "filesystems": len(result.filesystems),
            "alerts_firing": len(firing),
            "alerts": sorted(set(firing)),
            "events_in": len(events_in),
            "pending_taken": len(taken.events),
        }
        urgent = bool(result.notifications) and not result.dry_run
        if not ctx.render:
            return Outcome(events, summary, urgent=urgent)
        failed = any(
            e.severity >= Severity.ERROR and str(e.kind) in ("problem", "pending") for e in events
        )
        return Outcome(
            events,
            summary,
            render_text(result, chart=False),
            result.to_json(),
            Exit.FAILED if failed else Exit.OK,
            urgent=urgent,
        )

    def deliver(self, ctx: Context) -> Outcome:
        """One delivery round; the daemon's /metrics endpoint gets the same snapshot."""
        from nodeguard.alerts.deliver import Deliverer

        if ctx.dry_run:
            text = "dry run: nothing sent (no HTTP, no textfile, no journald entry)\n"
            return Outcome(summary={"dry_run": True}, text=text, data={"sent": {}, "dry_run": True})
        with self._lock:
            if self._deliverer is None:
                self._deliverer = Deliverer()
            events = list(self._serve_metrics(ctx)) if ctx.serving else []
            extra = self._journal.samples() if self._journal is not None else ()
            report = self._deliverer.deliver(
                ctx.config, ctx.world, self._latest, server=self._server, extra=extra
            )
        events += report.events
        summary = {
            "sent": dict(report.sent),
            "failed": dict(report.failed),
            "busy": report.busy,
            "kept": report.kept,
            "dropped": report.dropped,
            "refused": report.refused,
            "queued": dict(report.queued),
        }
        text = _delivery_text(report) if ctx.render else ""
        data = summary if ctx.render else None
        code = report.exit_code()
        if code is Exit.OK and any(e.severity >= Severity.ERROR for e in events):
            code = Exit.FAILED  # /metrics could not be served
        return Outcome(tuple(events), summary, text, data, code)

    def _serve_metrics(self, ctx: Context) -> tuple[Event, ...]:
        """Start (or move, after a reload) the /metrics endpoint; stop it when unset."""
        listen = ctx.config.alerts.metrics_listen
        if self._server is not None and listen != self._listen:
            self._server.close()
            self._server = None
        if listen is None or self._server is not None:
            return ()
        # Imported only when serving: http.server and prometheus-client cost MiBs of RSS.
        from nodeguard.alerts.deliver import DeliveryKind
        from nodeguard.alerts.endpoint import start_metrics_server

        try:
            self._server = start_metrics_server(listen)
        except OSError as exc:
            reason = f"cannot serve /metrics on {listen[0]}:{listen[1]}: {exc}"
            return (Event(Source.ALERTS, DeliveryKind.PROBLEM, "metrics", Severity.ERROR, reason),)
        self._listen = listen
        log.info("serving /metrics on %s:%d", *self._server.address)
        return ()

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None


def _settle(pending: PendingEvents, taken: Taken, result: DiskResult) -> list[Event]:
    """Remove the durable events this evaluation saved and queued; report file problems.

    Kept when the evaluation was not saved (a dry run, a busy or unusable state folder)
    or its transitions are not in the spool: the next evaluation takes them again.
    """
    events = [_pending_event(Severity.WARNING, p) for p in taken.problems]
    if result.dry_run or result.unqueued or not (taken.ids or taken.problems):
        return events
    try:
        pending.settle(taken.ids)
    except OSError as exc:
        why = f"cannot rewrite {pending.doc.path}: {exc.strerror or exc}; evaluated again"
        events.append(_pending_event(Severity.ERROR, why))
    return events


def _pending_event(severity: Severity, reason: str) -> Event:
    return Event(Source.DAEMON, DaemonKind.PENDING, "pending-events", severity, reason)


def _delivery_text(report: DeliveryReport) -> str:
    lines = [f"sent to {sink}: {n} notifications" for sink, n in sorted(report.sent.items())]
    for sink, err in sorted(report.failed.items()):
        fate = "kept in the spool, retried" if sink in report.kept else "dropped"
        why = "configuration refused; " if sink in report.refused else ""
        lines.append(f"failed: {sink}: {err} ({why}{fate})")
    lines += [f"still busy: {sink} (kept in the spool)" for sink in report.busy]
    lines += [f"in the spool for {s}: {n} (retried)" for s, n in sorted(report.queued.items())]
    return "\n".join(lines or ["nothing to send"]) + "\n"


# --- helpers -------------------------------------------------------------------------------


def _skipped(part: str, reason: str) -> Outcome:
    event = Event(Source.DAEMON, DaemonKind.LOCK_BUSY, part, Severity.WARNING, reason)
    return Outcome((event,), {"skipped": reason}, f"{reason}\n", {"skipped": reason}, Exit.LOCKED)


def _failed(part: str, reason: str, code: Exit = Exit.USAGE) -> Outcome:
    event = Event(Source.DAEMON, DaemonKind.PART_FAILED, part, Severity.ERROR, reason)
    return Outcome((event,), {"error": reason}, f"{reason}\n", {"error": reason}, code)
