"""``disk:``: which filesystems the disk guard watches, when it alerts and how it reclaims."""

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
class FillingUp:
    """Free below ``warning`` and full within ``warning_within`` (likewise critical)."""

    warning: float = 0.40
    critical: float = 0.20
    warning_within: int = 24 * 3600
    critical_within: int = 4 * 3600
    for_: int = 1800


@dataclass(frozen=True)
class KubeletEviction:
    """kubelet's hard eviction signals on the filesystem holding /var/lib/kubelet."""

    free: float = 0.10
    inodes_free: float = 0.05
    for_: int = 60


@dataclass(frozen=True)
class Reclaim:
    """What the disk guard may do by itself when a filesystem holding logs is critical."""

    enabled: bool = True
    keep_rotated: int = 1
    cooldown: int = 600


@dataclass(frozen=True)
class DiskConfig:
    """The disk guard's config."""

    paths: tuple[str, ...] = ()
    out_of_space: Threshold = field(default_factory=lambda: Threshold(0.05, 0.03, 1800))
    filling_up: FillingUp = field(default_factory=FillingUp)
    files_filling_up: FillingUp = field(default_factory=lambda: FillingUp(for_=3600))
    out_of_files: Threshold = field(default_factory=lambda: Threshold(0.05, 0.03, 3600))
    kubelet_eviction: KubeletEviction = field(default_factory=KubeletEviction)
    window: int = 6 * 3600
    history: int = 7 * 86400
    hysteresis: float = 0.02
    clear_for: int = 300
    top_consumers: int = 5
    consumers_interval: int = 300
    reclaim: Reclaim = field(default_factory=Reclaim)


def _threshold(**values: Any) -> Threshold:
    return Threshold(warning=values["warning"], critical=values["critical"], for_=values["for"])


def _filling_up(**values: Any) -> FillingUp:
    return FillingUp(
        warning=values["warning"],
        critical=values["critical"],
        warning_within=values["warning_within"],
        critical_within=values["critical_within"],
        for_=values["for"],
    )


def _kubelet(**values: Any) -> KubeletEviction:
    return KubeletEviction(
        free=values["free"], inodes_free=values["inodes_free"], for_=values["for"]
    )


def _check_threshold(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    if values["warning"] < values["critical"]:
        return [("warning", "must be at least critical (both are free space left)")]
    return []


def _check_filling_up(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    problems = _check_threshold(values)
    if values["critical_within"] > values["warning_within"]:
        problems.append(("critical_within", "must not be longer than warning_within"))
    if values["critical_within"] <= 0:
        problems.append(("critical_within", "must be longer than 0s"))
    return problems


def _check_disk(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    bad = [p for p in values["paths"] if not p.startswith("/") or "\0" in p]
    problems = [("paths", f"{p!r} is not an absolute path") for p in bad]
    if values["window"] < 120:
        problems.append(("window", "must be at least 2m (a forecast needs history)"))
    if values["history"] < values["window"]:
        problems.append(("history", "must be at least window"))
    return problems


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

OUT_OF_FILES = Section(
    name="out_of_files",
    doc="Almost out of inodes (node-mixin's NodeFilesystemAlmostOutOfFiles): free inodes "
    "below `warning` or `critical` for `for`.",
    build=_threshold,
    check=_check_threshold,
    fields=(
        Field("warning", Kind.PERCENT, "Free inodes below this is a warning.", "5%"),
        Field("critical", Kind.PERCENT, "Free inodes below this is critical.", "3%"),
        Field("for", Kind.DURATION, "How long the condition holds before it fires.", "1h"),
    ),
)


def _filling_section(name: str, what: str, anchor: str, hold: str) -> Section:
    return Section(
        name=name,
        doc=f"{what} filling up (node-mixin's {anchor}): free {what.lower()} below "
        "`warning` and the forecast full within `warning_within` (likewise critical), "
        "for `for`.",
        build=_filling_up,
        check=_check_filling_up,
        fields=(
            Field(
                "warning",
                Kind.PERCENT,
                f"Warning when free {what.lower()} is below this and the forecast says "
                "full within `warning_within`.",
                "40%",
            ),
            Field(
                "critical",
                Kind.PERCENT,
                f"Critical when free {what.lower()} is below this and the forecast says "
                "full within `critical_within`.",
                "20%",
            ),
            Field("warning_within", Kind.DURATION, "Forecast horizon of the warning.", "24h"),
            Field("critical_within", Kind.DURATION, "Forecast horizon of the critical.", "4h"),
            Field("for", Kind.DURATION, "How long the condition holds before it fires.", hold),
        ),
    )


# node-mixin waits 1h; the robust fit allows 30m for space (bench/forecast.py: no false
# alert on the traces even at 0s). Inodes keep node-mixin's hour: no traces measured.
FILLING_UP = _filling_section("filling_up", "Space", "NodeFilesystemSpaceFillingUp", "30m")
FILES_FILLING_UP = _filling_section(
    "files_filling_up", "Inodes", "NodeFilesystemFilesFillingUp", "1h"
)

KUBELET_EVICTION = Section(
    name="kubelet_eviction",
    doc="kubelet's hard eviction thresholds on the filesystem holding kubelet's root "
    "(nodefs; the folder of containers.kubelet_config): below them kubelet evicts pods. "
    "Its own alert (critical), only where that folder exists. Set them to kubelet's "
    "evictionHard values.",
    build=_kubelet,
    fields=(
        Field("free", Kind.PERCENT, "nodefs.available below this.", "10%"),
        Field("inodes_free", Kind.PERCENT, "nodefs.inodesFree below this.", "5%"),
        Field("for", Kind.DURATION, "How long the condition holds before it fires.", "1m"),
    ),
)

RECLAIM = Section(
    name="reclaim",
    doc="Reclaim when critical: while a critical space alert's condition holds on a "
    "filesystem holding the policies' logs or the journal, nodeguard acts at once, in "
    "order: rotate the logs over their max_size, compress pending rotated files, remove "
    "the oldest rotated files beyond `keep_rotated` per log, vacuum the journal to "
    "`journal.retention.floor`. It stops after the step that brings free space back above the "
    "alert's threshold plus `hysteresis`. Live logs and files outside the policies are "
    "never touched. See docs/alerts.md.",
    build=Reclaim,
    fields=(
        Field("enabled", Kind.BOOL, "Reclaim when critical (false: alert only).", True),
        Field(
            "keep_rotated",
            Kind.INT,
            "Rotated files kept per log by the removal step (the minimum retention), "
            "whatever the policy's max_files.",
            1,
            minimum=0,
        ),
        Field(
            "cooldown",
            Kind.DURATION,
            "Least time between two reclaims on one filesystem.",
            "10m",
        ),
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
            "kubelet's root (the folder of containers.kubelet_config) and / are always "
            "watched.",
            [],
            example=["/data"],
        ),
        Field("out_of_space", Kind.SECTION, OUT_OF_SPACE.doc, {}, section=OUT_OF_SPACE),
        Field("filling_up", Kind.SECTION, FILLING_UP.doc, {}, section=FILLING_UP),
        Field("files_filling_up", Kind.SECTION, FILES_FILLING_UP.doc, {}, section=FILES_FILLING_UP),
        Field("out_of_files", Kind.SECTION, OUT_OF_FILES.doc, {}, section=OUT_OF_FILES),
        Field("kubelet_eviction", Kind.SECTION, KUBELET_EVICTION.doc, {}, section=KUBELET_EVICTION),
        Field(
            "window",
            Kind.DURATION,
            "History the forecast fits (node-mixin's predict_linear uses 6h). No "
            "forecast before a sixth of it has been sampled.",
            "6h",
        ),
        Field(
            "history",
            Kind.DURATION,
            "Coarse history (one sample per 10 minutes) kept to tell recurring drops, such "
            "as a daily rotation, from one-off deletes.",
            "7d",
        ),
        Field(
            "hysteresis",
            Kind.PERCENT,
            "A firing space or inode alert resolves only once free space is this much "
            "above its threshold (and a filling-up forecast 1.5 times its horizon away).",
            "2%",
        ),
        Field(
            "clear_for",
            Kind.DURATION,
            "How long the clear condition must hold before a firing alert resolves.",
            "5m",
        ),
        Field(
            "top_consumers",
            Kind.INT,
            "Consumers of the growth named in a filling-up alert.",
            5,
            minimum=1,
            maximum=50,
        ),
        Field(
            "consumers_interval",
            Kind.DURATION,
            "How often the consumers (container logs, policies' logs, the journal) are "
            "measured; disk usage itself is sampled every daemon.disk_interval.",
            "5m",
        ),
        Field("reclaim", Kind.SECTION, RECLAIM.doc, {}, section=RECLAIM),
    ),
)
