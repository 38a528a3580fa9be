"""Alerts into a real Alertmanager, metrics into a real node_exporter and our /metrics."""

from __future__ import annotations

import time
from pathlib import Path

from nodeguard.alerts.deliver import deliver
from nodeguard.alerts.endpoint import start_metrics_server
from nodeguard.alerts.metrics import Counters, Snapshot, snapshot_of
from nodeguard.disk.cycle import disk_cycle
from nodeguard.rotation.report import rotation_event
from tests.alerts.components import alertmanager, am_alerts, http_get, node_exporter
from tests.disk.cfg import load
from tests.disk.fakes import GIB, Clock, Probe, fake_world

OUT_OF_SPACE = "NodeguardFilesystemAlmostOutOfSpace"


def test_alerts_appear_in_alertmanager_with_their_labels_then_resolve(tmp_path: Path) -> None:
    with alertmanager(tmp_path / "am") as url:
        config = load(
            tmp_path,
            disk={"out_of_space": {"for": "0s"}, "clear_for": "0s"},
            alerts={"alertmanager": {"url": url}, "labels": {"cluster": "ci"}},
        )
        clock, probe = Clock(time.time()), Probe(free=2 * GIB)
        world = fake_world(clock, probe, hostname="node-7")
        result = disk_cycle(config, world)
        report = deliver(config, world, result)
        assert report.failed == {} and report.sent["alertmanager"] > 0
        alerts = am_alerts(url, OUT_OF_SPACE)
        assert {a["labels"]["severity"] for a in alerts} == {"warning", "critical"}
        alert = alerts[0]
        labels = alert["labels"]
        assert labels["node"] == "node-7" and labels["cluster"] == "ci"
        mountpoints = {r.fs.mountpoint for r in result.filesystems}
        assert labels["mountpoint"] in mountpoints
        assert labels["device"] and labels["fstype"]
        assert "space left" in alert["annotations"]["summary"]
        assert "free" in alert["annotations"]["description"]
        assert alert["generatorURL"].startswith("http://node-7/")
        assert alert["status"]["state"] == "active"

        probe.free = 60 * GIB
        clock.t = time.time()
        result = disk_cycle(config, world)
        assert {str(n.status) for n in result.notifications} == {"resolved"}
        assert deliver(config, world, result).failed == {}
        assert am_alerts(url, OUT_OF_SPACE) == []


def test_firing_alerts_are_sent_again_before_alertmanager_would_expire_them(
    tmp_path: Path,
) -> None:
    with alertmanager(tmp_path / "am") as url:
        config = load(
            tmp_path,
            disk={"out_of_space": {"for": "0s"}},
            alerts={"alertmanager": {"url": url, "resend_interval": "1m"}},
        )
        clock, probe = Clock(time.time()), Probe(free=2 * GIB)
        world = fake_world(clock, probe)
        deliver(config, world, disk_cycle(config, world))
        first = {a["fingerprint"]: a["endsAt"] for a in am_alerts(url, OUT_OF_SPACE)}
        clock.t += 30  # within the interval: nothing new to send
        assert "alertmanager" not in deliver(config, world, disk_cycle(config, world)).sent
        clock.t += 40
        assert "alertmanager" in deliver(config, world, disk_cycle(config, world)).sent
        later = {a["fingerprint"]: a["endsAt"] for a in am_alerts(url, OUT_OF_SPACE)}
        assert later.keys() == first.keys()
        assert all(later[k] > first[k] for k in first)  # endsAt pushed ahead


def test_metrics_reach_node_exporters_textfile_collector(tmp_path: Path) -> None:
    textfiles = tmp_path / "textfile"
    textfiles.mkdir()
    config = load(tmp_path, alerts={"textfile": str(textfiles / "nodeguard.prom")})
    world = fake_world(Clock(), Probe(free=30 * GIB))
    failure = rotation_event("app", "/var/log/a.log", "compress", "failed", "EIO")
    result = disk_cycle(config, world, [failure])
    assert deliver(config, world, result).failed == {}
    prom = textfiles / "nodeguard.prom"
    assert prom.stat().st_mode & 0o777 == 0o644
    assert not [p for p in textfiles.iterdir() if p.name.startswith(".")]  # no temp left
    with node_exporter(textfiles, tmp_path) as url:
        status, body = http_get(url)
    text = body.decode()
    assert status == 200
    assert "node_textfile_scrape_error 0" in text
    avail = [ln for ln in text.splitlines() if ln.startswith("nodeguard_filesystem_avail_bytes{")]
    assert avail and all(float(ln.split()[-1]) == 30 * GIB for ln in avail)
    assert 'nodeguard_last_pass_timestamp_seconds{part="disk"}' in text
    assert 'nodeguard_events_total{kind="compress",severity="error",source="rotation"} 1' in text
    assert 'nodeguard_errors_total{source="rotation"} 1' in text
    assert 'alertname="NodeguardRotationFailed"' in text


def test_the_metrics_endpoint_serves_its_own_registry_on_loopback(tmp_path: Path) -> None:
    from prometheus_client import REGISTRY

    config = load(tmp_path)
    world = fake_world(Clock(), Probe(free=30 * GIB))
    result = disk_cycle(config, world)
    server = start_metrics_server(("127.0.0.1", 0), Snapshot())
    try:
        host, port = server.address
        assert host == "127.0.0.1"
        status, body = http_get(f"http://{host}:{port}/metrics")
        assert status == 200 and b"nodeguard_filesystem_avail_bytes{" not in body
        server.update(snapshot_of(result, Counters(), {}))
        body = http_get(f"http://{host}:{port}/metrics")[1]
        assert b"nodeguard_filesystem_avail_bytes{" in body
        assert b"nodeguard_filesystem_seconds_to_full" in body
    finally:
        server.close()
    assert not any(m.name.startswith("nodeguard") for m in REGISTRY.collect())


def test_idle_connections_to_the_metrics_endpoint_cannot_exhaust_the_daemon() -> None:
    """Anyone on the node can connect to 127.0.0.1: a hundred connections that never
    send a request must not each hold a thread and a descriptor of the daemon (its
    rotation needs descriptors, systemd's soft limit is 1024); once they are dropped the
    endpoint answers again."""
    import os
    import socket

    server = start_metrics_server(("127.0.0.1", 0), Snapshot())
    idle: list[socket.socket] = []
    try:
        host, port = server.address
        fds_before = len(os.listdir("/proc/self/fd"))
        for _ in range(100):
            idle.append(socket.create_connection((host, port)))
        time.sleep(1.0)
        held = len(os.listdir("/proc/self/fd")) - fds_before - len(idle)
        assert held <= 16, f"{held} descriptors held for idle clients"  # MAX_CLIENTS 8
        idle[0].settimeout(15)  # CLIENT_TIMEOUT 5
        assert idle[0].recv(1) == b"", "an idle client kept its connection"
        for sock in idle:
            sock.close()
        status, body = http_get(f"http://{host}:{port}/metrics")
        assert status == 200 and b"nodeguard" in body
    finally:
        for sock in idle:
            sock.close()
        server.close()
