"""``journal:``: which journald units nodeguard follows, and where the journal is."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nodeguard.config.fields import Field, Kind, Section

DEFAULT_UNITS = ("kubelet.service", "containerd.service", "docker.service", "crio.service")


@dataclass(frozen=True)
class JournalConfig:
    """The journal follower's config."""

    units: tuple[str, ...] = DEFAULT_UNITS
    directory: Path | None = None


JOURNAL = Section(
    name="journal",
    doc="journald: the kubelet and container-runtime units followed for disk trouble.",
    build=JournalConfig,
    fields=(
        Field("units", Kind.STR_LIST, "systemd units to follow.", list(DEFAULT_UNITS)),
        Field(
            "directory",
            Kind.PATH,
            "Null: the system journal. A path: read the journal files under it.",
            None,
            nullable=True,
        ),
    ),
)
