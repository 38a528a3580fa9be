"""The disk guard's alert rules: node-mixin's set, kubelet's eviction, and the reason.

Each rule turns one filesystem's usage and forecasts into a
:class:`~nodeguard.alerts.model.Condition` per severity; the lifecycle adds ``for``
and the pending/firing/resolved states. Every rule has hysteresis: it fires below
its threshold and clears only ``disk.hysteresis`` above it (a filling-up forecast
clears once it is 1.5 times its horizon away). Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from nodeguard.alerts.model import Condition
from nodeguard.config.sections.disk import DiskConfig, FillingUp, Threshold
from nodeguard.config.units import format_size
from nodeguard.disk.consumers import Growth
from nodeguard.disk.filesystems import Filesystem
from nodeguard.disk.forecast import Forecast
from nodeguard.world import DiskUsage

SPACE_FILLING_UP = "NodeguardFilesystemSpaceFillingUp"
ALMOST_OUT_OF_SPACE = "NodeguardFilesystemAlmostOutOfSpace"
FILES_FILLING_UP = "NodeguardFilesystemFilesFillingUp"
ALMOST_OUT_OF_FILES = "NodeguardFilesystemAlmostOutOfFiles"
KUBELET_EVICTION = "NodeguardKubeletEvictionThreshold"
RECLAIM_INSUFFICIENT = "NodeguardReclaimInsufficient"
HORIZON_CLEAR = 1.5  # a filling-up alert clears once full is this many horizons away

FS_ALERTS = (
    SPACE_FILLING_UP,
    ALMOST_OUT_OF_SPACE,
    FILES_FILLING_UP,
    ALMOST_OUT_OF_FILES,
    KUBELET_EVICTION,
    RECLAIM_INSUFFICIENT,
)


@dataclass(frozen=True)
class FsView:
    """One filesystem as the rules see it this evaluation."""

    fs: Filesystem
    usage: DiskUsage
    space: Forecast | None
    inodes: Forecast | None
    top: tuple[Growth, ...] = ()
    reclaim_short: str | None = None  # why the last reclaim fell short, while it matters
    reclaim_target: float | None = None

    @property
    def free_ratio(self) -> float:
        return self.usage.free / self.usage.total if self.usage.total else 1.0

    @property
    def inodes_ratio(self) -> float | None:
        total = self.usage.inodes_total
        return self.usage.inodes_free / total if total else None


def fs_labels(view: FsView, base: Mapping[str, str]) -> dict[str, str]:
    return {
        **base,
        "mountpoint": view.fs.mountpoint,
        "device": view.fs.device,
        "fstype": view.fs.fstype,
    }


def conditions(view: FsView, cfg: DiskConfig, base: Mapping[str, str]) -> list[Condition]:
    """Every rule's conditions for one filesystem."""
    labels = fs_labels(view, base)
    out = _filling(view, cfg, labels, "space") + _threshold(view, cfg, labels, "space")
    if view.inodes_ratio is not None:
        out += _filling(view, cfg, labels, "inodes") + _threshold(view, cfg, labels, "inodes")
    if "kubelet" in view.fs.roles:
        out.append(_kubelet(view, cfg, labels))
    out.append(_reclaim(view, labels))
    return out


def critical_targets(view: FsView, cfg: DiskConfig) -> list[float]:
    """The free ratios the critical space conditions now holding want back (reclaim)."""
    targets: list[float] = []
    fc = view.space
    ttf = fc.seconds_to_full if fc else None
    free = view.free_ratio
    fu = cfg.filling_up
    if free < fu.critical and ttf is not None and ttf < fu.critical_within:
        targets.append(fu.critical + cfg.hysteresis)
    if free < cfg.out_of_space.critical:
        targets.append(cfg.out_of_space.critical + cfg.hysteresis)
    if "kubelet" in view.fs.roles and free < cfg.kubelet_eviction.free:
        targets.append(cfg.kubelet_eviction.free + cfg.hysteresis)
    return targets


def _key(alertname: str, severity: str, fs: Filesystem) -> str:
    return f"{alertname}|{severity}|{fs.key}"


def _filling(view: FsView, cfg: DiskConfig, labels: dict[str, str], what: str) -> list[Condition]:
    rule: FillingUp = cfg.filling_up if what == "space" else cfg.files_filling_up
    name = SPACE_FILLING_UP if what == "space" else FILES_FILLING_UP
    ratio = view.free_ratio if what == "space" else view.inodes_ratio or 1.0
    fc = view.space if what == "space" else view.inodes
    ttf = fc.seconds_to_full if fc else None
    out: list[Condition] = []
    for severity, limit, horizon in (
        ("warning", rule.warning, rule.warning_within),
        ("critical", rule.critical, rule.critical_within),
    ):
        active = ratio < limit and ttf is not None and ttf < horizon
        clear = ratio >= limit + cfg.hysteresis or ttf is None or ttf >= horizon * HORIZON_CLEAR
        out.append(
            Condition(
                key=_key(name, severity, view.fs),
                labels={**labels, "alertname": name, "severity": severity},
                annotations=_filling_text(
                    view, what, ratio, fc, horizon=horizon, window=cfg.window
                ),
                active=active,
                clear=clear,
                for_=rule.for_,
                value=ttf,
            )
        )
    return out


def _threshold(view: FsView, cfg: DiskConfig, labels: dict[str, str], what: str) -> list[Condition]:
    rule: Threshold = cfg.out_of_space if what == "space" else cfg.out_of_files
    name = ALMOST_OUT_OF_SPACE if what == "space" else ALMOST_OUT_OF_FILES
    ratio = view.free_ratio if what == "space" else view.inodes_ratio or 1.0
    out: list[Condition] = []
    for severity, limit in (("warning", rule.warning), ("critical", rule.critical)):
        out.append(
            Condition(
                key=_key(name, severity, view.fs),
                labels={**labels, "alertname": name, "severity": severity},
                annotations=_threshold_text(view, what, ratio, limit),
                active=ratio < limit,
                clear=ratio >= limit + cfg.hysteresis,
                for_=rule.for_,
                value=ratio,
            )
        )
    return out


def _kubelet(view: FsView, cfg: DiskConfig, labels: dict[str, str]) -> Condition:
    rule = cfg.kubelet_eviction
    inodes = view.inodes_ratio
    low_space = view.free_ratio < rule.free
    low_inodes = inodes is not None and inodes < rule.inodes_free
    clear = view.free_ratio >= rule.free + cfg.hysteresis and (
        inodes is None or inodes >= rule.inodes_free + cfg.hysteresis
    )
    mp = view.fs.mountpoint
    summary = f"{mp} is below kubelet's eviction threshold: kubelet evicts pods"
    description = (
        f"nodefs.available {view.free_ratio:.1%} (threshold {rule.free:.0%})"
        + (f", nodefs.inodesFree {inodes:.1%} (threshold {rule.inodes_free:.0%})" if inodes else "")
        + ". kubelet frees space by evicting pods, not by removing logs."
        + _top_text(view.top)
    )
    return Condition(
        key=_key(KUBELET_EVICTION, "critical", view.fs),
        labels={**labels, "alertname": KUBELET_EVICTION, "severity": "critical"},
        annotations={"summary": summary, "description": description},
        active=low_space or low_inodes,
        clear=clear,
        for_=rule.for_,
        value=view.free_ratio,
    )


def _reclaim(view: FsView, labels: dict[str, str]) -> Condition:
    target = view.reclaim_target or 0.0
    short = view.reclaim_short is not None
    return Condition(
        key=_key(RECLAIM_INSUFFICIENT, "critical", view.fs),
        labels={**labels, "alertname": RECLAIM_INSUFFICIENT, "severity": "critical"},
        annotations={
            "summary": f"Reclaiming log space on {view.fs.mountpoint} could not bring free "
            f"space back above {target:.0%}",
            "description": (view.reclaim_short or "") + _top_text(view.top),
        },
        active=short,
        clear=not short,
        for_=0,
        value=view.free_ratio,
    )


# --- the words -------------------------------------------------------------------------


def duration_text(seconds: float) -> str:
    if seconds < 3600:
        return f"{max(1, round(seconds / 60))}m"
    if seconds < 48 * 3600:
        hours, rest = divmod(round(seconds / 60), 60)
        return f"{hours}h{rest:02d}m" if rest else f"{hours}h"
    return f"{seconds / 86400:.1f}d"


def _amount(value: float, what: str) -> str:
    return format_size(int(value)) if what == "space" else f"{int(value)} inodes"


def _forecast_text(fc: Forecast | None, what: str, window: int | None) -> str:
    if fc is None:
        return " No forecast yet (not enough history)."
    fit = f" (robust fit over {duration_text(window)})" if window else ""
    if fc.seconds_to_full is None:
        return f" Not filling{fit}."
    return (
        f" Filling at {_amount(fc.rate * 3600, what)}/h: full in "
        f"{duration_text(fc.seconds_to_full)}{fit}."
    )


def _filling_text(
    view: FsView, what: str, ratio: float, fc: Forecast | None, *, horizon: int, window: int
) -> dict[str, str]:
    noun = "space" if what == "space" else "inodes"
    mp = view.fs.mountpoint
    summary = f"{mp} is predicted to run out of {noun} within {duration_text(horizon)}"
    description = (
        f"{ratio:.1%} {noun} free{_of(view, what)}."
        + _forecast_text(fc, what, window)
        + _top_text(view.top)
    )
    return {"summary": summary, "description": description}


def _threshold_text(view: FsView, what: str, ratio: float, limit: float) -> dict[str, str]:
    noun = "space" if what == "space" else "inodes"
    fc = view.space if what == "space" else view.inodes
    summary = f"{view.fs.mountpoint} has only {ratio:.1%} {noun} left"
    description = (
        f"{ratio:.1%} {noun} free{_of(view, what)} (threshold {limit:.0%})."
        + (_forecast_text(fc, what, None) if fc else "")
        + _top_text(view.top)
    )
    return {"summary": summary, "description": description}


def _of(view: FsView, what: str) -> str:
    u = view.usage
    if what == "space":
        return f" ({format_size(u.free)} of {format_size(u.total)})"
    return f" ({u.inodes_free} of {u.inodes_total})"


def consumer_text(g: Growth) -> str:
    rate = f"+{format_size(int(g.rate * 3600))}/h"
    if g.kind == "container":
        return f"{g.name} (container log) {rate}"
    if g.kind == "log":
        return f"{g.name} (policy {g.labels.get('policy', '?')}) {rate}"
    if g.kind == "policy":
        return f"{g.labels.get('files', '?')} other log files of policy {g.name} {rate}"
    return f"{g.name} {rate}"


def _top_text(top: Sequence[Growth]) -> str:
    if not top:
        return ""
    return " Top consumers of the growth: " + "; ".join(consumer_text(g) for g in top) + "."
