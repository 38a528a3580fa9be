"""``disk:``: which filesystems the disk guard watches and when it alerts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nodeguard.config.fields import Field, Kind, Section


@dataclass(frozen=True)
class Threshold:
    """Free space (or free inodes) below which an alert fires, after ``for_`` seconds."""

    warning: float
    critical: float
    for_: int


@dataclass(frozen=True)
class DiskConfig:
    """The disk guard's config."""

    paths: tuple[str, ...] = ()
    out_of_space: Threshold = field(default_factory=lambda: Threshold(0.05, 0.03, 1800))


def _threshold(**values: Any) -> Threshold:
    return Threshold(warning=values["warning"], critical=values["critical"], for_=values["for"])


def _check_threshold(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    if values["warning"] < values["critical"]:
        return [("warning", "must be at least critical (both are free space left)")]
    return []


def _check_disk(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    bad = [p for p in values["paths"] if not p.startswith("/") or "\0" in p]
    return [("paths", f"{p!r} is not an absolute path") for p in bad]


OUT_OF_SPACE = Section(
    name="out_of_space",
    doc="Almost out of space (node-mixin's NodeFilesystemAlmostOutOfSpace): free space "
    "below `warning` or `critical` for `for`.",
    build=_threshold,
    check=_check_threshold,
    fields=(
        Field("warning", Kind.PERCENT, "Free space below this is a warning.", "5%"),
        Field("critical", Kind.PERCENT, "Free space below this is critical.", "3%"),
        Field("for", Kind.DURATION, "How long the condition holds before it fires.", "30m"),
    ),
)

DISK = Section(
    name="disk",
    doc="The disk guard: filesystems holding logs and runtime data, watched and forecast.",
    build=DiskConfig,
    check=_check_disk,
    fields=(
        Field(
            "paths",
            Kind.STR_LIST,
            "Extra filesystems to watch, each named by any absolute path on it. Those "
            "holding the policies' logs, the journal, /var/lib/docker, /var/lib/containerd, "
            "/var/lib/kubelet and / are always watched.",
            [],
            example=["/data"],
        ),
        Field("out_of_space", Kind.SECTION, OUT_OF_SPACE.doc, {}, section=OUT_OF_SPACE),
    ),
)
