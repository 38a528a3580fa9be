"""``containers --apply`` with a state folder another user controls.

The pass lock lives in the state folder. When that folder is not trusted (owned by
another user), everything in it is the other user's choice: a ``nodeguard.lock`` that
is a hard link to a root-owned file must never be truncated or written, and no pod log
folder may be removed (exit 2, nothing changed), as for a rotation pass.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from nodeguard import cli
from nodeguard.containers.outcome import ContainersKind
from tests.containers.nodetree import Node, cri_lines
from tests.containers.test_orphans import DAY, NOW, _age
from tests.containers.test_samples import inventory_at

UID = "cccccccc-0000-0000-0000-00000000000c"
NOBODY = 65534
SECRET = b"root:$6$secret-hash:19000:0:99999:7:::\n" * 20


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "shadow"
    victim.write_bytes(SECRET)
    victim.chmod(0o600)
    return victim


def _digest(path: Path) -> tuple[bytes, int, int, int]:
    st = path.stat()
    return hashlib.sha256(path.read_bytes()).digest(), st.st_size, st.st_mode, st.st_ino


def _hostile_state(node: Node, victim: Path) -> None:
    """The state folder owned by nobody, its lock a hard link to ``victim``.

    (Made by root here: the tree is what counts, not fs.protected_hardlinks.)
    """
    node.state.mkdir(parents=True, mode=0o700)
    os.link(victim, node.state / "nodeguard.lock")
    os.chown(node.state, NOBODY, NOBODY)


def test_apply_with_an_untrusted_state_folder_changes_nothing(node: Node, tmp_path: Path) -> None:
    node.containers_extra = {"remove_orphaned_pod_logs_after": "1d"}
    node.cri("default", "gone", UID, "app", live=cri_lines(5), link=False)
    pod = node.pods / f"default_gone_{UID}"
    _age(pod, 10 * DAY)
    victim = _victim(tmp_path)
    _hostile_state(node, victim)
    before = _digest(victim)

    result = inventory_at(node, NOW, apply=True)

    assert _digest(victim) == before
    assert (pod / "app" / "0.log").read_bytes() == cri_lines(5)
    assert int(result.exit) == 2
    [refusal] = result.of(ContainersKind.APPLY_REFUSED)
    assert str(node.state) in refusal.reason
    assert "nothing was changed" in refusal.reason


def test_the_pass_lock_never_writes_through_a_hard_link(tmp_path: Path) -> None:
    """A lock with another name (a hard link) is refused, whoever owns the folder."""
    from nodeguard.state import LockUnusable, pass_lock

    victim = _victim(tmp_path)
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    os.link(victim, state / "nodeguard.lock")
    before = _digest(victim)
    try:
        with pass_lock(state):
            raise AssertionError("the lock was taken through a hard link")
    except LockUnusable as exc:
        assert "hard link" in str(exc)
    assert _digest(victim) == before


def test_apply_with_a_folder_for_a_lock_is_a_clear_error(
    node: Node, capsys: pytest.CaptureFixture[str]
) -> None:
    node.containers_extra = {"remove_orphaned_pod_logs_after": "1d"}
    node.cri("default", "gone", UID, "app", live=cri_lines(5), link=False)
    node.state.mkdir(parents=True, mode=0o700)
    (node.state / "nodeguard.lock").mkdir()

    code = cli.main(["-c", str(node.config_file()), "--no-dropins", "containers", "--apply"])

    err = capsys.readouterr().err
    assert code == 2
    assert f"{node.state}/nodeguard.lock: cannot open the lock: Is a directory" in err
    assert "nothing was changed" in err and "Traceback" not in err


LIVE_UID = "eeeeeeee-0000-0000-0000-00000000000e"


def _quiet_live_pod(node: Node) -> Path:
    """A running pod that has printed nothing for 10 days: its link says it is alive."""
    node.containers_extra = {"remove_orphaned_pod_logs_after": "1d"}
    node.cri("default", "quiet", LIVE_UID, "app", live=cri_lines(5))
    pod = node.pods / f"default_quiet_{LIVE_UID}"
    _age(pod, 10 * DAY)
    return pod


def test_apply_refuses_a_containers_folder_another_user_swapped_in(node: Node) -> None:
    """Whoever can change the links folder decides what looks orphaned: with an empty
    folder of theirs in its place, every quiet live pod's logs looked removable."""
    pod = _quiet_live_pod(node)
    node.links.rename(node.links.with_name("containers.real"))
    node.links.mkdir()
    os.chown(node.links, NOBODY, NOBODY)

    result = inventory_at(node, NOW, apply=True)

    assert (pod / "app" / "0.log").read_bytes() == cri_lines(5)
    assert int(result.exit) == 2
    [refusal] = result.of(ContainersKind.APPLY_REFUSED)
    assert f"{node.links}: owned by uid {NOBODY}, not root" in refusal.reason


def test_apply_refuses_links_under_a_group_writable_folder(node: Node) -> None:
    """Ubuntu's /var/log is root:syslog 0775: that group could swap the links folder."""
    pod = _quiet_live_pod(node)
    node.links.parent.chmod(0o775)

    result = inventory_at(node, NOW, apply=True)

    assert (pod / "app" / "0.log").exists()
    [refusal] = result.of(ContainersKind.APPLY_REFUSED)
    assert f"{node.links.parent}: writable by group or others" in refusal.reason


def test_a_pods_root_that_is_roots_symlink_still_allows_removal(node: Node) -> None:
    node.containers_extra = {"remove_orphaned_pod_logs_after": "1d"}
    node.cri("default", "gone", UID, "app", live=cri_lines(5), link=False)
    real = node.root / "data" / "pods"
    real.parent.mkdir()
    node.pods.rename(real)
    node.pods.symlink_to(real)
    _age(real / f"default_gone_{UID}", 10 * DAY)

    result = inventory_at(node, NOW, apply=True)

    assert int(result.exit) == 0, [e.reason for e in result.events if e.severity >= 30]
    assert not (real / f"default_gone_{UID}").exists()


def test_the_idle_check_survives_a_deep_tree(tmp_path: Path) -> None:
    """newest_mtime runs after the removal plan; a tree grown deep in between (any depth
    a user can make) must be an OSError naming it, never a RecursionError."""
    from nodeguard.containers.orphans import newest_mtime

    pod = tmp_path / f"default_deep_{UID}"
    os.mkdir(pod)
    current = os.open(pod, DIR)
    for _ in range(1200):  # each level relative to the previous: no PATH_MAX limit
        os.mkdir("d", dir_fd=current)
        deeper = os.open("d", DIR, dir_fd=current)
        os.close(current)
        current = deeper
    os.close(current)
    root = os.open(tmp_path, DIR)
    try:
        with pytest.raises(OSError, match="folder inside a container log folder"):
            newest_mtime(root, pod.name)
    finally:
        os.close(root)
        _remove_chain(pod)


DIR = os.O_RDONLY | os.O_DIRECTORY


def _remove_chain(top: Path) -> None:
    """Remove the chain top/d/d/... without recursion (pytest's cleanup recurses)."""
    current, depth = os.open(top, DIR), 0
    while "d" in os.listdir(current):
        deeper = os.open("d", DIR, dir_fd=current)
        os.close(current)
        current, depth = deeper, depth + 1
    for _ in range(depth):
        parent = os.open("..", DIR, dir_fd=current)
        os.close(current)
        os.rmdir("d", dir_fd=parent)
        current = parent
    os.close(current)
    os.rmdir(top)


GONE_UID = "dddddddd-0000-0000-0000-00000000000d"


def _kubelet_knows(node: Node, *uids: str) -> Path:
    """kubelet's pods folder beside its config, one folder per pod it still keeps."""
    pods = node.kubelet.parent / "pods"
    for uid in uids:
        (pods / uid).mkdir(parents=True, mode=0o750)
    return pods


def _gone_pod(node: Node) -> Path:
    node.cri("default", "gone", GONE_UID, "app", live=cri_lines(5), link=False)
    pod = node.pods / f"default_gone_{GONE_UID}"
    _age(pod, 10 * DAY)
    return pod


def test_ubuntu_var_log_with_kubelets_pods_folder_removes_only_real_orphans(node: Node) -> None:
    """Ubuntu's /var/log is root:syslog 0775. kubelet's own pods folder, which only
    root can change, then says which pods live: the quiet live pod stays, the pod
    kubelet no longer knows goes."""
    live = _quiet_live_pod(node)
    gone = _gone_pod(node)
    _kubelet_knows(node, LIVE_UID)
    node.links.parent.chmod(0o775)

    result = inventory_at(node, NOW, apply=True)

    assert int(result.exit) == 0, [e.reason for e in result.events if e.severity >= 30]
    assert (live / "app" / "0.log").read_bytes() == cri_lines(5)
    assert not gone.exists()


def test_an_empty_links_folder_swapped_in_cannot_outvote_kubelet(node: Node) -> None:
    """Whoever swaps the links folder makes every pod look unlinked; kubelet's pods
    folder still names the live one, so only the real orphan is removed."""
    live = _quiet_live_pod(node)
    gone = _gone_pod(node)
    _kubelet_knows(node, LIVE_UID)
    node.links.rename(node.links.with_name("containers.real"))
    node.links.mkdir()
    os.chown(node.links, NOBODY, NOBODY)

    result = inventory_at(node, NOW, apply=True)

    assert (live / "app" / "0.log").read_bytes() == cri_lines(5)
    assert not gone.exists()
    assert int(result.exit) == 0, [e.reason for e in result.events if e.severity >= 30]


def test_a_kubelet_pods_folder_others_can_change_is_no_authority(node: Node) -> None:
    live = _quiet_live_pod(node)
    gone = _gone_pod(node)
    kubelet_pods = _kubelet_knows(node, LIVE_UID)
    os.chown(kubelet_pods, NOBODY, NOBODY)
    node.links.parent.chmod(0o775)

    result = inventory_at(node, NOW, apply=True)

    assert (live / "app" / "0.log").exists() and gone.exists()
    assert int(result.exit) == 2
    [refusal] = result.of(ContainersKind.APPLY_REFUSED)
    assert f"{node.links.parent}: writable by group or others" in refusal.reason
    assert f"{kubelet_pods}: owned by uid {NOBODY}, not root" in refusal.reason


def test_a_pods_root_that_is_not_the_scanned_folder_is_refused(node: Node) -> None:
    from nodeguard.containers.orphans import RemovalUnsafe, remove_pod_dir

    gone = _gone_pod(node)
    other = node.root / "other"
    other.mkdir()
    st = other.stat()
    with pytest.raises(RemovalUnsafe, match="no longer the folder that was scanned"):
        remove_pod_dir(node.pods, gone.name, int(DAY), NOW, (st.st_dev, st.st_ino))
    assert (gone / "app" / "0.log").exists()
    node.pods.chmod(0o775)
    st = node.pods.stat()
    with pytest.raises(RemovalUnsafe, match="can be changed by others than root"):
        remove_pod_dir(node.pods, gone.name, int(DAY), NOW, (st.st_dev, st.st_ino))
    assert (gone / "app" / "0.log").exists()
