"""The rotation's public entry point, as the CLI and the daemon call it (issue 8).

``run_rotation_pass(config, options, world)`` returns events (kind, severity, facts as
data), logs them (INFO for what it did, WARNING for refusals), takes everything from
outside through the World (the state's time is the World's clock), and raises typed
errors for a busy lock or an unusable state folder. Intent records are one frozen type
per kind, made only by one validator.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import FrozenInstanceError, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from nodeguard.config.loader import load_config
from nodeguard.events import Severity, Source
from nodeguard.rotation import intents
from nodeguard.rotation.context import PassContext, PassOptions
from nodeguard.rotation.guards import Guards
from nodeguard.rotation.report import RotationKind
from nodeguard.rotation.runner import StateUnusable, run_rotation_pass
from nodeguard.state import LockBusy, pass_lock
from nodeguard.world import World
from tests.conftest import make_config, numbered_lines

DATA = numbered_lines("r", 0, 100)
NOW = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)


def make_case(tmp_path: Path) -> tuple[Path, Path]:
    logs = tmp_path / "logs"
    (logs / "shared").mkdir(parents=True)
    (logs / "app.log").write_bytes(DATA)
    os.chmod(logs / "shared", 0o777)  # noqa: S103 - a refusal to log
    (logs / "shared" / "x.log").write_bytes(DATA)
    pol = {"name": "p", "paths": [f"{logs}/*.log", f"{logs}/shared/*.log"], "max_size": "1Ki"}
    return make_config(tmp_path, [pol]), logs


def test_a_pass_returns_events_logs_them_and_uses_the_worlds_clock(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    conf, logs = make_case(tmp_path)
    config = load_config(conf, dropins=False)
    world = World(clock=lambda: NOW)
    with caplog.at_level(logging.INFO, logger="nodeguard.rotation"):
        report = run_rotation_pass(config, PassOptions(), world)
    by_kind = {(e.kind, e.subject): e for e in report.events}
    rotated = by_kind[(RotationKind.ROTATE, f"{logs}/app.log")]
    refused = by_kind[(RotationKind.REFUSE, f"{logs}/shared/x.log")]
    assert rotated.source is Source.ROTATION and rotated.severity is Severity.INFO
    assert rotated.facts["target"] == f"{logs}/app.log.20310506-070809"
    assert refused.severity is Severity.WARNING and "insecure" in refused.reason
    levels = {r.getMessage(): r.levelno for r in caplog.records}
    assert levels[f"{logs}/app.log: {rotated.reason}"] == logging.INFO
    assert levels[f"{logs}/shared/x.log: {refused.reason}"] == logging.WARNING
    state = json.loads((tmp_path / "state" / "state.json").read_text())
    assert state["data"]["last_pass"] == NOW.isoformat()


def test_a_busy_lock_and_an_unusable_state_folder_are_typed_errors(tmp_path: Path) -> None:
    conf, logs = make_case(tmp_path)
    config = load_config(conf, dropins=False)
    with pass_lock(config.state_dir), pytest.raises(LockBusy):
        run_rotation_pass(config, PassOptions(), World())
    os.chmod(config.state_dir, 0o777)  # noqa: S103 - the unsafe folder
    with pytest.raises(StateUnusable, match="writable by group or others"):
        run_rotation_pass(config, PassOptions(), World())
    assert (logs / "app.log").read_bytes() == DATA


def test_a_dry_run_writes_nothing_not_even_the_state_folder(tmp_path: Path) -> None:
    conf, _ = make_case(tmp_path)
    report = run_rotation_pass(load_config(conf, dropins=False), PassOptions(dry_run=True), World())
    assert report.dry_run and report.events
    assert not (tmp_path / "state").exists()


def test_contexts_are_frozen(tmp_path: Path) -> None:
    config = load_config(make_case(tmp_path)[0], dropins=False)
    ctx = PassContext(PassOptions(), World(), Guards.build(config))
    with pytest.raises(FrozenInstanceError):
        ctx.intents = None  # type: ignore[misc]


def test_intent_records_round_trip_through_the_one_validator() -> None:
    rename = intents.RenameIntent(
        "p", "/l/a.log", "/l/a.log.20310506-070809", 1, 2, 0o640, 0, 4, True
    )
    assert intents.parse(json.loads(json.dumps(rename.as_record()))) == rename
    record = {**rename.as_record(), "mode": "0640", "uid": -1, "live": "a.log"}
    with pytest.raises(intents.InvalidIntent) as caught:
        intents.parse(record)
    assert sorted(caught.value.problems) == [
        "live: not an absolute path naming a file",
        "mode: wrong type",
        "uid: negative",
    ]
    with pytest.raises(intents.InvalidIntent, match="unknown kind"):
        intents.parse({**rename.as_record(), "kind": "format-disk"})
    with pytest.raises(FrozenInstanceError):
        rename.live = "/etc/shadow"  # type: ignore[misc]
    assert replace(rename, live="/x/y").live == "/x/y"
