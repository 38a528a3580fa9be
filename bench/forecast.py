"""Lead time and false alerts of nodeguard's forecast against node-mixin's and netdata's.

The same samples (bench/traces.py: a 100 GiB filesystem, one sample a minute, days
long) go through three rule sets, each evaluated every minute:

* nodeguard: the disk guard's own rules (nodeguard.disk.replay), default config:
  NodeguardFilesystemSpaceFillingUp (40% / 24h warning, 20% / 4h critical, for 1h) and
  NodeguardFilesystemAlmostOutOfSpace (5% / 3%, for 30m).
* node-mixin: NodeFilesystemSpaceFillingUp, ``predict_linear(avail[6h], 24h) < 0`` and
  under 40% (warning), ``predict_linear(avail[6h], 4h) < 0`` and under 20% (critical),
  ``for: 1h``; NodeFilesystemAlmostOutOfSpace under 5% / 3% for 30m. Least squares as
  Prometheus computes it, resolved as soon as the expression is false.
* netdata: ``disk_fill_rate`` (min avail of the 10 minutes an hour ago, minus avail
  now, per hour) and ``out_of_disk_space_time`` (avail / rate): warning under 8h
  (cleared at 48h), critical under 2h (cleared at 24h).

For a trace that fills: lead time = full - first alert (any severity) after the
warm-up; "blind" = minutes between that first alert and full with no alert firing
(an alert a delete or a sawtooth hid). For
a trace that does not fill: every alert is a false one. Run:

    .venv/bin/python bench/forecast.py [--json] [--traces NAME,...]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.traces import HOUR, Trace, all_traces
from nodeguard.config.sections.disk import DiskConfig
from nodeguard.disk.replay import Episode, replay

EVERY = 60
Points = Sequence[tuple[float, float]]


def nodeguard_rules(trace: Trace, every: int = EVERY) -> list[Episode]:
    return replay(trace.points(), trace.total, DiskConfig(), every=every)


# --- node-mixin -------------------------------------------------------------------------


def _predict_linear(points: Points, now: float, horizon: float) -> float | None:
    """Prometheus's predict_linear: least squares, intercept at ``now``."""
    n = len(points)
    if n < 2:
        return None
    xs = [t - now for t, _ in points]
    ys = [v for _, v in points]
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    intercept = my - slope * mx
    return intercept + slope * horizon


class _For:
    """A Prometheus alerting rule's pending/firing with ``for``; resolves at once."""

    def __init__(self, name: str, severity: str, hold: float) -> None:
        self.name, self.severity, self.hold = name, severity, hold
        self.since: float | None = None
        self.firing: Episode | None = None
        self.done: list[Episode] = []

    def step(self, now: float, active: bool) -> None:
        if not active:
            if self.firing is not None:
                self.done.append(Episode(self.name, self.severity, self.firing.fired, now))
            self.since, self.firing = None, None
            return
        if self.since is None:
            self.since = now
        if self.firing is None and now - self.since >= self.hold:
            self.firing = Episode(self.name, self.severity, now, None)

    def episodes(self) -> list[Episode]:
        return self.done + ([self.firing] if self.firing else [])


def node_mixin_rules(trace: Trace, every: int = EVERY) -> list[Episode]:
    points = trace.points()
    rules = {
        "warn": _For("NodeFilesystemSpaceFillingUp", "warning", HOUR),
        "crit": _For("NodeFilesystemSpaceFillingUp", "critical", HOUR),
        "out_w": _For("NodeFilesystemAlmostOutOfSpace", "warning", 1800),
        "out_c": _For("NodeFilesystemAlmostOutOfSpace", "critical", 1800),
    }
    start = 0
    for i in range(0, len(points), every // trace.step):
        now, avail = points[i]
        while points[start][0] < now - 6 * HOUR:
            start += 1
        window = points[start : i + 1]
        ratio = avail / trace.total
        p24 = _predict_linear(window, now, 24 * HOUR)
        p4 = _predict_linear(window, now, 4 * HOUR)
        rules["warn"].step(now, ratio < 0.40 and p24 is not None and p24 < 0)
        rules["crit"].step(now, ratio < 0.20 and p4 is not None and p4 < 0)
        rules["out_w"].step(now, ratio < 0.05)
        rules["out_c"].step(now, ratio < 0.03)
    return sorted((e for r in rules.values() for e in r.episodes()), key=lambda e: e.fired)


# --- netdata ------------------------------------------------------------------------------


def netdata_rules(trace: Trace) -> list[Episode]:
    points = trace.points()
    step = trace.step
    status = "clear"
    opened: dict[str, Episode] = {}
    done: list[Episode] = []
    for i in range(0, len(points), EVERY // step):
        now, avail = points[i]
        lo, hi = i - 60 * 60 // step, i - 50 * 60 // step
        if lo < 0:
            continue
        then = min(v for _, v in points[lo : hi + 1])
        rate = (then - avail) / 1.0  # bytes per hour: ($this - $avail) / (1h / 3600)
        hours = avail / rate if rate > 0 else float("inf")
        crit = 0 < hours < (24 if status == "critical" else 2)
        warn = 0 < hours < (48 if status in ("warning", "critical") else 8)
        new = "critical" if crit else "warning" if warn else "clear"
        if new != status:
            for severity in ("warning", "critical"):
                if severity in opened and (new == "clear" or severity != new):
                    ep = opened.pop(severity)
                    done.append(Episode(ep.alertname, severity, ep.fired, now))
            if new != "clear" and new not in opened:
                opened[new] = Episode("out_of_disk_space_time", new, now, None)
            status = new
    return sorted(done + list(opened.values()), key=lambda e: e.fired)


# --- scoring ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Score:
    trace: str
    method: str
    fills: bool
    lead_h: float | None  # first alert of any severity to full
    critical_lead_h: float | None
    blind_min: float | None  # after the first alert, minutes until full with none firing
    false_alerts: int
    alerting_h: float  # hours with an alert firing, after the warm-up


def score(trace: Trace, method: str, episodes: list[Episode]) -> Score:
    scored = [e for e in episodes if e.fired >= trace.score_from]
    end = trace.full_at if trace.full_at is not None else trace.points()[-1][0]
    alerting = _covered(scored, trace.score_from, end) / HOUR
    if trace.full_at is None:
        return Score(trace.name, method, False, None, None, None, len(scored), alerting)
    full = trace.full_at
    first = min((e.fired for e in scored if e.fired <= full), default=None)
    crit = [e.fired for e in scored if e.severity == "critical" and e.fired <= full]
    first_crit = min(crit, default=None)
    blind = None if first is None else ((full - first) - _covered(scored, first, full)) / 60
    return Score(
        trace.name,
        method,
        True,
        (full - first) / HOUR if first is not None else None,
        (full - first_crit) / HOUR if first_crit is not None else None,
        blind,
        0,
        alerting,
    )


def _covered(episodes: list[Episode], start: float, end: float) -> float:
    """Seconds of [start, end] with at least one episode firing."""
    covered = 0.0
    cursor = start
    for e in sorted(episodes, key=lambda e: e.fired):
        lo, hi = max(e.fired, cursor), min(e.resolved or end, end)
        if hi > lo:
            covered += hi - lo
            cursor = hi
    return covered


METHODS: dict[str, Callable[[Trace], list[Episode]]] = {
    "nodeguard": nodeguard_rules,
    "node-mixin": node_mixin_rules,
    "netdata": netdata_rules,
}


def run(names: set[str] | None) -> list[Score]:
    out: list[Score] = []
    for trace in all_traces():
        if names and trace.name not in names:
            continue
        for method, rules in METHODS.items():
            out.append(score(trace, method, rules(trace)))
    return out


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def table(scores: list[Score]) -> str:
    head = (
        f"{'trace':<22}{'method':<12}{'lead h':>8}{'crit lead h':>12}{'blind min':>10}"
        f"{'false':>7}{'alerting h':>11}"
    )
    lines = [head, "-" * len(head)]
    for s in scores:
        false = "-" if s.fills else str(s.false_alerts)
        lines.append(
            f"{s.trace:<22}{s.method:<12}{_fmt(s.lead_h):>8}{_fmt(s.critical_lead_h):>12}"
            f"{_fmt(s.blind_min):>10}{false:>7}{s.alerting_h:>11.1f}"
        )
    return "\n".join(lines)


def ratios(scores: list[Score]) -> str:
    """nodeguard's lead time over node-mixin's (the anchor), per filling trace."""
    lines = []
    for trace in sorted({s.trace for s in scores if s.fills}):
        ours = next(s for s in scores if s.trace == trace and s.method == "nodeguard")
        anchor = next(s for s in scores if s.trace == trace and s.method == "node-mixin")
        if ours.lead_h and anchor.lead_h:
            lines.append(
                f"lead ratio nodeguard/node-mixin on {trace}: {ours.lead_h / anchor.lead_h:.2f}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--traces", help="comma-separated trace names (default: all)")
    args = parser.parse_args(argv)
    names = set(args.traces.split(",")) if args.traces else None
    started = time.monotonic()
    scores = run(names)
    if args.json:
        print(json.dumps([asdict(s) for s in scores], indent=1))
    else:
        print(table(scores))
        print(ratios(scores))
        print(f"({time.monotonic() - started:.0f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
