"""``nodeguard disk`` and ``nodeguard check`` output: text, a terminal chart, Nagios lines."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from nodeguard.alerts.model import AlertState, Status
from nodeguard.config.sections.disk import DiskConfig
from nodeguard.config.units import format_size
from nodeguard.disk.cycle import DiskResult, FsReport
from nodeguard.disk.rules import consumer_text, duration_text
from nodeguard.exitcodes import Nagios
from nodeguard.rotation.report import printable

CHART_ROWS = 6
CHART_HISTORY = 36
CHART_AHEAD = 12
_BLOCKS = " ▁▂▃▄▅▆▇█"


# --- nodeguard disk ------------------------------------------------------------------------


def render_text(result: DiskResult, chart: bool) -> str:
    lines: list[str] = []
    for report in result.filesystems:
        lines += _fs_text(result, report, chart)
        lines.append("")
    if not result.filesystems:
        lines.append("no filesystem watched")
    problems = [e for e in result.events if str(e.kind) == "problem"]
    lines += [f"note: {e.reason}" for e in problems]
    # Consumers are named by path, and their users choose the names: escaped, no line
    # can be forged and no escape sequence reaches the terminal (as rotation's report).
    return "\n".join(printable(line) for line in lines).rstrip() + "\n"


def _fs_text(result: DiskResult, r: FsReport, chart: bool) -> list[str]:
    fs = r.fs
    lines = [f"{fs.mountpoint} ({fs.device}, {fs.fstype or '?'}) watched for {', '.join(fs.roles)}"]
    u = r.usage
    if u is None:
        return [*lines, "  usage: unreadable"]
    ratio = u.free / u.total if u.total else 1.0
    lines.append(
        f"  space   {format_size(u.free)} free of {format_size(u.total)} ({ratio:.1%} free)"
    )
    if u.inodes_total:
        iratio = u.inodes_free / u.inodes_total
        lines.append(f"  inodes  {u.inodes_free} free of {u.inodes_total} ({iratio:.1%} free)")
    lines.append("  forecast: " + _forecast_line(r, result.window))
    if r.top:
        lines.append("  growth:   " + "; ".join(consumer_text(g) for g in r.top))
    alerts = [a for a in result.alerts_of(fs) if a.status is not Status.RESOLVED]
    for a in alerts:
        lines.append(f"  ALERT {a.alertname} {a.severity} {a.status}: {a.annotations['summary']}")
    if not alerts:
        lines.append("  alerts:   none")
    if r.reclaim is not None:
        steps = ", ".join(f"{s.step} {format_size(s.bytes_freed)}" for s in r.reclaim.steps)
        plain = r.reclaim.left_plain
        held = f" ({plain} rotated left plain: still being written)" if plain else ""
        lines.append(f"  reclaim:  {steps} -> {r.reclaim.free_after:.1%} free{held}")
    if chart and r.window:
        lines += ["  " + row for row in chart_rows(r)]
    return lines


def _forecast_line(r: FsReport, window: int) -> str:
    fc = r.space
    if fc is None:
        have = len(r.window)
        return f"none yet (needs {duration_text(window / 6)} of samples; have {have} samples)"
    if fc.seconds_to_full is None:
        return f"not filling ({_rate(fc.rate)}, robust fit over {duration_text(window)})"
    return (
        f"filling at {_rate(fc.rate)}, full in {duration_text(fc.seconds_to_full)} "
        f"(robust fit over {duration_text(window)}, {fc.points} samples, {len(fc.jumps)} jumps)"
    )


def _rate(per_s: float) -> str:
    sign = "+" if per_s >= 0 else "-"
    return f"{sign}{format_size(int(abs(per_s) * 3600))}/h"


def chart_rows(r: FsReport) -> list[str]:
    """Used space over the window (█) and the projection (░) up to full, in block rows.

    The history columns span the window; the projection columns span from now to full
    (at most four windows ahead), so the two halves have their own time scales.
    """
    u = r.usage
    if u is None or not u.total or not r.window:
        return []
    t0, t1 = r.window[0][0], r.window[-1][0]
    span = max(t1 - t0, 1.0)
    used = [
        _used_at(r.window, t0 + span * (i + 1) / CHART_HISTORY, u.total)
        for i in range(CHART_HISTORY)
    ]
    ahead, reach = _projection(r, span)
    rows = []
    for row in range(CHART_ROWS, 0, -1):
        past = "".join(_cell(v, row) for v in used)
        future = "".join("░" if v * CHART_ROWS - (row - 1) >= 0.5 else " " for v in ahead)
        label = (
            f"{100 * row // CHART_ROWS:3d}% " if row in (CHART_ROWS, CHART_ROWS // 2) else "     "
        )
        rows.append(label + "│" + past + future)
    axis = f"-{duration_text(span)}".ljust(CHART_HISTORY - 3, "─") + "now"
    if ahead:
        axis += f"+{duration_text(reach[0])}{' (full)' if reach[1] else ''}".rjust(CHART_AHEAD, "─")
    rows.append("     └" + axis)
    return rows


def _projection(r: FsReport, span: float) -> tuple[list[float], tuple[float, bool]]:
    fc, u = r.space, r.usage
    if fc is None or fc.rate <= 0 or fc.seconds_to_full is None or u is None:
        return [], (0.0, False)
    horizon = min(fc.seconds_to_full, 4 * span)
    free_now = r.window[-1][1]
    ahead = [
        min(1.0, 1 - max(0.0, free_now - fc.rate * horizon * (i + 1) / CHART_AHEAD) / u.total)
        for i in range(CHART_AHEAD)
    ]
    return ahead, (horizon, horizon >= fc.seconds_to_full)


def _used_at(window: Sequence[tuple[float, int]], t: float, total: int) -> float:
    free = next((f for ts, f in reversed(window) if ts <= t), window[0][1])
    return 1 - free / total


def _cell(value: float, row: int) -> str:
    level = value * CHART_ROWS - (row - 1)
    if level >= 1:
        return "█"
    if level <= 0:
        return " "
    return _BLOCKS[max(1, math.floor(level * 8))]


# --- nodeguard check (Nagios) ----------------------------------------------------------------

STATUS: dict[int, str] = {code: code.name for code in Nagios}  # codes: exitcodes.Nagios


@dataclass(frozen=True)
class FsCheck:
    report: FsReport
    code: int
    alerts: tuple[AlertState, ...]


def check(result: DiskResult) -> tuple[int, list[FsCheck]]:
    """Each filesystem's status from its pending and firing alerts; the worst overall."""
    checks: list[FsCheck] = []
    for r in result.filesystems:
        if r.usage is None:
            checks.append(FsCheck(r, Nagios.UNKNOWN, ()))
            continue
        live = tuple(
            a for a in result.alerts_of(r.fs) if a.status in (Status.PENDING, Status.FIRING)
        )
        code = max(
            (Nagios.CRITICAL if a.severity == "critical" else Nagios.WARNING for a in live),
            default=Nagios.OK,
        )
        checks.append(FsCheck(r, code, live))
    if not checks:
        return Nagios.UNKNOWN, checks
    return max(c.code for c in checks), checks


def nagios_text(result: DiskResult, code: int, checks: Sequence[FsCheck], cfg: DiskConfig) -> str:
    crit = sum(1 for c in checks if c.code == Nagios.CRITICAL)
    warn = sum(1 for c in checks if c.code == Nagios.WARNING)
    head = (
        f"NODEGUARD DISK {STATUS[code]} - {crit} critical, {warn} warning, "
        f"{len(checks)} filesystems"
    )
    return "\n".join([head, *(printable(_nagios_line(c, cfg)) for c in checks)]) + "\n"


def _nagios_line(c: FsCheck, cfg: DiskConfig) -> str:
    r = c.report
    mp = r.fs.mountpoint
    u = r.usage
    if u is None:
        return f"UNKNOWN - {mp}: usage unreadable"
    ratio = u.free / u.total if u.total else 1.0
    fc = r.space
    ttf = (
        ""
        if fc is None or fc.seconds_to_full is None
        else f", full in {duration_text(fc.seconds_to_full)}"
    )
    names = ", ".join(sorted({a.alertname for a in c.alerts}))
    why = f": {names}" if names else ""
    status = f"{STATUS[c.code]} - {mp}: {ratio:.1%} free ({format_size(u.free)}){ttf}{why}"
    return f"{status} | {perfdata(c, cfg)}"


def perfdata(c: FsCheck, cfg: DiskConfig) -> str:
    """Nagios perfdata: avail bytes and inodes, with warn/crit as "alert below" ranges
    (``N:``) from disk.out_of_space and disk.out_of_files; seconds to full with the
    filling-up horizons."""
    r = c.report
    u = r.usage
    if u is None:
        return ""
    label = r.fs.mountpoint.replace("'", "_").replace("=", "_")
    space = cfg.out_of_space
    warn, crit = int(space.warning * u.total), int(space.critical * u.total)
    parts = [f"'{label} avail'={u.free}B;{warn}:;{crit}:;0;{u.total}"]
    if u.inodes_total:
        files = cfg.out_of_files
        iwarn, icrit = int(files.warning * u.inodes_total), int(files.critical * u.inodes_total)
        parts.append(f"'{label} inodes_free'={u.inodes_free};{iwarn}:;{icrit}:;0;{u.inodes_total}")
    fc = r.space
    if fc is not None and fc.seconds_to_full is not None:
        fu = cfg.filling_up
        parts.append(
            f"'{label} seconds_to_full'={int(fc.seconds_to_full)}s;"
            f"{fu.warning_within}:;{fu.critical_within}:;0;"
        )
    return " ".join(parts)


def check_json(result: DiskResult, code: int, checks: Sequence[FsCheck]) -> dict[str, Any]:
    return {
        "status": STATUS[code],
        "code": code,
        "at": datetime.fromtimestamp(result.at, UTC).isoformat(),
        "filesystems": [
            {
                "mountpoint": c.report.fs.mountpoint,
                "status": STATUS[c.code],
                "avail_ratio": (c.report.usage.free / c.report.usage.total)
                if c.report.usage and c.report.usage.total
                else None,
                "seconds_to_full": c.report.space.seconds_to_full if c.report.space else None,
                "alerts": [
                    {"alertname": a.alertname, "severity": a.severity, "state": str(a.status)}
                    for a in c.alerts
                ],
            }
            for c in checks
        ],
    }
