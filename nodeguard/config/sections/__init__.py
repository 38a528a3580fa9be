"""Schema sections of the service's concerns, one module each: their keys and frozen model.

Each module declares one top-level section (a :class:`~nodeguard.config.fields.Section`)
and the frozen dataclass it builds, so a concern's config lives in one place and the
concerns' sections grow without touching each other.
"""

from nodeguard.config.sections.alerts import ALERTS, AlertsConfig
from nodeguard.config.sections.daemon import DAEMON, DaemonConfig
from nodeguard.config.sections.disk import DISK, DiskConfig
from nodeguard.config.sections.journal import JOURNAL, JournalConfig

__all__ = [
    "ALERTS",
    "DAEMON",
    "DISK",
    "JOURNAL",
    "AlertsConfig",
    "DaemonConfig",
    "DiskConfig",
    "JournalConfig",
]
