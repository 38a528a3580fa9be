"""Many policy logs: the largest named on their own, the rest summed per policy."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nodeguard.disk import consumers as cons
from nodeguard.disk.cycle import disk_cycle
from tests.disk.cfg import load
from tests.disk.fakes import GIB, Clock, Probe, fake_world


def _tree(tmp_path: Path, files: int) -> Path:
    logs = tmp_path / "logs"
    logs.mkdir()
    for i in range(files):
        (logs / f"f{i:04d}.log").write_bytes(b"x" * (100 + i))
    (logs / "f0003.log.20240101-000000.gz").write_bytes(
        b"r" * 5000
    )  # a rotated sibling counts with its log
    os.link(logs / "f0000.log", logs / "hard.log")  # one file under two names counts once
    return logs


def test_a_thousand_logs_make_the_largest_plus_one_entry_per_policy(tmp_path: Path) -> None:
    logs = _tree(tmp_path, 1000)
    config = load(
        tmp_path,
        policies=[{"name": "app", "paths": [f"{logs}/*.log"], "max_size": "1Mi"}],
    )
    found, problems = cons.measure(config, str(tmp_path / "no-journal"), 0.0)
    assert problems == []
    singles = [c for c in found if c.kind == "log"]
    rest = [c for c in found if c.kind == "policy"]
    assert len(singles) == cons.TOP_FILES and len(rest) == 1
    assert singles[0].name == f"{logs}/f0003.log" and singles[0].bytes == 103 + 5000
    assert singles[1].name == f"{logs}/f0999.log"
    assert rest[0].name == "app" and rest[0].labels["files"] == str(1000 - cons.TOP_FILES)
    assert sum(c.bytes for c in singles + rest) == sum(100 + i for i in range(1000)) + 5000


def test_the_summed_rest_of_a_policy_is_named_when_it_grows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cons, "TOP_FILES", 1)
    logs = tmp_path / "logs"
    logs.mkdir()
    big = logs / "big.log"
    big.write_bytes(b"b" * 900_000)  # large but quiet
    small = [logs / f"s{i}.log" for i in range(3)]
    config = load(
        tmp_path,
        policies=[{"name": "app", "paths": [f"{logs}/*.log"], "max_size": "1Gi"}],
        disk={"consumers_interval": "5m"},
    )
    clock, probe = Clock(), Probe(free=30 * GIB)
    world = fake_world(clock, probe)
    result = None
    for _ in range(3 * 12):
        result = disk_cycle(config, world)
        for f in small:
            with f.open("ab") as out:
                out.write(b"y" * 10_000)
        clock.t += 300
        probe.free -= 2 * GIB // 12
    assert result is not None
    report = next(r for r in result.filesystems if r.top)
    assert (report.top[0].kind, report.top[0].name) == ("policy", "app")
    assert 300_000 < report.top[0].rate * 3600 < 420_000  # 3 x 10 kB per 5 minutes
    alert = next(a for a in result.alerts if a.alertname == "NodeguardFilesystemSpaceFillingUp")
    assert "3 other log files of policy app +" in alert.annotations["description"]
