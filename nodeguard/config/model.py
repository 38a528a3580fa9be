"""Typed, frozen configuration objects: what the rest of nodeguard sees.

They are built only by :mod:`nodeguard.config.loader` from validated input,
so code that holds a :class:`Config` never re-checks values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from nodeguard.config.sections import AlertsConfig, DaemonConfig, DiskConfig, JournalConfig


@dataclass(frozen=True)
class CreateSpec:
    """Mode and ownership of the fresh live file created after a rename."""

    mode: int | None = None
    owner: str | None = None
    group: str | None = None


@dataclass(frozen=True)
class Policy:
    """One retention policy: which files, and how they are rotated and kept."""

    name: str
    paths: tuple[str, ...]
    max_size: int
    max_files: int
    max_age: int | None = None
    compress: str = "gzip"
    compress_level: int = 6
    delay_compress: bool = False
    method: str = "rename"
    missing_ok: bool = True
    not_if_empty: bool = True
    create: CreateSpec | None = None
    postrotate: str | None = None
    postrotate_timeout: int = 60
    olddir: str | None = None
    su: tuple[str, str] | None = None
    allow_hardlinks: bool = False
    take_over_logrotate: bool = False

    @property
    def keep_rotated(self) -> int:
        """Rotated files kept per log: ``max_files`` counts the live file too."""
        return self.max_files - 1


@dataclass(frozen=True)
class ContainersConfig:
    """Where the node's container logs live."""

    pods_dir: Path = Path("/var/log/pods")
    containers_dir: Path = Path("/var/log/containers")
    docker_root: Path = Path("/var/lib/docker")
    kubelet_config: Path = Path("/var/lib/kubelet/config.yaml")
    remove_orphaned_pod_logs_after: int | None = None


@dataclass(frozen=True)
class DockerConfig:
    """How nodeguard manages Docker's daemon.json logging keys."""

    daemon_json: Path = Path("/etc/docker/daemon.json")
    manage: bool = True
    log_driver: str = "json-file"
    log_opts: Mapping[str, str] = field(default_factory=dict)
    restart: bool = False
    restart_command: str = "systemctl restart docker.service"
    validate_with_dockerd: bool = True


@dataclass(frozen=True)
class Config:
    """The whole validated configuration."""

    state_dir: Path
    interval: int
    logrotate_config: Path | None
    policies: tuple[Policy, ...]
    containers: ContainersConfig
    docker: DockerConfig
    disk: DiskConfig = field(default_factory=DiskConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    journal: JournalConfig = field(default_factory=JournalConfig)
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    sources: tuple[str, ...] = ()

    def policy(self, name: str) -> Policy | None:
        """Return the policy called ``name``, if any."""
        return next((p for p in self.policies if p.name == name), None)
