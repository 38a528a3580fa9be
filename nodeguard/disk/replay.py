"""Replay a recorded free-space series through the space rules, as the daemon would.

The same forecast, rules and lifecycle as :func:`nodeguard.disk.cycle.disk_cycle`,
without the I/O: one evaluation every ``every`` seconds over the samples so far (the
fine window and the coarse 10-minute history), so days of samples replay in seconds.
Tests and bench/forecast.py use it to measure lead times and false alerts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from nodeguard.alerts import lifecycle
from nodeguard.alerts.model import AlertState, Status
from nodeguard.config.sections.disk import DiskConfig
from nodeguard.disk import rules
from nodeguard.disk.filesystems import Filesystem
from nodeguard.disk.forecast import forecast
from nodeguard.disk.samples import BUCKET, WINDOW_MARGIN
from nodeguard.world import DiskUsage

JUMP_FLOOR = 0.001
SPACE_ALERTS = (rules.SPACE_FILLING_UP, rules.ALMOST_OUT_OF_SPACE)
_FS = Filesystem("replay@/", "/", "replay", "ext4", 0, "/", ("logs",), ("/",))


@dataclass(frozen=True)
class Episode:
    """One alert from firing to resolution (``resolved`` None: still firing at the end)."""

    alertname: str
    severity: str
    fired: float
    resolved: float | None


def replay(
    points: Sequence[tuple[float, float]],
    total: int,
    cfg: DiskConfig,
    *,
    every: int = 60,
    alerts: Sequence[str] = SPACE_ALERTS,
) -> list[Episode]:
    """The firing episodes of the space rules over ``points`` ((time, free bytes))."""
    states: dict[str, AlertState] = {}
    open_: dict[str, Episode] = {}
    done: list[Episode] = []
    coarse: list[tuple[float, float]] = []
    start = 0
    last_eval = -math.inf
    for i, (now, free) in enumerate(points):
        if not coarse or math.floor(now / BUCKET) > math.floor(coarse[-1][0] / BUCKET):
            coarse.append((now, free))
        if now - last_eval < every:
            continue
        last_eval = now
        while points[start][0] < now - cfg.window * WINDOW_MARGIN:
            start += 1
        history = [p for p in coarse if p[0] >= now - cfg.history]
        space = forecast(points[start : i + 1], now, cfg.window, JUMP_FLOOR * total, history)
        usage = DiskUsage(total, total - int(free), int(free), 0, 0)
        view = rules.FsView(_FS, usage, space, None)
        conds = [
            c for c in rules.conditions(view, cfg, {"node": "replay"}) if _wanted(c.key, alerts)
        ]
        states, notes = lifecycle.advance(states, conds, now, cfg.clear_for)
        for note in notes:
            name, severity = note.labels["alertname"], note.labels["severity"]
            if note.status is Status.FIRING:
                open_[note.key] = Episode(name, severity, now, None)
            elif note.key in open_:
                episode = open_.pop(note.key)
                done.append(Episode(name, severity, episode.fired, now))
    return sorted(done + list(open_.values()), key=lambda e: e.fired)


def _wanted(key: str, alerts: Sequence[str]) -> bool:
    return key.split("|", 1)[0] in alerts
