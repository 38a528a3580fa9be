"""The DaemonSet's scrape config passes Prometheus's own check (promtool, Debian 2.42)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.fleet.prometheus import static_target, write


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("no promtool: install prometheus (.ci/setup)")
    return found


def test_the_scrape_config_passes_promtool(tmp_path: Path) -> None:
    config = write(static_target("127.0.0.1:9877", "n1", "p1", "nodeguard"), tmp_path / "p.yml")
    done = subprocess.run(
        [promtool(), "check", "config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # the shipped alert rules are wired in and pass the same check
    assert "nodeguard-rules.yml" in done.stdout and "rules found" in done.stdout, done.stdout


def test_promtool_rejects_a_broken_relabel_rule(tmp_path: Path) -> None:
    broken = static_target("127.0.0.1:9877", "n1", "p1", "nodeguard")
    broken["scrape_configs"][0]["relabel_configs"][0]["action"] = "kept"
    config = write(broken, tmp_path / "p.yml")
    done = subprocess.run(
        [promtool(), "check", "config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
