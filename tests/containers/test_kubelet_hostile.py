"""kubelet configs that used to crash or hang the inventory (issue 7, items 16 and 17).

Each case runs the real CLI in a subprocess under a timeout, so a hang fails the test
instead of hanging the suite, and a traceback shows in stderr.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nodeguard.containers.kubelet import kubelet_limits, parse_quantity
from tests.containers.nodetree import Node, cri_lines

UID = "0b5e1d6a-aaaa-bbbb-cccc-1234567890ab"
MAX_QUANTITY = 2**63 - 1  # resource.Quantity saturates here
HEAD = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"

NODEGUARD = [sys.executable, "-m", "nodeguard"]


def _inventory(node: Node) -> dict:
    proc = subprocess.run(
        [*NODEGUARD, "-c", str(node.config_file()), "--no-dropins", "containers", "--json"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 0, proc.stderr
    report: dict = json.loads(proc.stdout)
    return report


@pytest.mark.parametrize(
    ("body", "where", "words"),
    [
        ("containerLogMaxFiles: !!int abc\n", ":3:23", "!!int 'abc' is not valid"),
        ("containerLogMaxFiles: !!float 5\n", ":3:23", "not an integer"),
        ("containerLogMaxFiles: 3000000000\n", ":3:23", "kubelet reads it as a 32-bit"),
        ("containerLogMaxSize: !!binary aGk=\n", ":3:22", "tag !!binary is not supported"),
        ("containerLogMaxSize: !!str [1]\n", ":3:22", "tag !!str is not supported"),
        ("containerLogMaxSize: [1]\n", ":3:22", "quoted quantity string"),
        ("? [a]\n: 1\n", ":3:3", "key is a sequence"),
        ("x: &x [*x]\n", ":3:8", "recursive alias"),
    ],
)
def test_odd_kubelet_values_are_positioned_problems_not_tracebacks(
    node: Node, body: str, where: str, words: str
) -> None:
    node.cri("default", "web-0", UID, "app", live=cri_lines(10))
    node.kubelet_config(HEAD + body)
    report = _inventory(node)
    assert report["kubelet"]["rotates_cri_logs"] is False
    [problem] = report["kubelet"]["problems"]
    assert problem.startswith(f"{node.kubelet}{where}") and words in problem, problem
    assert report["containers"][0]["bounded_by"] == []


@pytest.mark.parametrize(
    ("text", "nbytes"),
    [
        ("1e99999999", MAX_QUANTITY),  # Quantity.Value() saturates at 2^63-1
        ("9Ei", MAX_QUANTITY),
        ("1e-99999999", 1),  # a positive amount rounds up to one byte
        ("0e99999999", 0),
        ("12e3", 12_000),
    ],
)
def test_quantities_with_huge_exponents_are_answered_at_once(text: str, nbytes: int) -> None:
    assert parse_quantity(text) == nbytes


def test_huge_exponent_in_the_kubelet_config_does_not_hang(node: Node) -> None:
    node.cri("default", "web-0", UID, "app", live=cri_lines(10))
    node.kubelet_config(HEAD + 'containerLogMaxSize: "1e99999999"\ncontainerLogMaxFiles: 3\n')
    report = _inventory(node)
    assert report["kubelet"]["container_log_max_size"] == MAX_QUANTITY
    assert report["kubelet"]["rotates_cri_logs"] is True


def test_kubelet_config_that_is_a_fifo_or_a_device_is_a_problem(node: Node) -> None:
    node.cri("default", "web-0", UID, "app", live=cri_lines(10))
    node.kubelet.parent.mkdir(parents=True)
    os.mkfifo(node.kubelet)
    report = _inventory(node)
    [problem] = report["kubelet"]["problems"]
    assert problem == f"{node.kubelet}: cannot read kubelet config: not a regular file"
    node.kubelet.unlink()
    node.kubelet.symlink_to("/dev/zero")
    report = _inventory(node)
    [problem] = report["kubelet"]["problems"]
    assert problem == f"{node.kubelet}: cannot read kubelet config: not a regular file"


def test_oversized_kubelet_config_is_a_problem(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(HEAD + "#" * (2 * 1024 * 1024) + "\n")
    [problem] = kubelet_limits(path).problems
    assert problem == f"{path}: cannot read kubelet config: larger than 1048576 bytes"
