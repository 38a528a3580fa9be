"""Which existing containers keep their old log settings after daemon.json changed.

Docker copies the daemon's log-driver and log-opts into each container's
``hostconfig.json`` when the container is created, and never updates them: a restart
of dockerd changes nothing for existing containers. The files under
``<docker_root>/containers/<id>/`` are read by the containers concern's reader
(:mod:`nodeguard.containers.docker_logs`: capped, strict about every field's type), and
each container's log is judged by the one rule Docker's logger follows
(:func:`nodeguard.config.dockerrules.log_bound`). A container whose files cannot be
used is reported as unreadable, never a reason to fail.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from nodeguard.config.dockerrules import LogBound, LogState
from nodeguard.containers.docker_logs import scan_docker
from nodeguard.docker.outcome import DockerKind
from nodeguard.events import Event, Severity, Source

_TAGS = {LogState.UNBOUNDED: "UNBOUNDED", LogState.REFUSED: "REFUSED"}


@dataclass(frozen=True)
class ContainerLog:
    """One container's log settings as recorded by dockerd, and what they do."""

    id: str
    name: str
    running: bool
    driver: str
    bound: LogBound
    opts: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def unbounded(self) -> bool:
        """Docker writes its log to disk and never rotates it."""
        return self.bound.state is LogState.UNBOUNDED

    def describe(self) -> str:
        """``json-file max-size=10m max-file=5`` style summary, with Docker's refusal."""
        shown = " ".join(f"{k}={v}" for k, v in sorted(self.opts.items()))
        if self.driver == "json-file" and "max-size" not in self.opts:
            shown = (shown + " " if shown else "") + "(no max-size)"
        text = f"{self.driver} {shown}".strip()
        if self.bound.state is LogState.REFUSED:
            text += f" (Docker refuses it: {self.bound.reason}; the container cannot start)"
        return text


@dataclass(frozen=True)
class Inventory:
    """All containers found, plus the reasons others could not be read."""

    containers: tuple[ContainerLog, ...]
    unreadable: tuple[str, ...] = ()


def scan(docker_root: Path) -> Inventory:
    """Read every container's hostconfig.json and config.v2.json under ``docker_root``."""
    problems: list[str] = []
    found = scan_docker(docker_root, problems)
    containers = [
        ContainerLog(
            c.id,
            c.name,
            bool(c.running),
            c.log_type,
            c.log_bound,
            MappingProxyType(dict(c.log_opts)),
        )
        for c in found or ()
        if not c.problems and c.log_type is not None and c.log_bound is not None
    ]
    return Inventory(tuple(containers), tuple(problems))


def stale(inventory: Inventory, driver: str, opts: Mapping[str, str]) -> list[ContainerLog]:
    """Containers whose log settings differ from the daemon defaults ``driver``/``opts``."""
    return [c for c in inventory.containers if (c.driver, dict(c.opts)) != (driver, dict(opts))]


def report_events(inventory: Inventory, driver: str, opts: Mapping[str, str]) -> list[Event]:
    """Unreadable containers, a summary, then every container that keeps old settings
    (unbounded ones first, then those Docker refuses; running before stopped)."""
    events = [
        Event(Source.DOCKER, DockerKind.CONTAINER_UNREADABLE, item, Severity.WARNING, item)
        for item in inventory.unreadable
    ]
    old = sorted(stale(inventory, driver, opts), key=_urgency)
    total = len(inventory.containers)
    if old:
        reason = (
            f"{len(old)} existing container(s) keep their old log settings until they are "
            "recreated (docker rm + docker run, or docker compose up --force-recreate):"
        )
    else:
        reason = f"all {total} existing container(s) already use these log settings"
    facts = {"total": total, "stale": len(old), "unreadable": len(inventory.unreadable)}
    events.append(
        Event(Source.DOCKER, DockerKind.CONTAINERS, "containers", Severity.INFO, reason, facts)
    )
    events += [_stale_event(c) for c in old]
    return events


def _urgency(container: ContainerLog) -> tuple[bool, bool, bool]:
    refused = container.bound.state is LogState.REFUSED
    return (not container.unbounded, not refused, not container.running)


def _stale_event(container: ContainerLog) -> Event:
    tag = _TAGS.get(container.bound.state, "old-config")
    state = "running" if container.running else "stopped"
    severity = Severity.WARNING if tag != "old-config" else Severity.INFO
    reason = f"{container.name or '-'} ({container.id[:12]}) {state}: {container.describe()}"
    facts = {
        "id": container.id,
        "name": container.name,
        "running": container.running,
        "driver": container.driver,
        "log_opts": dict(container.opts),
        "log_state": str(container.bound.state),
        "tag": tag,
        "description": container.describe(),
    }
    return Event(Source.DOCKER, DockerKind.CONTAINER_STALE, container.id, severity, reason, facts)
