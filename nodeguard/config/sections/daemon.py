"""``daemon:``: how often the service's parts run (``nodeguard run``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nodeguard.config.fields import Field, Kind, Section

LOG_LEVELS = ("debug", "info", "warning", "error")
_SCHEDULES = ("size_watch_interval", "disk_interval", "journal_interval", "alerts_interval")


@dataclass(frozen=True)
class DaemonConfig:
    """Schedules of the daemon's parts; the full rotation pass runs every ``interval``."""

    size_watch_interval: int = 30
    disk_interval: int = 60
    journal_interval: int = 10
    alerts_interval: int = 30
    stop_timeout: int = 5
    log_level: str = "info"


def _check_daemon(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [(key, "must be at least 1s") for key in _SCHEDULES if values.get(key) == 0]


DAEMON = Section(
    name="daemon",
    doc="The daemon's schedule (the full rotation pass runs every top-level `interval`).",
    build=DaemonConfig,
    check=_check_daemon,
    fields=(
        Field(
            "size_watch_interval",
            Kind.DURATION,
            "Between passes, stat the policies' logs this often and rotate at once a log "
            "over its max_size.",
            "30s",
        ),
        Field("disk_interval", Kind.DURATION, "Disk sampling and alert evaluation.", "60s"),
        Field(
            "journal_interval",
            Kind.DURATION,
            "Read the journal from the saved cursor to its end this often.",
            "10s",
        ),
        Field(
            "alerts_interval",
            Kind.DURATION,
            "Deliver pending alerts (and re-send firing ones) this often.",
            "30s",
        ),
        Field(
            "stop_timeout",
            Kind.DURATION,
            "On SIGTERM, wait this long for a step in progress to finish before abandoning "
            "it (its intent record makes either safe). Keep it below systemd's TimeoutStopSec.",
            "5s",
        ),
        Field(
            "log_level",
            Kind.CHOICE,
            "The daemon's log level (journald when run by systemd, stderr otherwise).",
            "info",
            choices=LOG_LEVELS,
        ),
    ),
)
