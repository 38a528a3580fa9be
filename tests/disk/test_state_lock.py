"""disk_cycle with an unusable ``disk.lock``: the guard still evaluates and says why.

A lock that is a folder, a FIFO or a hard link to another file cannot be used; the
cycle must neither crash (the daemon's disk part would report nothing, so no filesystem
alert could fire) nor write through it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from nodeguard.disk.cycle import DiskKind, disk_cycle
from nodeguard.events import Severity
from tests.disk.cfg import load
from tests.disk.fakes import GIB, Clock, Probe, fake_world


def _folder(lock: Path, tmp_path: Path) -> None:
    lock.mkdir()


def _fifo(lock: Path, tmp_path: Path) -> None:
    os.mkfifo(lock)


def _hard_link(lock: Path, tmp_path: Path) -> None:
    os.link(tmp_path / "victim", lock)


@pytest.mark.parametrize("make", [_folder, _fifo, _hard_link])
def test_an_unusable_lock_is_a_problem_not_a_crash(tmp_path: Path, make: object) -> None:
    config = load(tmp_path)
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious\n" * 100)
    before = hashlib.sha256(victim.read_bytes()).hexdigest()
    state = tmp_path / "state"
    state.mkdir(mode=0o700, exist_ok=True)
    assert callable(make)
    make(state / "disk.lock", tmp_path)

    result = disk_cycle(config, fake_world(Clock(), Probe(free=1 * GIB)))

    assert result.filesystems, "the filesystems are still evaluated"
    [problem] = [e for e in result.events if e.kind == DiskKind.PROBLEM and "disk.lock" in e.reason]
    assert problem.severity >= Severity.ERROR
    assert "Errno" not in problem.reason
    assert sorted(os.listdir(state)) == ["disk.lock"]
    assert hashlib.sha256(victim.read_bytes()).hexdigest() == before


def test_a_state_folder_that_is_a_file_is_said_not_silently_ignored(tmp_path: Path) -> None:
    """``nodeguard disk`` / ``check`` read history from the state folder; one they cannot
    use is a note, so a missing forecast is never taken for a quiet disk."""
    config = load(tmp_path)
    (tmp_path / "state").write_bytes(b"not a folder\n")

    result = disk_cycle(config, fake_world(Clock(), Probe(free=1 * GIB)), dry_run=True)

    reasons = [e.reason for e in result.events if e.kind == DiskKind.PROBLEM]
    assert any(f"{tmp_path / 'state'}: not a directory" in r for r in reasons), reasons
    assert (tmp_path / "state").read_bytes() == b"not a folder\n"
