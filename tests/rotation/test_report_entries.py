"""A kept file is recorded as a :class:`Kept` (four fields), not an Event (issue 13 c).

Its event, reason text included, is made only when someone asks for it; every rendering
of a report holding kept files must be exactly what the same report of events renders.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from nodeguard.config.loader import load_config
from nodeguard.events import Severity, Source
from nodeguard.rotation.report import (
    DONE,
    FAILED,
    UNCHANGED,
    Kept,
    Report,
    RotationKind,
    as_record,
    rotation_event,
)
from nodeguard.rotation.runner import PassOptions, run_rotation_pass
from nodeguard.world import World
from tests.conftest import make_config


def test_a_kept_file_becomes_the_keep_event_with_its_reason() -> None:
    small = Kept("p", "/logs/a.log", 2048, 1024 * 1024).as_event()
    assert small == rotation_event(
        "p",
        "/logs/a.log",
        RotationKind.KEEP,
        UNCHANGED,
        "size 2.0Ki < max_size 1.0Mi",
        bytes_before=2048,
        bytes_after=2048,
    )
    assert small.source is Source.ROTATION and small.severity is Severity.DEBUG
    empty = Kept("p", "/logs/b.log", 0, None).as_event()
    assert empty.reason == "empty (not_if_empty)"
    assert as_record(Kept("p", "/logs/a.log", 10, 100)) == as_record(
        Kept("p", "/logs/a.log", 10, 100).as_event()
    )


def _mixed(dry_run: bool = False) -> tuple[Report, Report]:
    """The same pass as entries with kept files, and as events only."""
    entries = [
        Kept("p", "/logs/a.log", 10, 100),
        rotation_event("p", "/logs/b.log", RotationKind.ROTATE, DONE, "big", bytes_before=200),
        Kept("p", "/logs/c.log", 0, None),
        rotation_event("p", "/logs/d.log", RotationKind.CHECK, FAILED, "odd", error="EIO"),
        Kept("q", "/logs/e.log", 99, 100),
    ]
    events = [e.as_event() if isinstance(e, Kept) else e for e in entries]
    return Report(dry_run, list(entries), ["a note"]), Report(dry_run, events, ["a note"])


@pytest.mark.parametrize("dry_run", [False, True])
def test_every_rendering_of_kept_entries_is_that_of_their_events(dry_run: bool) -> None:
    lazy, eager = _mixed(dry_run)
    assert lazy.to_json() == eager.to_json()
    assert lazy.render_text() == eager.render_text()
    assert lazy.render_text(verbose=True) == eager.render_text(verbose=True)
    assert lazy.counts() == eager.counts()
    assert (lazy.failed, lazy.checked) == (eager.failed, eager.checked) == (True, 4)
    assert "keep /logs/a.log [10B] (size 10B < max_size 100B)" in lazy.render_text(verbose=True)
    assert lazy.events == eager.events  # in order, kept files made into events


def test_events_of_a_report_are_its_own_list() -> None:
    lazy, _ = _mixed()
    extra = rotation_event("p", "/state.json", RotationKind.SAVE, FAILED, "disk full")
    lazy.events.append(extra)
    assert json.loads(lazy.to_json())["files"][-1]["action"] == "save"
    assert all(not isinstance(e, Kept) for e in lazy.entries)


def test_a_pass_over_quiet_logs_records_kept_files_and_logs_them_only_at_debug(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    for name in ("a.log", "b.log"):
        (logs / name).write_bytes(b"line\n")
    (logs / "empty.log").write_bytes(b"")
    config = load_config(
        make_config(tmp_path, [{"name": "p", "paths": [f"{logs}/*.log"], "max_size": "1Ki"}]),
        dropins=False,
    )
    with caplog.at_level(logging.INFO, logger="nodeguard.rotation"):
        report = run_rotation_pass(config, PassOptions(), World())
    assert [type(e) for e in report.entries] == [Kept, Kept, Kept]
    assert caplog.records == []
    with caplog.at_level(logging.DEBUG, logger="nodeguard.rotation"):
        run_rotation_pass(config, PassOptions(), World())
    assert sorted(r.getMessage() for r in caplog.records) == [
        f"{logs}/a.log: size 5B < max_size 1.0Ki",
        f"{logs}/b.log: size 5B < max_size 1.0Ki",
        f"{logs}/empty.log: empty (not_if_empty)",
    ]
