"""``nodeguard rotate`` and ``nodeguard run --once``: lock, pass, state, report."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from nodeguard.config.model import Config
from nodeguard.config.units import format_duration, format_size
from nodeguard.rotation.engine import PassOptions, World, run_pass
from nodeguard.rotation.report import DONE, Report
from nodeguard.state import IntentJournal, LockBusy, StateFile, pass_lock

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_LOCKED = 0, 1, 2, 3


def run_rotation(args: argparse.Namespace, config: Config, world: World | None = None) -> int:
    """Run one pass as the CLI asked and print the report; return the exit code."""
    names = tuple(getattr(args, "policy", None) or ())
    unknown = [n for n in names if config.policy(n) is None]
    if unknown:
        print(
            f"nodeguard: no such policy: {', '.join(unknown)} "
            f"(have: {', '.join(p.name for p in config.policies)})",
            file=sys.stderr,
        )
        return EXIT_USAGE
    options = PassOptions(dry_run=args.dry_run, force=getattr(args, "force", False), policies=names)
    if options.dry_run:
        report = run_pass(config, options, world)  # no lock, no state: nothing is written
    else:
        try:
            report = _locked_pass(config, options, world)
        except LockBusy as exc:
            print(f"nodeguard: another pass is running: {exc}", file=sys.stderr)
            return EXIT_LOCKED
    if args.json:
        sys.stdout.write(report.to_json() + "\n")
    else:
        sys.stdout.write(_header(config, names) + report.render_text())
    return EXIT_FAILED if report.failed else EXIT_OK


def _header(config: Config, names: tuple[str, ...]) -> str:
    """Which config and policies this pass used, so a plan reads on its own."""
    lines = [f"config: {', '.join(config.sources)}"]
    for p in config.policies:
        if names and p.name not in names:
            continue
        age = f", max_age {format_duration(p.max_age)}" if p.max_age else ""
        lines.append(
            f"policy {p.name}: {' '.join(p.paths)} (max_size {format_size(p.max_size)}"
            f", max_files {p.max_files}{age}, {p.method}, compress {p.compress})"
        )
    return "\n".join(lines) + "\n"


def _locked_pass(config: Config, options: PassOptions, world: World | None) -> Report:
    with pass_lock(config.state_dir):
        state_file = StateFile(config.state_dir / "state.json")
        state, problem = state_file.load_or_rebuild()
        journal = IntentJournal(config.state_dir / "intents")
        report = run_pass(config, options, world, journal)
        if problem:
            report.notes.append(problem)
        state_file.save(_updated_state(state, report))
    return report


def _updated_state(state: dict[str, object], report: Report) -> dict[str, object]:
    """Remember when each log was last rotated; the files on disk stay the truth."""
    raw = state.get("rotation")
    rotation = raw if isinstance(raw, dict) else {}
    logs = rotation.get("logs")
    logs = logs if isinstance(logs, dict) else {}
    now = datetime.now(UTC).isoformat(timespec="seconds")
    for record in report.records:
        if record.action == "rotate" and record.result == DONE:
            logs[record.path] = {
                "rotated_at": now,
                "rotated_to": record.target,
                "bytes": record.bytes_before,
            }
    summary = dict(report.counts())
    return {**state, "rotation": {"last_pass": now, "summary": summary, "logs": logs}}
