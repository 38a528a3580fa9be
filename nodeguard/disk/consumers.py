"""Who fills the disk: byte counts of the known consumers, and their growth rates.

Consumers are the container logs (per container, from the containers inventory:
namespace/pod/container for kubelet's layout, the name for Docker's), the policies'
log files (the live file and its rotated siblings, per log: the ``TOP_FILES`` largest
on their own, the rest summed per policy and device as they are measured, so a node
with 10,000 logs keeps a few dozen entries, not one per file), and the journal. Each is
measured every ``disk.consumers_interval`` and kept as a short series per consumer in
``disk-consumers.json``; its rate over the window comes from the same robust fit as
the filesystem's forecast (rotation's drops do not count as growth). What the
filesystem grew beyond the named consumers is reported as ``other``.
"""

from __future__ import annotations

import heapq
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from nodeguard.config.model import Config
from nodeguard.disk.forecast import rate_of
from nodeguard.state import StateDocument

if TYPE_CHECKING:
    from nodeguard.rotation.scan import DirMatch

CONSUMERS_NAME = "disk-consumers.json"
MAX_CONSUMERS = 500
TOP_FILES = 50  # policy log files named on their own; the others are summed per policy
MAX_POINTS = 400
JOURNAL_FILES_MAX = 100_000


@dataclass(frozen=True)
class Consumer:
    """One measured consumer: what it is, on which device, how many bytes now."""

    id: str
    kind: str  # container | log | policy (a policy's other files) | journal
    name: str
    dev: int
    bytes: int
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", MappingProxyType(dict(self.labels)))


@dataclass(frozen=True)
class Growth:
    """A consumer's growth over the window (bytes per second; negative: shrinking)."""

    id: str
    kind: str
    name: str
    rate: float
    bytes: int
    labels: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "bytes_per_s": self.rate,
            "bytes": self.bytes,
            "labels": dict(self.labels),
        }


def measure(config: Config, journal_dir: str, now: float) -> tuple[list[Consumer], list[str]]:
    """Every consumer's bytes now; problems are reported, never fatal."""
    problems: list[str] = []
    containers, claimed = _containers(config, now, problems)
    logs = _policy_logs(config, claimed, problems)
    journal = _journal(journal_dir, problems)
    return containers + logs + journal, problems


def _containers(config: Config, now: float, problems: list[str]) -> tuple[list[Consumer], set[str]]:
    from nodeguard.containers.inventory import take_inventory
    from nodeguard.containers.samples import EMPTY

    try:
        inventory = take_inventory(config, EMPTY, now)
    except OSError as exc:
        problems.append(f"container inventory: {exc}")
        return [], set()
    out: list[Consumer] = []
    claimed: set[str] = set()
    for row in inventory.containers:
        if not row.files:
            continue
        claimed.update(f.path for f in row.files)
        dev = _dev(row.files[0].path)
        if dev is None:
            continue
        labels = {
            k: v
            for k, v in (
                ("namespace", row.namespace),
                ("pod", row.pod),
                ("container", row.container),
            )
            if v
        }
        out.append(
            Consumer(f"container:{row.key}", "container", row.name, dev, row.total_bytes, labels)
        )
    return out, claimed


def _dev(path: str) -> int | None:
    try:
        return os.lstat(path).st_dev
    except OSError:
        return None


def _policy_logs(config: Config, claimed: set[str], problems: list[str]) -> list[Consumer]:
    """The ``TOP_FILES`` largest policy logs, and each policy's other logs summed per
    device (one entry per policy and device, whatever the number of files)."""
    from nodeguard.rotation import scan

    def problem(path: str, kind: scan.ScanProblem, reason: str) -> None:
        if len(problems) < 50:
            problems.append(scan.describe(path, kind, reason))

    tally = _Tally()
    for policy in config.policies:
        for pattern in policy.paths:
            for match in scan.expand(pattern, problem):
                _tally_match(tally, policy.name, match, claimed)
    return tally.consumers()


def _tally_match(tally: _Tally, policy: str, match: DirMatch, claimed: set[str]) -> None:
    from nodeguard.rotation import naming

    directory = match.directory
    listing = match.listing
    if listing is None:
        try:
            listing = os.listdir(directory.fd)
        except OSError:
            listing = []
    rotated: dict[str, list[str]] = {}
    for name in listing:
        parsed = naming.parse(name)
        if parsed is not None:
            rotated.setdefault(parsed.base, []).append(name)
    for name, st in match.files.items():
        if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) in tally.seen:
            continue
        path = f"{directory.path}/{name}"
        if path in claimed:
            continue
        tally.seen.add((st.st_dev, st.st_ino))
        size = st.st_size + _sizes(directory.fd, rotated.get(name, []))
        tally.add(policy, path, st.st_dev, size)


class _Tally:
    """The largest files kept apart (a bounded heap); the others summed per policy."""

    def __init__(self) -> None:
        self.seen: set[tuple[int, int]] = set()  # (dev, ino): a file matched twice counts once
        self.top: list[tuple[int, str, str, int]] = []  # (bytes, path, policy, dev)
        self.rest: dict[tuple[str, int], list[int]] = {}  # (policy, dev) -> [bytes, files]

    def add(self, policy: str, path: str, dev: int, size: int) -> None:
        item = (size, path, policy, dev)
        if len(self.top) < TOP_FILES:
            heapq.heappush(self.top, item)
            return
        if item > self.top[0]:
            item = heapq.heapreplace(self.top, item)
        total = self.rest.setdefault((item[2], item[3]), [0, 0])
        total[0] += item[0]
        total[1] += 1

    def consumers(self) -> list[Consumer]:
        out = [
            Consumer(f"log:{path}", "log", path, dev, size, {"policy": policy, "path": path})
            for size, path, policy, dev in sorted(self.top, reverse=True)
        ]
        for (policy, dev), (size, files) in sorted(self.rest.items()):
            labels = {"policy": policy, "files": str(files)}
            out.append(Consumer(f"policy:{policy}:{dev}", "policy", policy, dev, size, labels))
        return out


def _sizes(dir_fd: int, names: Sequence[str]) -> int:
    total = 0
    for name in names:
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            total += st.st_size
    return total


def _journal(directory: str, problems: list[str]) -> list[Consumer]:
    """The journal folder's bytes (its files and one level of machine-id folders)."""
    try:
        st = os.stat(directory)
    except OSError:
        return []
    total, seen = 0, 0
    stack = [(directory, 0)]
    while stack and seen < JOURNAL_FILES_MAX:
        path, depth = stack.pop()
        try:
            entries = list(os.scandir(path))
        except OSError as exc:
            problems.append(f"{path}: cannot list: {exc.strerror}")
            continue
        for entry in entries:
            seen += 1
            try:
                est = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISREG(est.st_mode):
                total += est.st_blocks * 512
            elif stat.S_ISDIR(est.st_mode) and depth < 2 and est.st_dev == st.st_dev:
                stack.append((entry.path, depth + 1))
    return [Consumer("journal", "journal", "journal", st.st_dev, total, {"path": directory})]


# --- the stored series --------------------------------------------------------------


@dataclass(frozen=True)
class ConsumerSeries:
    kind: str
    name: str
    dev: int
    labels: Mapping[str, str]
    points: tuple[tuple[float, int], ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "dev": self.dev,
            "labels": dict(self.labels),
            "t": [round(t, 3) for t, _ in self.points],
            "bytes": [b for _, b in self.points],
        }


@dataclass(frozen=True)
class ConsumerStore:
    at: float | None
    series: Mapping[str, ConsumerSeries]

    def due(self, now: float, interval: int) -> bool:
        return self.at is None or now - self.at >= interval or now < self.at

    def add(self, consumers: Sequence[Consumer], now: float, keep: float) -> ConsumerStore:
        """This measurement added; old points, absent consumers and the smallest beyond
        MAX_CONSUMERS dropped."""
        merged: dict[str, ConsumerSeries] = {}
        for c in consumers:
            old = self.series.get(c.id)
            points = (*(old.points if old else ()), (now, c.bytes))
            merged[c.id] = ConsumerSeries(c.kind, c.name, c.dev, c.labels, _trim(points, now, keep))
        for cid, old in self.series.items():
            if cid not in merged:
                trimmed = _trim(old.points, now, keep)
                if trimmed:
                    merged[cid] = ConsumerSeries(old.kind, old.name, old.dev, old.labels, trimmed)
        largest = sorted(merged, key=lambda k: merged[k].points[-1][1], reverse=True)
        return ConsumerStore(now, {k: merged[k] for k in largest[:MAX_CONSUMERS]})


def _trim(
    points: tuple[tuple[float, int], ...], now: float, keep: float
) -> tuple[tuple[float, int], ...]:
    return tuple(p for p in points if now - keep <= p[0] <= now)[-MAX_POINTS:]


def _doc(state_dir: Path) -> StateDocument:
    return StateDocument(state_dir / CONSUMERS_NAME, "disk-consumers")


def load_consumers(state_dir: Path) -> tuple[ConsumerStore, list[str]]:
    loaded = _doc(state_dir).load()
    problems = [f"{loaded.problem}; consumer history restarts"] if loaded.problem else []
    data = loaded.data or {}
    at = data.get("at")
    raw = data.get("series")
    series: dict[str, ConsumerSeries] = {}
    if isinstance(raw, dict):
        for cid, value in list(raw.items())[:MAX_CONSUMERS]:
            parsed = _parse(value)
            if isinstance(cid, str) and parsed is not None:
                series[cid] = parsed
    good_at = float(at) if isinstance(at, int | float) and not isinstance(at, bool) else None
    return ConsumerStore(good_at, series), problems


def save_consumers(state_dir: Path, store: ConsumerStore) -> None:
    _doc(state_dir).save(
        {"at": store.at, "series": {k: v.to_json() for k, v in store.series.items()}}
    )


def _parse(value: object) -> ConsumerSeries | None:
    if not isinstance(value, dict):
        return None
    kind, name, dev, labels = (value.get(k) for k in ("kind", "name", "dev", "labels"))
    points = _points(value.get("t"), value.get("bytes"))
    if not (isinstance(kind, str) and isinstance(name, str) and isinstance(labels, dict)):
        return None
    if isinstance(dev, bool) or not isinstance(dev, int) or len(name) > 4096 or points is None:
        return None
    good_labels = {str(k): str(v)[:256] for k, v in list(labels.items())[:8]}
    return ConsumerSeries(kind, name, dev, good_labels, points)


def _points(t: object, sizes: object) -> tuple[tuple[float, int], ...] | None:
    if not (isinstance(t, list) and isinstance(sizes, list) and len(t) == len(sizes)):
        return None
    points: list[tuple[float, int]] = []
    for ts, size in zip(t, sizes, strict=True):
        if isinstance(ts, bool) or not isinstance(ts, int | float):
            return None
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            return None
        points.append((float(ts), size))
    return tuple(points[-MAX_POINTS:])


# --- growth per filesystem -------------------------------------------------------------


def growth_on(
    store: ConsumerStore, dev: int, now: float, window: int, floor: float
) -> list[Growth]:
    """Each consumer on device ``dev`` with its robust growth rate over the window."""
    out: list[Growth] = []
    for cid, series in store.series.items():
        if series.dev != dev or len(series.points) < 2:
            continue
        points = [(t, float(b)) for t, b in series.points]
        rate = rate_of(points, now, window, floor)
        if rate is None:
            continue
        out.append(Growth(cid, series.kind, series.name, rate, series.points[-1][1], series.labels))
    return out


def top_growth(growth: Sequence[Growth], fs_rate: float | None, top: int) -> list[Growth]:
    """The ``top`` consumers growing fastest, plus ``other``: the filesystem's fill rate
    beyond what the named consumers explain (when that is positive)."""
    growing = sorted((g for g in growth if g.rate > 0), key=lambda g: g.rate, reverse=True)
    named = growing[:top]
    if fs_rate is not None:
        rest = fs_rate - sum(g.rate for g in growing)
        if rest > 0:
            named.append(Growth("other", "other", "other", rest, 0))
    return named
