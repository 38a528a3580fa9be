"""The deb installed with apt in a booted Debian 12, managed with systemctl.

One container for the module, the tests in order, as an admin would go: install,
check, reload, burst, hang, stop, upgrade, purge. Each test leaves the service
running (or says otherwise) for the next.

Alert delivery: a kubelet-like unit's journal entry (through the container's real
journald) reaches an Alertmanager listening on the loopback of the container's network
namespace (the host's prometheus-alertmanager binary, started there with nsenter).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.alerts.components import AM_CONFIG, _process, am_alerts, free_port
from tests.e2e.conftest import NEWER, Built
from tests.nspawn import Machine, booted

APT = ("env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-y", "-q")
E2E_DROPIN = """\
policies:
  - name: e2e
    paths: [/var/log/e2e/*.log]
    max_size: 4Ki
    max_files: 3
    method: rename
    compress: none
daemon:
  size_watch_interval: 2s
"""
# Paths that change on their own or by apt, not by nodeguard: left out of "nothing behind".
VOLATILE = (
    "/proc",
    "/sys",
    "/dev",
    "/run",
    "/tmp",
    "/var/tmp",
    "/var/log",
    "/var/cache",
    "/var/lib/apt",
    "/var/lib/dpkg",
    "/var/lib/systemd",
    "/var/lib/dbus",
    "/etc/ld.so.cache",
    "/root",
)


@pytest.fixture(scope="module")
def machine(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Machine]:
    with booted("ngd-e2e", tmp_path_factory.mktemp("console")) as m:
        dist = path(m, "/mnt/dist")
        dist.mkdir(parents=True)
        for deb in (built.deb, built.newer_deb):
            shutil.copy(deb, dist)
        # The deb's dependencies come from the mirror, as on any host; procps is not in
        # the minimal root. Installed before the snapshot: they stay after a purge.
        m.run(*APT, "update", timeout=300)
        m.run(*APT, "install", "procps", timeout=300)
        yield m


def path(m: Machine, inside: str) -> Path:
    return m.root / inside.lstrip("/")


def rc(m: Machine, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run in the container and keep the exit status (Machine.run fails on non-zero)."""
    argv = ("nsenter", "-t", str(m.init_pid), "-a", *argv)
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def show(m: Machine, *props: str) -> dict[str, str]:
    out = m.run("systemctl", "show", "nodeguard.service", "-p", ",".join(props))
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def wait(check: Callable[[], bool], timeout: float, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout}s")


def snapshot(m: Machine) -> set[str]:
    prune = " -o ".join(f"-path {p}" for p in VOLATILE)
    out = m.run("sh", "-c", f"find / -xdev \\( {prune} \\) -prune -o -print")
    return set(out.split("\n"))


def status_json(m: Machine, *options: str) -> dict[str, object]:
    done = rc(m, "nodeguard", *options, "status", "--json")
    body: dict[str, object] = json.loads(done.stdout)
    return body


def journal(m: Machine, *args: str) -> list[dict[str, str]]:
    out = m.run("journalctl", "-u", "nodeguard", "-o", "json", "--no-pager", *args)
    entries = []
    for line in out.splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"journalctl printed {line!r}") from None
    return entries


@pytest.fixture(scope="module")
def before_install(machine: Machine) -> set[str]:
    return snapshot(machine)


def test_install_enables_starts_and_reports_ready(
    machine: Machine, built: Built, before_install: set[str]
) -> None:
    m = machine
    m.run(*APT, "install", f"/mnt/dist/{built.deb.name}")
    assert m.run("systemctl", "is-enabled", "nodeguard").strip() == "enabled"
    props = show(m, "ActiveState", "SubState", "Type", "StatusText", "WatchdogUSec", "MainPID")
    # Type=notify: "active (running)" only after READY=1.
    assert (props["ActiveState"], props["SubState"], props["Type"]) == (
        "active",
        "running",
        "notify",
    )
    assert props["WatchdogUSec"] != "0"
    wait(lambda: "last pass" in show(m, "StatusText")["StatusText"], 20, "STATUS= from the daemon")
    assert rc(m, "nodeguard", "status").returncode == 0
    verify = rc(m, "systemd-analyze", "verify", "--man=no", "nodeguard.service")
    assert (verify.returncode, verify.stderr) == (0, "")
    entries = journal(m)
    kinds = {e.get("NODEGUARD_KIND") for e in entries}
    assert {"started", "pass"} <= kinds
    started = next(e for e in entries if e.get("NODEGUARD_KIND") == "started")
    assert started["PRIORITY"] == "6" and started["SYSLOG_IDENTIFIER"] == "nodeguard"
    assert path(m, "/usr/share/man/man8/nodeguard.8.gz").exists()


def test_reload_applies_a_good_config_and_keeps_the_old_on_a_bad_one(machine: Machine) -> None:
    m = machine
    pid = show(m, "MainPID")["MainPID"]
    path(m, "/etc/nodeguard/conf.d/e2e.yaml").write_text(E2E_DROPIN)
    m.run("systemctl", "reload", "nodeguard")
    wait(
        lambda: "/etc/nodeguard/conf.d/e2e.yaml" in json.dumps(status_json(m)),
        15,
        "the drop-in in force",
    )
    path(m, "/etc/nodeguard/conf.d/zz-bad.yaml").write_text("daemon:\n  size_watch_intervl: 1s\n")
    m.run("systemctl", "reload", "nodeguard")
    wait(lambda: "FAILED" in show(m, "StatusText")["StatusText"], 15, "the bad reload reported")
    props = show(m, "ActiveState", "MainPID")
    assert (props["ActiveState"], props["MainPID"]) == ("active", pid)
    errors = [e for e in journal(m) if e.get("NODEGUARD_KIND") == "reload-failed"]
    assert errors and errors[-1]["PRIORITY"] == "3"
    problems = " ".join(e["MESSAGE"] for e in journal(m, "-p", "err"))
    assert "/etc/nodeguard/conf.d/zz-bad.yaml:2" in problems and "size_watch_intervl" in problems
    assert rc(m, "nodeguard", "status").returncode == 2  # reads state_dir from the bad config
    body = status_json(m, "--no-dropins")
    assert body["ok"] is True
    status = body["status"]
    assert isinstance(status, dict) and status["reload"]["ok"] is False


def test_a_log_over_its_limit_is_rotated_within_the_size_watch_interval(machine: Machine) -> None:
    m = machine  # still running on the e2e drop-in (size watch every 2s), the bad one ignored
    logs = path(m, "/var/log/e2e")
    logs.mkdir(exist_ok=True)
    (logs / "app.log").write_bytes(b"line\n")
    time.sleep(2.5)
    with (logs / "app.log").open("ab") as f:
        f.write(b"x" * 8192)
    took = wait(lambda: len(list(logs.iterdir())) == 2, 15, "the burst rotated")
    assert took < 2 + 2  # size_watch_interval 2s, plus one pass
    assert (logs / "app.log").stat().st_size == 0
    path(m, "/etc/nodeguard/conf.d/zz-bad.yaml").unlink()
    m.run("systemctl", "reload", "nodeguard")


KUBELET_UNIT = """\
[Unit]
Description=a kubelet stand-in that logs the eviction manager's message
[Service]
Type=oneshot
SyslogIdentifier=kubelet
ExecStart=/bin/echo '{line}'
"""
EVICTING = (
    'I1130 08:14:03.512907    2211 eviction_manager.go:377] "Eviction manager: must evict '
    'pod(s) to reclaim" resourceName="ephemeral-storage"'
)
ALERTS_DROPIN = """\
alerts:
  alertmanager: {{url: "http://127.0.0.1:{port}"}}
daemon:
  journal_interval: 1s
  disk_interval: 2s
  alerts_interval: 1s
"""


def test_a_kubelet_journal_entry_becomes_an_alert_at_alertmanager(
    machine: Machine, tmp_path: Path
) -> None:
    m = machine
    am = shutil.which("prometheus-alertmanager")
    assert am, "prometheus-alertmanager missing: run `bash .ci/setup --test`"
    (tmp_path / "am.yml").write_text(AM_CONFIG)
    port = free_port()
    netns = ["nsenter", f"--net=/proc/{m.init_pid}/ns/net"]
    argv = [
        *netns,
        am,
        f"--config.file={tmp_path / 'am.yml'}",
        f"--storage.path={tmp_path / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    url = f"http://127.0.0.1:{port}"
    dropin = path(m, "/etc/nodeguard/conf.d/e2e-alerts.yaml")
    with _process(argv, tmp_path / "am.log", f"{url}/-/ready", "alertmanager"):
        dropin.write_text(ALERTS_DROPIN.format(port=port))
        m.run("systemctl", "reload", "nodeguard")
        wait(lambda: "e2e-alerts.yaml" in json.dumps(status_json(m)), 15, "the alerts drop-in")
        m.write("/etc/systemd/system/kubelet.service", KUBELET_UNIT.format(line=EVICTING))
        m.run("systemctl", "daemon-reload")
        m.run("systemctl", "start", "kubelet.service")
        wait(lambda: bool(am_alerts(url, "NodeguardJournalMatch")), 30, "the alert at Alertmanager")
        (alert,) = am_alerts(url, "NodeguardJournalMatch")
        hostname = m.run("hostname").strip()
        assert alert["labels"]["node"] == hostname and alert["labels"]["severity"] == "critical"
        assert "must evict pod(s)" in alert["annotations"]["description"]
    dropin.unlink()
    path(m, "/etc/systemd/system/kubelet.service").unlink()
    m.run("systemctl", "daemon-reload")
    m.run("systemctl", "reload", "nodeguard")


def test_a_hung_daemon_is_restarted_by_the_watchdog(machine: Machine) -> None:
    m = machine
    dropin = path(m, "/etc/systemd/system/nodeguard.service.d/e2e-watchdog.conf")
    dropin.parent.mkdir(parents=True, exist_ok=True)
    dropin.write_text("[Service]\nWatchdogSec=3s\nTimeoutAbortSec=2s\nRestartSec=1s\n")
    m.run("systemctl", "daemon-reload")
    m.run("systemctl", "restart", "nodeguard")
    before = show(m, "MainPID", "NRestarts")
    m.run("kill", "-STOP", before["MainPID"])  # the main loop stops: no pings

    def restarted() -> bool:
        now = show(m, "MainPID", "NRestarts", "ActiveState")
        return now["ActiveState"] == "active" and now["MainPID"] not in ("0", before["MainPID"])

    wait(restarted, 30, "a restart after the watchdog timeout")
    assert int(show(m, "NRestarts")["NRestarts"]) == int(before["NRestarts"]) + 1
    system = m.run("journalctl", "-u", "nodeguard", "--no-pager", "-o", "cat")
    assert "Watchdog timeout" in system
    dropin.unlink()
    m.run("systemctl", "daemon-reload")
    m.run("systemctl", "restart", "nodeguard")


def test_stop_is_clean_and_quick(machine: Machine) -> None:
    m = machine
    wait(lambda: rc(m, "nodeguard", "status").returncode == 0, 15, "a status report")
    started = time.monotonic()
    m.run("systemctl", "stop", "nodeguard")
    assert time.monotonic() - started < 10
    props = show(m, "ActiveState", "Result", "ExecMainStatus")
    assert props == {"ActiveState": "inactive", "Result": "success", "ExecMainStatus": "0"}
    body = status_json(m)
    status = body["status"]
    assert isinstance(status, dict) and status["state"] == "stopped" and body["ok"] is False
    m.run("systemctl", "start", "nodeguard")


def test_upgrade_keeps_the_admins_config_and_restarts(machine: Machine, built: Built) -> None:
    m = machine
    conf = path(m, "/etc/nodeguard/nodeguard.yaml")
    edited = conf.read_text().replace("interval: 1h", "interval: 2h") + "# edited by the admin\n"
    conf.write_text(edited)
    pid = show(m, "MainPID")["MainPID"]
    m.run(*APT, "install", f"/mnt/dist/{built.newer_deb.name}")
    version = m.run("dpkg-query", "-W", "-f=${Version}", "nodeguard")
    assert version == built.version + NEWER
    assert conf.read_text() == edited
    assert not list(conf.parent.glob("nodeguard.yaml.dpkg-*"))
    props = show(m, "ActiveState", "MainPID")
    assert props["ActiveState"] == "active" and props["MainPID"] != pid  # restarted
    wait(lambda: "rotation every 7200s" in m.run("journalctl", "-u", "nodeguard"), 15, "2h")


def test_purge_leaves_nothing_behind(machine: Machine, before_install: set[str]) -> None:
    m = machine
    path(m, "/var/log/e2e/app.log").unlink()
    for rotated in path(m, "/var/log/e2e").iterdir():
        rotated.unlink()
    path(m, "/var/log/e2e").rmdir()
    m.run(*APT, "purge", "nodeguard")
    assert rc(m, "pgrep", "-f", "nodeguard run").returncode == 1
    assert rc(m, "dpkg-query", "-W", "nodeguard").returncode != 0
    assert not path(m, "/var/lib/nodeguard").exists()
    assert not path(m, "/etc/nodeguard").exists()
    units = m.run("systemctl", "list-unit-files", "nodeguard.service", "--no-legend", check=False)
    assert units.strip() == ""
    assert snapshot(m) - before_install == set()
    prune = "-path /proc -o -path /sys -o -path /mnt -o -path /var/log -o -path /var/cache/apt"
    prune += " -o -path /.nodeguard-stamp"  # the cached root's own label (tests/nspawn_root.sh)
    named = m.run("sh", "-c", f"find / -xdev \\( {prune} \\) -prune -o -name '*nodeguard*' -print")
    assert named == "", named  # deb-systemd-helper's and dpkg's records too
