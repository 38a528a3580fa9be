"""Container files and samples that used to crash ``nodeguard containers`` (issue 7, 15).

Docker's container files are written by dockerd, but anyone who can write below the
docker root, a disk error or a crash can leave anything there; the samples file lives
in our own state folder, which is a cache, never the truth. Runs the real CLI in a
subprocess: a traceback or invalid JSON fails the test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from nodeguard.state import StateDocument
from tests.containers.nodetree import Node, docker_id, docker_lines
from tests.containers.test_samples import run_at

DEEP = b"[" * 200_000 + b"]" * 200_000
SAMPLES_KIND = "container-samples"

NODEGUARD = [sys.executable, "-m", "nodeguard"]


def _cli(node: Node, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [*NODEGUARD, "-c", str(node.config_file()), "--no-dropins", "containers", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return proc


def _strict_json(text: str) -> dict:
    def refuse(name: str) -> None:
        raise AssertionError(f"invalid JSON constant {name} in the output")

    body: dict = json.loads(text, parse_constant=refuse)
    return body


@pytest.mark.parametrize("name", ["config.v2.json", "hostconfig.json"])
def test_deeply_nested_container_file_is_a_problem_not_a_crash(node: Node, name: str) -> None:
    cdir = node.docker_container(docker_id(1), "deep", live=docker_lines(3))
    node.docker_container(docker_id(2), "fine", live=docker_lines(3))
    (cdir / name).write_bytes(DEEP)
    proc = _cli(node, "--json")
    assert proc.returncode == 0, proc.stderr
    report = _strict_json(proc.stdout)
    assert len(report["containers"]) == 2
    assert any(f"{cdir / name}" in p and "nested too deeply" in p for p in report["problems"])
    text = _cli(node)
    assert text.returncode == 0 and "nested too deeply" in text.stdout


@pytest.mark.parametrize(
    "body",
    [
        '{"kind": "container-samples", "version": 1, "data": {"at": NaN, "bytes": {}}}',
        '{"kind": "container-samples", "version": 1, "data": {"at": 5, "bytes": {"k": NaN}}}',
        '{"kind": "container-samples", "version": 1, "data": {"at": Infinity, "bytes": {}}}',
        '{"kind": "container-samples", "version": 1, "data": {"at": -Infinity, "bytes": {}}}',
        '{"version": 1, "at": NaN, "bytes": {}}',
    ],
)
def test_samples_with_nan_or_infinity_are_replaced_and_output_stays_valid(
    node: Node, body: str
) -> None:
    cid = docker_id(1)
    node.docker_container(cid, "app", live=docker_lines(3))
    node.state.mkdir(parents=True, mode=0o700)
    samples = node.state / "container-samples.json"
    samples.write_text(body)
    proc = _cli(node, "--json")
    assert proc.returncode == 0, proc.stderr
    report = _strict_json(proc.stdout)
    assert report["containers"][0]["growth_bytes_per_s"] is None
    assert any(str(samples) in p for p in report["problems"]), report["problems"]
    samples.write_text(body)
    text = _cli(node)
    assert text.returncode == 0, text.stderr
    loaded = StateDocument(samples, SAMPLES_KIND).load()
    assert loaded.problem is None and loaded.data is not None
    assert loaded.data["bytes"] == {f"docker:{cid}": len(docker_lines(3))}


def test_samples_are_a_versioned_state_document(node: Node) -> None:
    cid = docker_id(1)
    node.docker_container(cid, "app", live=b"a" * 100)
    run_at(node, 1000.0)
    loaded = StateDocument(node.state / "container-samples.json", SAMPLES_KIND).load()
    assert loaded.data == {"at": 1000.0, "bytes": {f"docker:{cid}": 100}}
    assert (node.state / "container-samples.json").stat().st_mode & 0o777 == 0o600


def test_stale_temps_with_our_own_pid_never_block_a_samples_write(node: Node) -> None:
    node.docker_container(docker_id(1), "app", live=b"a" * 100)
    node.state.mkdir(parents=True, mode=0o700)
    # What a crash left: temp names of the old (pid only) and the new (pid-tag) format,
    # with the pid this process has now, as a container's pid 1 has after each restart.
    pid = os.getpid()
    stale = [
        node.state / f".container-samples.json.{pid}.nodeguard-tmp",
        node.state / f".container-samples.json.{pid}-00000000.nodeguard-tmp",
    ]
    for path in stale:
        path.write_bytes(b"half a document")
        two_hours_ago = time.time() - 7200
        os.utime(path, (two_hours_ago, two_hours_ago))
    code, report = run_at(node, time.time())
    assert code == 0
    assert not any("growth samples" in p for p in report["problems"]), report["problems"]
    loaded = StateDocument(node.state / "container-samples.json", SAMPLES_KIND).load()
    assert loaded.data is not None and loaded.data["bytes"]
    assert [p for p in stale if p.exists()] == []


def test_unsafe_state_folder_is_a_problem_and_nothing_is_written(node: Node) -> None:
    node.docker_container(docker_id(1), "app", live=b"a" * 100)
    node.state.mkdir(parents=True)
    os.chmod(node.state, 0o777)  # noqa: S103
    code, report = run_at(node, 50.0)
    assert code == 0
    assert any("writable by group or others" in p for p in report["problems"])
    assert list(node.state.iterdir()) == []
