"""Replayed disk traces: free space of a 100 GiB filesystem, one sample a minute.

Each trace is what a node's disk does in a familiar situation, with the truth known:
when (if ever) it becomes full. The forecast tests (tests/disk/test_forecast_traces.py)
and bench/forecast.py replay them through nodeguard's rules and the anchors' rules.
Deterministic: every trace draws its noise from its own seeded generator.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

GIB = 1024**3
MIB = 1024**2
HOUR = 3600
DAY = 86400
TOTAL = 100 * GIB
STEP = 60
T0 = 1_700_000_000.0  # a fixed epoch: traces never read the real clock
WARMUP = 2 * DAY  # history every trace has before it is scored


@dataclass(frozen=True)
class Trace:
    """Free bytes at ``T0 + i * STEP``; ``full_at`` is when free reaches 0 (None: never)."""

    name: str
    description: str
    free: tuple[float, ...]
    full_at: float | None
    total: int = TOTAL
    step: int = STEP
    score_from: float = T0 + WARMUP  # alerts count from here: the node ran for days before

    def points(self) -> list[tuple[float, float]]:
        return [(T0 + i * self.step, f) for i, f in enumerate(self.free)]

    @property
    def fills(self) -> bool:
        return self.full_at is not None


def _series(
    seconds: int, free_at: Callable[[float], float], noise: float, seed: int
) -> tuple[tuple[float, ...], float | None]:
    rng = random.Random(seed)
    out: list[float] = []
    full_at: float | None = None
    for i in range(seconds // STEP + 1):
        t = i * STEP
        value = free_at(t) + rng.gauss(0, noise)
        if value <= 0:
            full_at = T0 + t
            out.append(0.0)
            break
        out.append(min(float(TOTAL), value))
    return tuple(out), full_at


def linear_fill() -> Trace:
    """Two days steady at 55% free, then a runaway writer at 2 GiB/h until full."""

    def free(t: float) -> float:
        return 55 * GIB - max(0.0, t - WARMUP) * 2 * GIB / HOUR

    values, full = _series(4 * DAY, free, 50 * MIB, 1)
    return Trace("linear_fill", "steady, then 2 GiB/h until full", values, full)


def fill_with_delete() -> Trace:
    """2 GiB/h from 45% free; 8h in, with 29% left, someone deletes 10 GiB once."""

    def free(t: float) -> float:
        filled = max(0.0, t - WARMUP) * 2 * GIB / HOUR
        return 45 * GIB - filled + (10 * GIB if t >= WARMUP + 8 * HOUR else 0)

    values, full = _series(4 * DAY, free, 50 * MIB, 2)
    return Trace("fill_with_delete", "2 GiB/h fill, one 10 GiB delete at 29% free", values, full)


def steady_noise() -> Trace:
    """Four days at 25% free with noise and temp files (3 GiB for 20 min, 6 a day)."""
    rng = random.Random(3)
    bursts = sorted(rng.uniform(0, 5 * DAY) for _ in range(30))

    def free(t: float) -> float:
        temp = sum(3 * GIB for b in bursts if b <= t < b + 20 * 60)
        return 25 * GIB - temp

    values, full = _series(5 * DAY, free, 100 * MIB, 4)
    return Trace("steady_noise", "25% free, noise and short-lived temp files", values, full)


def rotation_hourly() -> Trace:
    """Logs grow 3 GiB/h; every hour rotation removes the oldest file (~3 GiB): 17%..14%."""
    rng = random.Random(5)
    after_drop = [17 * GIB + rng.uniform(-0.15, 0.15) * GIB for _ in range(24 * 5 + 1)]

    def free(t: float) -> float:
        return after_drop[int(t // HOUR)] - (t % HOUR) * 3 * GIB / HOUR

    values, full = _series(5 * DAY, free, 30 * MIB, 6)
    return Trace("rotation_hourly", "3 GiB/h of logs, hourly rotation frees them", values, full)


def rotation_daily() -> Trace:
    """Logs grow 1 GiB/h; a daily rotation at 06:25 frees 24 GiB: 35%..11% free."""

    def free(t: float) -> float:
        since = (t - 6.4 * HOUR) % DAY
        return 35 * GIB - since * GIB / HOUR

    values, full = _series(5 * DAY, free, 50 * MIB, 7)
    return Trace("rotation_daily", "1 GiB/h of logs, a daily rotation frees 24 GiB", values, full)


def image_pull() -> Trace:
    """30% free; on day 3 an image pull takes 10 GiB over 4 minutes; then steady."""

    def free(t: float) -> float:
        start = WARMUP + 12 * HOUR
        pulled = min(1.0, max(0.0, (t - start) / 240)) * 10 * GIB
        return 30 * GIB - pulled

    values, full = _series(5 * DAY, free, 50 * MIB, 8)
    return Trace("image_pull", "30% free, one 10 GiB image pull, then steady", values, full)


def fill_under_rotation() -> Trace:
    """After the warm-up, hourly rotation frees only 2.6 of the 3 GiB written each hour."""

    def free(t: float) -> float:
        hours = int(t // HOUR)
        net = max(0, hours - int(WARMUP // HOUR)) * 0.4 * GIB
        return 30 * GIB - net - (t % HOUR) * 3 * GIB / HOUR

    values, full = _series(6 * DAY, free, 30 * MIB, 9)
    return Trace("fill_under_rotation", "hourly sawtooth with a net 0.4 GiB/h fill", values, full)


TRACES: tuple[Callable[[], Trace], ...] = (
    linear_fill,
    fill_with_delete,
    steady_noise,
    rotation_hourly,
    rotation_daily,
    image_pull,
    fill_under_rotation,
)


def all_traces() -> list[Trace]:
    return [make() for make in TRACES]
