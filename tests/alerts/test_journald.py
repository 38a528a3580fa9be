"""The journald sink through the real systemd-python, to a journal socket of our own.

No journald runs outside a booted systemd, and the host's must not be touched: the
probe script runs in a private mount namespace (``unshare --mount``) where it binds
/run/systemd/journal/socket itself and decodes the native protocol it receives.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nodeguard.alerts.journald import MESSAGE_ID_FIRING, MESSAGE_ID_RESOLVED
from nodeguard.disk.cycle import disk_cycle
from tests.conftest import REPO
from tests.disk.cfg import write_config
from tests.disk.fakes import GIB, Clock, Probe, fake_world

PROBE = Path(__file__).with_name("journald_probe.py")


def _entries(tmp_path: Path, config: Path, notes: list[dict[str, object]]) -> list[dict[str, str]]:
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        pytest.fail("needs root and unshare (util-linux) for a private mount namespace")
    notes_file = tmp_path / "notes.json"
    notes_file.write_text(json.dumps(notes))
    done = subprocess.run(
        [
            unshare,
            "--mount",
            "--propagation",
            "private",
            sys.executable,
            str(PROBE),
            str(config),
            str(notes_file),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stderr
    entries: list[dict[str, str]] = json.loads(done.stdout)
    return entries


def test_each_transition_is_a_structured_entry_with_a_stable_message_id(tmp_path: Path) -> None:
    path = write_config(tmp_path, disk={"out_of_space": {"for": "0s"}, "clear_for": "0s"})
    from nodeguard.config import load_config

    config = load_config(path, dropins=False)
    clock, probe = Clock(), Probe(free=2 * GIB)
    world = fake_world(clock, probe)
    fired = disk_cycle(config, world).notifications
    probe.free = 60 * GIB
    clock.t += 60
    resolved = disk_cycle(config, world).notifications
    notes = [n.to_json() for n in (*fired, *resolved)]
    entries = _entries(tmp_path, path, notes)
    assert len(entries) == len(notes) >= 4
    by_status = {(e["NODEGUARD_ALERT_STATUS"], e["NODEGUARD_SEVERITY"]): e for e in entries}
    crit = by_status[("firing", "critical")]
    assert crit["MESSAGE_ID"] == MESSAGE_ID_FIRING
    assert crit["PRIORITY"] == "2"
    assert crit["SYSLOG_IDENTIFIER"] == "nodeguard"
    assert crit["NODEGUARD_ALERTNAME"] == "NodeguardFilesystemAlmostOutOfSpace"
    assert crit["NODEGUARD_MOUNTPOINT"] and crit["NODEGUARD_DEVICE"] and crit["NODEGUARD_NODE"]
    assert crit["MESSAGE"].startswith("NodeguardFilesystemAlmostOutOfSpace firing: ")
    done = by_status[("resolved", "critical")]
    assert done["MESSAGE_ID"] == MESSAGE_ID_RESOLVED and done["PRIORITY"] == "6"
    assert done["NODEGUARD_ENDS_AT"]
