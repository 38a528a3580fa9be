"""kubelet's pods layout and /var/log/containers symlinks, read without following links."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from nodeguard.containers.layout import PodRef, classify, open_below
from tests.containers.nodetree import Node, Runner, cri_lines

UID = "7c9f3c2e-0d1a-4b5e-9f00-1234567890ab"


def _inventory(run_cli: Runner, node: Node) -> dict:
    code, out = run_cli(node.config_file(), "containers", "--json")
    assert code == 0
    return json.loads(out)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("0.log", "live"),
        ("12.log", "live"),
        ("0.log.20261127-050000", "rotated"),
        ("0.log.20261127-050000.gz", "rotated"),
        ("0.log.20261127-050000.tmp", "debris"),
        ("0.log.20261127-050000.gz.tmp", "debris"),
        ("app.log", "other"),
        ("0.log.1", "other"),
    ],
)
def test_classify_names_kubelet_files(name: str, kind: str) -> None:
    assert classify(name) == kind


def test_pod_dir_name_needs_namespace_pod_and_uid() -> None:
    assert PodRef.parse(f"kube-system_coredns-5d78c9869d-abcde_{UID}") == PodRef(
        "kube-system", "coredns-5d78c9869d-abcde", UID
    )
    assert PodRef.parse(UID) is None  # kubelet < 1.14 named pod dirs by UID only
    assert PodRef.parse("a_b_c_d") is None


def test_kubelet_tree_counts_live_rotated_gz_and_tmp(node: Node, run_cli: Runner) -> None:
    live = cri_lines(100)
    rotated = cri_lines(300)
    node.cri(
        "default",
        "web-0",
        UID,
        "app",
        live=live,
        rotated={"20261127-050000": rotated},
        gz={"20261127-040000": cri_lines(500)},
        tmp=["20261127-030000"],
    )
    [row] = _inventory(run_cli, node)["containers"]
    cdir = node.pods / f"default_web-0_{UID}" / "app"
    gz_size = (cdir / "0.log.20261127-040000.gz").stat().st_size
    tmp_size = (cdir / "0.log.20261127-030000.tmp").stat().st_size
    assert (row["namespace"], row["pod"], row["container"]) == ("default", "web-0", "app")
    assert row["runtime"] == "cri"
    assert row["live_bytes"] == len(live)
    assert row["rotated_bytes"] == len(rotated) + gz_size
    assert row["other_bytes"] == tmp_size
    assert row["files"] == 4
    assert row["log_paths"] == [str(cdir / "0.log")]
    assert row["debris_paths"] == [str(cdir / "0.log.20261127-030000.tmp")]
    assert len(row["id"]) == 64


def test_container_id_comes_from_the_link_to_the_newest_restart(
    node: Node, run_cli: Runner
) -> None:
    node.cri("default", "web-0", UID, "app", restart=0, cid="a" * 64, live=cri_lines(5))
    node.cri("default", "web-0", UID, "app", restart=1, cid="b" * 64, live=cri_lines(7))
    [row] = _inventory(run_cli, node)["containers"]
    assert row["id"] == "b" * 64
    assert row["live_bytes"] == len(cri_lines(5)) + len(cri_lines(7))
    assert len(row["log_paths"]) == 2


def test_symlink_escaping_the_pods_root_is_reported_and_never_opened(
    node: Node, run_cli: Runner, tmp_path: Path
) -> None:
    node.cri("default", "web-0", UID, "app", live=cri_lines(3))
    secret = tmp_path / "secret.log"
    secret.write_bytes(b"do not touch\n" * 1000)
    # atime older than mtime: relatime (and strictatime, as on a tmpfs /tmp) update it on
    # any read, so the test reads the file only after the last atime check.
    os.utime(secret, (1_000_000_000, 1_500_000_000))
    before = (secret.stat().st_atime, secret.stat().st_mtime)
    escape = node.links / f"evil_default_app-{'c' * 64}.log"
    os.symlink(secret, escape)
    relative = node.links / f"evil2_default_app-{'d' * 64}.log"
    os.symlink("../pods/../../../../secret.log", relative)

    report = _inventory(run_cli, node)

    assert [r["pod"] for r in report["containers"]] == ["web-0"]
    assert any(str(escape) in p and "outside the pods root" in p for p in report["problems"])
    assert any(str(relative) in p and "outside the pods root" in p for p in report["problems"])
    assert (secret.stat().st_atime, secret.stat().st_mtime) == before
    assert secret.read_bytes() == b"do not touch\n" * 1000


def test_symlink_through_a_linked_dir_inside_the_pods_root_is_refused(
    node: Node, run_cli: Runner, tmp_path: Path
) -> None:
    outside = tmp_path / "outside" / "app"
    outside.mkdir(parents=True)
    (outside / "0.log").write_bytes(b"outside\n")
    node.pods.mkdir(parents=True)
    planted = node.pods / f"default_evil_{UID}"
    os.symlink(tmp_path / "outside", planted)
    node.links.mkdir(parents=True)
    os.symlink(planted / "app" / "0.log", node.links / f"evil_default_app-{'e' * 64}.log")

    report = _inventory(run_cli, node)

    assert report["containers"] == []
    assert any("a symlink in the pods root" in p for p in report["problems"])
    assert any("through a symlink inside the pods root" in p for p in report["problems"])
    assert (outside / "0.log").read_bytes() == b"outside\n"


def test_open_below_refuses_symlinks_at_every_level(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "f").write_text("x")
    os.symlink(tmp_path / "real", tmp_path / "dirlink")
    os.symlink(tmp_path / "real" / "f", tmp_path / "real" / "filelink")
    root = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.close(open_below(root, ["real", "f"]))
        for parts in (["dirlink", "f"], ["real", "filelink"]):
            with pytest.raises(OSError) as err:
                open_below(root, parts)
            assert err.value.errno in (errno.ELOOP, errno.ENOTDIR)
        with pytest.raises(OSError):
            open_below(root, ["..", "etc"])
    finally:
        os.close(root)


def test_link_to_a_pod_directory_is_not_a_log(node: Node, run_cli: Runner) -> None:
    node.cri("default", "web-0", UID, "app", live=cri_lines(3))
    pod_dir = node.pods / f"default_web-0_{UID}"
    os.symlink(pod_dir, node.links / f"web-0_default_app-{'9' * 64}.log")
    report = _inventory(run_cli, node)
    assert any("not a <pod dir>/<container>/<file> log" in p for p in report["problems"])
    assert [r["id"] for r in report["containers"]] != ["9" * 64]


def test_dangling_link_is_reported(node: Node, run_cli: Runner) -> None:
    node.cri("default", "web-0", UID, "app", live=cri_lines(3))
    gone = node.pods / f"default_gone_{UID}" / "app" / "0.log"
    os.symlink(gone, node.links / f"gone_default_app-{'f' * 64}.log")
    report = _inventory(run_cli, node)
    assert any("dangling" in p and str(gone) in p for p in report["problems"])


def test_dockershim_layout_is_accounted_under_docker_only(node: Node, run_cli: Runner) -> None:
    cid = "9" * 64
    labels = {
        "io.kubernetes.pod.namespace": "default",
        "io.kubernetes.pod.name": "legacy-0",
        "io.kubernetes.container.name": "app",
        "io.kubernetes.pod.uid": UID,
    }
    cdir = node.docker_container(cid, "k8s_app_legacy-0_default_x_0", labels=labels, live=b"x" * 10)
    kdir = node.pods / f"default_legacy-0_{UID}" / "app"
    kdir.mkdir(parents=True)
    os.symlink(cdir / f"{cid}-json.log", kdir / "0.log")
    node.links.mkdir(parents=True)
    os.symlink(kdir / "0.log", node.links / f"legacy-0_default_app-{cid}.log")

    report = _inventory(run_cli, node)

    assert [(r["runtime"], r["pod"]) for r in report["containers"]] == [("docker", "legacy-0")]
    assert report["problems"] == []
    assert report["orphan_pod_dirs"] == []
