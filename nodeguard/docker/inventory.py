"""Which existing containers keep their old log settings after daemon.json changed.

Docker copies the daemon's log-driver and log-opts into each container's
``hostconfig.json`` when the container is created, and never updates them: a restart
of dockerd changes nothing for existing containers. nodeguard reads those files under
``<docker_root>/containers/<id>/`` (no Docker API needed, works with dockerd stopped).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from nodeguard.docker.rules import FILE_DRIVERS, max_size_bytes


@dataclass(frozen=True)
class ContainerLog:
    """One container's log settings as recorded by dockerd."""

    id: str
    name: str
    running: bool
    driver: str
    opts: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def unbounded(self) -> bool:
        """Docker writes its log to disk and never rotates it."""
        return self.driver in FILE_DRIVERS and max_size_bytes(self.driver, dict(self.opts)) is None

    def describe(self) -> str:
        """``json-file max-size=10m max-file=5`` style summary."""
        shown = " ".join(f"{k}={v}" for k, v in sorted(self.opts.items()))
        if self.driver == "json-file" and "max-size" not in self.opts:
            shown = (shown + " " if shown else "") + "(no max-size)"
        return f"{self.driver} {shown}".strip()


@dataclass(frozen=True)
class Inventory:
    """All containers found, plus the ones that could not be read."""

    containers: tuple[ContainerLog, ...]
    unreadable: tuple[str, ...] = ()


def scan(docker_root: Path) -> Inventory:
    """Read every container's hostconfig.json and config.v2.json under ``docker_root``."""
    folder = docker_root / "containers"
    found: list[ContainerLog] = []
    unreadable: list[str] = []
    try:
        entries = sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink())
    except FileNotFoundError:
        return Inventory(())
    for entry in entries:
        try:
            found.append(_read(entry))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            unreadable.append(f"{entry}: {exc}")
    return Inventory(tuple(found), tuple(unreadable))


def _read(folder: Path) -> ContainerLog:
    host = json.loads((folder / "hostconfig.json").read_text("utf-8"))
    config = json.loads((folder / "config.v2.json").read_text("utf-8"))
    log = host.get("LogConfig") or {}
    opts = {str(k): str(v) for k, v in (log.get("Config") or {}).items()}
    return ContainerLog(
        id=str(config.get("ID") or folder.name),
        name=str(config.get("Name") or "").lstrip("/"),
        running=bool((config.get("State") or {}).get("Running")),
        driver=str(log.get("Type") or "json-file"),
        opts=MappingProxyType(opts),
    )


def stale(inventory: Inventory, driver: str, opts: Mapping[str, str]) -> list[ContainerLog]:
    """Containers whose log settings differ from the daemon defaults ``driver``/``opts``."""
    return [c for c in inventory.containers if (c.driver, dict(c.opts)) != (driver, dict(opts))]


def report_lines(inventory: Inventory, driver: str, opts: Mapping[str, str]) -> list[str]:
    """Human report: containers that keep old settings, unbounded ones first."""
    old = sorted(stale(inventory, driver, opts), key=lambda c: (not c.unbounded, not c.running))
    lines = [f"warning: could not read {item}" for item in inventory.unreadable]
    if not old:
        count = len(inventory.containers)
        return [*lines, f"all {count} existing container(s) already use these log settings"]
    lines.append(
        f"{len(old)} existing container(s) keep their old log settings until they are "
        "recreated (docker rm + docker run, or docker compose up --force-recreate):"
    )
    for item in old:
        tag = "UNBOUNDED" if item.unbounded else "old-config"
        state = "running" if item.running else "stopped"
        lines.append(f"  {tag:<10} {item.name or '-'} ({item.id[:12]}) {state}: {item.describe()}")
    return lines
