"""Docker 20.10's containers/<id>/ directories: logs, names, labels, LogConfig."""

from __future__ import annotations

import gzip
import json

from tests.containers.nodetree import Node, Runner, docker_id, docker_lines, sha

K8S = {
    "io.kubernetes.pod.namespace": "shop",
    "io.kubernetes.pod.name": "cart-7d9f",
    "io.kubernetes.container.name": "cart",
    "io.kubernetes.pod.uid": "4f0e2c1a-1111-2222-3333-444455556666",
}


def _rows(run_cli: Runner, node: Node) -> dict[str, dict]:
    code, out = run_cli(node.config_file(), "containers", "--json")
    assert code == 0
    return {row["name"]: row for row in json.loads(out)["containers"]}


def test_bounded_unbounded_and_kubernetes_containers(node: Node, run_cli: Runner) -> None:
    bounded, unbounded, k8s = docker_id(1), docker_id(2), docker_id(3)
    node.docker_container(
        bounded,
        "bounded",
        log_opts={"max-size": "10m", "max-file": "3"},
        live=docker_lines(10),
        rotated=[docker_lines(100), docker_lines(100)],
    )
    node.docker_container(unbounded, "unbounded", live=docker_lines(5000))
    node.docker_container(
        k8s,
        "k8s_cart_cart-7d9f_shop_4f0e2c1a_0",
        labels=K8S,
        running=False,
        live=docker_lines(20),
        rotated=[docker_lines(30)],
        compress=True,
    )

    rows = _rows(run_cli, node)

    b = rows["bounded"]
    assert (b["runtime"], b["id"], b["bounded"], b["bounded_by"]) == (
        "docker",
        bounded,
        True,
        ["docker-log-opts"],
    )
    assert (b["live_bytes"], b["rotated_bytes"], b["files"]) == (
        len(docker_lines(10)),
        2 * len(docker_lines(100)),
        3,
    )
    assert b["running"] is True and b["namespace"] is None
    u = rows["unbounded"]
    assert (u["bounded"], u["bounded_by"], u["live_bytes"]) == (False, [], len(docker_lines(5000)))
    k = rows["k8s_cart_cart-7d9f_shop_4f0e2c1a_0"]
    assert (k["namespace"], k["pod"], k["container"], k["running"]) == (
        "shop",
        "cart-7d9f",
        "cart",
        False,
    )
    gz = node.docker / "containers" / k8s / f"{k8s}-json.log.1.gz"
    assert k["rotated_bytes"] == gz.stat().st_size
    assert k["log_paths"] == [str(node.docker / "containers" / k8s / f"{k8s}-json.log")]


def test_max_size_minus_one_is_refused_by_docker_and_local_driver_is_bounded(
    node: Node, run_cli: Runner
) -> None:
    # go-units' FromHumanSize refuses "-1": json-file's New fails, the container cannot
    # start and writes nothing (see tests/docker/test_log_bound_rule.py).
    node.docker_container(docker_id(1), "unlimited", log_opts={"max-size": "-1"})
    local = node.docker_container(docker_id(2), "local", log_type="local")
    (local / "local-logs").mkdir()
    (local / "local-logs" / "container.log").write_bytes(b"\x00" * 300)
    (local / "local-logs" / "container.log.1.gz").write_bytes(gzip.compress(b"a" * 1000))
    node.docker_container(docker_id(3), "journal", log_type="journald")

    rows = _rows(run_cli, node)

    assert rows["unlimited"]["bounded_by"] == ["docker-refuses-log-opts"]
    assert rows["local"]["bounded_by"] == ["docker-log-opts"]
    assert (rows["local"]["live_bytes"], rows["local"]["files"]) == (300, 2)
    assert rows["journal"]["bounded_by"] == ["docker-log-driver:journald"]
    assert rows["journal"]["files"] == 0


def test_corrupt_container_config_is_reported_not_fatal(node: Node, run_cli: Runner) -> None:
    good, bad = docker_id(1), docker_id(2)
    node.docker_container(good, "good", live=b"x" * 10)
    cdir = node.docker_container(bad, "bad", live=b"y" * 20)
    (cdir / "config.v2.json").write_text('{"ID": "trunc')
    (cdir / "hostconfig.json").unlink()
    before = sha(cdir / f"{bad}-json.log")

    code, out = run_cli(node.config_file(), "containers", "--json")
    report = json.loads(out)

    assert code == 0
    rows = {r["id"]: r for r in report["containers"]}
    assert rows[good]["name"] == "good"
    assert rows[bad]["name"] == bad[:12] and rows[bad]["live_bytes"] == 20
    assert rows[bad]["bounded"] is False
    assert any(f"{cdir}/config.v2.json: not readable JSON" in p for p in report["problems"])
    assert any(f"{cdir}/hostconfig.json: cannot open" in p for p in report["problems"])
    assert sha(cdir / f"{bad}-json.log") == before


def test_policy_over_docker_logs_is_reported_and_does_not_count_as_bound(
    node: Node, run_cli: Runner
) -> None:
    node.docker_container(docker_id(1), "app", live=b"z" * 10)
    glob = f"{node.docker}/containers/*/*-json.log"
    node.policies = [{"name": "dockerlogs", "paths": [glob], "max_size": "50Mi"}]
    code, out = run_cli(node.config_file(), "containers", "--json")
    report = json.loads(out)
    assert code == 0
    assert report["containers"][0]["bounded"] is False
    assert report["problems"][0].startswith("policy dockerlogs matches Docker's own log files")


def test_no_docker_root_means_docker_absent(node: Node, run_cli: Runner) -> None:
    code, out = run_cli(node.config_file(), "containers", "--json")
    report = json.loads(out)
    assert code == 0
    assert (report["docker_present"], report["containers"], report["problems"]) == (False, [], [])
