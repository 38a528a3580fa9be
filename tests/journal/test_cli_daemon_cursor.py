"""``nodeguard journal follow`` on a node where the daemon runs: the CLI reads, the daemon
keeps its cursor. Real journal files (systemd-journal-remote), ``run --once`` as the daemon,
its real textfile sink.

Before the fix the CLI saved the daemon's cursor: the daemon then never saw the entries the
admin had looked at, and never alerted on them.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import REPO, run_cli
from tests.journal.journalfiles import Stream, append
from tests.journal.samples import klog

EVICTING = klog(
    "I",
    "eviction_manager.go:377",
    '"Eviction manager: must evict pod(s) to reclaim" resourceName="ephemeral-storage"',
)
ALERT = 'alertname="NodeguardJournalMatch"'


def _node(tmp_path: Path) -> tuple[Path, Path, Stream]:
    """A journal with a quiet kubelet line, and a config whose alerts go to a textfile."""
    directory = tmp_path / "journal"
    directory.mkdir()
    stream = Stream(realtime_us=int((time.time() - 60) * 1_000_000))
    quiet = stream.service("kubelet.service", "kubelet", klog("I", "kubelet.go:1", "Started"))
    append(directory / "system.journal", [quiet])
    (tmp_path / "textfile").mkdir()
    body: dict[str, Any] = {
        "state_dir": str(tmp_path / "state"),
        "logrotate_config": None,
        "policies": [],
        "journal": {"directory": str(directory), "text_logs": {"read": "never"}},
        "alerts": {
            "alertmanager": {"url": None},
            "textfile": str(tmp_path / "textfile" / "nodeguard.prom"),
            "journald": False,
            "node": "node-7",
        },
    }
    config = tmp_path / "nodeguard.yaml"
    config.write_text(yaml.safe_dump(body), "utf-8")
    return config, directory, stream


def _state_bytes(state: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(state.iterdir()) if p.is_file()}


def test_follow_once_and_scan_leave_the_daemons_cursor_and_the_daemon_still_alerts(
    tmp_path: Path,
) -> None:
    config, directory, stream = _node(tmp_path)
    state = tmp_path / "state"
    base = ("-c", config, "--no-dropins")
    first = run_cli(*base, "run", "--once")
    assert first.code == 0, first.err
    cursor_before = (state / "journal.json").read_bytes()
    assert ALERT not in (tmp_path / "textfile" / "nodeguard.prom").read_text()
    append(directory / "system.journal", [stream.service("kubelet.service", "kubelet", EVICTING)])
    before = _state_bytes(state)

    text = run_cli(*base, "journal", "follow", "--once")
    as_json = run_cli(*base, "journal", "follow", "--once", "--json")
    scanned = run_cli(*base, "journal", "scan", "--json")

    assert text.code == as_json.code == scanned.code == 0, (text.err, as_json.err, scanned.err)
    assert "EvictingPods kubelet.service" in text.out, text.out
    assert text.out.count("EvictingPods") == 1  # from the daemon's position: the new line only
    assert [json.loads(line)["rule"] for line in as_json.out.splitlines()] == ["EvictingPods"]
    assert [m["rule"] for m in json.loads(scanned.out)["matches"]] == ["EvictingPods"]
    assert (state / "journal.json").read_bytes() == cursor_before
    assert _state_bytes(state) == before  # no lock file, no pending events, nothing else

    daemon = run_cli(*base, "run", "--once")

    assert daemon.code == 0, daemon.err
    assert (state / "journal.json").read_bytes() != cursor_before  # the daemon read on
    textfile = (tmp_path / "textfile" / "nodeguard.prom").read_text()
    firing = [
        line for line in textfile.splitlines() if ALERT in line and "nodeguard_alerts" in line
    ]
    assert firing and all('alertstate="firing"' in line for line in firing), textfile
    assert all(line.endswith(" 1.0") for line in firing), textfile


def test_live_follow_holds_no_lock_and_keeps_its_position_in_memory(tmp_path: Path) -> None:
    """``journal follow`` live next to the daemon: ``run --once`` is not locked out, the
    cursor file stays the daemon's, and the CLI still prints each new match once."""
    config, directory, stream = _node(tmp_path)
    state = tmp_path / "state"
    base = ("-c", str(config), "--no-dropins")
    assert run_cli(*base, "run", "--once").code == 0
    append(directory / "system.journal", [stream.service("kubelet.service", "kubelet", EVICTING)])
    cursor_before = (state / "journal.json").read_bytes()
    argv = [sys.executable, "-m", "nodeguard", *base, "journal", "follow", "--json"]
    with subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, text=True) as proc:
        watchdog = threading.Timer(60, proc.kill)  # a stuck follower fails, never hangs
        watchdog.start()
        try:
            assert proc.stdout is not None
            first = json.loads(proc.stdout.readline())
            assert (state / "journal.json").read_bytes() == cursor_before
            daemon = run_cli(*base, "run", "--once")  # while the CLI follows
            again = stream.service("kubelet.service", "kubelet", EVICTING.replace("377", "378"))
            append(directory / "system.journal", [again])
            second = json.loads(proc.stdout.readline())
        finally:
            proc.send_signal(signal.SIGTERM)
            watchdog.cancel()
        assert proc.wait(30) == 0
    assert first["rule"] == second["rule"] == "EvictingPods"
    assert "eviction_manager.go:378" in second["message"]
    assert daemon.code == 0, daemon.err
    textfile = (tmp_path / "textfile" / "nodeguard.prom").read_text()
    assert ALERT in textfile and 'alertstate="firing"' in textfile
