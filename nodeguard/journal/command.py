"""``nodeguard journal``: scan, follow, usage, vacuum.

Rendering only: the work is in ``follow.py`` and ``retention.py``. ``scan`` and
``follow`` only read: ``follow`` starts at ``--since``, else where the daemon's follower
stands (its saved cursor, read and never written), else the lookback, and keeps its
position in memory. The daemon and ``run --once`` are the only writers of the cursor, so
an admin watching never takes entries away from the alert path.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TextIO

from nodeguard.exitcodes import Exit

if TYPE_CHECKING:  # the work modules load only when this command runs
    from nodeguard.config.model import Config
    from nodeguard.events import Event
    from nodeguard.journal.model import JournalResult
    from nodeguard.journal.retention import Usage, VacuumResult
    from nodeguard.progress import Progress
    from nodeguard.world import World


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``nodeguard journal``."""
    parser = sub.add_parser(
        "journal", help="journald: disk-trouble rules over kubelet, runtime and kernel messages"
    )
    actions = parser.add_subparsers(dest="journal_command", required=True, metavar="ACTION")
    scan = actions.add_parser("scan", help="apply the rules to the journal now; change nothing")
    scan.add_argument(
        "--since",
        metavar="TIME",
        help="how far back: a duration (30m, 2h, 1d) or a time (2025-11-30T08:00:00Z); "
        "default journal.lookback",
    )
    scan.add_argument("--json", action="store_true", help="one JSON document with the matches")
    follow = actions.add_parser(
        "follow",
        help="print matches from where the daemon's follower stands (read, never moved) "
        "to the end, then live; change nothing",
    )
    follow.add_argument(
        "--since",
        metavar="TIME",
        help="start here instead: a duration (30m, 2h, 1d) or a time (2025-11-30T08:00:00Z)",
    )
    follow.add_argument("--once", action="store_true", help="stop at the end (else: live)")
    follow.add_argument("--json", action="store_true", help="one JSON object per line")
    usage = actions.add_parser("usage", help="the journal's disk use (as journalctl --disk-usage)")
    usage.add_argument("--json", action="store_true", help="machine-readable")
    vacuum = actions.add_parser(
        "vacuum", help="remove archived journal files beyond journal.retention max_use/max_age"
    )
    vacuum.add_argument("-n", "--dry-run", action="store_true", help="only say what would go")
    vacuum.add_argument("--json", action="store_true", help="machine-readable")
    parser.set_defaults(handler=handler)


def handler(args: argparse.Namespace, config: Config) -> int:
    """The CLI entry: the real World, stdout and stderr."""
    from nodeguard.world import World

    return run(args, config, World(), sys.stdout, sys.stderr)


def run(args: argparse.Namespace, config: Config, world: World, out: TextIO, err: TextIO) -> int:
    from nodeguard.state import LockBusy, LockUnusable, StateDirUnsafe

    action = {"scan": _scan, "follow": _follow, "usage": _usage, "vacuum": _vacuum}
    try:
        return action[args.journal_command](args, config, world, out, err)
    except LockBusy as exc:
        return _refuse(args, out, err, str(exc), Exit.LOCKED)
    except StateDirUnsafe as exc:
        why = f"unsafe state folder: {exc}; nothing was changed"
        return _refuse(args, out, err, why, Exit.USAGE)
    except LockUnusable as exc:
        why = f"{exc.filename}: {exc.strerror}; nothing was changed"
        return _refuse(args, out, err, why, Exit.USAGE)
    except KeyboardInterrupt:
        return Exit.OK


def _refuse(args: argparse.Namespace, out: TextIO, err: TextIO, why: str, code: int) -> int:
    """The human line on stderr; with --json also one JSON document (a single line, so
    ``follow --json`` stays one object per line) on stdout: {"error", "exit"}."""
    print(f"nodeguard: {why}", file=err)
    if getattr(args, "json", False):
        out.write(json.dumps({"error": why, "exit": int(code)}, sort_keys=True) + "\n")
    return code


# --- scan and follow ----------------------------------------------------------------------


def parse_since(text: str, now: datetime) -> datetime:
    """A duration back from ``now`` or an ISO 8601 time (naive: local time), between the
    epoch and ``now``; ValueError saying what is wrong (a time in the future would
    silently match nothing)."""
    when = _duration_back(text, now) or _time_of(text)
    if when > now:
        raise ValueError(
            f"{text!r} is in the future ({when.isoformat(timespec='seconds')}; now is "
            f"{now.isoformat(timespec='seconds')}): nothing could match; give a past time "
            "or a duration back (30m, 2h)"
        )
    if when.timestamp() < 0:
        raise ValueError(f"{text!r} is before 1970-01-01, where no journal entry can be")
    return when


def _duration_back(text: str, now: datetime) -> datetime | None:
    from nodeguard.config.units import parse_duration

    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        if "too long" in str(exc):
            raise ValueError(f"{text!r} is too long a duration (more than 100 years)") from None
        return None
    try:
        return now - timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f"{text!r} reaches back before the year 1") from None


def _time_of(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a duration (30m, 2h) nor a time (2025-11-30T08:00:00Z)"
        ) from None
    return when if when.tzinfo else when.astimezone()


def _scan(args: argparse.Namespace, config: Config, world: World, out: TextIO, err: TextIO) -> int:
    from nodeguard.journal.follow import scan

    now = world.now()
    try:
        since = parse_since(args.since, now) if args.since else None
    except ValueError as exc:
        return _refuse(args, out, err, f"--since: {exc}", Exit.USAGE)
    start = since or now - timedelta(seconds=config.journal.lookback)
    if not args.json:
        progress = _progress(err, "journal scan")
        printer = _TextPrinter(out, err, progress)
        return _exit_code(scan(config, world, start, sink=printer, progress=progress))
    kept = _Collector()  # every event, not only the ones a JournalResult keeps
    result = scan(config, world, start, sink=kept)
    out.write(json.dumps(result_document(replace(result, events=tuple(kept.events))), indent=2))
    out.write("\n")
    return _exit_code(result)


class _Collector:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, events: Sequence[Event]) -> None:
        self.events.extend(events)


def _follow(
    args: argparse.Namespace, config: Config, world: World, out: TextIO, err: TextIO
) -> int:
    from nodeguard.journal.follow import view_live, view_once

    try:
        since = parse_since(args.since, world.now()) if args.since else None
    except ValueError as exc:
        return _refuse(args, out, err, f"--since: {exc}", Exit.USAGE)
    if args.json:
        printer: _JsonLinesPrinter | _TextPrinter = _JsonLinesPrinter(out, err)
    else:
        progress = _progress(err, "journal follow") if args.once else None
        printer = _TextPrinter(out, err, progress)
    if args.once:
        return _exit_code(view_once(config, world, since, sink=printer, progress=printer.progress))
    _stop_on_signals(world)
    return _exit_code(view_live(config, world, printer, since))


def _progress(err: TextIO, label: str) -> Progress:
    """Entries read so far, on ``err`` when it is a terminal (never with --json)."""
    from nodeguard.progress import progress_for

    return progress_for(err, label)


def _stop_on_signals(world: World) -> None:
    import signal

    def stop(signum: int, frame: Any) -> None:
        world.stop.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def _exit_code(result: JournalResult) -> int:
    from nodeguard.events import Severity
    from nodeguard.journal.model import JournalKind

    failed = (JournalKind.UNAVAILABLE, JournalKind.STATE_UNWRITABLE, JournalKind.READ_ERROR)
    problems = [e for e in result.events if e.kind in failed and e.severity >= Severity.WARNING]
    return Exit.FAILED if problems and result.entries_read == 0 else Exit.OK


def _is_match(event: Event) -> bool:
    return str(event.kind) in ("match", "rate", "condition-active")


def match_dict(event: Event) -> dict[str, Any]:
    facts = dict(event.facts)
    return {
        "rule": facts.get("rule"),
        "unit": facts.get("unit"),
        "message": facts.get("message"),
        "cursor": facts.get("cursor"),
        "time": facts.get("time"),
        "severity": event.severity.name.lower(),
        "kind": str(event.kind),
    }


def result_document(result: JournalResult) -> dict[str, Any]:
    return {
        "matches": [match_dict(e) for e in result.events if _is_match(e)],
        "events": [e.as_dict() for e in result.events if not _is_match(e)],
        "conditions": [
            {
                "rule": c.rule,
                "unit": c.unit,
                "since": _iso(c.since),
                "last": _iso(c.last),
                "message": c.message,
                "cursor": c.cursor,
            }
            for c in result.conditions
        ],
        "entries_read": result.entries_read,
        "caught_up": result.caught_up,
        "metrics": result.metrics.as_dict(),
    }


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()


class _TextPrinter:
    """Matches to stdout, one line each; other events to stderr. Flushed per batch.

    A progress line on stderr is taken away before a batch's lines are written (stdout and
    stderr are often the same terminal); the next update draws it again below them."""

    def __init__(self, out: TextIO, err: TextIO, progress: Progress | None = None) -> None:
        from nodeguard.progress import NO_PROGRESS

        self.out, self.err = out, err
        self.progress = progress or NO_PROGRESS

    def __call__(self, events: Sequence[Event]) -> None:
        if events:
            self.progress.done()
        for event in events:
            if _is_match(event):
                facts = event.facts
                self.out.write(
                    f"{facts.get('time', '-')} {event.severity.name:<8} {facts.get('rule')} "
                    f"{facts.get('unit')}: {facts.get('message')}\n"
                )
            else:
                self.err.write(
                    f"nodeguard: journal: {event.severity.name.lower()}: {event.reason}\n"
                )
        self.out.flush()
        self.err.flush()


class _JsonLinesPrinter:
    """One JSON object per event and line (matches with rule, unit, message, cursor, time)."""

    def __init__(self, out: TextIO, err: TextIO) -> None:
        from nodeguard.progress import NO_PROGRESS

        self.out = out
        self.progress: Progress = NO_PROGRESS  # --json: never a progress line

    def __call__(self, events: Sequence[Event]) -> None:
        for event in events:
            body = match_dict(event) if _is_match(event) else event.as_dict()
            self.out.write(json.dumps(body, sort_keys=True) + "\n")
        self.out.flush()


# --- usage and vacuum --------------------------------------------------------------------


def _usage(args: argparse.Namespace, config: Config, world: World, out: TextIO, err: TextIO) -> int:
    from nodeguard.journal.retention import journal_usage

    usage = journal_usage(config, world)
    if args.json:
        out.write(json.dumps(usage.as_dict(), indent=2) + "\n")
    else:
        out.write(_usage_text(usage))
    return Exit.OK


def _usage_text(usage: Usage) -> str:
    from nodeguard.journal.retention import format_bytes

    lines = [usage.text()]
    for item in usage.files:
        state = "archived" if item.archived else "active"
        lines.append(f"  {format_bytes(item.usage):>8}  {state:<8}  {item.path}")
    return "\n".join(lines) + "\n"


def _vacuum(
    args: argparse.Namespace, config: Config, world: World, out: TextIO, err: TextIO
) -> int:
    from nodeguard.journal.retention import enforce_retention

    retention = config.journal.retention
    if retention.max_use is None and retention.max_age is None:
        why = "journal.retention.max_use and max_age are null: nothing to enforce; "
        return _refuse(args, out, err, why + "nothing was changed", Exit.OK)
    result = enforce_retention(config, world, dry_run=args.dry_run)
    if args.json:
        out.write(json.dumps(_vacuum_document(result), indent=2) + "\n")
    else:
        out.write(_vacuum_text(result))
    failures = [e for e in result.events if str(e.kind) == "vacuum-failed"]
    for event in failures:
        print(f"nodeguard: {event.reason}", file=err)
    return Exit.FAILED if failures else Exit.OK


def _vacuum_document(result: VacuumResult) -> dict[str, Any]:
    return {
        "dry_run": result.dry_run,
        "removed": [{"path": f.path, "bytes": f.usage} for f in result.removed],
        "freed_bytes": result.freed,
        "before": result.before.as_dict(),
        "after": result.after.as_dict(),
        "events": [e.as_dict() for e in result.events],
    }


def _vacuum_text(result: VacuumResult) -> str:
    from nodeguard.journal.retention import format_bytes

    verb = "would remove" if result.dry_run else "removed"
    lines = [f"{verb}: {f.path} ({format_bytes(f.usage)})" for f in result.removed]
    lines.append(
        f"{verb} {len(result.removed)} archived files, {format_bytes(result.freed)}; "
        f"journal now {format_bytes(result.after.total)}"
    )
    return "\n".join(lines) + "\n"
