"""``nodeguard rotate`` and ``nodeguard run --once``: lock, pass, state, report."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC
from typing import Any

from nodeguard.config.model import Config
from nodeguard.config.units import format_duration, format_size
from nodeguard.rotation.engine import PassOptions, World, run_pass, save_error
from nodeguard.rotation.report import DONE, Report
from nodeguard.state import (
    IntentJournal,
    LockBusy,
    LockUnusable,
    StateDirUnsafe,
    StateDocument,
    check_state_entries,
    ensure_state_dir,
    pass_lock,
)

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
    world = world or World()
    if options.dry_run:
        report = run_pass(config, options, world)  # no lock, no state: nothing is written
    else:
        try:
            report = _locked_pass(config, options, world)
        except LockBusy as exc:
            print(f"nodeguard: another pass is running: {exc}", file=sys.stderr)
            return EXIT_LOCKED
        except (StateDirUnsafe, LockUnusable) as exc:
            print(
                f"nodeguard: state_dir {config.state_dir} cannot be used: {exc}; "
                "nothing was changed",
                file=sys.stderr,
            )
            return EXIT_USAGE
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


STATE_FILE = "state.json"
INTENTS_DIR = "intents"
LOCK_FILE = "nodeguard.lock"
MAX_REMEMBERED_LOGS = 10_000  # state.json stays bounded however many logs come and go


def _locked_pass(config: Config, options: PassOptions, world: World) -> Report:
    """Check the state folder, take the lock, run the pass, remember it.

    Everything that could refuse the pass (an unsafe or odd state folder, the lock)
    is checked before anything changes. A state file that cannot be saved (a full
    disk) is reported as a failure of its own: the pass's work stands.
    """
    ensure_state_dir(config.state_dir, world.euid)
    check_state_entries(
        config.state_dir, world.euid, files=(LOCK_FILE, STATE_FILE), dirs=(INTENTS_DIR,)
    )
    with pass_lock(config.state_dir):
        document = StateDocument(config.state_dir / STATE_FILE, kind="rotation")
        loaded = document.load()
        journal = IntentJournal(config.state_dir / INTENTS_DIR)
        report = run_pass(config, options, world, journal)
        if loaded.problem:
            report.notes.append(f"{loaded.problem}; state rebuilt from the files on disk")
        try:
            document.save(_updated_state(loaded.data or {}, report, world))
        except OSError as exc:
            report.records.append(save_error(document.path, exc))
    return report


def _updated_state(state: dict[str, Any], report: Report, world: World) -> dict[str, Any]:
    """Remember when each log was last rotated; the files on disk stay the truth."""
    raw = state.get("logs")
    logs = dict(raw) if isinstance(raw, dict) else {}
    now = world.clock().astimezone(UTC).isoformat(timespec="seconds")
    for record in report.records:
        if record.action == "rotate" and record.result == DONE:
            logs.pop(record.path, None)  # re-inserted last: the newest stay when capped
            logs[record.path] = {
                "rotated_at": now,
                "rotated_to": record.target,
                "bytes": record.bytes_before,
            }
    kept = dict(list(logs.items())[-MAX_REMEMBERED_LOGS:])
    summary = dict(report.counts())
    return {"last_pass": now, "summary": summary, "logs": kept}
