"""nodeguard's Prometheus metrics: a snapshot, its own registry, the textfile format.

Counters (events by source/kind/severity, bytes freed, deliveries, ...) live in the
state folder (``metrics.json``), so ``nodeguard run --once`` from a timer counts up
like the daemon does. Gauges come from the latest disk evaluation. Every render
builds a private ``CollectorRegistry`` (never prometheus-client's global one), so
the textfile, the /metrics endpoint and tests never collide.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

from nodeguard.alerts.model import AlertState, Status
from nodeguard.events import Event, Severity
from nodeguard.state import StateDocument

if TYPE_CHECKING:
    from prometheus_client.registry import CollectorRegistry

    from nodeguard.disk.cycle import DiskResult

COUNTERS_NAME = "metrics.json"
MAX_SERIES = 2000  # label combinations kept per counter family


@dataclass(frozen=True)
class PassInfo:
    at: float
    duration: float
    ok: bool


def _frozen(values: Mapping[str, int]) -> Mapping[str, int]:
    return MappingProxyType(dict(values))


@dataclass(frozen=True)
class Counters:
    """Monotonic counts kept across runs. Keys join label values with ``|``."""

    events: Mapping[str, int] = field(default_factory=dict)  # source|kind|severity
    errors: Mapping[str, int] = field(default_factory=dict)  # source
    bytes_freed: Mapping[str, int] = field(default_factory=dict)  # source
    reclaim_freed: Mapping[str, int] = field(default_factory=dict)  # step
    deliveries: Mapping[str, int] = field(default_factory=dict)  # sink|result
    spool_dropped: Mapping[str, int] = field(default_factory=dict)  # sink
    passes: Mapping[str, PassInfo] = field(default_factory=dict)  # part

    def to_json(self) -> dict[str, Any]:
        return {
            "events": dict(self.events),
            "errors": dict(self.errors),
            "bytes_freed": dict(self.bytes_freed),
            "reclaim_freed": dict(self.reclaim_freed),
            "deliveries": dict(self.deliveries),
            "spool_dropped": dict(self.spool_dropped),
            "passes": {
                k: {"at": v.at, "duration": v.duration, "ok": v.ok} for k, v in self.passes.items()
            },
        }


def _bump(table: Mapping[str, int], key: str, by: int = 1) -> Mapping[str, int]:
    if key not in table and len(table) >= MAX_SERIES:
        return table
    out = dict(table)
    out[key] = out.get(key, 0) + by
    return _frozen(out)


def count_events(counters: Counters, events: Iterable[Event]) -> Counters:
    """Count events; an int fact ``bytes_freed`` adds to bytes freed of its source."""
    c = counters
    for e in events:
        sev = e.severity.name.lower()
        c = replace(c, events=_bump(c.events, f"{e.source}|{e.kind}|{sev}"))
        if e.severity >= Severity.ERROR:
            c = replace(c, errors=_bump(c.errors, str(e.source)))
        freed = e.facts.get("bytes_freed")
        if isinstance(freed, int) and not isinstance(freed, bool) and freed > 0:
            c = replace(c, bytes_freed=_bump(c.bytes_freed, str(e.source), freed))
        step = e.facts.get("reclaim_step")
        if isinstance(step, str) and isinstance(freed, int) and freed > 0:
            c = replace(c, reclaim_freed=_bump(c.reclaim_freed, step, freed))
    return c


def count_delivery(counters: Counters, sink: str, result: str, n: int = 1) -> Counters:
    return replace(counters, deliveries=_bump(counters.deliveries, f"{sink}|{result}", n))


def count_dropped(counters: Counters, sink: str, n: int) -> Counters:
    return (
        replace(counters, spool_dropped=_bump(counters.spool_dropped, sink, n)) if n else counters
    )


def record_pass(counters: Counters, part: str, at: float, duration: float, ok: bool) -> Counters:
    """Remember when a part of the service (disk, alerts, rotation, ...) last ran."""
    passes = dict(counters.passes)
    passes[part[:64]] = PassInfo(at, duration, ok)
    return replace(counters, passes=MappingProxyType(passes))


def _doc(state_dir: Path) -> StateDocument:
    return StateDocument(state_dir / COUNTERS_NAME, "metrics")


def load_counters(state_dir: Path) -> tuple[Counters, str | None]:
    loaded = _doc(state_dir).load()
    data = loaded.data or {}
    problem = f"{loaded.problem}; counters restart from 0" if loaded.problem else None
    passes: dict[str, PassInfo] = {}
    raw = data.get("passes")
    if isinstance(raw, dict):
        for part, info in list(raw.items())[:64]:
            parsed = _pass(info)
            if isinstance(part, str) and parsed is not None:
                passes[part] = parsed
    return (
        Counters(
            events=_ints(data.get("events")),
            errors=_ints(data.get("errors")),
            bytes_freed=_ints(data.get("bytes_freed")),
            reclaim_freed=_ints(data.get("reclaim_freed")),
            deliveries=_ints(data.get("deliveries")),
            spool_dropped=_ints(data.get("spool_dropped")),
            passes=MappingProxyType(passes),
        ),
        problem,
    )


def save_counters(state_dir: Path, counters: Counters) -> None:
    _doc(state_dir).save(counters.to_json())


def _ints(raw: object) -> Mapping[str, int]:
    if not isinstance(raw, dict):
        return _frozen({})
    return _frozen(
        {
            str(k)[:512]: v
            for k, v in list(raw.items())[:MAX_SERIES]
            if isinstance(v, int) and not isinstance(v, bool) and v >= 0
        }
    )


def _pass(raw: object) -> PassInfo | None:
    if not isinstance(raw, dict):
        return None
    at, duration, ok = raw.get("at"), raw.get("duration"), raw.get("ok")
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (at, duration))
    if not numbers or not isinstance(ok, bool):
        return None
    return PassInfo(float(at), float(duration), ok)  # type: ignore[arg-type]


# --- the snapshot and its metrics --------------------------------------------------------


@dataclass(frozen=True)
class FsMetrics:
    mountpoint: str
    device: str
    fstype: str
    size: int
    avail: int
    files: int
    files_free: int
    fill_rate: float | None  # bytes/s, >0 filling; None without a forecast
    seconds_to_full: float | None  # inf when not filling; None without a forecast
    inodes_seconds_to_full: float | None
    growth: tuple[tuple[str, str, float], ...] = ()  # (consumer, kind, bytes/s)


@dataclass(frozen=True)
class Snapshot:
    """Everything one metrics render shows."""

    filesystems: tuple[FsMetrics, ...] = ()
    alerts: tuple[AlertState, ...] = ()
    counters: Counters = field(default_factory=Counters)
    spool: Mapping[str, int] = field(default_factory=dict)  # sink -> queued notifications
    extra: tuple[Sample, ...] = ()  # other concerns' samples (the journal's counters, lag)


class Sample(Protocol):
    """One metric value another concern hands over (e.g. journal.model.MetricSample)."""

    @property
    def name(self) -> str: ...
    @property
    def type(self) -> str: ...  # "counter" or "gauge"
    @property
    def help(self) -> str: ...
    @property
    def labels(self) -> Mapping[str, str]: ...
    @property
    def value(self) -> float: ...


def snapshot_of(
    result: DiskResult | None,
    counters: Counters,
    spool: Mapping[str, int],
    extra: Sequence[Sample] = (),
) -> Snapshot:
    """The snapshot for the latest disk evaluation (None: counters only)."""
    if result is None:
        return Snapshot(counters=counters, spool=spool, extra=tuple(extra))
    return Snapshot(result.fs_metrics(), result.alerts, counters, spool, tuple(extra))


class Family:
    """One metric family being built: its samples in the order added.

    Rendering the textfile needs no prometheus-client (whose import pulls in http.server,
    urllib and ssl: about 12 MiB of a daemon that only writes a file); the /metrics
    endpoint converts these to prometheus-client's core families (:meth:`to_client`).
    """

    __slots__ = ("doc", "kind", "labels", "name", "samples")

    def __init__(self, kind: str, name: str, doc: str, labels: Sequence[str]) -> None:
        self.kind, self.name, self.doc, self.labels = kind, name, doc, tuple(labels)
        self.samples: list[tuple[tuple[str, ...], float]] = []

    def add_metric(self, values: Sequence[str], value: float) -> None:
        self.samples.append((tuple(values), float(value)))

    def to_client(self) -> Any:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        cls = CounterMetricFamily if self.kind == "counter" else GaugeMetricFamily
        fam = cls(self.name, self.doc, labels=list(self.labels))
        for values, value in self.samples:
            fam.add_metric(list(values), value)
        return fam

    def text(self) -> str:
        """The family in Prometheus's text format, as prometheus-client 0.16 writes it."""
        name = f"{self.name}_total" if self.kind == "counter" else self.name
        doc = self.doc.replace("\\", r"\\").replace("\n", r"\n")
        lines = [f"# HELP {name} {doc}\n# TYPE {name} {self.kind}\n"]
        for values, value in self.samples:
            pairs = sorted(zip(self.labels, values, strict=False))
            inner = ",".join(f'{k}="{_escape(v)}"' for k, v in pairs)
            labels = f"{{{inner}}}" if inner else ""
            lines.append(f"{name}{labels} {_go_float(value)}\n")
        return "".join(lines)


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _go_float(value: float) -> str:
    """A float as Go (and so prometheus-client) prints it."""
    if value == math.inf:
        return "+Inf"
    if value == -math.inf:
        return "-Inf"
    if math.isnan(value):
        return "NaN"
    s = repr(value)
    dot = s.find(".")
    if value > 0 and dot > 6:
        mantissa = f"{s[0]}.{s[1:dot]}{s[dot + 1 :]}".rstrip("0.")
        return f"{mantissa}e+0{dot - 1}"
    return s


def _family(kind: str, name: str, doc: str, labels: Sequence[str]) -> Family:
    return Family(kind, name, doc, labels)


_FS = ("mountpoint", "device", "fstype")
_EVENT_LABELS = ("source", "kind", "severity")
_SINK_RESULT = ("sink", "result")


def families(snap: Snapshot) -> Iterator[Family]:
    """The metric families of a snapshot."""
    yield from _fs_families(snap.filesystems)
    alerts = _family(
        "gauge",
        "nodeguard_alerts",
        "Alerts pending or firing (1).",
        ("alertname", "severity", "mountpoint", "alertstate"),
    )
    for a in snap.alerts:
        if a.status in (Status.PENDING, Status.FIRING):
            labels = [a.alertname, a.severity, a.labels.get("mountpoint", ""), str(a.status)]
            alerts.add_metric(labels, 1.0)
    yield alerts
    yield from _counter_families(snap.counters)
    spool = _family(
        "gauge",
        "nodeguard_alert_spool_notifications",
        "Notifications waiting in the spool for a sink that is down.",
        ("sink",),
    )
    for sink, n in sorted(snap.spool.items()):
        spool.add_metric([sink], float(n))
    yield spool
    yield from _extra_families(snap.extra)


def _extra_families(samples: Sequence[Sample]) -> Iterator[Family]:
    """Other concerns' samples, one family per metric name (labels from its first sample)."""
    built: dict[str, tuple[Family, tuple[str, ...]]] = {}
    for sample in samples:
        name = sample.name.removesuffix("_total") if sample.type == "counter" else sample.name
        if name not in built:
            keys = tuple(sorted(sample.labels))
            built[name] = (_family(sample.type, name, sample.help, keys), keys)
        family, keys = built[name]
        if tuple(sorted(sample.labels)) == keys:
            family.add_metric([sample.labels[k] for k in keys], float(sample.value))
    for family, _ in built.values():
        yield family


def _fs_families(filesystems: Sequence[FsMetrics]) -> Iterator[Family]:
    plain = (
        ("nodeguard_filesystem_size_bytes", "Filesystem size.", "size"),
        ("nodeguard_filesystem_avail_bytes", "Space available to unprivileged users.", "avail"),
        ("nodeguard_filesystem_files", "Inodes in total.", "files"),
        ("nodeguard_filesystem_files_free", "Inodes available.", "files_free"),
    )
    for name, doc, attr in plain:
        fam = _family("gauge", name, doc, _FS)
        for fs in filesystems:
            fam.add_metric([fs.mountpoint, fs.device, fs.fstype], float(getattr(fs, attr)))
        yield fam
    rate = _family(
        "gauge",
        "nodeguard_filesystem_fill_rate_bytes_per_second",
        "Robust fill rate over the forecast window (negative: freeing).",
        _FS,
    )
    ttf = _family(
        "gauge",
        "nodeguard_filesystem_seconds_to_full",
        "Forecast seconds until full (+Inf: not filling).",
        (*_FS, "resource"),
    )
    growth = _family(
        "gauge",
        "nodeguard_filesystem_consumer_growth_bytes_per_second",
        "Growth of the top consumers over the forecast window.",
        (*_FS, "consumer", "kind"),
    )
    for fs in filesystems:
        ids = [fs.mountpoint, fs.device, fs.fstype]
        if fs.fill_rate is not None:
            rate.add_metric(ids, fs.fill_rate)
        for resource, value in (
            ("bytes", fs.seconds_to_full),
            ("inodes", fs.inodes_seconds_to_full),
        ):
            if value is not None:
                ttf.add_metric([*ids, resource], value)
        for consumer, kind, per_s in fs.growth:
            growth.add_metric([*ids, consumer, kind], per_s)
    yield rate
    yield ttf
    yield growth


def _counter_families(c: Counters) -> Iterator[Family]:
    tables: tuple[tuple[str, str, tuple[str, ...], Mapping[str, int]], ...] = (
        ("nodeguard_events", "Events reported by each concern.", _EVENT_LABELS, c.events),
        ("nodeguard_errors", "Events of severity error or worse.", ("source",), c.errors),
        ("nodeguard_bytes_freed", "Bytes freed (rotation, reclaim).", ("source",), c.bytes_freed),
        (
            "nodeguard_reclaim_freed_bytes",
            "Bytes freed per reclaim step.",
            ("step",),
            c.reclaim_freed,
        ),
        ("nodeguard_alert_deliveries", "Deliveries to alert sinks.", _SINK_RESULT, c.deliveries),
        ("nodeguard_alert_spool_dropped", "Dropped from a full spool.", ("sink",), c.spool_dropped),
    )
    for name, doc, labels, table in tables:
        fam = _family("counter", name, doc, labels)
        for key, value in sorted(table.items()):
            values = key.split("|")
            if len(values) == len(labels):
                fam.add_metric(values, float(value))
        yield fam
    last = _family(
        "gauge", "nodeguard_last_pass_timestamp_seconds", "When each part last ran.", ("part",)
    )
    took = _family(
        "gauge", "nodeguard_pass_duration_seconds", "How long each part's last run took.", ("part",)
    )
    ok = _family(
        "gauge", "nodeguard_pass_success", "Whether each part's last run succeeded.", ("part",)
    )
    for part, info in sorted(c.passes.items()):
        last.add_metric([part], info.at)
        took.add_metric([part], info.duration)
        ok.add_metric([part], 1.0 if info.ok else 0.0)
    yield last
    yield took
    yield ok


class SnapshotCollector:
    """A prometheus-client collector serving the latest snapshot (swapped atomically)."""

    def __init__(self, snap: Snapshot | None = None) -> None:
        self.snap = snap or Snapshot()

    def update(self, snap: Snapshot) -> None:
        self.snap = snap  # one reference assignment: readers see the old or the new

    def collect(self) -> Iterator[Any]:
        return (f.to_client() for f in families(self.snap))


def registry_for(collector: SnapshotCollector) -> CollectorRegistry:
    """A private registry holding only nodeguard's collector."""
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)  # type: ignore[arg-type]
    return registry


def render_text(snap: Snapshot) -> bytes:
    """The snapshot in Prometheus's text format (for the textfile collector); the same
    bytes as prometheus-client's ``generate_latest``, without importing it."""
    return "".join(f.text() for f in families(snap)).encode("utf-8")


def finite_or_inf(value: float | None) -> float | None:
    if value is None:
        return None
    return value if math.isfinite(value) else math.inf
