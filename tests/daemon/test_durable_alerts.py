"""Journal matches survive a crash and go out at once: a real daemon following real journal
files (systemd-journal-remote), a real Alertmanager on loopback.

- SIGKILL right after the follower saved its cursor (the fault point
  ``journal-cursor-saved``), before anything was evaluated or sent: the restarted daemon
  still raises the alert (the match was recorded in the state folder first).
- With ``disk_interval`` and ``alerts_interval`` at one hour, a match that arrives after
  the first evaluation still reaches Alertmanager: a warning-or-worse event runs the disk
  part at once, and its queued transition runs delivery at once.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from pathlib import Path

from nodeguard.daemon.pending import NAME as PENDING_NAME
from tests.alerts.components import alertmanager, am_alerts
from tests.conftest import run_cli
from tests.daemon.conftest import DaemonProc
from tests.daemon.test_wiring import ALERT, EVICTING, alert_config, wait_for
from tests.journal.journalfiles import Stream, append
from tests.journal.samples import klog


def cursor(state: Path) -> str | None:
    try:
        doc = json.loads((state / "journal.json").read_text())
    except FileNotFoundError:
        return None
    value: str | None = doc["data"]["cursor"]
    return value


def part_runs(conf: Path, name: str) -> int:
    result = run_cli("-c", conf, "--no-dropins", "status", "--json")
    try:
        parts = json.loads(result.out)["status"]["parts"]
    except (ValueError, KeyError, TypeError):
        return 0
    runs: int = parts.get(name, {}).get("runs", 0)
    return runs


def test_a_match_recorded_before_a_sigkill_after_the_cursor_save_is_alerted_after_restart(
    tmp_path: Path, start_daemon: Callable[..., DaemonProc]
) -> None:
    with alertmanager(tmp_path / "am") as url:
        conf = alert_config(tmp_path, url, journal_interval="1s", alerts_interval="1s")
        state = tmp_path / "state"
        crashed = start_daemon(conf, env_extra={"NODEGUARD_FAULT": "journal-cursor-saved:1"})
        assert crashed.proc.wait(60) == -signal.SIGKILL, crashed.stderr()
        assert cursor(state) is not None  # the cursor moved past the eviction line
        pending = json.loads((state / PENDING_NAME).read_text())["data"]["events"]
        assert [e["facts"]["rule"] for e in pending] == ["EvictingPods"], pending
        assert am_alerts(url, ALERT) == []  # killed before anything was evaluated or sent

        daemon = start_daemon(conf)
        (alert,) = wait_for(lambda: am_alerts(url, ALERT), 60, "the alert after the restart")
        assert "must evict pod(s)" in alert["annotations"]["description"]
        wait_for(
            lambda: json.loads((state / PENDING_NAME).read_text())["data"]["events"] == [],
            30,
            "the recorded match settled once evaluated and queued",
        )
        assert daemon.stop() == 0


def test_a_match_reaches_alertmanager_long_before_the_disk_and_alerts_intervals(
    tmp_path: Path, start_daemon: Callable[..., DaemonProc]
) -> None:
    with alertmanager(tmp_path / "am") as url:
        conf = alert_config(
            tmp_path, url, journal_interval="1s", disk_interval="1h", alerts_interval="1h"
        )
        journal = tmp_path / "journal"
        for old in journal.iterdir():
            old.unlink()  # start from a journal without the eviction line
        stream = Stream(realtime_us=int((time.time() - 30) * 1_000_000))
        quiet = stream.service("kubelet.service", "kubelet", klog("I", "kubelet.go:1", "Up"))
        append(journal / "system.journal", [quiet])
        daemon = start_daemon(conf)
        daemon.wait_until(
            lambda: part_runs(conf, "disk") >= 1 and part_runs(conf, "alerts") >= 1,
            60,
            "the first evaluation and delivery",
        )
        assert am_alerts(url, ALERT) == []
        append(journal / "system.journal", [stream.service("kubelet.service", "kubelet", EVICTING)])
        (alert,) = wait_for(lambda: am_alerts(url, ALERT), 60, "the alert with 1h intervals")
        assert alert["labels"]["kind"] == "match"
        wait_for(  # the status file is written a moment after a part ends
            lambda: part_runs(conf, "disk") >= 2 and part_runs(conf, "alerts") >= 2,
            30,
            "the extra evaluation and delivery runs in the status",
        )
        assert daemon.stop() == 0
