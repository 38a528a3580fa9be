"""The container log inventory: who writes how much, and what keeps it bounded.

It joins kubelet's pods layout, Docker's containers, kubelet's rotation limits and
nodeguard's own policies into one row per container, plus the orphaned pod log
directories and every problem found on the way (none of which is fatal).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from nodeguard.config.dockerrules import LogState
from nodeguard.config.model import Config, Policy
from nodeguard.containers.docker_logs import DockerContainer, scan_docker
from nodeguard.containers.kubelet import KubeletLimits, kubelet_limits, kubelet_pod_uids
from nodeguard.containers.layout import (
    ContainerLink,
    CriContainerDir,
    LogFile,
    PodDir,
    Roots,
    open_root,
    scan_links,
    scan_pods,
)
from nodeguard.containers.orphans import OrphanPodDir, find_orphans
from nodeguard.containers.samples import Samples
from nodeguard.progress import NO_PROGRESS, Progress
from nodeguard.rotation.scan import path_matches

K8S_NAMESPACE = "io.kubernetes.pod.namespace"
K8S_POD = "io.kubernetes.pod.name"
K8S_CONTAINER = "io.kubernetes.container.name"
K8S_UID = "io.kubernetes.pod.uid"


@dataclass(frozen=True)
class ContainerRow:
    """One container's logs on this node."""

    runtime: str  # "cri" or "docker"
    key: str  # stable across restarts: the growth sample key
    id: str
    name: str
    namespace: str | None
    pod: str | None
    container: str | None
    files: tuple[LogFile, ...]
    running: bool | None = None
    log_driver: str | None = None
    bounded_by: tuple[str, ...] = ()
    growth: float | None = None

    def bytes_of(self, *kinds: str) -> int:
        return sum(f.size for f in self.files if f.kind in kinds)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def log_paths(self) -> list[str]:
        return [f.path for f in self.files if f.kind == "live"]

    def to_json(self) -> dict[str, Any]:
        return {
            "runtime": self.runtime,
            "id": self.id,
            "name": self.name,
            "namespace": self.namespace,
            "pod": self.pod,
            "container": self.container,
            "live_bytes": self.bytes_of("live"),
            "rotated_bytes": self.bytes_of("rotated"),
            "other_bytes": self.bytes_of("debris", "other"),
            "total_bytes": self.total_bytes,
            "files": len(self.files),
            "growth_bytes_per_s": self.growth,
            "bounded": bool(self.bounded_by),
            "bounded_by": list(self.bounded_by),
            "log_paths": self.log_paths,
            "rotated_paths": [f.path for f in self.files if f.kind == "rotated"],
            "debris_paths": [f.path for f in self.files if f.kind == "debris"],
            "running": self.running,
            "log_driver": self.log_driver,
        }


@dataclass(frozen=True)
class Inventory:
    """Everything ``nodeguard containers`` reports."""

    containers: tuple[ContainerRow, ...]
    orphans: tuple[OrphanPodDir, ...]
    kubelet: KubeletLimits
    docker_present: bool
    problems: tuple[str, ...]
    now: float
    policy_conflicts: tuple[str, ...] = ()
    kubelet_pods: frozenset[str] | None = None  # pod uids kubelet keeps a folder for
    pods_root: tuple[int, int] | None = None  # the scanned pods root's device and inode

    def to_json(self) -> dict[str, Any]:
        return {
            "containers": [c.to_json() for c in self.containers],
            "orphan_pod_dirs": [o.to_json() for o in self.orphans],
            "kubelet": self.kubelet.to_json(),
            "docker_present": self.docker_present,
            "problems": [*self.problems, *self.policy_conflicts],
            "generated_at": self.now,
        }


def take_inventory(
    config: Config, samples: Samples, now: float, progress: Progress = NO_PROGRESS
) -> Inventory:
    """Scan the configured roots once and build the whole report."""
    cfg = config.containers
    roots = Roots(cfg.pods_dir, cfg.containers_dir, cfg.docker_root)
    problems: list[str] = []
    with open_root(roots.pods) as pods_fd:
        pods_root = _identity(pods_fd)
        pods = scan_pods(roots, pods_fd, problems, progress)
        links = scan_links(roots, pods_fd, problems)
    kubelet_pods = kubelet_pod_uids(cfg.kubelet_config)
    docker = scan_docker(roots.docker, problems, progress)
    limits = kubelet_limits(cfg.kubelet_config)
    problems += limits.problems
    rows = cri_rows(pods, links) + [docker_row(c) for c in docker or ()]
    rows = [_finish(r, config.policies, limits, samples, now) for r in rows]
    problems += docker_refusals(docker or ())
    conflicts = policy_problems(config.policies, roots, limits, rows)
    rows.sort(key=lambda r: (-r.total_bytes, r.name, r.id))
    after = cfg.remove_orphaned_pod_logs_after
    orphans = find_orphans(pods, links, docker, now, after, kubelet_pods=kubelet_pods)
    return Inventory(
        tuple(rows),
        tuple(orphans),
        limits,
        docker is not None,
        tuple(problems),
        now,
        tuple(conflicts),
        kubelet_pods,
        pods_root,
    )


def _identity(fd: int | None) -> tuple[int, int] | None:
    if fd is None:
        return None
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def cri_rows(pods: Sequence[PodDir], links: Sequence[ContainerLink]) -> list[ContainerRow]:
    """One row per ``<pod dir>/<container>`` that holds logs or that a symlink names."""
    by_dir: dict[tuple[str, str], list[ContainerLink]] = {}
    for link in links:
        by_dir.setdefault((link.target[0], link.target[1]), []).append(link)
    rows: list[ContainerRow] = []
    for pod in pods:
        for cdir in pod.containers:
            mine = by_dir.get((pod.name, cdir.container), [])
            # A dir holding only dockershim symlinks is accounted under Docker.
            if cdir.files or (mine and not cdir.docker_ids):
                rows.append(_cri_row(cdir, mine))
    return rows


def _cri_row(cdir: CriContainerDir, links: Sequence[ContainerLink]) -> ContainerRow:
    # The link to the highest restart count names the current container ID.
    newest = max(links, key=lambda ln: _restart(ln.target[2]), default=None)
    ref = cdir.ref
    return ContainerRow(
        runtime="cri",
        key=f"cri:{cdir.pod_dir}/{cdir.container}",
        id=newest.id if newest else "",
        name=f"{ref.namespace}/{ref.pod}/{cdir.container}",
        namespace=ref.namespace,
        pod=ref.pod,
        container=cdir.container,
        files=tuple(sorted(cdir.files, key=lambda f: f.path)),
    )


def _restart(name: str) -> int:
    head = name.split(".", 1)[0]
    return int(head) if head.isdigit() else -1


def docker_row(container: DockerContainer) -> ContainerRow:
    """A Docker container's row; Kubernetes identity comes from dockershim's labels."""
    labels = container.labels
    return ContainerRow(
        runtime="docker",
        key=f"docker:{container.id}",
        id=container.id,
        name=container.name,
        namespace=labels.get(K8S_NAMESPACE),
        pod=labels.get(K8S_POD),
        container=labels.get(K8S_CONTAINER),
        files=container.files,
        running=container.running,
        log_driver=container.log_type,
        bounded_by=_docker_bounds(container),
    )


def _docker_bounds(container: DockerContainer) -> tuple[str, ...]:
    """What bounds a Docker container's logs, by the one rule Docker's logger follows."""
    bound = container.log_bound
    if bound is None or bound.state is LogState.UNBOUNDED:
        return ()
    if bound.state is LogState.REFUSED:
        # Docker refuses these log-opts: the container cannot start, nothing is written.
        return ("docker-refuses-log-opts",)
    if bound.state is LogState.ELSEWHERE:
        # journald, syslog, none, ...: nothing is written under Docker's root.
        return (f"docker-log-driver:{container.log_type}",)
    return ("docker-log-opts",)


def docker_refusals(containers: Sequence[DockerContainer]) -> list[str]:
    """A problem for each container whose log-opts Docker refuses (it cannot start)."""
    out = []
    for container in containers:
        bound = container.log_bound
        if bound is not None and bound.state is LogState.REFUSED:
            out.append(
                f"container {container.name} ({container.id[:12]}): Docker refuses its "
                f"log-opts ({bound.reason}), so it cannot start; recreate it with valid "
                "log-opts"
            )
    return out


def _finish(
    row: ContainerRow,
    policies: Sequence[Policy],
    limits: KubeletLimits,
    samples: Samples,
    now: float,
) -> ContainerRow:
    growth = samples.growth(row.key, row.total_bytes, now)
    if row.runtime != "cri":
        return replace(row, growth=growth)
    bounds = ["kubelet"] if limits.rotates else []
    paths = row.log_paths
    bounds += [f"nodeguard:{p.name}" for p in policies if any(policy_matches(p, x) for x in paths)]
    return replace(row, growth=growth, bounded_by=tuple(bounds))


def policy_matches(policy: Policy, path: str) -> bool:
    """Whether any of the policy's globs covers ``path``."""
    return any(path_matches(pattern, path) for pattern in policy.paths)


def policy_problems(
    policies: Sequence[Policy], roots: Roots, limits: KubeletLimits, rows: Sequence[ContainerRow]
) -> list[str]:
    """Policies that would fight kubelet, rename CRI logs, or touch dockerd's files."""
    cri_paths = [p for r in rows if r.runtime == "cri" for p in r.log_paths]
    cri_paths.append(str(roots.pods / "ns_pod_uid" / "container" / "0.log"))
    some_id = "0" * 64
    docker_paths = [p for r in rows if r.runtime == "docker" for p in r.log_paths]
    docker_paths.append(str(roots.docker / "containers" / some_id / f"{some_id}-json.log"))
    problems: list[str] = []
    for policy in policies:
        if any(policy_matches(policy, p) for p in cri_paths):
            problems += _cri_policy_problems(policy, roots.pods, limits)
        if any(policy_matches(policy, p) for p in docker_paths):
            problems.append(
                f"policy {policy.name} matches Docker's own log files under {roots.docker}: "
                "nodeguard never rotates them (dockerd owns them); bound them with "
                "log-opts instead (nodeguard docker-config)"
            )
    return problems


def _cri_policy_problems(policy: Policy, pods_dir: Path, limits: KubeletLimits) -> list[str]:
    problems: list[str] = []
    if limits.max_size is not None and policy.max_size <= limits.max_size:
        problems.append(
            f"policy {policy.name} would rotate before kubelet does: set its max_size above "
            f"kubelet's containerLogMaxSize ({limits.max_size_text}), so nodeguard acts "
            "only as a hard ceiling when kubelet falls behind"
        )
    if policy.method == "rename":
        problems.append(
            f"policy {policy.name} renames CRI logs under {pods_dir}: the runtime keeps "
            "writing into the renamed file until kubelet asks it to reopen; use an in-place "
            "method"
        )
    return problems
