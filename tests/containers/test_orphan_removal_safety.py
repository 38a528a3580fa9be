"""``containers --apply`` removes only container log files, never across a mount.

Issue 7, item 5: an orphaned pod folder holding a mount had the mount's files deleted.
Each case builds an orphaned pod log directory on real files and real mounts (tmpfs,
bind mounts of a folder and of a single file), runs the removal, and checks that a pod
folder holding anything nodeguard does not recognise is refused as a whole (exit 1,
nothing removed), while one holding only container logs is removed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.containers.nodetree import Node, cri_lines, sha
from tests.containers.test_orphans import DAY, NOW, _age
from tests.containers.test_samples import run_at
from tests.fsimages import require_tool

UID = "bbbbbbbb-0000-0000-0000-00000000000b"


@contextlib.contextmanager
def mounted(argv: list[str], target: Path) -> Iterator[None]:
    mount, umount = require_tool("mount", "mount"), require_tool("umount", "mount")
    subprocess.run([mount, *argv, str(target)], check=True)
    try:
        yield
    finally:
        subprocess.run([umount, "-l", str(target)], check=True)


def _orphan(node: Node) -> Path:
    node.containers_extra = {"remove_orphaned_pod_logs_after": "1d"}
    node.cri("default", "gone", UID, "app", live=cri_lines(5), link=False)
    return node.pods / f"default_gone_{UID}"


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): sha(p) for p in root.rglob("*") if p.is_file()}


def _refused(node: Node, pod: Path, words: str) -> None:
    code, report = run_at(node, NOW, "--apply")
    [entry] = [o for o in report["orphan_pod_dirs"] if o["path"] == str(pod)]
    assert entry["removed"] is False, entry
    assert words in entry["note"], entry
    assert entry["note"].startswith("refused: ")
    assert code == 1


def test_a_mount_inside_an_orphan_is_never_crossed(node: Node, tmp_path: Path) -> None:
    pod = _orphan(node)
    data = pod / "app" / "data"
    data.mkdir()
    with mounted(["-t", "tmpfs", "-o", "size=1m", "tmpfs"], data):
        (data / "precious.db").write_bytes(b"do not delete\n" * 100)
        _age(pod, 10 * DAY)
        before = _snapshot(pod)
        _refused(node, pod, f"{data} is a mount point")
        assert _snapshot(pod) == before
        assert (data / "precious.db").read_bytes() == b"do not delete\n" * 100


def test_a_bind_mount_of_the_same_filesystem_is_seen_too(node: Node, tmp_path: Path) -> None:
    pod = _orphan(node)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "0.log").write_bytes(b"another pod's live log\n")
    target = pod / "app2"
    target.mkdir()
    with mounted(["--bind", str(elsewhere)], target):
        _age(pod, 10 * DAY)
        _refused(node, pod, f"{target} is a mount point")
        assert (elsewhere / "0.log").read_bytes() == b"another pod's live log\n"
    assert target.is_dir()


def test_a_file_bind_mounted_over_a_log_name_is_refused(node: Node, tmp_path: Path) -> None:
    pod = _orphan(node)
    victim = tmp_path / "victim.log"
    victim.write_bytes(b"outside the pods root\n")
    log = pod / "app" / "1.log"
    log.write_bytes(b"")
    with mounted(["--bind", str(victim)], log):
        _age(pod, 10 * DAY)
        _refused(node, pod, f"{log} is a mount point")
        assert victim.read_bytes() == b"outside the pods root\n"


@pytest.mark.parametrize(
    ("what", "make"),
    [
        ("notes.txt", lambda pod: (pod / "app" / "notes.txt").write_text("x")),
        ("nested", lambda pod: (pod / "app" / "nested").mkdir()),
        ("top.log", lambda pod: (pod / "top.log").write_text("x")),
        ("fifo", lambda pod: os.mkfifo(pod / "app" / "2.log")),
        ("link", lambda pod: (pod / "app" / "0.log.bak").symlink_to("/etc/passwd")),
    ],
)
def test_anything_but_container_logs_keeps_the_whole_folder(node: Node, what: str, make) -> None:
    pod = _orphan(node)
    make(pod)
    _age(pod, 10 * DAY)
    before = sorted(str(p) for p in pod.rglob("*"))
    _refused(node, pod, "not a container log")
    assert sorted(str(p) for p in pod.rglob("*")) == before


def test_only_recognised_logs_are_removed_with_the_folder(node: Node) -> None:
    pod = _orphan(node)
    app = pod / "app"
    (app / "0.log.20260101-000000").write_bytes(b"rotated\n")
    (app / "0.log.20260102-000000.gz").write_bytes(b"\x1f\x8b")
    (app / "0.log.20260103-000000.gz.tmp").write_bytes(b"\x1f\x8b")
    (app / "1.log").symlink_to("/var/lib/docker/containers/x/x-json.log")
    (pod / "sidecar").mkdir()
    _age(pod, 10 * DAY)
    code, report = run_at(node, NOW, "--apply")
    assert code == 0
    [entry] = report["orphan_pod_dirs"]
    assert entry["removed"] is True
    assert not pod.exists()


def test_removals_are_logged_at_info_and_refusals_at_warning(
    node: Node, caplog: pytest.LogCaptureFixture
) -> None:
    pod = _orphan(node)
    (pod / "app" / "notes.txt").write_text("x")
    _age(pod, 10 * DAY)
    node.cri("default", "old", "cccccccc-0000-0000-0000-00000000000c", "app", link=False)
    _age(node.pods / "default_old_cccccccc-0000-0000-0000-00000000000c", 10 * DAY)
    with caplog.at_level(logging.INFO, logger="nodeguard.containers"):
        run_at(node, NOW, "--apply")
    logged = sorted((r.levelno, r.nodeguard_kind) for r in caplog.records)  # type: ignore[attr-defined]
    assert logged == [(logging.INFO, "orphan-removed"), (logging.WARNING, "orphan-refused")]
