"""disk_cycle, the entry point: samples kept across calls, alerts, events, the spool.

The World's clock and disk probe are moved by hand, so hours replay in milliseconds;
the files (state, logs) are real.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from nodeguard.alerts.model import Status
from nodeguard.config.model import Policy
from nodeguard.disk.cycle import DiskKind, disk_cycle
from nodeguard.disk.reclaim import HookResult
from nodeguard.rotation.report import rotation_event
from tests.conftest import tree_digest
from tests.disk.cfg import load
from tests.disk.fakes import GIB, Clock, Probe, fake_world


def _policy(tmp_path: Path) -> dict[str, object]:
    logs = tmp_path / "logs"
    logs.mkdir(exist_ok=True)
    return {"name": "app", "paths": [f"{logs}/*.log"], "max_size": "1Mi"}


def test_a_steady_fill_fires_filling_up_with_labels_and_the_state_survives(
    tmp_path: Path,
) -> None:
    config = load(tmp_path, policies=[_policy(tmp_path)])
    clock, probe = Clock(), Probe(free=30 * GIB)
    world = fake_world(clock, probe)
    fired = []
    for _ in range(4 * 12):  # 4h, one evaluation every 5 minutes, 2 GiB/h
        result = disk_cycle(config, world)
        fired += [n for n in result.notifications if n.status is Status.FIRING]
        clock.t += 300
        probe.free -= 2 * GIB // 12
    names = {(n.labels["alertname"], n.labels["severity"]) for n in fired}
    assert ("NodeguardFilesystemSpaceFillingUp", "warning") in names
    note = next(n for n in fired if n.labels["alertname"] == "NodeguardFilesystemSpaceFillingUp")
    assert note.labels["node"] == "node-a"
    assert {"mountpoint", "device", "fstype"} <= set(note.labels)
    assert "full in" in note.annotations["description"]
    state = json.loads((tmp_path / "state" / "disk-samples.json").read_text())
    assert state["kind"] == "disk-samples"
    assert max(len(s["t"]) for s in state["data"]["fs"].values()) >= 40


def test_a_dry_run_changes_nothing(tmp_path: Path) -> None:
    config = load(tmp_path, policies=[_policy(tmp_path)])
    world = fake_world(Clock(), Probe(free=1 * GIB))
    disk_cycle(config, world)
    before = tree_digest(tmp_path / "state")
    result = disk_cycle(config, world, dry_run=True)
    assert result.dry_run
    assert tree_digest(tmp_path / "state") == before


def test_a_corrupt_state_file_is_reported_and_rebuilt(tmp_path: Path) -> None:
    config = load(tmp_path, policies=[_policy(tmp_path)])
    world = fake_world(Clock(), Probe())
    disk_cycle(config, world)
    for name in ("disk-samples.json", "disk-alerts.json", "alert-spool.json", "metrics.json"):
        path = tmp_path / "state" / name
        path.write_text('{"kind": "disk-samples", "version": 1, "data": {"fs": {"x": {"t": [')
    result = disk_cycle(config, world)
    problems = [e.reason for e in result.events if e.kind is DiskKind.PROBLEM]
    assert any("disk-samples.json" in p and "restarts" in p for p in problems)
    data = json.loads((tmp_path / "state" / "disk-samples.json").read_text())
    assert data["kind"] == "disk-samples" and data["data"]["fs"]


def test_a_malformed_series_is_dropped_not_trusted(tmp_path: Path) -> None:
    config = load(tmp_path, policies=[_policy(tmp_path)])
    world = fake_world(Clock(), Probe())
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    bad = {"t": [3.0, 1.0], "free": [1, 2], "ifree": [1, 1], "total": 10, "itotal": 10}
    doc = {"kind": "disk-samples", "version": 1, "data": {"fs": {"dev@/x": bad}}}
    (state / "disk-samples.json").write_text(json.dumps(doc))
    result = disk_cycle(config, world)
    assert any("malformed" in e.reason for e in result.events)
    data = json.loads((state / "disk-samples.json").read_text())
    assert "dev@/x" not in data["data"]["fs"]


def test_out_of_space_fires_after_for_and_resolves_with_hysteresis(tmp_path: Path) -> None:
    config = load(tmp_path, disk={"out_of_space": {"for": "10m"}, "clear_for": "0s"})
    clock, probe = Clock(), Probe(free=4 * GIB)  # 4% free: warning
    world = fake_world(clock, probe)

    def step(minutes: int) -> set[tuple[str, str]]:
        clock.t += minutes * 60
        result = disk_cycle(config, world)
        name = "NodeguardFilesystemAlmostOutOfSpace"
        notes = [n for n in result.notifications if n.labels["alertname"] == name]
        return {(n.labels["severity"], str(n.status)) for n in notes}

    assert step(0) == set()  # pending
    assert step(5) == set()
    assert step(6) == {("warning", "firing")}
    probe.free = int(5.5 * GIB)  # above 5% but inside the 2% hysteresis band
    assert step(1) == set()
    probe.free = 8 * GIB
    assert step(1) == {("warning", "resolved")}


def test_events_of_other_concerns_become_alerts_and_resolve_after_hold(tmp_path: Path) -> None:
    config = load(tmp_path, alerts={"events": {"hold": "30m"}}, disk={"clear_for": "0s"})
    clock = Clock()
    world = fake_world(clock, Probe())
    failure = rotation_event("app", "/var/log/app.log", "rotate", "failed", "cannot rotate: EIO")
    noise = rotation_event("app", "/var/log/b.log", "rotate", "done", "rotated")
    result = disk_cycle(config, world, [failure, noise])
    fired = [n for n in result.notifications if n.status is Status.FIRING]
    assert [n.labels["alertname"] for n in fired] == ["NodeguardRotationFailed"]
    assert fired[0].labels["action"] == "rotate"
    assert fired[0].labels["severity"] == "critical"
    assert fired[0].labels["subject"] == "/var/log/app.log"
    clock.t += 20 * 60
    assert disk_cycle(config, world).notifications == ()
    clock.t += 11 * 60
    resolved = disk_cycle(config, world).notifications
    assert [str(n.status) for n in resolved] == ["resolved"]


def test_transitions_are_queued_for_each_enabled_sink(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        disk={"out_of_space": {"for": "0s"}},
        alerts={
            "webhook": {"url": "http://127.0.0.1:9/hook"},
            "alertmanager": {"url": "http://127.0.0.1:9"},
        },
    )
    disk_cycle(config, fake_world(Clock(), Probe(free=2 * GIB)))
    spool = json.loads((tmp_path / "state" / "alert-spool.json").read_text())["data"]["queues"]
    assert set(spool) == {"webhook", "alertmanager"}
    names = {i["labels"]["alertname"] for i in spool["webhook"]["items"]}
    assert "NodeguardFilesystemAlmostOutOfSpace" in names


class _Hooks:
    """A stand-in for the rotation engine that frees space on the probe as told."""

    def __init__(self, probe: Probe, frees: dict[str, int]) -> None:
        self.probe, self.frees = probe, frees
        self.calls: list[str] = []

    def _step(self, name: str) -> HookResult:
        self.calls.append(name)
        self.probe.free += self.frees.get(name, 0)
        return HookResult(1, True, name)

    def rotate_over_limit(self, policies: Sequence[Policy]) -> HookResult:
        return self._step("rotate")

    def compress_pending(self, policies: Sequence[Policy]) -> HookResult:
        return self._step("compress")

    def remove_rotated(self, policies: Sequence[Policy], keep: int) -> HookResult:
        return self._step("remove")

    def vacuum_journal(self, floor: int) -> HookResult:
        return self._step("vacuum_journal")


def test_reclaim_runs_in_order_and_stops_once_above_the_target(tmp_path: Path) -> None:
    config = load(tmp_path, policies=[_policy(tmp_path)])
    probe = Probe(free=2 * GIB)  # 2%: below the 3% critical
    hooks = _Hooks(probe, {"rotate": 1 * GIB, "compress": 3 * GIB})
    result = disk_cycle(config, fake_world(Clock(), probe), hooks=hooks)
    assert hooks.calls == ["rotate", "compress"]  # 6% free >= 3% + 2%: stop
    steps = [e for e in result.events if e.kind is DiskKind.RECLAIM_STEP]
    assert [(e.facts["reclaim_step"], e.facts["bytes_freed"]) for e in steps] == [
        ("rotate", GIB),
        ("compress", 3 * GIB),
    ]
    assert any(e.kind is DiskKind.RECLAIMED for e in result.events)
    firing = [a.alertname for a in result.alerts if a.status is Status.FIRING]
    assert "NodeguardReclaimInsufficient" not in firing


def test_reclaim_that_falls_short_raises_its_alert_and_waits_the_cooldown(tmp_path: Path) -> None:
    config = load(tmp_path, policies=[_policy(tmp_path)], disk={"reclaim": {"cooldown": "10m"}})
    clock, probe = Clock(), Probe(free=2 * GIB)
    hooks = _Hooks(probe, {})
    world = fake_world(clock, probe)
    result = disk_cycle(config, world, hooks=hooks)
    assert hooks.calls == ["rotate", "compress", "remove"]  # the journal is elsewhere
    assert any(e.kind is DiskKind.RECLAIM_SHORT for e in result.events)
    fired = {n.labels["alertname"] for n in result.notifications}
    assert "NodeguardReclaimInsufficient" in fired
    clock.t += 60
    disk_cycle(config, world, hooks=hooks)
    assert len(hooks.calls) == 3  # cooldown
    clock.t += 600
    disk_cycle(config, world, hooks=hooks)
    assert len(hooks.calls) == 6


def test_a_dry_run_never_reclaims(tmp_path: Path) -> None:
    config = load(tmp_path, policies=[_policy(tmp_path)])
    probe = Probe(free=2 * GIB)
    hooks = _Hooks(probe, {"rotate": 10 * GIB})
    result = disk_cycle(config, fake_world(Clock(), probe), hooks=hooks, dry_run=True)
    assert hooks.calls == []
    assert any(e.kind is DiskKind.WOULD_RECLAIM for e in result.events)


def test_filling_up_names_the_top_consumers_with_their_rates(tmp_path: Path) -> None:
    from tests.containers.nodetree import Node, cri_lines

    node = Node(tmp_path)
    live = node.cri("shop", "cart-7f9", "uid-1", "server", live=cri_lines(10))
    quiet = node.cri("kube-system", "dns-1", "uid-2", "dns", live=cri_lines(10))
    app = tmp_path / "logs" / "app.log"
    config = load(
        tmp_path,
        policies=[_policy(tmp_path)],
        containers={"pods_dir": str(node.pods), "containers_dir": str(node.links)},
        disk={"consumers_interval": "5m"},
    )
    app.write_bytes(b"")
    clock, probe = Clock(), Probe(free=30 * GIB)
    world = fake_world(clock, probe)
    result = None
    for _ in range(3 * 12):
        result = disk_cycle(config, world)
        with live.open("ab") as f:  # the container writes 3x what the app log does
            f.write(b"x" * 300_000)
        with app.open("ab") as f:
            f.write(b"y" * 100_000)
        quiet.touch()
        clock.t += 300
        probe.free -= 2 * GIB // 12
    assert result is not None
    report = next(r for r in result.filesystems if r.top)
    top = [(g.kind, g.name) for g in report.top]
    assert top[:2] == [("container", "shop/cart-7f9/server"), ("log", str(app))]
    assert ("container", "kube-system/dns-1/dns") not in top
    assert top[-1] == ("other", "other")  # the probe fills far faster than these files
    rate = report.top[0].rate * 3600
    assert 3_000_000 < rate < 4_200_000  # 300 kB per 5 minutes
    alert = next(a for a in result.alerts if a.alertname == "NodeguardFilesystemSpaceFillingUp")
    assert "shop/cart-7f9/server (container log) +" in alert.annotations["description"]


def test_inodes_running_out_fire_their_own_alerts(tmp_path: Path) -> None:
    config = load(tmp_path, disk={"out_of_files": {"for": "0s"}, "files_filling_up": {"for": "0s"}})
    clock, probe = Clock(), Probe(free=50 * GIB, inodes_total=1_000_000, inodes_free=300_000)
    world = fake_world(clock, probe)
    names: set[tuple[str, str]] = set()
    for _ in range(30):  # 100k inodes an hour, 5-minute steps
        result = disk_cycle(config, world)
        names |= {(n.labels["alertname"], n.labels["severity"]) for n in result.notifications}
        clock.t += 300
        probe.inodes_free -= 100_000 // 12
    assert ("NodeguardFilesystemFilesFillingUp", "warning") in names
    assert not any(n.startswith("NodeguardFilesystemSpace") for n, _ in names)
    probe.inodes_free = 20_000
    result = disk_cycle(config, world)
    fired = {(n.labels["alertname"], n.labels["severity"]) for n in result.notifications}
    assert ("NodeguardFilesystemAlmostOutOfFiles", "critical") in fired


def test_kubelets_eviction_threshold_is_its_own_alert_on_its_filesystem(tmp_path: Path) -> None:
    kubelet = tmp_path / "kubelet"
    kubelet.mkdir()
    config = load(tmp_path, containers={"kubelet_config": str(kubelet / "config.yaml")})
    probe = Probe(free=8 * GIB)  # 8%: above out-of-space, below kubelet's 10%
    clock = Clock()
    world = fake_world(clock, probe)
    disk_cycle(config, world)
    clock.t += 60
    result = disk_cycle(config, world)
    fired = [
        n
        for n in result.notifications
        if n.labels["alertname"] == "NodeguardKubeletEvictionThreshold"
    ]
    assert len(fired) == 1 and fired[0].labels["severity"] == "critical"
    kubelet_fs = next(r.fs for r in result.filesystems if "kubelet" in r.fs.roles)
    assert fired[0].labels["mountpoint"] == kubelet_fs.mountpoint
    assert "nodefs.available 8.0%" in fired[0].annotations["description"]


def test_a_stored_alert_time_ahead_of_the_clock_cannot_hold_an_alert_back(
    tmp_path: Path,
) -> None:
    """A pending state whose start lies a year ahead (the clock stepped back, or the file
    was forged) would never reach its ``for``; a firing one whose clear began in the
    future would never resolve. Times ahead of the clock count from now."""
    config = load(tmp_path, disk={"out_of_space": {"for": "10m"}, "clear_for": "0s"})
    clock, probe = Clock(), Probe(free=4 * GIB)  # 4% free: warning
    world = fake_world(clock, probe)
    disk_cycle(config, world)  # pending
    path = tmp_path / "state" / "disk-alerts.json"
    doc = json.loads(path.read_text())
    for state in doc["data"]["states"]:
        state["active_since"] = state["last_seen"] = clock.t + 365 * 86400
    path.write_text(json.dumps(doc))
    fired = set()
    for _ in range(4):
        clock.t += 300
        result = disk_cycle(config, world)
        fired |= {n.labels["alertname"] for n in result.notifications if n.status is Status.FIRING}
    assert "NodeguardFilesystemAlmostOutOfSpace" in fired
