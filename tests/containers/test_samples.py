"""Growth rates from samples kept between runs, with an injected clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from nodeguard.config import load_config
from nodeguard.containers.outcome import ContainersOptions, ContainersResult
from nodeguard.containers.report import render_json, render_text
from nodeguard.containers.run import container_inventory
from nodeguard.world import World
from tests.containers.nodetree import Node, Runner, cri_lines, docker_id, docker_lines

UID = "11111111-2222-3333-4444-555555555555"


def inventory_at(node: Node, now: float, *, apply: bool = False) -> ContainersResult:
    """The entry point, with the World's clock reading ``now`` (POSIX seconds)."""
    config = load_config(node.config_file(), dropins=False)
    world = World(clock=lambda: datetime.fromtimestamp(now, UTC))
    return container_inventory(config, ContainersOptions(apply=apply), world)


def run_at_text(node: Node, now: float, *extra: str) -> tuple[int, str]:
    """``nodeguard containers [--apply]`` at ``now``: (exit code, the text report)."""
    result = inventory_at(node, now, apply="--apply" in extra)
    return int(result.exit), render_text(result.events)


def run_at(node: Node, now: float, *extra: str) -> tuple[int, dict]:
    """Like run_at_text, with the ``--json`` document (through JSON and back)."""
    result = inventory_at(node, now, apply="--apply" in extra)
    return int(result.exit), json.loads(json.dumps(render_json(result.events)))


def test_growth_is_bytes_per_second_since_the_previous_run(node: Node) -> None:
    live = node.cri("default", "web-0", UID, "app", live=cri_lines(10))
    node.docker_container(docker_id(1), "quiet", live=docker_lines(3))

    _, first = run_at(node, 1000.0)
    assert [r["growth_bytes_per_s"] for r in first["containers"]] == [None, None]

    with live.open("ab") as handle:
        handle.write(b"x" * 5000)
    node.docker_container(docker_id(2), "newcomer", live=b"n" * 10)
    _, second = run_at(node, 1010.0)

    growth = {r["name"]: r["growth_bytes_per_s"] for r in second["containers"]}
    assert growth == {"default/web-0/app": 500.0, "quiet": 0.0, "newcomer": None}
    stored = json.loads((node.state / "container-samples.json").read_text())
    assert (stored["kind"], stored["version"]) == ("container-samples", 1)
    assert stored["data"]["at"] == 1010.0
    assert stored["data"]["bytes"][f"docker:{docker_id(2)}"] == 10


def test_growth_is_negative_when_rotated_files_were_deleted(node: Node) -> None:
    cid = docker_id(1)
    cdir = node.docker_container(cid, "app", live=b"a" * 100, rotated=[b"r" * 900])
    run_at(node, 0.0)
    (cdir / f"{cid}-json.log.1").unlink()
    _, report = run_at(node, 100.0)
    assert report["containers"][0]["growth_bytes_per_s"] == -9.0


def test_corrupt_samples_file_is_reported_and_replaced(node: Node) -> None:
    node.docker_container(docker_id(1), "app", live=b"a" * 100)
    node.state.mkdir(parents=True)
    samples = node.state / "container-samples.json"
    samples.write_text('{"kind": "container-samples", "version": 1, "data": {"at": 5, "bytes": {')

    code, report = run_at(node, 50.0)

    assert code == 0
    assert report["containers"][0]["growth_bytes_per_s"] is None
    assert any(
        p.startswith(f"{samples}:1:") and "samples replaced" in p for p in report["problems"]
    )
    replaced = json.loads(samples.read_text())
    assert replaced["data"] == {"at": 50.0, "bytes": {f"docker:{docker_id(1)}": 100}}


def test_samples_of_another_shape_are_replaced(node: Node, run_cli: Runner) -> None:
    node.state.mkdir(parents=True)
    samples = node.state / "container-samples.json"
    samples.write_text("[1, 2, 3]\n")
    code, out = run_cli(node.config_file(), "containers", "--json")
    assert code == 0
    problems = json.loads(out)["problems"]
    assert any("not a nodeguard container-samples document" in p for p in problems)
    assert json.loads(samples.read_text())["version"] == 1


def test_unwritable_state_dir_is_a_problem_not_a_failure(node: Node, tmp_path: Path) -> None:
    node.docker_container(docker_id(1), "app", live=b"a")
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    node.root.joinpath("var/lib").mkdir(parents=True, exist_ok=True)
    node.state.symlink_to(blocker)
    code, report = run_at(node, 1.0)
    assert code == 0
    assert any("cannot keep growth samples" in p for p in report["problems"])
    assert blocker.read_text() == ""
