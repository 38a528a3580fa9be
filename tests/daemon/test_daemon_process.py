"""``nodeguard run`` as systemd runs it: a real process, a real notify socket, real signals."""

from __future__ import annotations

import itertools
import json
import os
import signal
import time
from pathlib import Path

from nodeguard.rotation import naming
from tests.conftest import numbered_lines, run_cli
from tests.daemon.conftest import DaemonProc, policy, write_config

BIG = numbered_lines("x", 0, 100)  # 6400 bytes: over 4Ki


def rotated(logs: Path, live: str) -> list[str]:
    return [n for n in os.listdir(logs) if (r := naming.parse(n)) is not None and r.base == live]


def status(conf: Path) -> tuple[int, dict[str, object]]:
    result = run_cli("-c", conf, "--no-dropins", "status", "--json")
    return result.code, json.loads(result.out)


def test_ready_status_and_watchdog_pings_reach_the_notify_socket(
    tmp_path: Path, start_daemon: type[DaemonProc]
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    daemon = start_daemon(write_config(tmp_path / "ng.yaml", tmp_path, policies=[policy(logs)]))
    ready = daemon.notify.wait_for("READY", "1")
    daemon.notify.wait_for("WATCHDOG", "1")

    def pings_after_ready() -> list[float]:
        return [t for t in daemon.notify.seen("WATCHDOG", "1") if t > ready]

    # Three pings, however busy the machine (a fixed sleep made this a timing test).
    daemon.wait_until(lambda: len(pings_after_ready()) >= 3, 15, "three watchdog pings")
    pings = pings_after_ready()
    assert len(pings) >= 3, pings  # WatchdogSec=2s: pinged at least every second
    assert max(b - a for a, b in itertools.pairwise(pings)) < 2.0  # within WatchdogSec
    assert any("last pass" in s for s in daemon.notify.statuses())
    code, body = status(daemon.config)
    assert code == 0 and body["ok"] is True
    doc = body["status"]
    assert isinstance(doc, dict) and doc["state"] == "running" and doc["pid"] == daemon.proc.pid
    assert {"rotation", "size-watch", "containers"} <= set(doc["parts"])
    assert daemon.stop() == 0


def test_a_log_over_its_limit_is_rotated_within_the_size_watch_interval(
    tmp_path: Path, start_daemon: type[DaemonProc]
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").write_bytes(b"small\n")
    daemon = start_daemon(write_config(tmp_path / "ng.yaml", tmp_path, policies=[policy(logs)]))
    daemon.notify.wait_for("READY", "1")
    daemon.wait_until(lambda: status(daemon.config)[0] == 0, 10, "a first status report")
    assert rotated(logs, "app.log") == []
    with (logs / "app.log").open("ab") as f:
        f.write(BIG)
    # The full pass runs every hour: only the size watch (every second) can rotate it now.
    daemon.wait_until(lambda: rotated(logs, "app.log") != [], 30, "rotation of app.log")
    assert (logs / "app.log").stat().st_size == 0
    (name,) = rotated(logs, "app.log")
    assert (logs / name).read_bytes() == b"small\n" + BIG
    assert "size-watch" in daemon.stderr() or "app.log" in daemon.stderr()
    assert daemon.stop() == 0


def test_sighup_reloads_a_good_config_and_keeps_the_old_one_on_a_bad_one(
    tmp_path: Path, start_daemon: type[DaemonProc]
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    conf = tmp_path / "ng.yaml"
    write_config(conf, tmp_path, policies=[policy(logs, max_size="1Mi")])
    daemon = start_daemon(conf)
    daemon.notify.wait_for("READY", "1")
    (logs / "app.log").write_bytes(BIG)
    time.sleep(1.5)
    assert rotated(logs, "app.log") == []  # 6400 bytes < 1Mi

    write_config(conf, tmp_path, policies=[policy(logs, max_size="4Ki")])
    daemon.signal(signal.SIGHUP)
    daemon.notify.wait_for("RELOADING", "1")
    daemon.wait_until(lambda: rotated(logs, "app.log") != [], 10, "rotation after a reload")

    conf.write_text(conf.read_text() + "policies_typo: 1\n")
    daemon.signal(signal.SIGHUP)
    daemon.wait_until(lambda: "policies_typo" in daemon.stderr(), 10, "the bad reload reported")
    assert f"{conf}:" in daemon.stderr()  # the problem names the file and line
    daemon.wait_until(lambda: "FAILED" in " ".join(daemon.notify.statuses()), 5, "STATUS")
    (logs / "app.log").write_bytes(BIG)  # the old (good) config still rotates at 4Ki
    daemon.wait_until(lambda: len(rotated(logs, "app.log")) == 2, 10, "rotation on the old one")
    assert daemon.alive()
    code, body = status(write_config(tmp_path / "good.yaml", tmp_path))  # same state_dir
    reload = body["status"]["reload"]
    assert code == 0 and reload["ok"] is False and reload["problems"]
    assert daemon.stop() == 0


def test_sigterm_stops_within_seconds_and_the_status_says_stopped(
    tmp_path: Path, start_daemon: type[DaemonProc]
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    daemon = start_daemon(write_config(tmp_path / "ng.yaml", tmp_path, policies=[policy(logs)]))
    daemon.notify.wait_for("READY", "1")
    daemon.wait_until(lambda: status(daemon.config)[0] == 0, 10, "a first status report")
    started = time.monotonic()
    daemon.signal(signal.SIGTERM)
    assert daemon.proc.wait(10) == 0
    assert time.monotonic() - started < 5.0
    assert daemon.notify.seen("STOPPING", "1")
    code, body = status(daemon.config)
    assert code == 1 and body["status"]["state"] == "stopped"
    assert "Traceback" not in daemon.stderr()


def test_an_unsafe_state_directory_is_refused_at_start(
    tmp_path: Path, start_daemon: type[DaemonProc]
) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o777)
    os.chmod(state, 0o777)  # noqa: S103 (the unsafe folder under test)
    daemon = start_daemon(write_config(tmp_path / "ng.yaml", tmp_path))
    assert daemon.proc.wait(10) == 2
    assert "unsafe state directory" in daemon.stderr() and "writable by group or others" in (
        daemon.stderr()
    )
    assert not daemon.notify.seen("READY")
