"""Usage samples kept in the state folder, so a restart keeps the history a forecast needs.

Two documents through the state-file API: ``disk-samples.json`` holds every sample of
the forecast window (and a margin) per filesystem; ``disk-history.json`` one sample
per 10-minute bucket for ``disk.history`` (7 days), written only when a bucket
closes. Both are bounded in points and filesystems, validated on load (a bad series
is dropped and reported, never trusted), and a cache: losing them costs history,
nothing else.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeGuard

from nodeguard.state import StateDocument

SAMPLES_NAME = "disk-samples.json"
HISTORY_NAME = "disk-history.json"
BUCKET = 600  # seconds per coarse history point
MAX_FINE = 3000
MAX_COARSE = 2100
MAX_FILESYSTEMS = 64
MIN_SPACING = 1.0  # samples closer than this to the previous one are not kept
WINDOW_MARGIN = 1.25  # the fine series keeps this many windows


@dataclass(frozen=True)
class Sample:
    """One reading of a filesystem (bytes and inodes free to unprivileged users)."""

    t: float
    free: int
    ifree: int
    total: int
    itotal: int


@dataclass(frozen=True)
class Series:
    """The samples of one filesystem, oldest first."""

    t: tuple[float, ...] = ()
    free: tuple[int, ...] = ()
    ifree: tuple[int, ...] = ()
    total: int = 0
    itotal: int = 0

    def points(self, which: str = "free") -> list[tuple[float, float]]:
        values = self.free if which == "free" else self.ifree
        return [(t, float(v)) for t, v in zip(self.t, values, strict=True)]

    def last(self) -> float | None:
        return self.t[-1] if self.t else None

    def append(self, s: Sample) -> Series:
        return Series(
            (*self.t, s.t), (*self.free, s.free), (*self.ifree, s.ifree), s.total, s.itotal
        )

    def since(self, start: float) -> Series:
        i = next((n for n, t in enumerate(self.t) if t >= start), len(self.t))
        return replace(self, t=self.t[i:], free=self.free[i:], ifree=self.ifree[i:])

    def before(self, end: float) -> Series:
        i = next((n for n, t in enumerate(self.t) if t > end), len(self.t))
        return replace(self, t=self.t[:i], free=self.free[:i], ifree=self.ifree[:i])

    def capped(self, limit: int) -> Series:
        """At most ``limit`` points: the older half thinned to every other point."""
        series = self
        while len(series.t) > limit:
            half = len(series.t) // 2
            keep = [i for i in range(len(series.t)) if i >= half or i % 2 == 0]
            series = replace(
                series,
                t=tuple(series.t[i] for i in keep),
                free=tuple(series.free[i] for i in keep),
                ifree=tuple(series.ifree[i] for i in keep),
            )
        return series

    def to_json(self) -> dict[str, Any]:
        return {
            "t": [round(t, 3) for t in self.t],
            "free": list(self.free),
            "ifree": list(self.ifree),
            "total": self.total,
            "itotal": self.itotal,
        }


def add_sample(series: Series, s: Sample, keep: float) -> Series:
    """``series`` with ``s`` appended, trimmed to ``keep`` seconds and MAX_FINE points."""
    last = series.last()
    if last is not None and s.t < last:
        series = series.before(s.t)  # the clock stepped back: forget the "future"
        last = series.last()
    if last is not None and s.t - last < MIN_SPACING:
        return series
    return series.append(s).since(s.t - keep).capped(MAX_FINE)


def add_coarse(series: Series, s: Sample, keep: float) -> Series:
    """One point per BUCKET: ``s`` is added only when it opens a new bucket."""
    last = series.last()
    if last is not None and s.t < last:
        series = series.before(s.t)
        last = series.last()
    if last is not None and math.floor(s.t / BUCKET) <= math.floor(last / BUCKET):
        return series
    return series.append(s).since(s.t - keep).capped(MAX_COARSE)


@dataclass(frozen=True)
class SampleStore:
    """The fine and coarse series of every filesystem, as loaded or about to be saved."""

    fine: Mapping[str, Series]
    coarse: Mapping[str, Series]

    def add(self, key: str, s: Sample, window: int, history: int) -> tuple[SampleStore, bool]:
        """Add ``s``; the flag says whether the coarse history changed (save it)."""
        fine = dict(self.fine)
        coarse = dict(self.coarse)
        fine[key] = add_sample(fine.get(key, Series()), s, window * WINDOW_MARGIN)
        before = coarse.get(key, Series())
        coarse[key] = add_coarse(before, s, history)
        return SampleStore(fine, coarse), coarse[key] is not before

    def prune(self, keys: set[str], now: float, history: int) -> SampleStore:
        """Forget filesystems not watched for a whole history; keep at most MAX_FILESYSTEMS."""

        def alive(key: str, series: Series) -> bool:
            last = series.last()
            return key in keys or (last is not None and now - last < history)

        fine = {k: v for k, v in self.fine.items() if alive(k, v)}
        coarse = {k: v for k, v in self.coarse.items() if alive(k, v)}
        newest = sorted(fine, key=lambda k: fine[k].last() or 0, reverse=True)[:MAX_FILESYSTEMS]
        return SampleStore(
            {k: fine[k] for k in newest}, {k: v for k, v in coarse.items() if k in newest}
        )


EMPTY_STORE = SampleStore({}, {})


def _docs(state_dir: Path) -> tuple[StateDocument, StateDocument]:
    return (
        StateDocument(state_dir / SAMPLES_NAME, "disk-samples"),
        StateDocument(state_dir / HISTORY_NAME, "disk-history"),
    )


def load_store(state_dir: Path) -> tuple[SampleStore, list[str]]:
    """The stored series; problems name the file and what was wrong (then dropped)."""
    problems: list[str] = []
    parts: list[dict[str, Series]] = []
    for doc in _docs(state_dir):
        loaded = doc.load()
        if loaded.problem:
            problems.append(f"{loaded.problem}; disk history restarts")
        series, bad = _parse_all((loaded.data or {}).get("fs"))
        problems += [f"{doc.path}: series {k!r} is malformed; dropped" for k in bad]
        parts.append(series)
    return SampleStore(parts[0], parts[1]), problems


def save_store(state_dir: Path, store: SampleStore, coarse_changed: bool) -> None:
    fine_doc, coarse_doc = _docs(state_dir)
    fine_doc.save({"fs": {k: v.to_json() for k, v in store.fine.items()}})
    if coarse_changed or not coarse_doc.path.exists():
        coarse_doc.save({"fs": {k: v.to_json() for k, v in store.coarse.items()}})


def _parse_all(raw: object) -> tuple[dict[str, Series], list[str]]:
    if not isinstance(raw, dict):
        return {}, []
    good: dict[str, Series] = {}
    bad: list[str] = []
    for key, value in list(raw.items())[:MAX_FILESYSTEMS]:
        series = parse_series(value)
        if series is None or not isinstance(key, str) or len(key) > 4096:
            bad.append(str(key)[:200])
        else:
            good[key] = series
    return good, bad


def parse_series(value: object) -> Series | None:
    """A stored series, or None unless every field is sane (sorted, finite, same length)."""
    if not isinstance(value, dict):
        return None
    t = _floats(value.get("t"))
    free = _counts(value.get("free"))
    ifree = _counts(value.get("ifree"))
    total, itotal = value.get("total"), value.get("itotal")
    if t is None or free is None or ifree is None:
        return None
    if not (len(t) == len(free) == len(ifree) <= MAX_FINE + MAX_COARSE):
        return None
    if any(b < a for a, b in itertools.pairwise(t)):
        return None
    if not _count(total) or not _count(itotal):
        return None
    return Series(t, free, ifree, total, itotal)


def _floats(values: object) -> tuple[float, ...] | None:
    if not isinstance(values, list):
        return None
    out: list[float] = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            return None
        out.append(float(v))
    return tuple(out)


def _counts(values: object) -> tuple[int, ...] | None:
    if not isinstance(values, list):
        return None
    if not all(_count(v) for v in values):
        return None
    return tuple(int(v) for v in values)


def _count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
