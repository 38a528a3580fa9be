"""The logrotate comparison bench runs end to end in --quick mode (no timing assertions).

It drives the real tools: nodeguard as a subprocess, Debian's logrotate, GNU time and
zcat (.ci/setup installs logrotate, gzip and time). A missing one fails the test.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.fsimages import tmpfs_mount

BENCH = REPO / "bench" / "rotate_vs_logrotate.py"
QUICK_FILES = 20  # what --quick uses for cases a and b


@pytest.fixture
def disk_dir() -> Iterator[Path]:
    """A work folder on a disk filesystem (the bench refuses tmpfs)."""
    with tempfile.TemporaryDirectory(prefix="bench-smoke-", dir="/var/tmp") as path:
        yield Path(path)


def _bench(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCH), *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def test_quick_bench_completes_and_prints_parsable_json(disk_dir: Path) -> None:
    done = _bench("--quick", "--json", "--dir", disk_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    doc = json.loads(done.stdout)
    assert [c["key"] for c in doc["cases"]] == ["a", "b", "c", "a-copytruncate"]
    for case in doc["cases"]:
        assert case["problems"] == [], case["problems"]
        tools = [r["tool"] for r in case["runs"]]
        assert tools.count("logrotate") == 1 and "nodeguard" in tools
        for run in case["runs"]:
            assert run["exit_code"] == 0 and run["peak_rss_kib"] > 0 and run["wall_s"] > 0
    gzip_cases = [c for c in doc["cases"] if c["key"] in ("a", "a-copytruncate")]
    for case in gzip_cases:
        nodeguard_runs = [r for r in case["runs"] if r["tool"] == "nodeguard"]
        # what the deb depends on (libdeflate, then zlib) and zlib alone
        assert {r["compressor"] for r in nodeguard_runs} == {
            "libdeflate:libdeflate-6",
            "zlib:zlib-5",
        }
        assert case["zcat_checked"] == QUICK_FILES * len(nodeguard_runs)
        assert all(r["gz_bytes"] > 0 and r["gz_ratio"] > 0 for r in case["runs"])
    assert list(disk_dir.iterdir()) == []  # trees removed afterwards


def test_quick_bench_prints_a_table_with_every_case(disk_dir: Path) -> None:
    done = _bench("--quick", "--cases", "c", "--dir", disk_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line.split() for line in done.stdout.splitlines() if line.startswith("c ")]
    assert sorted((row[1], row[2]) for row in rows) == [
        ("logrotate", "any"),
        ("nodeguard", "any"),
        ("nodeguard", "resident-pass"),  # the same pass inside a running process
    ]
    assert all(float(row[3]) > 0 for row in rows)  # wall seconds parse as numbers


def test_bench_refuses_a_tmpfs_work_dir_and_leaves_it_empty(tmp_path: Path) -> None:
    with tmpfs_mount(tmp_path) as fs:
        done = _bench("--quick", "--dir", fs.path)
        left = list(fs.path.iterdir())
    assert done.returncode == 2
    assert "tmpfs" in done.stderr and str(fs.path) in done.stderr
    assert left == []


def test_bench_refuses_an_unknown_case_with_usage_exit(disk_dir: Path) -> None:
    done = _bench("--quick", "--cases", "a,z", "--dir", disk_dir)
    assert done.returncode == 2
    assert "unknown case(s) z" in done.stderr
    assert list(disk_dir.iterdir()) == []
