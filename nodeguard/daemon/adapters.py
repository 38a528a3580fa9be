"""The concerns' entry points as daemon parts: their events, status figures, rendering.

Each adapter calls one public entry point (``run_rotation_pass``,
``container_inventory``) and turns its result into an :class:`Outcome`: the events
to pass on, the figures ``nodeguard status`` shows, and the ``run --once`` rendering.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from nodeguard.daemon.parts import Context, DaemonKind, Outcome
from nodeguard.events import Event, Severity, Source
from nodeguard.exitcodes import Exit
from nodeguard.state import LockBusy

if TYPE_CHECKING:
    from nodeguard.rotation.context import PassOptions
    from nodeguard.rotation.report import Report

_FREEING = ("remove", "compress", "cleanup")


# --- rotation ------------------------------------------------------------------


def rotation_pass(ctx: Context) -> Outcome:
    """The full pass over every policy (locked; a dry run takes no lock, writes nothing)."""
    from nodeguard.rotation.context import PassOptions

    return run_rotation(ctx, PassOptions(dry_run=ctx.dry_run, progress=ctx.progress))


def run_rotation(ctx: Context, options: PassOptions) -> Outcome:
    """One pass with ``options`` (all policies, or a selection), as an Outcome."""
    from nodeguard.rotation.command import pass_header
    from nodeguard.rotation.runner import StateUnusable, run_rotation_pass

    started = time.monotonic()
    try:
        report = run_rotation_pass(ctx.config, options, ctx.world)
    except LockBusy as exc:
        return _locked_out(str(exc))
    except StateUnusable as exc:
        return _state_unusable(str(exc))
    duration = time.monotonic() - started
    summary = pass_summary(report, duration, options.policies)
    text, data = "", None
    if ctx.render:
        text = pass_header(ctx.config, options.policies) + report.render_text()
        data = _report_data(report)
    return Outcome(
        events=(*report_events(report), _pass_event(summary)),
        summary=summary,
        text=text,
        data=data,
        exit=Exit.FAILED if report.failed else Exit.OK,
    )


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


def _state_unusable(reason: str) -> Outcome:
    event = Event(
        Source.ROTATION,
        DaemonKind.PART_FAILED,
        "rotation",
        Severity.ERROR,
        f"state folder unusable, nothing was changed: {reason}",
    )
    return Outcome(
        events=(event,),
        summary={"skipped": reason},
        text=f"state folder unusable, nothing was changed: {reason}\n",
        data={"state_unusable": reason},
        exit=Exit.USAGE,
    )


def report_events(report: Report) -> Iterable[Event]:
    """The pass's events that are news (not "looked at, unchanged"), and its notes."""
    from nodeguard.rotation.report import RotationKind

    for event in report.news():  # kept files are never news: not made into events
        if event.severity > Severity.DEBUG and event.kind != RotationKind.KEEP:
            yield event
    for note in report.notes:
        yield Event(Source.ROTATION, RotationKind.CHECK, "rotation", Severity.WARNING, note)


def pass_summary(report: Report, duration: float, policies: tuple[str, ...]) -> dict[str, Any]:
    """The figures ``nodeguard status`` shows for a pass."""
    from nodeguard.rotation.report import result_of

    counts = report.counts()
    done = "planned" if report.dry_run else "done"
    freed = 0
    for event in report.news():
        if str(event.kind) in _FREEING and result_of(event) == "done":
            before = event.facts.get("bytes_before") or 0
            freed += before - (event.facts.get("bytes_after") or 0)
    return {
        "duration": round(duration, 3),
        "policies": list(policies),
        "checked": report.checked,
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
    return Event(Source.ROTATION, DaemonKind.PASS, "rotation", Severity.INFO, reason, summary)


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
