"""``nodeguard containers``: the agreed JSON shape, ordering, text table, subprocess run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.containers.nodetree import Node, Runner, cri_lines, docker_id, docker_lines

UID = "99999999-8888-7777-6666-555555555555"
ROW_KEYS = {
    "runtime",
    "id",
    "name",
    "namespace",
    "pod",
    "container",
    "live_bytes",
    "rotated_bytes",
    "files",
    "growth_bytes_per_s",
    "bounded",
    "bounded_by",
    "log_paths",
}
NODEGUARD = Path(sys.prefix) / "bin" / "nodeguard"


def _mixed_node(node: Node) -> None:
    node.cri("default", "web-0", UID, "app", live=cri_lines(2000))
    node.cri("kube-system", "dns", UID.replace("9", "1"), "coredns", live=cri_lines(10))
    node.docker_container(docker_id(1), "big", live=docker_lines(10000))
    node.docker_container(docker_id(2), "small", log_opts={"max-size": "10m"}, live=docker_lines(1))


def test_json_has_the_agreed_shape_sorted_by_total_bytes(node: Node, run_cli: Runner) -> None:
    _mixed_node(node)
    code, out = run_cli(node.config_file(), "containers", "--json")
    report = json.loads(out)

    assert code == 0
    assert {"containers", "orphan_pod_dirs", "kubelet", "problems"} <= set(report)
    for row in report["containers"]:
        assert set(row) >= ROW_KEYS
        assert row["runtime"] in ("docker", "cri")
        assert isinstance(row["live_bytes"], int) and isinstance(row["bounded_by"], list)
        assert row["bounded"] == bool(row["bounded_by"])
    names = [r["name"] for r in report["containers"]]
    assert names == ["big", "default/web-0/app", "kube-system/dns/coredns", "small"]
    totals = [r["live_bytes"] + r["rotated_bytes"] for r in report["containers"]]
    assert totals == sorted(totals, reverse=True)
    assert report["kubelet"]["container_log_max_size"] == 10 * 1024**2
    assert report["kubelet"]["container_log_max_files"] == 5


def test_text_output_is_a_table_with_human_sizes(node: Node, run_cli: Runner) -> None:
    _mixed_node(node)
    code, out = run_cli(node.config_file(), "containers")
    lines = out.splitlines()
    assert code == 0
    assert lines[0].split()[:3] == ["RUNTIME", "CONTAINER", "LIVE"]
    big = next(line for line in lines if " big " in line)
    assert big.split()[0] == "docker" and big.rstrip().endswith("UNBOUNDED")
    assert "Ki" in big  # 10000 json lines: human size, not raw bytes
    web = next(line for line in lines if "default/web-0/app" in line)
    assert web.rstrip().endswith("kubelet")
    assert "4 container(s)" in out and "1 unbounded" in out
    assert "containerLogMaxSize 10Mi, containerLogMaxFiles 5 (kubelet defaults)" in out


def test_subprocess_reports_containers_as_json(node: Node) -> None:
    _mixed_node(node)
    if not NODEGUARD.exists():
        raise AssertionError(f"{NODEGUARD} is missing: run .ci/setup")
    proc = subprocess.run(
        [str(NODEGUARD), "-c", str(node.config_file()), "--no-dropins", "containers", "--json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert len(report["containers"]) == 4
    assert (node.state / "container-samples.json").exists()


def test_empty_node_reports_nothing(node: Node, run_cli: Runner) -> None:
    code, out = run_cli(node.config_file(), "containers")
    assert code == 0
    assert "0 container(s), 0B of logs, 0 unbounded" in out
