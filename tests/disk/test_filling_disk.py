"""A real filling disk: a tmpfs, a writer at a steady rate, the real clock and statvfs.

The forecast alert fires long before the disk is full and names the writer's log as
the top consumer; when the filesystem turns critical, reclaim removes the oldest
rotated logs through the rotation engine and brings free space back above the
threshold, leaving the live log and every file outside the policy alone.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodeguard.alerts.model import Status
from nodeguard.disk.cycle import DiskKind, DiskResult, disk_cycle
from nodeguard.world import World
from tests.disk.cfg import load
from tests.fsimages import Mounted, fill, tmpfs_mount

MIB = 1024**2
WRITER = """
import sys, time
path, chunk, pause = sys.argv[1], b"w" * int(sys.argv[2]), float(sys.argv[3])
while True:
    try:
        with open(path, "ab") as f:  # reopened per write: a rename needs no signal
            f.write(chunk)
    except OSError:
        break
    time.sleep(pause)
"""


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Mounted]:
    with tmpfs_mount(tmp_path / "mnt", size_mb=64) as fs:
        yield fs


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _free_ratio(fs: Mounted) -> float:
    import os

    st = os.statvfs(fs.path)
    return st.f_bavail / st.f_blocks


def _config(tmp_path: Path, fs: Mounted):  # type: ignore[no-untyped-def]
    app = fs.path / "app"
    return load(
        tmp_path,
        policies=[
            {
                "name": "app",
                "paths": [f"{app}/*.log"],
                "max_size": "2Mi",
                "max_files": 10,
                "compress": "none",
            }
        ],
        disk={
            "window": "2m",
            "history": "2m",
            "filling_up": {
                "warning": "60%",
                "critical": "35%",
                "warning_within": "10m",
                "critical_within": "3m",
                "for": "0s",
            },
            "consumers_interval": "1s",
            "clear_for": "0s",
            "reclaim": {"keep_rotated": 1, "cooldown": "5s"},
        },
    )


def test_the_alert_fires_before_full_names_the_writer_and_reclaim_frees_rotated_logs(
    tmp_path: Path, tmpfs: Mounted
) -> None:
    app = tmpfs.path / "app"
    app.mkdir(mode=0o755)
    rotated = [app / f"app.log.20260101-0000{n:02d}" for n in range(8)]
    for path in rotated:
        path.write_bytes(b"r" * (2 * MIB))
    outside = app / "notes.txt"
    outside.write_bytes(b"n" * MIB)
    (tmpfs.path / "other").mkdir()
    decoy = tmpfs.path / "other" / "keep.bin"
    decoy.write_bytes(b"d" * (4 * MIB))
    kept = {p: _sha(p) for p in (outside, decoy)}
    config = _config(tmp_path, tmpfs)
    live = app / "app.log"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(live), str(64 * 1024), "0.1"])
    results: list[DiskResult] = []
    try:
        reclaimed = _run_until_reclaimed(config, tmpfs, results)
    finally:
        writer.terminate()
        writer.wait(10)
    fired = [
        (r, n)
        for r in results
        for n in r.notifications
        if n.status is Status.FIRING
        and n.labels["alertname"] == "NodeguardFilesystemSpaceFillingUp"
        and n.labels["mountpoint"] == str(tmpfs.path)
    ]
    assert fired, "the filling-up alert never fired"
    first_result, first = fired[0]
    assert first.labels["severity"] == "warning"
    report = next(f for f in first_result.filesystems if f.fs.mountpoint == str(tmpfs.path))
    assert report.usage is not None and report.usage.free > 0.3 * report.usage.total
    described = [
        a.annotations["description"]
        for r in results
        for a in r.alerts
        if a.alertname == "NodeguardFilesystemSpaceFillingUp"
        and "Top consumers" in a.annotations["description"]
    ]
    assert described, "no filling-up alert named its consumers"
    assert f"Top consumers of the growth: {live} (policy app) +" in described[-1]

    steps = {
        e.facts["reclaim_step"]: e.facts["bytes_freed"]
        for e in reclaimed.events
        if e.kind is DiskKind.RECLAIM_STEP
    }
    assert steps["remove"] >= 12 * MIB
    assert any(e.kind is DiskKind.RECLAIMED for e in reclaimed.events)
    assert _free_ratio(tmpfs) >= 0.35
    assert not any(p.exists() for p in rotated)  # the oldest rotated logs went first
    assert live.exists()
    assert {p: _sha(p) for p in kept} == kept


def _run_until_reclaimed(config, fs: Mounted, results: list[DiskResult]) -> DiskResult:  # type: ignore[no-untyped-def]
    world = World()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        result = disk_cycle(config, world)
        results.append(result)
        if any(e.kind in (DiskKind.RECLAIMED, DiskKind.RECLAIM_SHORT) for e in result.events):
            return result
        if _free_ratio(fs) < 0.02:
            break
        time.sleep(1)
    pytest.fail(
        f"no reclaim before the disk filled ({_free_ratio(fs):.1%} free): "
        f"{[e.reason for r in results[-3:] for e in r.events]}"
    )


def test_reclaim_that_cannot_free_enough_raises_its_alert_and_touches_nothing_else(
    tmp_path: Path, tmpfs: Mounted
) -> None:
    app = tmpfs.path / "app"
    app.mkdir(mode=0o755)
    (app / "app.log").write_bytes(b"x" * 1000)
    filler = fill(tmpfs, leave_bytes=MIB)  # 1.5% free: critical, and not ours to free
    before = _sha(filler)
    result = disk_cycle(_config(tmp_path, tmpfs), World())
    assert any(e.kind is DiskKind.RECLAIM_SHORT for e in result.events)
    fired = {(n.labels["alertname"], n.labels["mountpoint"]) for n in result.notifications}
    assert ("NodeguardReclaimInsufficient", str(tmpfs.path)) in fired
    assert ("NodeguardFilesystemAlmostOutOfSpace", str(tmpfs.path)) not in fired  # for: 30m
    assert _sha(filler) == before
    assert (app / "app.log").read_bytes() == b"x" * 1000
