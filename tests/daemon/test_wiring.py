"""The parts wired together, with real parts: a kubelet eviction line in real journal files
(systemd-journal-remote) becomes an alert at a real Alertmanager on loopback, through
``run --once`` and through the running daemon; the textfile and /metrics carry the
metrics; a dry run sends and writes nothing."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.alerts.components import alertmanager, am_alerts, free_port, http_get
from tests.conftest import run_cli, tree_digest
from tests.daemon.conftest import DaemonProc, policy, write_config
from tests.journal.journalfiles import Stream, append
from tests.journal.samples import klog

EVICTING = klog(
    "I",
    "eviction_manager.go:377",
    '"Eviction manager: must evict pod(s) to reclaim" resourceName="ephemeral-storage"',
)
ALERT = "NodeguardJournalMatch"


def kubelet_journal(directory: Path) -> None:
    """Real journal files: a quiet kubelet line, the eviction, an unwatched unit's line."""
    directory.mkdir(parents=True, exist_ok=True)
    stream = Stream(realtime_us=int((time.time() - 60) * 1_000_000))
    entries = [
        stream.service("kubelet.service", "kubelet", klog("I", "kubelet.go:1", "Started")),
        stream.service("kubelet.service", "kubelet", EVICTING, priority=6),
        stream.service("cron.service", "cron", EVICTING),  # not watched: no match
    ]
    append(directory / "system.journal", entries)


def alert_config(
    tmp_path: Path, am_url: str | None, metrics_listen: str | None = None, **daemon: Any
) -> Path:
    (tmp_path / "textfile").mkdir(exist_ok=True)
    kubelet_journal(tmp_path / "journal")
    alerts: dict[str, Any] = {
        "alertmanager": {"url": am_url},
        "textfile": str(tmp_path / "textfile" / "nodeguard.prom"),
        "journald": False,
        "node": "node-7",
        "metrics_listen": metrics_listen,
    }
    body: dict[str, Any] = {"alerts": alerts}
    logs = tmp_path / "shared-logs"  # a folder others can write: the pass refuses it
    logs.mkdir(exist_ok=True)
    logs.chmod(0o777)
    (logs / "app.log").write_bytes(b"x" * 8192)
    body["policies"] = [policy(logs)]
    body["journal"] = {"directory": str(tmp_path / "journal"), "text_logs": {"read": "never"}}
    if daemon:
        body["daemon"] = {"size_watch_interval": "1s", "stop_timeout": "2s", **daemon}
    return write_config(tmp_path / "ng.yaml", tmp_path, **body)


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"{what} did not happen in {timeout}s")


def all_alerts(url: str) -> list[dict[str, Any]]:
    status, body = http_get(f"{url}/api/v2/alerts")
    assert status == 200, body
    alerts: list[dict[str, Any]] = json.loads(body)
    return alerts


def test_run_once_turns_a_kubelet_eviction_into_an_alert_and_writes_the_textfile(
    tmp_path: Path,
) -> None:
    with alertmanager(tmp_path / "am") as url:
        conf = alert_config(tmp_path, url)
        result = run_cli("-c", conf, "--no-dropins", "run", "--once", "--json")
        body = json.loads(result.out)
        assert body["parts"]["journal"]["matches"][0]["rule"] == "EvictingPods", result.err
        assert len(body["parts"]["journal"]["matches"]) == 1  # cron's line is not watched
        assert "alertmanager" in body["parts"]["alerts"]["sent"], body["parts"]["alerts"]
        (alert,) = wait_for(lambda: am_alerts(url, ALERT), 10, "the alert at Alertmanager")
        labels = alert["labels"]
        assert labels["node"] == "node-7" and labels["severity"] == "critical"
        assert labels["source"] == "journal" and labels["kind"] == "match"
        assert "must evict pod(s)" in alert["annotations"]["description"]
        (refused,) = am_alerts(url, "NodeguardRotationRefused")  # a rotation refusal too
        assert refused["labels"]["subject"] == str(tmp_path / "shared-logs" / "app.log")
        assert "insecure permissions" in refused["annotations"]["description"]
        prom = (tmp_path / "textfile" / "nodeguard.prom").read_text()
        assert 'nodeguard_events_total{kind="match",severity="error",source="journal"} 1.0' in prom
        assert "nodeguard_filesystem_avail_bytes{" in prom
        # the cursor was kept: a second run finds nothing new and raises nothing new
        again = json.loads(run_cli("-c", conf, "--no-dropins", "run", "--once", "--json").out)
        assert again["parts"]["journal"]["matches"] == []


def test_dry_run_shows_the_findings_and_sends_and_writes_nothing(tmp_path: Path) -> None:
    with alertmanager(tmp_path / "am") as url:
        conf = alert_config(tmp_path, url)
        before = tree_digest(tmp_path / "journal"), tree_digest(tmp_path / "textfile")
        result = run_cli("-c", conf, "--no-dropins", "run", "--once", "--dry-run")
        assert result.code == 1, result.err  # the pass refuses the shared folder
        out = result.out
        assert "insecure permissions" in out
        assert "EvictingPods kubelet.service: " in out and "must evict pod(s)" in out
        assert "== disk" in out and "% free)" in out and "forecast:" in out
        assert "dry run: nothing sent" in out
        time.sleep(1.5)  # Alertmanager's group_wait: anything sent would be listed now
        assert all_alerts(url) == []
        assert not (tmp_path / "state").exists()
        assert (tree_digest(tmp_path / "journal"), tree_digest(tmp_path / "textfile")) == before


def test_the_daemon_delivers_journal_alerts_and_serves_metrics(
    tmp_path: Path, start_daemon: Callable[..., DaemonProc]
) -> None:
    port = free_port()
    with alertmanager(tmp_path / "am") as url:
        conf = alert_config(
            tmp_path,
            url,
            f"127.0.0.1:{port}",
            journal_interval="1s",
            disk_interval="1s",
            alerts_interval="1s",
        )
        daemon = start_daemon(conf)
        daemon.notify.wait_for("READY", "1", timeout=20)
        (alert,) = wait_for(lambda: am_alerts(url, ALERT), 30, "the alert at Alertmanager")
        assert alert["labels"]["subject"]

        def metrics() -> str:
            try:
                status, body = http_get(f"http://127.0.0.1:{port}/metrics", 2)
            except OSError:
                return ""
            return body.decode() if status == 200 else ""

        text = wait_for(
            lambda: (m := metrics()) and "nodeguard_filesystem_avail_bytes{" in m and m,
            20,
            "/metrics with the filesystems",
        )
        assert 'nodeguard_last_pass_timestamp_seconds{part="disk"}' in text
        assert 'nodeguard_events_total{kind="match",severity="error",source="journal"}' in text
        # The journal's own metrics, summed over the daemon's runs: per-rule matches,
        # entries per unit and priority, the reader's lag.
        text = wait_for(
            lambda: (m := metrics()) and "nodeguard_journal_matches_total{" in m and m,
            20,
            "/metrics with the journal's metrics",
        )
        assert 'nodeguard_journal_matches_total{rule="EvictingPods"} 1.0' in text
        assert 'nodeguard_journal_entries_total{priority="6",unit="kubelet.service"}' in text
        assert "nodeguard_journal_reader_lag_seconds " in text
        prom = tmp_path / "textfile" / "nodeguard.prom"
        wait_for(lambda: "nodeguard_journal_matches_total{" in prom.read_text(), 20, "textfile")
        assert daemon.stop() == 0


def test_reclaim_hooks_the_daemon_hands_the_disk_guard_vacuum_the_real_journal(
    tmp_path: Path,
) -> None:
    """The journal step of reclaim is the journal's vacuum_to_floor over real files: the
    archived files go (down to the floor), the active file stays."""
    from nodeguard.disk.reclaim import RotationHooks
    from nodeguard.world import World
    from tests.journal.conftest import journal_config
    from tests.journal.test_retention import _journal_dir

    directory, archived = _journal_dir(tmp_path)
    config = journal_config(tmp_path, directory, retention={"floor": "1Ki"})
    result = RotationHooks(config, World()).vacuum_journal(config.journal.retention.floor)
    assert result.ok and result.files == 2, result
    left = sorted(p.name for p in directory.iterdir())
    assert left == ["system.journal"], left
    assert not set(archived) & set(left)
