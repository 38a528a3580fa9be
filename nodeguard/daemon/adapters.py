"""The existing concerns' entry points as daemon parts, and their results as events.

Rotation and containers predate the event core: their entry points return a
``Report`` and an ``Inventory``. These adapters call those entry points (never their
internals) and translate the results into events and status figures. When a concern
returns events itself, its adapter here shrinks to ``Outcome.of(...)``.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from nodeguard.daemon.parts import Context, DaemonKind, Outcome
from nodeguard.events import Event, Severity, Source
from nodeguard.exitcodes import Exit
from nodeguard.state import LockBusy

if TYPE_CHECKING:
    from nodeguard.rotation.engine import PassOptions
    from nodeguard.rotation.report import Record, Report


class PassKind(enum.StrEnum):
    """What a rotation pass did to one file (Source.ROTATION), and the pass itself."""

    PASS = "pass"  # noqa: S105 (not a password)
    ROTATED = "rotated"
    COMPRESSED = "compressed"
    REMOVED = "removed"
    DONE = "done"  # other completed actions: postrotate, cleanup, recover
    PLANNED = "planned"
    FAILED = "failed"
    REFUSED = "refused"
    SKIPPED = "skipped"


_DONE_KINDS = {"rotate": PassKind.ROTATED, "compress": PassKind.COMPRESSED}
_DONE_KINDS |= {"remove": PassKind.REMOVED}
_RESULT_KINDS = {
    "failed": (PassKind.FAILED, Severity.ERROR),
    "refused": (PassKind.REFUSED, Severity.WARNING),
    "skipped": (PassKind.SKIPPED, Severity.INFO),
    "planned": (PassKind.PLANNED, Severity.INFO),
}
_FREEING = ("remove", "compress", "cleanup")


# --- rotation ------------------------------------------------------------------


def rotation_pass(ctx: Context) -> Outcome:
    """The full pass over every policy (locked; a dry run takes no lock, writes nothing)."""
    from nodeguard.rotation.engine import PassOptions

    return run_rotation(ctx, PassOptions(dry_run=ctx.dry_run))


def run_rotation(ctx: Context, options: PassOptions) -> Outcome:
    """One pass with ``options`` (all policies, or a selection), as an Outcome."""
    from nodeguard.rotation import command
    from nodeguard.rotation.engine import World as PassWorld
    from nodeguard.rotation.engine import run_pass

    world = _pass_world(ctx, PassWorld)
    started = time.monotonic()
    try:
        if options.dry_run:
            report = run_pass(ctx.config, options, world)
        else:
            # rotation.command's locked pass: lock, intents, state file (the CLI's own).
            report = command._locked_pass(ctx.config, options, world)
    except LockBusy as exc:
        return _locked_out(str(exc))
    duration = time.monotonic() - started
    events = tuple(report_events(report))
    summary = pass_summary(report, duration, options.policies)
    text, data = "", None
    if ctx.render:
        text = command._header(ctx.config, options.policies) + report.render_text()
        data = _report_data(report)
    return Outcome(
        events=(*events, _pass_event(summary)),
        summary=summary,
        text=text,
        data=data,
        exit=Exit.FAILED if report.failed else Exit.OK,
    )


def _pass_world(ctx: Context, engine_world: type) -> Any:
    """The engine's World: the daemon's own where the engine takes the core World (its
    stop event and command runner included), else the engine's built from it."""
    if engine_world is type(ctx.world):
        return ctx.world
    return engine_world(clock=ctx.world.clock, workers=ctx.world.workers)


def _report_data(report: Report) -> Any:
    import json

    return json.loads(report.to_json())


def _locked_out(reason: str) -> Outcome:
    event = Event(
        Source.DAEMON,
        DaemonKind.LOCK_BUSY,
        "rotation",
        Severity.WARNING,
        f"another pass is running: {reason}; this one was skipped",
    )
    return Outcome(
        events=(event,),
        summary={"skipped": "another pass holds the lock"},
        text=f"another pass is running: {reason}\n",
        data={"locked": reason},
        exit=Exit.LOCKED,
    )


def report_events(report: Report) -> Iterable[Event]:
    """One event per record that did, would do, or could not do something."""
    for record in report.records:
        event = record_event(record)
        if event is not None:
            yield event
    for note in report.notes:
        yield Event(Source.ROTATION, PassKind.SKIPPED, "rotation", Severity.WARNING, note)


def record_event(record: Record) -> Event | None:
    if record.result in _RESULT_KINDS:
        kind, severity = _RESULT_KINDS[record.result]
    elif record.result == "done":
        kind, severity = _DONE_KINDS.get(record.action, PassKind.DONE), Severity.INFO
    else:
        return None  # kept, unchanged: not news
    reason = f"{record.action}: {record.reason}" + (f": {record.error}" if record.error else "")
    facts = {
        "policy": record.policy,
        "action": record.action,
        "result": record.result,
        "bytes_before": record.bytes_before,
        "bytes_after": record.bytes_after,
        "target": record.target,
    }
    return Event(Source.ROTATION, kind, record.path, severity, reason, facts)


def pass_summary(report: Report, duration: float, policies: tuple[str, ...]) -> dict[str, Any]:
    """The figures ``nodeguard status`` shows for a pass."""
    counts = report.counts()
    done = "planned" if report.dry_run else "done"
    freed = sum(
        (r.bytes_before or 0) - (r.bytes_after or 0)
        for r in report.records
        if r.action in _FREEING and r.result == "done"
    )
    return {
        "duration": round(duration, 3),
        "policies": list(policies),
        "checked": sum(1 for r in report.records if r.action in ("keep", "rotate")),
        "rotated": counts[f"rotate:{done}"],
        "compressed": counts[f"compress:{done}"],
        "removed": counts[f"remove:{done}"],
        "failed": sum(v for k, v in counts.items() if k.endswith(":failed")),
        "refused": sum(v for k, v in counts.items() if k.endswith(":refused")),
        "bytes_freed": max(0, freed),
    }


def _pass_event(summary: dict[str, Any]) -> Event:
    scope = ", ".join(summary["policies"]) or "all policies"
    reason = (
        f"pass over {scope} in {summary['duration']:.1f}s: {summary['rotated']} rotated, "
        f"{summary['compressed']} compressed, {summary['removed']} removed, "
        f"{summary['failed']} failed, {summary['refused']} refused, "
        f"{summary['bytes_freed']} bytes freed"
    )
    # The pass itself is news, not trouble: each failed or refused file is its own
    # event (and its own alert); a warning here would raise a second, vaguer alert.
    return Event(Source.ROTATION, PassKind.PASS, "rotation", Severity.INFO, reason, summary)


# --- containers ----------------------------------------------------------------


def containers(ctx: Context) -> Outcome:
    """The container inventory; outside a dry run its growth samples are stored."""
    from nodeguard.containers.outcome import ContainersKind, ContainersOptions
    from nodeguard.containers.report import render_json, render_text
    from nodeguard.containers.run import container_inventory

    options = ContainersOptions(dry_run=ctx.dry_run)
    result = container_inventory(ctx.config, options, ctx.world)
    totals = next((e.facts for e in result.events if e.kind == ContainersKind.SUMMARY), {})
    summary = {
        "containers": totals.get("containers", 0),
        "unbounded": totals.get("unbounded", 0),
        "orphaned_pod_dirs": totals.get("orphaned_pod_dirs", 0),
        "log_bytes": totals.get("bytes", 0),
    }
    if not ctx.render:
        return Outcome(result.events, summary)
    return Outcome(result.events, summary, render_text(result.events), render_json(result.events))
