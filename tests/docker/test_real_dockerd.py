"""End to end with a real, isolated dockerd: apply, restart, rotate, report.

One scenario per module (dockerd restarts are the slow part): a container created
before the change, ``docker-config --apply --restart`` through the real CLI, then a
container created after it that writes far more than max-size.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from nodeguard.docker.jsontext import parse
from tests.docker.conftest import IMAGE, IsolatedDockerd, write_nodeguard_config

MAX_SIZE = 10_000  # "10k": json-file reads max-size in decimal units
MAX_FILE = 3
LINES = 3000  # about 100 bytes each: 30 times max-size
WRITER = (
    f"i=0; while [ $i -lt {LINES} ]; do "
    'echo "line $i ......................................................................"; '
    "i=$((i+1)); done"
)
IDLER = 'trap "exit 0" TERM; while :; do echo tick; sleep 1; done'


@dataclass(frozen=True)
class Scenario:
    dockerd: IsolatedDockerd
    config: Path
    before_id: str
    before_bytes: bytes
    apply: subprocess.CompletedProcess[str]


def nodeguard(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed CLI, as an operator runs it."""
    argv = [sys.executable, "-m", "nodeguard", "-c", str(config), "--no-dropins", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def scenario(
    isolated_dockerd: IsolatedDockerd, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scenario]:
    layout = isolated_dockerd.layout
    before = isolated_dockerd.api.run(f"{IMAGE}:1", "before-change", IDLER, restart="always")
    folder = tmp_path_factory.mktemp("nodeguard")
    for sub in ("pods", "containers"):
        (folder / sub).mkdir()
    config = write_nodeguard_config(
        folder,
        layout.config,
        docker_root=layout.data_root,
        log_opts=f'{{max-size: 10k, max-file: "{MAX_FILE}"}}',
        extra=f"restart_command: {isolated_dockerd.restart_command}",
    )
    text = config.read_text().replace("containers:\n", f"containers:\n  pods_dir: {folder}/pods\n")
    config.write_text(
        text.replace("  docker_root:", f"  containers_dir: {folder}/containers\n  docker_root:")
    )
    original = layout.config.read_bytes()
    applied = nodeguard(config, "docker-config", "--apply", "--restart")
    yield Scenario(isolated_dockerd, config, before, original, applied)


def test_apply_restart_succeeds_and_reports_the_old_container_as_unbounded(
    scenario: Scenario,
) -> None:
    result = scenario.apply
    assert result.returncode == 0, result.stderr
    assert "restarted Docker" in result.stdout
    line = next(x for x in result.stdout.splitlines() if scenario.before_id[:12] in x)
    assert "UNBOUNDED" in line and "before-change" in line and "running" in line


def test_apply_keeps_every_unmanaged_key_byte_for_byte(scenario: Scenario) -> None:
    old_text = scenario.before_bytes.decode()
    new_text = scenario.dockerd.layout.config.read_text()
    old, new = parse(old_text), parse(new_text)
    kept = [m for m in old.members if m.key not in ("log-driver", "log-opts")]
    assert [m.key for m in new.members][: len(kept)] == [m.key for m in kept]
    for member in kept:
        twin = new.member(member.key)
        assert twin is not None
        assert (
            new_text[twin.key_start : twin.value.end]
            == old_text[member.key_start : member.value.end]
        )
    document = json.loads(new_text)
    assert document["log-driver"] == "json-file"
    assert document["log-opts"] == {"max-size": "10k", "max-file": str(MAX_FILE)}
    backup = scenario.dockerd.layout.config.with_name("daemon.json.nodeguard-bak")
    assert backup.read_bytes() == scenario.before_bytes


def test_container_created_after_the_change_keeps_at_most_max_file_files(
    scenario: Scenario,
) -> None:
    api = scenario.dockerd.api
    cid = api.run(f"{IMAGE}:1", "after-change", WRITER)
    assert api.wait(cid) == 0
    folder = scenario.dockerd.layout.data_root / "containers" / cid
    oldest = folder / f"{cid}-json.log.{MAX_FILE - 1}"
    deadline = time.monotonic() + 30
    while not oldest.exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # the log copier may trail the container's exit a little
    logs = sorted(folder.glob(f"{cid}-json.log*"))
    assert oldest in logs, f"no rotation happened: {logs}"
    assert len(logs) <= MAX_FILE
    assert all(p.stat().st_size <= MAX_SIZE + 1000 for p in logs), [p.stat().st_size for p in logs]
    host = json.loads((folder / "hostconfig.json").read_text())
    assert host["LogConfig"] == {
        "Type": "json-file",
        "Config": {"max-size": "10k", "max-file": "3"},
    }


def test_container_created_before_the_change_keeps_its_unbounded_log_config(
    scenario: Scenario,
) -> None:
    assert scenario.apply.returncode == 0
    state = scenario.dockerd.api.inspect(scenario.before_id)
    assert state["State"]["Running"] is True  # brought back by its restart policy
    assert state["HostConfig"]["LogConfig"] == {"Type": "json-file", "Config": {}}


def test_second_apply_changes_nothing_and_says_so(scenario: Scenario) -> None:
    assert scenario.apply.returncode == 0
    path = scenario.dockerd.layout.config
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    mtime = path.stat().st_mtime_ns
    again = nodeguard(scenario.config, "docker-config", "--apply", "--restart")
    assert again.returncode == 0, again.stderr
    assert "nothing changed" in again.stdout
    assert "restarted" not in again.stdout
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert path.stat().st_mtime_ns == mtime
    check = nodeguard(scenario.config, "docker-config", "--check")
    assert check.returncode == 0, check.stdout + check.stderr


def test_containers_report_new_container_bounded_and_old_one_unbounded(
    scenario: Scenario,
) -> None:
    api = scenario.dockerd.api
    cid = api.run(f"{IMAGE}:1", "after-change-2", "echo hello")
    assert api.wait(cid) == 0
    result = nodeguard(scenario.config, "containers", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["id"]: row for row in json.loads(result.stdout)["containers"]}
    assert rows[cid]["runtime"] == "docker"
    assert rows[cid]["bounded"] is True
    assert any("docker" in reason for reason in rows[cid]["bounded_by"])
    assert rows[scenario.before_id]["bounded"] is False
    assert rows[scenario.before_id]["bounded_by"] == []
