"""One rule for "is this container's log bounded", read as Docker reads LogConfig.

Docker (moby v20.10.24 and master alike) builds a container's logger when the
container starts, from the LogConfig fixed at creation:

- json-file (daemon/logger/jsonfilelog/jsonfilelog.go, New): no ``max-size`` means
  capacity -1, never rotated; a ``max-size`` that go-units' FromHumanSize refuses
  ("10x", "-1") or that is not positive ("0": "max-size must be a positive number")
  makes New fail, so the container cannot start and writes nothing.
- local (daemon/logger/local/config.go, validateConfig): ``max-size`` defaults to
  20 MiB; "0" is accepted (only a negative size is refused) and, with
  loggerutils' ``size >= capacity`` check, rotates before every entry: bounded.

``nodeguard docker-config`` and ``nodeguard containers`` must give the same answer for
each container (issue 8: they disagreed on json-file "0" and "10x" and on local "0").
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nodeguard.config.dockerrules import LogState, log_bound
from tests.containers.nodetree import Node, docker_id
from tests.docker.conftest import write_nodeguard_config

CASES: list[tuple[str, dict[str, str], LogState, int | None]] = [
    ("json-file", {}, LogState.UNBOUNDED, None),
    ("json-file", {"max-file": "3"}, LogState.UNBOUNDED, None),
    ("json-file", {"max-size": "10m", "max-file": "3"}, LogState.BOUNDED, 30_000_000),
    ("json-file", {"max-size": "10k"}, LogState.BOUNDED, 10_000),
    ("json-file", {"max-size": "0"}, LogState.REFUSED, None),
    ("json-file", {"max-size": "10x"}, LogState.REFUSED, None),
    ("json-file", {"max-size": "-1"}, LogState.REFUSED, None),
    ("json-file", {"max-size": "1m", "max-file": "0"}, LogState.REFUSED, None),
    ("json-file", {"max-size": "1m", "compress": "true"}, LogState.REFUSED, None),
    ("local", {}, LogState.BOUNDED, 5 * 20 * 1024 * 1024),
    ("local", {"max-size": "0"}, LogState.BOUNDED, 0),
    ("local", {"max-size": "10x"}, LogState.REFUSED, None),
    ("local", {"max-file": "1"}, LogState.REFUSED, None),
    ("local", {"max-file": "1", "compress": "false"}, LogState.BOUNDED, 20 * 1024 * 1024),
    ("journald", {}, LogState.ELSEWHERE, None),
    ("none", {}, LogState.ELSEWHERE, None),
]


@pytest.mark.parametrize(("driver", "opts", "state", "total"), CASES)
def test_the_rule_reads_log_config_as_docker_does(
    driver: str, opts: dict[str, str], state: LogState, total: int | None
) -> None:
    bound = log_bound(driver, opts)
    assert bound.state is state, bound
    if state is LogState.BOUNDED:
        assert bound.max_bytes == total
    if state is LogState.REFUSED:
        assert bound.reason


def _run(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "nodeguard", "-c", str(config), "--no-dropins", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def test_docker_config_and_containers_agree_on_every_container(tmp_path: Path) -> None:
    node = Node(tmp_path / "node")
    node.root.mkdir()
    ids = {}
    for n, (driver, opts, _, _) in enumerate(CASES):
        cid = docker_id(n)
        ids[cid] = n
        node.docker_container(cid, f"c{n}", log_type=driver, log_opts=opts, running=False)
    (tmp_path / "etc").mkdir()
    daemon_json = tmp_path / "etc" / "daemon.json"
    daemon_json.write_text("{}\n")
    config = write_nodeguard_config(
        tmp_path, daemon_json, docker_root=node.docker, extra="validate_with_dockerd: false"
    )
    text = config.read_text().replace(
        "containers:\n",
        f"containers:\n  pods_dir: {node.pods}\n  containers_dir: {node.links}\n"
        f"  kubelet_config: {node.kubelet}\n",
    )
    config.write_text(text)

    inventory = _run(config, "containers", "--json")
    assert inventory.returncode == 0, inventory.stderr
    rows = {row["id"]: row for row in json.loads(inventory.stdout)["containers"]}
    applied = _run(config, "docker-config", "--apply")
    assert applied.returncode == 0, applied.stderr
    tags = {}
    for line in applied.stdout.splitlines():
        for cid in ids:
            if f"({cid[:12]})" in line:
                tags[cid] = line.split()[0]

    for cid, n in ids.items():
        driver, opts, state, _ = CASES[n]
        row = rows[cid]
        expected_tag = {LogState.UNBOUNDED: "UNBOUNDED", LogState.REFUSED: "REFUSED"}
        assert tags[cid] == expected_tag.get(state, "old-config"), (driver, opts, tags[cid])
        assert row["bounded"] is (state is not LogState.UNBOUNDED), (driver, opts, row)
        if state is LogState.REFUSED:
            assert row["bounded_by"] == ["docker-refuses-log-opts"]
