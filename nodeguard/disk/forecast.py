"""Seconds until a filesystem is full: a robust fit that jumps and sawtooth cannot fool.

node-mixin fits a least-squares line to 6h of free space (``predict_linear``): one
large delete inside the window flattens the line and hides a disk that keeps filling,
and one image pull tilts it and raises an alert for a disk that stopped growing.
netdata divides the change of the last hour by an hour: the same two faults, sharper.

The method here, on the samples of one window (default 6h), pure and deterministic:

1. **Steps and gaps.** The differences between consecutive samples; a step longer than
   ``GAP_FACTOR`` times the median interval (nodeguard was not running) is a gap: it
   separates segments and counts for nothing.
2. **Jumps.** Each step's residual against the median rate; the scale is the MAD of the
   residuals. A step whose residual exceeds ``JUMP_SIGMAS`` scales and the floor (a
   fraction of the filesystem) is a jump; adjacent jumps of one sign are one event (an
   image pull over three samples is one pull).
3. **Rate between jumps.** Theil-Sen: the median of the slopes of every pair of samples
   within one segment (pairs never straddle a jump or a gap). This is the rate writers
   fill the disk at, whatever was deleted or pulled in between.
4. **Recurring jumps.** Jumps of one sign that recur (two or more events in the window
   and the coarse history of the days before, default 7d) are part of the trend:
   rotation deleting old files every hour is a sawtooth whose long-run rate is the
   growth between drops minus the drops. Their mean size over their mean period
   is added to the rate; the period is estimated conservatively (never shorter than the
   window divided by the number of events), so two deletes a minute apart cannot
   pass for a process freeing space every minute. A jump that happens once is a level
   shift: the current level includes it, the rate does not. A jump undone by an
   opposite one of about its size within the window (a temp file written and
   removed) is a transient and counts for nothing.
5. **Time to full** is the latest free value over the rate, when the rate is filling.

So a one-off delete neither hides a fill (the rate between jumps is unchanged) nor an
image pull causes one (the level moved, the rate did not), and rotation's sawtooth
is read as the flat line it is. bench/forecast.py replays traces of each against
node-mixin's and netdata's rules; docs/alerts.md has the figures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

GAP_FACTOR = 5.0
JUMP_SIGMAS = 8.0
MAD_SCALE = 1.4826
MAX_PAIR_POINTS = 90  # Theil-Sen over at most this many points: about 4000 pairs
MIN_POINTS = 6
MIN_SPAN_FRACTION = 1 / 6  # of the window: no forecast from under 1h of a 6h window
TRANSIENT_MATCH = 0.2  # opposite jumps within 20% of each other cancel out


@dataclass(frozen=True)
class Jump:
    """A sudden change of the free value (positive: space freed)."""

    at: float
    size: float


@dataclass(frozen=True)
class Forecast:
    """The fit of one series: ``rate`` is the free value lost per second (>0: filling)."""

    level: float
    rate: float
    seconds_to_full: float | None
    trend_rate: float  # the rate between jumps
    jumps: tuple[Jump, ...]
    recurring_rate: float  # what recurring jumps add to the free value per second
    points: int
    span: float

    def to_json(self) -> dict[str, object]:
        return {
            "level": self.level,
            "fill_rate_per_s": self.rate,
            "seconds_to_full": self.seconds_to_full,
            "rate_between_jumps": self.trend_rate,
            "recurring_jump_rate": self.recurring_rate,
            "jumps": [{"at": j.at, "size": j.size} for j in self.jumps],
            "points": self.points,
            "span_s": self.span,
        }


@dataclass(frozen=True)
class _Fit:
    level: float
    trend: float  # slope between jumps (per second)
    recurring: float  # what recurring jumps add (per second)
    jumps: tuple[Jump, ...]
    points: int
    span: float


def forecast(
    points: Sequence[tuple[float, float]],
    now: float,
    window: float,
    floor: float,
    history: Sequence[tuple[float, float]] = (),
) -> Forecast | None:
    """Fit the free-value series ``points`` ((time, free), time-ordered) over ``window``.

    ``floor`` is the least change that can count as a jump (a fraction of the
    filesystem). ``history`` is the coarse series of the days before (one point per
    bucket): its jumps tell a daily rotation's drop, longer than any window, from a
    one-off. None when the window holds too little history to say anything.
    """
    fit = _fit(points, now, window=window, floor=floor, history=history, min_points=MIN_POINTS)
    if fit is None:
        return None
    rate = -(fit.trend + fit.recurring)  # the free value falls while the disk fills
    level = fit.level
    seconds = level / rate if rate > 0 and level > 0 else (0.0 if level <= 0 else None)
    return Forecast(
        level=level,
        rate=rate,
        seconds_to_full=seconds,
        trend_rate=-fit.trend,
        jumps=fit.jumps,
        recurring_rate=fit.recurring,
        points=fit.points,
        span=fit.span,
    )


def rate_of(
    points: Sequence[tuple[float, float]],
    now: float,
    window: float,
    floor: float,
    min_points: int = 3,
) -> float | None:
    """The robust rate of change per second of ``points`` (a consumer's bytes), by the
    same fit as :func:`forecast`; None without enough history."""
    fit = _fit(points, now, window=window, floor=floor, history=(), min_points=min_points)
    return None if fit is None else fit.trend + fit.recurring


def _fit(
    points: Sequence[tuple[float, float]],
    now: float,
    *,
    window: float,
    floor: float,
    history: Sequence[tuple[float, float]],
    min_points: int,
) -> _Fit | None:
    pts = [(t, y) for t, y in points if now - window <= t <= now]
    if len(pts) < min_points or pts[-1][0] - pts[0][0] < window * MIN_SPAN_FRACTION:
        return None
    breaks, jumps = _breaks(pts, floor)
    trend = _theil_sen(_segments(pts, breaks))
    if trend is None:
        return None
    older = [p for p in history if p[0] < pts[0][0]]
    start = older[0][0] if older else pts[0][0]
    old_jumps = _breaks(older, floor)[1] if len(older) >= MIN_POINTS else []
    jumps = old_jumps + jumps
    recurring = _recurring_rate(jumps, start, pts[-1][0], window)
    return _Fit(pts[-1][1], trend, recurring, tuple(jumps), len(pts), pts[-1][0] - pts[0][0])


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _breaks(pts: Sequence[tuple[float, float]], floor: float) -> tuple[set[int], list[Jump]]:
    """Indices i where the step from i-1 to i is a gap or a jump; the merged jumps."""
    steps = [(pts[i][0] - pts[i - 1][0], pts[i][1] - pts[i - 1][1]) for i in range(1, len(pts))]
    typical_dt = _median([dt for dt, _ in steps])
    gaps = {i + 1 for i, (dt, _) in enumerate(steps) if dt <= 0 or dt > GAP_FACTOR * typical_dt}
    usable = [(i + 1, dt, dy) for i, (dt, dy) in enumerate(steps) if i + 1 not in gaps]
    if not usable:
        return gaps, []
    rate = _median([dy / dt for _, dt, dy in usable])
    residuals = [(i, dy - rate * dt, dy) for i, dt, dy in usable]
    centre = _median([r for _, r, _ in residuals])
    scale = MAD_SCALE * _median([abs(r - centre) for _, r, _ in residuals])
    limit = max(JUMP_SIGMAS * scale, floor)
    jump_steps = [(i, dy) for i, r, dy in residuals if abs(r - centre) > limit]
    return gaps | {i for i, _ in jump_steps}, _merge_jumps(pts, jump_steps)


def _merge_jumps(pts: Sequence[tuple[float, float]], steps: list[tuple[int, float]]) -> list[Jump]:
    """Adjacent jump steps of one sign are one event (a pull spread over samples)."""
    merged: list[Jump] = []
    last_index = -2
    for index, dy in steps:
        if merged and index == last_index + 1 and (dy > 0) == (merged[-1].size > 0):
            merged[-1] = Jump(merged[-1].at, merged[-1].size + dy)
        else:
            merged.append(Jump(pts[index][0], dy))
        last_index = index
    return merged


def _segments(
    pts: Sequence[tuple[float, float]], breaks: set[int]
) -> list[list[tuple[float, float]]]:
    segments: list[list[tuple[float, float]]] = [[pts[0]]]
    for i in range(1, len(pts)):
        if i in breaks:
            segments.append([])
        segments[-1].append(pts[i])
    return [s for s in segments if len(s) >= 2]


def _theil_sen(segments: list[list[tuple[float, float]]]) -> float | None:
    """Median slope of all pairs within a segment, on an evenly thinned subset."""
    total = sum(len(s) for s in segments)
    if total == 0:
        return None
    stride = max(1, math.ceil(total / MAX_PAIR_POINTS))
    slopes: list[float] = []
    for segment in segments:
        thinned = segment[::stride]
        if thinned[-1] is not segment[-1]:
            thinned.append(segment[-1])
        for i, (ti, yi) in enumerate(thinned):
            slopes.extend((yj - yi) / (tj - ti) for tj, yj in thinned[i + 1 :] if tj > ti)
    return _median(slopes) if slopes else None


def _transients(jumps: Sequence[Jump], window: float) -> set[int]:
    """Indices of jumps undone by an opposite jump of about the same size within
    ``window`` (a temp file created and deleted, an image pulled and collected)."""
    paired: set[int] = set()
    for j, later in enumerate(jumps):
        for i in range(j - 1, -1, -1):
            earlier = jumps[i]
            if later.at - earlier.at > window:
                break
            if i in paired or (earlier.size > 0) == (later.size > 0):
                continue
            big = max(abs(earlier.size), abs(later.size))
            if abs(earlier.size + later.size) <= TRANSIENT_MATCH * big:
                paired |= {i, j}
                break
    return paired


def _recurring_rate(jumps: Sequence[Jump], start: float, end: float, window: float) -> float:
    """What jumps that recur add to the free value per second (0 for one-off jumps)."""
    transient = _transients(jumps, window)
    lasting = [j for index, j in enumerate(jumps) if index not in transient]
    total = 0.0
    for sign in (1, -1):
        group = [j for j in lasting if (j.size > 0) == (sign > 0)]
        n = len(group)
        if n < 2:
            continue
        first, last = group[0].at, group[-1].at
        # Periodic events keep every estimate below at or under their true period; a
        # cluster is stretched over the window instead of read as a fast process.
        period = max((last - first) / (n - 1), (end - first) / n, (last - start) / n)
        if period > 0:
            total += sum(j.size for j in group) / n / period
    return total
