"""Pod log directories that no container refers to any more, and their removal.

Rule: a pod directory is orphaned when no symlink in the containers directory
names a path inside it and, when Docker is present, no running Docker container
carries its pod UID (label ``io.kubernetes.pod.uid``). Removal needs a configured
minimum age, measured from the newest mtime of anything inside the directory, and
never follows a symlink.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nodeguard.containers.docker_logs import DockerContainer
from nodeguard.containers.layout import ContainerLink, PodDir, PodRef, open_root
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
            "error": self.error,
        }


def find_orphans(
    pods: Sequence[PodDir],
    links: Sequence[ContainerLink],
    docker: Sequence[DockerContainer] | None,
    now: float,
    remove_after: int | None,
) -> list[OrphanPodDir]:
    """The orphaned pod directories among ``pods``, oldest activity first."""
    linked = {link.target[0] for link in links}
    running_uids = {
        c.labels[POD_UID_LABEL] for c in docker or () if c.running and POD_UID_LABEL in c.labels
    }
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


def remove_pod_dir(pods_dir: Path, name: str, min_age: int, now: float) -> None:
    """Delete ``pods_dir/name`` and everything in it, never following a symlink.

    The newest mtime inside is checked again first; RemovalRefused if it is too young.
    """
    if PodRef.parse(name) is None or "/" in name:
        raise RemovalRefused(f"{name!r} is not a pod log directory name")
    with open_root(pods_dir) as root_fd:
        if root_fd is None:
            raise RemovalRefused(f"{pods_dir} does not exist")
        age = now - newest_mtime(root_fd, name)
        if age < min_age:
            raise RemovalRefused(
                f"changed {human_duration(age)} ago, removal needs {human_duration(min_age)} idle"
            )
        errors: list[OSError] = []
        for _root, dirs, files, dir_fd in os.fwalk(
            name, topdown=False, onerror=errors.append, follow_symlinks=False, dir_fd=root_fd
        ):
            for entry in files:
                os.unlink(entry, dir_fd=dir_fd)
            for entry in dirs:
                _remove_dir_entry(entry, dir_fd)
        if errors:
            raise errors[0]
        os.rmdir(name, dir_fd=root_fd)


def _remove_dir_entry(name: str, dir_fd: int) -> None:
    # fwalk lists a symlink to a directory among dirs (without descending): unlink it.
    if stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
        os.unlink(name, dir_fd=dir_fd)
    else:
        os.rmdir(name, dir_fd=dir_fd)


def newest_mtime(root_fd: int, name: str) -> float:
    """The newest mtime of ``name`` (a directory below ``root_fd``) and all inside it."""
    fd = os.open(name, DIR_FLAGS, dir_fd=root_fd)
    try:
        newest = os.fstat(fd).st_mtime
    finally:
        os.close(fd)
    for _root, dirs, files, dir_fd in os.fwalk(name, follow_symlinks=False, dir_fd=root_fd):
        newest = max(newest, os.fstat(dir_fd).st_mtime)
        for entry in (*files, *dirs):
            st = os.stat(entry, dir_fd=dir_fd, follow_symlinks=False)
            newest = max(newest, st.st_mtime)
    return newest


def human_duration(seconds: float) -> str:
    """``90061`` -> ``1d``: the largest whole unit, for reports."""
    value = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if value >= size:
            return f"{value // size}{unit}"
    return f"{value}s"
