"""Which filesystems the disk guard watches: those holding logs and runtime data.

Each watched path (a policy's log folder, the journal, Docker's, containerd's and
kubelet's data, ``/``, ``disk.paths``) is resolved to the filesystem holding it; the
filesystems are deduplicated by device, and read-only and pseudo filesystems are left
out. The mount table comes from psutil; identity is the device number of the path
itself (``st_dev``), never a path string.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from nodeguard.config.model import Config
from nodeguard.rotation.scan import has_magic

# node_exporter's default exclusion (--collector.filesystem.fs-types-exclude), less
# overlay (a node's / inside a container) and plus a few that hold no data.
PSEUDO_FSTYPES = frozenset(
    {
        "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs",
        "devpts", "devtmpfs", "efivarfs", "fusectl", "hugetlbfs", "iso9660", "mqueue",
        "nsfs", "proc", "procfs", "pstore", "ramfs", "rpc_pipefs", "securityfs",
        "selinuxfs", "squashfs", "sysfs", "tracefs",
    }
)  # fmt: skip

FIXED_PATHS = (("/var/lib/containerd", "containerd"), ("/", "root"))
JOURNAL_DIRS = ("/var/log/journal", "/run/log/journal")
# A log folder that does not exist yet is watched through its nearest parent (its logs
# will land there); the runtimes' folders, the journal and disk.paths must exist.
NEAREST_OK = frozenset({"logs", "root"})


@dataclass(frozen=True)
class Mount:
    """One line of the mount table."""

    device: str
    mountpoint: str
    fstype: str
    opts: str

    @property
    def read_only(self) -> bool:
        return "ro" in self.opts.split(",")


@dataclass(frozen=True)
class Filesystem:
    """A watched filesystem: where it is mounted and why it is watched."""

    key: str  # "device@mountpoint": history is kept under this name
    mountpoint: str
    device: str
    fstype: str
    dev: int  # st_dev of the paths on it
    probe: str  # the path its usage is read through
    roles: tuple[str, ...]  # logs, journal, docker, containerd, kubelet, root, extra
    paths: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "mountpoint": self.mountpoint,
            "device": self.device,
            "fstype": self.fstype,
            "roles": list(self.roles),
            "paths": list(self.paths),
        }


MountTable = Callable[[], Sequence[Mount]]


def psutil_mounts() -> list[Mount]:
    """The mount table, in mount order (a later mount on a mountpoint shadows others)."""
    import psutil

    return [
        Mount(p.device, p.mountpoint, p.fstype, p.opts) for p in psutil.disk_partitions(all=True)
    ]


def watched_paths(config: Config) -> list[tuple[str, str]]:
    """(path, role) for everything the guard watches, before resolving filesystems."""
    out: list[tuple[str, str]] = []
    for policy in config.policies:
        out += [(static_prefix(p), "logs") for p in policy.paths]
    out.append((str(config.containers.pods_dir), "logs"))
    out.append((journal_dir(config), "journal"))
    out.append((str(config.containers.docker_root), "docker"))
    # kubelet's root (/var/lib/kubelet): the folder of its config file
    out.append((str(config.containers.kubelet_config.parent), "kubelet"))
    out += list(FIXED_PATHS)
    out += [(p, "extra") for p in config.disk.paths]
    return out


def journal_dir(config: Config) -> str:
    """The journal's folder: the configured one, else the persistent or volatile one."""
    if config.journal.directory is not None:
        return str(config.journal.directory)
    return next((d for d in JOURNAL_DIRS if os.path.isdir(d)), JOURNAL_DIRS[0])


def static_prefix(pattern: str) -> str:
    """The folder a glob starts in: its components before the first wildcard one."""
    parts = [p for p in pattern.split("/") if p]
    fixed: list[str] = []
    for part in parts[:-1]:
        if has_magic(part):
            break
        fixed.append(part)
    return "/" + "/".join(fixed)


def discover(
    config: Config, mounts: MountTable | None = None
) -> tuple[list[Filesystem], list[str]]:
    """The watched filesystems (deduplicated by device) and the problems found."""
    table = list((mounts or psutil_mounts)())
    problems: list[str] = []
    found: dict[int, Filesystem] = {}
    for path, role in watched_paths(config):
        resolved = _resolve(path, role, table, problems)
        if resolved is None:
            continue
        fs = found.get(resolved.dev)
        found[resolved.dev] = resolved if fs is None else _merge(fs, resolved)
    return sorted(found.values(), key=lambda f: f.mountpoint), problems


def _resolve(
    path: str, role: str, table: Sequence[Mount], problems: list[str]
) -> Filesystem | None:
    existing = _nearest_existing(path)
    if existing is None:
        return None
    if role not in NEAREST_OK and existing != os.path.normpath(path):
        if role == "extra":
            problems.append(f"disk.paths: {path} does not exist; not watched")
        return None
    try:
        dev = os.stat(existing).st_dev
        real = os.path.realpath(existing)
    except OSError as exc:
        problems.append(f"{existing}: cannot stat: {exc.strerror}")
        return None
    mount = _mount_of(real, dev, table)
    if mount is None:
        mountpoint = _walk_up(real, dev)
        mount = Mount("unknown", mountpoint, "", "")
    if mount.fstype in PSEUDO_FSTYPES or mount.read_only:
        return None
    return Filesystem(
        key=f"{mount.device}@{mount.mountpoint}",
        mountpoint=mount.mountpoint,
        device=mount.device,
        fstype=mount.fstype,
        dev=dev,
        probe=existing,
        roles=(role,),
        paths=(path,),
    )


def _nearest_existing(path: str) -> str | None:
    current = os.path.normpath(path)
    while True:
        if os.path.exists(current):
            return current
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


def _mount_of(real: str, dev: int, table: Iterable[Mount]) -> Mount | None:
    """The last-mounted entry with the longest mountpoint above ``real`` on device ``dev``."""
    best: Mount | None = None
    for mount in table:
        mp = mount.mountpoint.rstrip("/") or "/"
        if not (real == mp or real.startswith(mp + "/") or mp == "/"):
            continue
        if best is None or len(mp) >= len(best.mountpoint.rstrip("/") or "/"):
            best = mount
    if best is None:
        return None
    try:
        return best if os.stat(best.mountpoint).st_dev == dev else None
    except OSError:
        return None


def _walk_up(real: str, dev: int) -> str:
    """The highest folder above ``real`` still on ``dev``: its mountpoint."""
    current = real
    while current != "/":
        parent = os.path.dirname(current)
        try:
            if os.stat(parent).st_dev != dev:
                break
        except OSError:
            break
        current = parent
    return current


def _merge(a: Filesystem, b: Filesystem) -> Filesystem:
    roles = tuple(dict.fromkeys(a.roles + b.roles))
    paths = tuple(dict.fromkeys(a.paths + b.paths))
    return Filesystem(a.key, a.mountpoint, a.device, a.fstype, a.dev, a.probe, roles, paths)


def holds(fs: Filesystem, path: str | Path) -> bool:
    """Whether ``path`` (or its nearest existing parent) is on ``fs``."""
    existing = _nearest_existing(str(path))
    try:
        return existing is not None and os.stat(existing).st_dev == fs.dev
    except OSError:
        return False
