"""A World whose clock and disk probe a test moves by hand, to replay hours in milliseconds."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime

from nodeguard.world import DiskUsage, World

GIB = 1024**3


@dataclass
class Clock:
    t: float = 1_700_000_000.0

    def __call__(self) -> datetime:
        return datetime.fromtimestamp(self.t, UTC)


@dataclass
class Probe:
    """Every path reads as one filesystem with these numbers (unless ``by_path`` says)."""

    total: int = 100 * GIB
    free: int = 50 * GIB
    inodes_total: int = 1_000_000
    inodes_free: int = 900_000
    by_path: dict[str, DiskUsage] = field(default_factory=dict)

    def __call__(self, path: str) -> DiskUsage:
        if path in self.by_path:
            return self.by_path[path]
        used = self.total - self.free
        return DiskUsage(self.total, used, self.free, self.inodes_total, self.inodes_free)


def fake_world(clock: Clock, probe: Probe, hostname: str = "node-a") -> World:
    return World(clock=clock, disk_usage=probe, hostname=hostname, stop=threading.Event())
