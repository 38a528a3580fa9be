"""Orphaned pod log directories: detection, and removal only when old enough."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from nodeguard import cli
from nodeguard.containers.orphans import RemovalRefused, RemovalUnsafe, remove_pod_dir
from nodeguard.state import pass_lock
from tests.containers.nodetree import Node, Runner, cri_lines, docker_id, sha
from tests.containers.test_samples import run_at, run_at_text

DAY = 86400.0
NOW = 1_800_000_000.0
LIVE_UID = "aaaaaaaa-0000-0000-0000-000000000001"
OLD_UID = "aaaaaaaa-0000-0000-0000-000000000002"
YOUNG_UID = "aaaaaaaa-0000-0000-0000-000000000003"
DOCKER_UID = "aaaaaaaa-0000-0000-0000-000000000004"
EXITED_UID = "aaaaaaaa-0000-0000-0000-000000000005"


def _age(path: Path, seconds: float) -> None:
    """Set every mtime below ``path`` (and its own) to ``seconds`` before NOW."""
    stamp = NOW - seconds
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            os.utime(os.path.join(dirpath, name), (stamp, stamp), follow_symlinks=False)
    os.utime(path, (stamp, stamp))


def _build(node: Node) -> dict[str, Path]:
    """One linked pod, two unlinked ones (old, young), and two dockershim pods."""
    node.cri("default", "live", LIVE_UID, "app", live=cri_lines(5))
    node.cri("default", "old", OLD_UID, "app", live=cri_lines(50), link=False)
    node.cri("default", "young", YOUNG_UID, "app", live=cri_lines(5), link=False)
    node.cri("default", "dock", DOCKER_UID, "app", live=cri_lines(5), link=False)
    node.cri("default", "exited", EXITED_UID, "app", live=cri_lines(5), link=False)
    for n, (uid, running) in enumerate(((DOCKER_UID, True), (EXITED_UID, False))):
        labels = {"io.kubernetes.pod.uid": uid, "io.kubernetes.pod.name": "p"}
        node.docker_container(docker_id(n), f"c{n}", labels=labels, running=running)
    dirs = {p.name.split("_")[1]: p for p in node.pods.iterdir()}
    for name, path in dirs.items():
        _age(path, 10 * DAY if name != "young" else 600)
    return dirs


def test_orphan_rule_uses_links_and_running_docker_pod_uids(node: Node) -> None:
    dirs = _build(node)
    _, report = run_at(node, NOW)
    orphans = {o["pod"]: o for o in report["orphan_pod_dirs"]}
    assert set(orphans) == {"old", "young", "exited"}
    old = orphans["old"]
    assert (old["namespace"], old["uid"], old["files"]) == ("default", OLD_UID, 1)
    assert old["bytes"] == len(cri_lines(50))
    assert old["idle_seconds"] == 10 * DAY
    assert old["removable"] is False and "is null" in old["note"]
    assert all(p.exists() for p in dirs.values())


def test_without_apply_nothing_is_removed_even_when_allowed(node: Node) -> None:
    node.containers_extra = {"remove_orphaned_pod_logs_after": "7d"}
    dirs = _build(node)
    _, report = run_at(node, NOW)
    orphans = {o["pod"]: o for o in report["orphan_pod_dirs"]}
    assert orphans["old"]["removable"] is True
    assert orphans["young"]["removable"] is False
    assert all(p.exists() for p in dirs.values())


def test_apply_removes_only_orphans_older_than_the_minimum_age(node: Node) -> None:
    node.containers_extra = {"remove_orphaned_pod_logs_after": "7d"}
    dirs = _build(node)
    young_sum = sha(next(dirs["young"].rglob("0.log")))

    code, report = run_at(node, NOW, "--apply")

    assert code == 0
    assert not dirs["old"].exists() and not dirs["exited"].exists()
    assert {p for p, d in dirs.items() if d.exists()} == {"live", "young", "dock"}
    assert sha(next(dirs["young"].rglob("0.log"))) == young_sum
    removed = {o["pod"] for o in report["orphan_pod_dirs"] if o["removed"]}
    assert removed == {"old", "exited"}


def test_newest_mtime_inside_keeps_a_dir_whose_top_looks_old(node: Node) -> None:
    node.containers_extra = {"remove_orphaned_pod_logs_after": "7d"}
    dirs = _build(node)
    recent = next(dirs["old"].rglob("0.log"))
    os.utime(recent, (NOW - 60, NOW - 60))
    _, report = run_at(node, NOW, "--apply")
    assert recent.exists()
    [old] = [o for o in report["orphan_pod_dirs"] if o["pod"] == "old"]
    assert old["removable"] is False and old["idle_seconds"] == 60


def test_removal_never_follows_symlinks(node: Node, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.log").write_bytes(b"precious\n" * 100)
    before = sha(outside / "keep.log")
    pod = node.pods / f"default_gone_{OLD_UID}"
    (pod / "app").mkdir(parents=True)
    (pod / "app" / "0.log").write_bytes(cri_lines(3))
    os.symlink(outside / "keep.log", pod / "app" / "1.log")  # named like a dockershim link
    os.symlink(outside, pod / "dirlink")
    _age(pod, 30 * DAY)

    # A symlink that is not a container log keeps the whole folder.
    with pytest.raises(RemovalUnsafe, match="dirlink is not a container log directory"):
        remove_pod_dir(node.pods, pod.name, int(7 * DAY), NOW)
    assert (pod / "app" / "0.log").exists()
    (pod / "dirlink").unlink()
    remove_pod_dir(node.pods, pod.name, int(7 * DAY), NOW)

    assert not pod.exists()
    assert sha(outside / "keep.log") == before
    assert sorted(p.name for p in outside.iterdir()) == ["keep.log"]


def test_remove_pod_dir_refuses_young_dirs_and_odd_names(node: Node) -> None:
    pod = node.pods / f"default_new_{YOUNG_UID}"
    (pod / "app").mkdir(parents=True)
    (pod / "app" / "0.log").write_bytes(b"x")
    _age(pod, 0)
    for name, min_age in ((pod.name, 3600), ("..", 0), ("not-a-pod-dir", 0)):
        try:
            remove_pod_dir(node.pods, name, min_age, NOW + 60)
        except RemovalRefused:
            continue
        raise AssertionError(f"{name} was not refused")
    assert (pod / "app" / "0.log").read_bytes() == b"x"


def test_apply_without_a_minimum_age_is_a_usage_error(node: Node, run_cli: Runner) -> None:
    dirs = _build(node)
    snapshot = {p: sha(f) for p in dirs.values() for f in p.rglob("*.log")}
    code, out = run_cli(node.config_file(), "containers", "--apply")
    assert code == 2 and out == ""
    assert {p: sha(f) for p in dirs.values() for f in p.rglob("*.log")} == snapshot
    assert not (node.state / "container-samples.json").exists()


def test_minimum_age_below_an_hour_is_refused_by_config(
    node: Node, capsys: pytest.CaptureFixture[str]
) -> None:
    node.containers_extra = {"remove_orphaned_pod_logs_after": "10m"}
    _build(node)
    code = cli.main(["-c", str(node.config_file()), "--no-dropins", "containers", "--apply"])
    err = capsys.readouterr().err
    assert code == 2
    assert "containers.remove_orphaned_pod_logs_after: must be at least 1h" in err
    assert len(list(node.pods.iterdir())) == 5


def test_removal_failure_is_exit_1(node: Node) -> None:
    node.containers_extra = {"remove_orphaned_pod_logs_after": "1d"}
    dirs = _build(node)
    # An immutable file makes unlink fail with EPERM even for root.
    victim = next(dirs["old"].rglob("0.log"))
    if shutil.which("chattr") is None:
        raise AssertionError("chattr (e2fsprogs) is needed for this test")
    subprocess.run(["chattr", "+i", str(victim)], check=True)
    try:
        code, report = run_at(node, NOW, "--apply")
    finally:
        subprocess.run(["chattr", "-i", str(victim)], check=True)
    assert code == 1
    [old] = [o for o in report["orphan_pod_dirs"] if o["pod"] == "old"]
    assert old["removed"] is False and old["error"]
    assert victim.exists()


def test_apply_while_another_pass_holds_the_lock_is_exit_3(node: Node) -> None:
    node.containers_extra = {"remove_orphaned_pod_logs_after": "1d"}
    dirs = _build(node)
    with pass_lock(node.state):
        code, _ = run_at_text(node, NOW, "--apply")
    assert code == 3
    assert all(p.exists() for p in dirs.values())


def test_a_young_orphan_says_how_long_it_must_stay_idle(node: Node) -> None:
    node.containers_extra = {"remove_orphaned_pod_logs_after": "7d"}
    _build(node)
    _, report = run_at(node, NOW)
    [young] = [o for o in report["orphan_pod_dirs"] if o["pod"] == "young"]
    assert young["note"] == "kept: changed 10m ago, removal needs 7d idle"
