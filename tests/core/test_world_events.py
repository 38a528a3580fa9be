"""The World's real defaults and the Event type every concern reports with."""

from __future__ import annotations

import enum
import json
import os
import subprocess
import tempfile
import time
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest

from nodeguard.events import Event, Severity, Source, worst
from nodeguard.world import World, node_name, run_command
from tests.fsimages import require_tool


class _Kind(enum.StrEnum):
    PROBE = "probe"


def test_run_command_returns_the_exit_status_without_waiting_on_a_background_child() -> None:
    started = time.monotonic()
    result = run_command(["sh", "-c", "sleep 20 & echo done; exit 3"], timeout=10)
    assert result.returncode == 3
    assert result.output == "done"
    assert time.monotonic() - started < 10


def test_run_command_keeps_only_the_tail_of_a_flood_of_output() -> None:
    result = run_command(["sh", "-c", "head -c 50000000 /dev/zero | tr '\\0' x; echo END"], 30)
    assert result.returncode == 0
    assert result.output.endswith("END")
    assert len(result.output) <= 4096


def test_run_command_reports_a_missing_program_and_a_timeout() -> None:
    assert run_command(["/nonexistent/prog"], 5).returncode == 127
    assert run_command(["sleep", "5"], 0.2) == (124, "timed out after 0s")


def test_the_default_world_reads_the_real_machine(tmp_path: os.PathLike[str]) -> None:
    world = World()
    assert world.euid == os.geteuid()
    assert world.now().tzinfo is not None
    usage = world.disk_usage(str(tmp_path))
    st = os.statvfs(tmp_path)
    assert usage.total == st.f_blocks * st.f_frsize
    assert usage.used + st.f_bfree * st.f_frsize == usage.total
    assert usage.inodes_total == st.f_files


def test_events_are_frozen_and_render_as_json() -> None:
    event = Event(Source.DISK, _Kind.PROBE, "/var", Severity.WARNING, "why", {"free": 5})
    with pytest.raises(FrozenInstanceError):
        event.subject = "/"  # type: ignore[misc]
    with pytest.raises(TypeError):
        event.facts["free"] = 6  # type: ignore[index]
    data = json.loads(json.dumps(event.as_dict()))
    assert data == {
        "source": "disk",
        "kind": "probe",
        "subject": "/var",
        "severity": "warning",
        "reason": "why",
        "facts": {"free": 5},
        "time": None,
    }
    other = Event(Source.DISK, _Kind.PROBE, "/", Severity.CRITICAL, "worse")
    assert worst([event, other]) is Severity.CRITICAL
    assert worst([]) is None


def test_node_name_comes_from_node_name_env_when_set_else_the_hostname() -> None:
    assert node_name({"NODE_NAME": "worker-7.example"}, "nodeguard-x2k9p") == "worker-7.example"
    assert node_name({}, "host-a") == "host-a"
    assert node_name({"NODE_NAME": ""}, "host-a") == "host-a"


@pytest.mark.parametrize("bad", ["-lead", "has space", "a" * 254, "x\ny", "tail.", "ü"])
def test_node_name_ignores_a_value_that_is_not_a_node_name(
    bad: str, caplog: pytest.LogCaptureFixture
) -> None:
    assert node_name({"NODE_NAME": bad}, "host-a") == "host-a"
    assert "ignoring NODE_NAME" in caplog.text


def test_the_default_world_names_the_node_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NODE_NAME", "node-from-spec")
    assert World().hostname == "node-from-spec"
    monkeypatch.delenv("NODE_NAME")
    assert World().hostname == os.uname().nodename


def test_run_command_runs_when_the_temp_folder_is_out_of_inodes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Out of inodes is what the disk guard alerts on; postrotate and the journal vacuum
    of a reclaim must still run then (the output file was an uncaught ENOSPC)."""
    full = tmp_path / "full"
    full.mkdir()
    mount, umount = require_tool("mount", "mount"), require_tool("umount", "mount")
    subprocess.run(
        [mount, "-t", "tmpfs", "-o", "size=64k,nr_inodes=1", "tmpfs", str(full)], check=True
    )
    try:
        monkeypatch.setattr(tempfile, "tempdir", str(full))
        marker = tmp_path / "ran"
        result = run_command(["/bin/sh", "-c", f"echo hi; touch {marker}; exit 3"], 10)
    finally:
        subprocess.run([umount, "-l", str(full)], check=True)
    assert result.returncode == 3
    assert marker.exists()
    assert "output not kept" in result.output and "No space left on device" in result.output
