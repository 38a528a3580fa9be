"""The rotation's public entry point: one pass as the CLI and the daemon run it.

``run_rotation_pass(config, options, world)`` checks the state folder, takes the pass
lock, settles the intent records an interrupted pass left, runs the pass, saves the
state and returns the :class:`~nodeguard.rotation.report.Report` (its events and
notes). A dry run only plans: no lock, no state, nothing written. Each event is also
logged (``nodeguard.rotation``): what was done at INFO, refusals at WARNING, failures
at ERROR.
"""

from __future__ import annotations

import logging
from datetime import UTC
from pathlib import Path
from typing import Any

from nodeguard.config.model import Config
from nodeguard.events import Event, log_event
from nodeguard.rotation.context import PassOptions
from nodeguard.rotation.engine import run_pass
from nodeguard.rotation.report import DONE, FAILED, Report, RotationKind, rotation_event
from nodeguard.rotation.steps import err
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
from nodeguard.world import World

__all__ = ["LockBusy", "PassOptions", "StateUnusable", "run_rotation_pass"]

STATE_FILE = "state.json"
INTENTS_DIR = "intents"
LOCK_FILE = "nodeguard.lock"
MAX_REMEMBERED_LOGS = 10_000  # state.json stays bounded however many logs come and go

_log = logging.getLogger("nodeguard.rotation")


class StateUnusable(Exception):
    """The state folder cannot be trusted or used; nothing was changed."""


def run_rotation_pass(config: Config, options: PassOptions, world: World) -> Report:
    """One rotation pass; raises LockBusy (another pass runs) or StateUnusable."""
    try:
        if options.dry_run:
            report = run_pass(config, options, world)  # no lock, no state: nothing is written
        else:
            report = _locked_pass(config, options, world)
    except (StateDirUnsafe, LockUnusable) as exc:
        raise StateUnusable(str(exc)) from None
    finally:
        options.progress.done()
    _log_entries(report)
    return report


def _log_entries(report: Report) -> None:
    """Log each entry at its severity; a level nobody logs costs one lookup, not a record
    (and a kept file, DEBUG, becomes an event only when debug is logged)."""
    if _log.isEnabledFor(logging.DEBUG):
        for event in report.events:
            log_event(_log, event)
        return
    for event in report.news():
        if _log.isEnabledFor(event.severity.log_level):
            log_event(_log, event)


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
        intents = IntentJournal(config.state_dir / INTENTS_DIR)
        report = run_pass(config, options, world, intents)
        if loaded.problem:
            report.notes.append(f"{loaded.problem}; state rebuilt from the files on disk")
        try:
            document.save(_updated_state(loaded.data or {}, report, world))
        except OSError as exc:
            report.extend([_save_failed(document.path, exc)])
    return report


def _save_failed(path: Path, exc: OSError) -> Event:
    reason = "state of this pass (when each log was last rotated); the files on disk stay the truth"
    return rotation_event("-", str(path), RotationKind.SAVE, FAILED, reason, error=err(exc))


def _updated_state(state: dict[str, Any], report: Report, world: World) -> dict[str, Any]:
    """Remember when each log was last rotated; the files on disk stay the truth."""
    raw = state.get("logs")
    logs = dict(raw) if isinstance(raw, dict) else {}
    now = world.clock().astimezone(UTC).isoformat(timespec="seconds")
    for event in report.news():
        if event.kind == RotationKind.ROTATE and event.facts.get("result") == DONE:
            logs.pop(event.subject, None)  # re-inserted last: the newest stay when capped
            logs[event.subject] = {
                "rotated_at": now,
                "rotated_to": event.facts.get("target"),
                "bytes": event.facts.get("bytes_before"),
            }
    kept = dict(list(logs.items())[-MAX_REMEMBERED_LOGS:])
    summary = dict(report.counts())
    return {"last_pass": now, "summary": summary, "logs": kept}
