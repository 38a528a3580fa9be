"""What a pass must leave alone, decided by identity (device and inode), never by path text.

Paths have aliases: ``/var/lib/docker/./containers``, a symlink ``/var/lib/docker ->
/data/docker``, a bind mount, a second glob reaching the same folder. A guard that
compares path strings lets each of them through. Here every root is resolved once per
pass to its (device, inode), and a log's folder is placed under a root by walking up
its ``..`` entries from the folder's own fd, so the answer holds however the folder
was reached.

The roots: Docker's container folder (its json logs are dockerd's), kubelet's pods
root (CRI logs are never renamed), nodeguard's state folder and its config drop-in
folder (never candidates), plus the identities of the config files and of the files
this host's logrotate covers.
"""

from __future__ import annotations

import contextlib
import enum
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from nodeguard.config.model import Config
from nodeguard.fsutil import DIR_FLAGS
from nodeguard.rotation import scan

FileId = tuple[int, int]  # (st_dev, st_ino)
_MAX_DEPTH = 4096  # folders deeper than this are placed under no root (PATH_MAX / 2)


class Root(enum.StrEnum):
    """A folder whose contents a pass treats specially."""

    DOCKER = "docker"  # docker_root/containers: dockerd's own logs
    PODS = "pods"  # kubelet's pod log root: CRI logs
    STATE = "state"  # nodeguard's state folder
    CONFIG = "config"  # the folder of config drop-ins


def file_id(st: os.stat_result) -> FileId:
    return (st.st_dev, st.st_ino)


def _stat_id(path: Path | str, *, follow: bool = True) -> FileId | None:
    try:
        return file_id(os.stat(path, follow_symlinks=follow))
    except (OSError, ValueError):
        return None


def config_dropin_dirs(sources: Iterable[str]) -> list[Path]:
    """The conf.d folders beside the config files a pass was loaded from."""
    return [Path(s).parent / "conf.d" for s in sources if s.startswith("/")]


@dataclass
class Guards:
    """The pass's roots and files by identity, and a memo of which roots hold a folder."""

    roots: Mapping[FileId, Root]
    config_files: frozenset[FileId]
    covered: Mapping[FileId, str] = field(default_factory=dict)  # logrotate: id -> conf
    _memo: dict[FileId, frozenset[Root]] = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, config: Config, covered: Mapping[str, str] | None = None) -> Guards:
        """Resolve the roots named by ``config`` (symlinks followed: they are the admin's)."""
        wanted: list[tuple[Path, Root]] = [
            (config.containers.docker_root / "containers", Root.DOCKER),
            (config.containers.pods_dir, Root.PODS),
            (config.state_dir, Root.STATE),
            *[(d, Root.CONFIG) for d in config_dropin_dirs(config.sources)],
        ]
        roots = {ident: root for path, root in wanted if (ident := _stat_id(path)) is not None}
        files = {_stat_id(s) for s in config.sources if s.startswith("/")}
        return cls(
            MappingProxyType(roots),
            frozenset(f for f in files if f is not None),
            MappingProxyType(_covered_ids(covered or {})),
        )

    def under(self, dir_fd: int, st: os.stat_result) -> frozenset[Root]:
        """The roots that hold the folder open as ``dir_fd`` (itself included)."""
        start = file_id(st)
        if start in self._memo:
            return self._memo[start]
        chain, above = self._climb(dir_fd, start)
        for ident in reversed(chain):
            own = self.roots.get(ident)
            above = above | {own} if own is not None else above
            self._memo[ident] = above
        return above

    def _climb(self, dir_fd: int, start: FileId) -> tuple[list[FileId], frozenset[Root]]:
        """Folders from ``start`` up to ``/`` (or to one already placed), and what is
        known above the last of them. An unreadable ``..`` places it under no root."""
        chain: list[FileId] = []
        fd = os.dup(dir_fd)
        current = start
        try:
            for _ in range(_MAX_DEPTH):
                if current in self._memo:
                    return chain, self._memo[current]
                chain.append(current)
                try:
                    parent_fd = os.open("..", DIR_FLAGS, dir_fd=fd)
                except OSError:
                    break
                os.close(fd)
                fd = parent_fd
                parent = file_id(os.fstat(fd))
                if parent == current:  # "/" is its own parent
                    break
                current = parent
        finally:
            os.close(fd)
        return chain, frozenset()


def _covered_ids(covered: Mapping[str, str]) -> dict[FileId, str]:
    """logrotate's files by identity (its own globs follow folder symlinks, not file ones)."""
    out: dict[FileId, str] = {}
    for path, conf in covered.items():
        with contextlib.suppress(OSError, ValueError):
            st = os.stat(path, follow_symlinks=False)
            out.setdefault(file_id(st), conf)
    return out


# --- rotated files that two live logs would share -----------------------------------

SharedKey = tuple[int, int, str]  # the rotated folder's (device, inode), the live name


def shared_rotated_names(config: Config) -> Mapping[SharedKey, tuple[str, ...]]:
    """Live logs whose rotated files would land in one folder under one name.

    Retention, cleanup of temps and recovery of a log all go by the rotated files'
    names in its rotated folder, so two live logs of one name rotating into one
    folder (the logs of three pods, all ``0.log``, with an absolute ``olddir``) would
    take each other's files for their own. Every policy is scanned (not only the
    selected ones), and each such folder and name maps to the paths of all its logs.
    Without any ``olddir`` no two logs can share: a folder holds one name once.
    """
    if all(p.olddir is None for p in config.policies):
        return {}
    owners: dict[SharedKey, dict[FileId, str]] = {}
    absolute: dict[str, FileId | None] = {}
    for policy in config.policies:
        for pattern in policy.paths:
            for match in scan.expand(pattern, lambda path, kind, reason: None):
                folder = _rotated_folder(policy.olddir, match.directory, absolute)
                if folder is None:
                    continue
                for name, st in match.files.items():
                    if stat.S_ISREG(st.st_mode):
                        logs = owners.setdefault((*folder, name), {})
                        logs.setdefault(file_id(st), f"{match.directory.path}/{name}")
    return MappingProxyType(
        {key: tuple(sorted(logs.values())) for key, logs in owners.items() if len(logs) > 1}
    )


def _rotated_folder(
    olddir: str | None, directory: scan.Directory, absolute: dict[str, FileId | None]
) -> FileId | None:
    """The identity of the folder a log in ``directory`` rotates into (None: none yet)."""
    if olddir is None:
        return file_id(directory.st)
    if olddir.startswith("/"):
        if olddir not in absolute:
            opened = scan.open_path(olddir, lambda path, kind, reason: None)
            absolute[olddir] = None if opened is None else file_id(opened.st)
            if opened is not None:
                os.close(opened.fd)
        return absolute[olddir]
    fd = os.dup(directory.fd)
    try:
        for part in [p for p in olddir.split("/") if p not in ("", ".")]:
            child = os.open(part, DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
        return file_id(os.fstat(fd))
    except OSError:
        return None  # not made yet: a folder of its own, shared with no other
    finally:
        os.close(fd)
