"""kubelet's containerLogMaxSize/containerLogMaxFiles, and policies that would race it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nodeguard.containers.kubelet import QuantityError, kubelet_limits, parse_quantity
from tests.containers.nodetree import Node, Runner, cri_lines

UID = "0b5e1d6a-aaaa-bbbb-cccc-1234567890ab"
HEAD = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"


@pytest.mark.parametrize(
    ("text", "nbytes"),
    [
        ("10Mi", 10 * 1024**2),
        ("10M", 10_000_000),
        ("1.5Gi", 3 * 1024**3 // 2),
        ("100", 100),
        ("1e6", 1_000_000),
        ("500Ki", 512_000),
        ("1500m", 2),  # milli-bytes round up, as Quantity.Value() does
    ],
)
def test_parse_quantity_follows_kubernetes(text: str, nbytes: int) -> None:
    assert parse_quantity(text) == nbytes


@pytest.mark.parametrize("text", ["10MB", "ten", "", "-5Mi", "10 Mi"])
def test_parse_quantity_refuses_non_quantities(text: str) -> None:
    with pytest.raises(QuantityError):
        parse_quantity(text)


def test_absent_config_means_kubelet_defaults(tmp_path: Path) -> None:
    limits = kubelet_limits(tmp_path / "missing.yaml")
    assert (limits.present, limits.max_size, limits.max_files) == (False, 10 * 1024**2, 5)
    assert limits.rotates and limits.problems == ()


def test_silent_config_takes_defaults_key_by_key(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(HEAD + "containerLogMaxFiles: 3\nserializeImagePulls: false\n")
    limits = kubelet_limits(path)
    assert (limits.max_size, limits.max_size_text, limits.max_files) == (10 * 1024**2, "10Mi", 3)
    assert limits.defaulted == ("containerLogMaxSize",)


def test_configured_limits_are_read(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(HEAD + 'containerLogMaxSize: "50Mi"\ncontainerLogMaxFiles: 4\n')
    limits = kubelet_limits(path)
    assert (limits.max_size, limits.max_files, limits.defaulted) == (50 * 1024**2, 4, ())


@pytest.mark.parametrize(
    ("body", "where", "words"),
    [
        ("containerLogMaxSize: [10Mi\n", ":4:", "invalid YAML"),
        ('containerLogMaxSize: "lots"\n', ":3:22", "not a Kubernetes quantity"),
        ("containerLogMaxSize: 10485760\n", ":3:22", "quoted quantity string"),
        ("containerLogMaxFiles: 1\n", ":3:23", "must be greater than 1"),
        ("containerLogMaxFiles: five\n", ":3:23", "not an integer"),
    ],
)
def test_malformed_config_is_reported_with_file_and_line(
    tmp_path: Path, body: str, where: str, words: str
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(HEAD + body)
    limits = kubelet_limits(path)
    assert not limits.rotates
    [problem] = limits.problems
    assert problem.startswith(f"{path}{where}") and words in problem


def test_other_kind_is_not_a_kubelet_config(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("apiVersion: v1\nkind: ConfigMap\n")
    [problem] = kubelet_limits(path).problems
    assert f"{path}:2:7" in problem and "KubeletConfiguration" in problem


def test_lowercase_m_is_flagged_as_milli(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(HEAD + 'containerLogMaxSize: "10m"\n')
    limits = kubelet_limits(path)
    assert limits.max_size == 1
    assert any("did you mean 10Mi" in p for p in limits.problems)


def test_malformed_kubelet_config_does_not_stop_the_inventory(node: Node, run_cli: Runner) -> None:
    node.cri("default", "web-0", UID, "app", live=cri_lines(10))
    node.kubelet_config(HEAD + "containerLogMaxSize: {\n")
    code, out = run_cli(node.config_file(), "containers", "--json")
    report = json.loads(out)
    assert code == 0
    [row] = report["containers"]
    assert row["bounded"] is False and row["bounded_by"] == []
    assert report["kubelet"]["rotates_cri_logs"] is False
    assert any(p.startswith(f"{node.kubelet}:") for p in report["problems"])


def _policy(name: str, max_size: str, paths: list[str], method: str = "copytruncate") -> dict:
    return {"name": name, "paths": paths, "max_size": max_size, "method": method}


def test_policy_at_or_below_kubelet_size_is_reported_as_racing_kubelet(
    node: Node, run_cli: Runner
) -> None:
    node.kubelet_config(HEAD + 'containerLogMaxSize: "20Mi"\n')
    pods = str(node.pods)
    node.policies = [
        _policy("racer", "20Mi", [f"{pods}/*/*/*.log"]),
        _policy("ceiling", "21Mi", [f"{pods}/*/*/*.log"]),
        _policy("elsewhere", "1Mi", [f"{node.root}/var/log/*.log"]),
    ]
    code, out = run_cli(node.config_file(), "containers", "--json")
    problems = json.loads(out)["problems"]
    assert code == 0
    assert problems == [
        "policy racer would rotate before kubelet does: set its max_size above kubelet's "
        "containerLogMaxSize (20Mi), so nodeguard acts only as a hard ceiling when kubelet "
        "falls behind"
    ]


def test_matching_policies_bound_cri_logs_alongside_kubelet(node: Node, run_cli: Runner) -> None:
    node.cri("default", "web-0", UID, "app", live=cri_lines(10))
    node.policies = [
        _policy("ceiling", "100Mi", [f"{node.pods}/*/*/*.log"]),
        _policy("other-ns", "100Mi", [f"{node.pods}/kube-system_*/*/*.log"]),
    ]
    _, out = run_cli(node.config_file(), "containers", "--json")
    [row] = json.loads(out)["containers"]
    assert row["bounded_by"] == ["kubelet", "nodeguard:ceiling"]


def test_rename_policy_over_cri_logs_is_reported(node: Node, run_cli: Runner) -> None:
    node.policies = [_policy("bad", "100Mi", [f"{node.pods}/*/*/*.log"], method="rename")]
    _, out = run_cli(node.config_file(), "containers", "--json")
    [problem] = json.loads(out)["problems"]
    assert problem.startswith("policy bad renames CRI logs")
