"""Pod log directories that no container refers to any more, and their removal.

Rule: a pod directory is orphaned when no symlink in the containers directory
names a path inside it, kubelet keeps no folder for its pod UID (``<kubelet
root>/pods/<uid>``) and, when Docker is present, no running Docker container
carries its pod UID (label ``io.kubernetes.pod.uid``). Removal needs a configured
minimum age, measured from the newest mtime of anything inside the directory, never
follows a symlink, never crosses a mount, and removes only container log files: a
folder holding anything else is kept whole.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nodeguard.containers.docker_logs import DockerContainer
from nodeguard.containers.layout import (
    LIVE_RE,
    ContainerLink,
    PodDir,
    PodRef,
    classify,
    open_root,
)
from nodeguard.containers.mounts import entry_mount, mount_of
from nodeguard.fsutil import DIR_FLAGS

POD_UID_LABEL = "io.kubernetes.pod.uid"


class RemovalRefused(Exception):
    """The directory must stay (too young, or not a plain directory)."""


@dataclass(frozen=True)
class OrphanPodDir:
    """An orphaned pod log directory and whether the config lets it be removed."""

    pod: PodDir
    age: float
    removable: bool
    note: str
    removed: bool = False
    error: str | None = None
    refused: bool = False  # holds a mount or files that are not container logs

    def to_json(self) -> dict[str, Any]:
        ref = self.pod.ref
        return {
            "path": self.pod.path,
            "namespace": ref.namespace if ref else None,
            "pod": ref.pod if ref else None,
            "uid": ref.uid if ref else None,
            "bytes": self.pod.bytes,
            "files": self.pod.files,
            "newest_mtime": self.pod.newest_mtime,
            "idle_seconds": round(self.age, 3),
            "removable": self.removable,
            "note": self.note,
            "removed": self.removed,
            "refused": self.refused,
            "error": self.error,
        }


def find_orphans(
    pods: Sequence[PodDir],
    links: Sequence[ContainerLink],
    docker: Sequence[DockerContainer] | None,
    now: float,
    remove_after: int | None,
    *,
    kubelet_pods: frozenset[str] | None = None,
) -> list[OrphanPodDir]:
    """The orphaned pod directories among ``pods``, oldest activity first."""
    linked = {link.target[0] for link in links}
    running_uids = {
        c.labels[POD_UID_LABEL] for c in docker or () if c.running and POD_UID_LABEL in c.labels
    } | (kubelet_pods or frozenset())
    out: list[OrphanPodDir] = []
    for pod in pods:
        if pod.name in linked or (pod.ref is not None and pod.ref.uid in running_uids):
            continue
        age = now - pod.newest_mtime
        removable, note = _verdict(pod.ref, age, remove_after)
        out.append(OrphanPodDir(pod, age, removable, note))
    return sorted(out, key=lambda o: o.pod.newest_mtime)


def _verdict(ref: PodRef | None, age: float, remove_after: int | None) -> tuple[bool, str]:
    if ref is None:
        return False, "kept: not a kubelet pod directory name"
    if remove_after is None:
        return False, "kept: containers.remove_orphaned_pod_logs_after is null"
    if age < remove_after:
        wait = human_duration(remove_after)
        return False, f"kept: changed {human_duration(age)} ago, removal needs {wait} idle"
    return True, "removable"


class RemovalUnsafe(RemovalRefused):
    """The folder holds something that is not ours to remove (a mount, a foreign file)."""


def remove_pod_dir(
    pods_dir: Path, name: str, min_age: int, now: float, root: tuple[int, int] | None = None
) -> None:
    """Delete ``pods_dir/name`` and the container logs in it, never following a symlink.

    The whole folder is checked first and refused as a whole (RemovalUnsafe, nothing
    removed) unless it holds only container log folders of container log files, all on
    the pod folder's own mount: a mount point anywhere inside (a filesystem, a bind
    mount of a folder or of a single file) or anything nodeguard does not recognise
    keeps it. The newest mtime inside is checked again too (too young: RemovalRefused).
    Each file is checked once more (same inode, same mount) right before its unlink.
    With ``root`` (the device and inode the scan saw), the pods root opened now must be
    that folder, owned by root and writable by nobody else (RemovalUnsafe otherwise).
    """
    if PodRef.parse(name) is None or "/" in name:
        raise RemovalRefused(f"{name!r} is not a pod log directory name")
    with open_root(pods_dir) as root_fd:
        if root_fd is None:
            raise RemovalRefused(f"{pods_dir} does not exist")
        if root is not None:
            _check_root(root_fd, pods_dir, root)
        pod_fd = os.open(name, DIR_FLAGS, dir_fd=root_fd)
        try:
            home = mount_of(pod_fd)
            if home != mount_of(root_fd):
                raise RemovalUnsafe(f"{pods_dir / name} is a mount point")
            plan = _plan_removal(pod_fd, pods_dir / name, home)
            age = now - newest_mtime(root_fd, name)
            if age < min_age:
                wait = human_duration(min_age)
                raise RemovalRefused(
                    f"changed {human_duration(age)} ago, removal needs {wait} idle"
                )
            _remove_planned(pod_fd, plan, home)
        finally:
            os.close(pod_fd)
        os.rmdir(name, dir_fd=root_fd)


def _check_root(fd: int, pods_dir: Path, root: tuple[int, int]) -> None:
    st = os.fstat(fd)
    if (st.st_dev, st.st_ino) != root:
        raise RemovalUnsafe(f"{pods_dir} is no longer the folder that was scanned")
    if st.st_uid != 0 or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise RemovalUnsafe(f"{pods_dir} can be changed by others than root")


@dataclass(frozen=True)
class _Planned:
    """One container log folder to remove: its identity and its files' identities."""

    name: str
    ino: int
    files: tuple[tuple[str, int], ...]


def _plan_removal(pod_fd: int, path: Path, home: tuple[int, int]) -> list[_Planned]:
    """What removing the pod folder would delete; RemovalUnsafe if anything is foreign."""
    plan: list[_Planned] = []
    for entry in sorted(os.listdir(pod_fd)):
        st = _entry_stat(pod_fd, entry, path, home)
        if not stat.S_ISDIR(st.st_mode):
            raise RemovalUnsafe(f"{path / entry} is not a container log directory")
        fd = os.open(entry, DIR_FLAGS, dir_fd=pod_fd)
        try:
            if mount_of(fd) != home:
                raise RemovalUnsafe(f"{path / entry} is a mount point")
            files = tuple(_planned_files(fd, path / entry, home))
        finally:
            os.close(fd)
        plan.append(_Planned(entry, st.st_ino, files))
    return plan


def _planned_files(dir_fd: int, path: Path, home: tuple[int, int]) -> list[tuple[str, int]]:
    out = []
    for name in sorted(os.listdir(dir_fd)):
        st = _entry_stat(dir_fd, name, path, home)
        if not _is_container_log(name, st.st_mode):
            raise RemovalUnsafe(f"{path / name} is not a container log file")
        out.append((name, st.st_ino))
    return out


def _is_container_log(name: str, mode: int) -> bool:
    """A file kubelet or the runtime writes in a container log folder (a dockershim
    ``N.log`` symlink into Docker included)."""
    if stat.S_ISLNK(mode):
        return LIVE_RE.fullmatch(name) is not None
    return stat.S_ISREG(mode) and classify(name) in ("live", "rotated", "debris")


def _entry_stat(dir_fd: int, name: str, path: Path, home: tuple[int, int]) -> os.stat_result:
    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if entry_mount(dir_fd, name, st) != home:
        raise RemovalUnsafe(f"{path / name} is a mount point")
    return st


def _remove_planned(pod_fd: int, plan: list[_Planned], home: tuple[int, int]) -> None:
    for folder in plan:
        fd = os.open(folder.name, DIR_FLAGS, dir_fd=pod_fd)
        try:
            if os.fstat(fd).st_ino != folder.ino or mount_of(fd) != home:
                raise OSError(errno.ESTALE, "replaced while checked", folder.name)
            for name, ino in folder.files:
                now = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if now.st_ino != ino or entry_mount(fd, name, now) != home:
                    raise OSError(errno.ESTALE, "replaced while checked", name)
                os.unlink(name, dir_fd=fd)
        finally:
            os.close(fd)
        os.rmdir(folder.name, dir_fd=pod_fd)


def newest_mtime(root_fd: int, name: str) -> float:
    """The newest mtime of the pod folder ``name`` below ``root_fd`` and of all inside it.

    Two levels, as kubelet lays a pod folder out (container folders of log files): a
    folder deeper down means the folder changed since it was checked (OSError ESTALE),
    so a tree of any depth costs one listing per container folder, never a recursion.
    """
    fd = os.open(name, DIR_FLAGS, dir_fd=root_fd)
    try:
        newest = os.fstat(fd).st_mtime
        for entry in os.listdir(fd):
            st = os.stat(entry, dir_fd=fd, follow_symlinks=False)
            newest = max(newest, st.st_mtime)
            if stat.S_ISDIR(st.st_mode):
                newest = max(newest, _newest_in_container_dir(fd, entry))
    finally:
        os.close(fd)
    return newest


def _newest_in_container_dir(pod_fd: int, name: str) -> float:
    fd = os.open(name, DIR_FLAGS, dir_fd=pod_fd)
    try:
        newest = os.fstat(fd).st_mtime
        for entry in os.listdir(fd):
            st = os.stat(entry, dir_fd=fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                raise OSError(errno.ESTALE, "a folder inside a container log folder", entry)
            newest = max(newest, st.st_mtime)
    finally:
        os.close(fd)
    return newest


def human_duration(seconds: float) -> str:
    """``90061`` -> ``1d``: the largest whole unit, for reports."""
    value = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if value >= size:
            return f"{value // size}{unit}"
    return f"{value}s"
