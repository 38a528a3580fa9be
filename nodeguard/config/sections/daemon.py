"""``daemon:``: how often the service's parts run (``nodeguard run``)."""

from __future__ import annotations

from dataclasses import dataclass

from nodeguard.config.fields import Field, Kind, Section


@dataclass(frozen=True)
class DaemonConfig:
    """Schedules of the daemon's parts; the full rotation pass runs every ``interval``."""

    size_watch_interval: int = 30
    disk_interval: int = 60


DAEMON = Section(
    name="daemon",
    doc="The daemon's schedule (the full rotation pass runs every top-level `interval`).",
    build=DaemonConfig,
    fields=(
        Field(
            "size_watch_interval",
            Kind.DURATION,
            "Between passes, stat the policies' logs this often and rotate at once a log "
            "over its max_size.",
            "30s",
        ),
        Field("disk_interval", Kind.DURATION, "Disk sampling and alert evaluation.", "60s"),
    ),
)
