"""``alerts:``: where alerts and metrics go (one sub-section per sink)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from nodeguard.config.fields import Field, Kind, Section


@dataclass(frozen=True)
class AlertmanagerSink:
    """Alertmanager's v2 API: where, with which credentials, how often resent."""

    url: str | None = "http://127.0.0.1:9093"
    token_file: Path | None = None
    ca_file: Path | None = None
    timeout: int = 10
    resend_interval: int = 60


@dataclass(frozen=True)
class WebhookSink:
    """A plain JSON webhook: where, with which credentials."""

    url: str | None = None
    token_file: Path | None = None
    username: str | None = None
    password_file: Path | None = None
    ca_file: Path | None = None
    timeout: int = 10


@dataclass(frozen=True)
class EventAlerts:
    """Which events of the other concerns become alerts, and for how long."""

    min_severity: str = "warning"
    hold: int = 7200


@dataclass(frozen=True)
class Delivery:
    """Retries, backoff and the on-disk spool."""

    attempts: int = 3
    backoff: int = 1
    max_backoff: int = 300
    spool_max: int = 1000


@dataclass(frozen=True)
class AlertsConfig:
    """Alert sinks; a null URL or path turns that sink off."""

    alertmanager: AlertmanagerSink = field(default_factory=AlertmanagerSink)
    webhook: WebhookSink = field(default_factory=WebhookSink)
    textfile: Path | None = Path("/var/lib/prometheus/node-exporter/nodeguard.prom")
    metrics_listen: tuple[str, int] | None = None
    journald: bool = True
    node: str | None = None
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    generator_url: str | None = None
    events: EventAlerts = field(default_factory=EventAlerts)
    delivery: Delivery = field(default_factory=Delivery)


_LABEL_RE_FIRST = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"
_RESERVED = frozenset({"alertname", "severity", "node", "mountpoint", "device", "fstype"})


def _check_http(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if values.get("password_file") is not None and values.get("username") is None:
        problems.append(("password_file", "needs username (basic auth)"))
    if values.get("token_file") is not None and values.get("password_file") is not None:
        problems.append(("token_file", "use either a bearer token or basic auth, not both"))
    return problems


def _check_alertmanager(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    # Alertmanager's resolve_timeout is 5m: an alert not re-sent within it expires.
    if values["resend_interval"] > 240:
        return [("resend_interval", "must be at most 4m, below Alertmanager's resolve_timeout")]
    if values["resend_interval"] < 10:
        return [("resend_interval", "must be at least 10s")]
    return []


def _check_alerts(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for name in values["labels"] or {}:
        valid = name and name[0] in _LABEL_RE_FIRST and all(c.isalnum() or c == "_" for c in name)
        if not valid or not name.isascii():
            problems.append(("labels", f"{name!r} is not a Prometheus label name"))
        elif name in _RESERVED or name.startswith("__"):
            problems.append(("labels", f"{name!r} is set by nodeguard itself"))
    return problems


_TIMEOUT = Field("timeout", Kind.DURATION, "Time allowed for one request.", "10s")
_CA = Field(
    "ca_file",
    Kind.PATH,
    "CA bundle to verify the server's certificate with (https). Null: the system's CAs. "
    "Verification is always on.",
    None,
    nullable=True,
)
_TOKEN = Field(
    "token_file",
    Kind.PATH,
    "File holding a bearer token (owned by root, not a symlink, not readable by others). "
    "Never inline.",
    None,
    nullable=True,
)

ALERTMANAGER = Section(
    name="alertmanager",
    doc="Prometheus Alertmanager (API v2).",
    build=AlertmanagerSink,
    check=_check_alertmanager,
    fields=(
        Field(
            "url",
            Kind.URL,
            "Alertmanager's base URL; alerts are POSTed to /api/v2/alerts. Null turns it off.",
            "http://127.0.0.1:9093",
            nullable=True,
        ),
        _TOKEN,
        _CA,
        _TIMEOUT,
        Field(
            "resend_interval",
            Kind.DURATION,
            "Firing alerts are sent again this often, with endsAt four intervals ahead "
            "(as Prometheus does), so Alertmanager never lets them expire.",
            "1m",
        ),
    ),
)

WEBHOOK = Section(
    name="webhook",
    doc="A generic webhook receiving each alert as JSON (see docs/alerts.md).",
    build=WebhookSink,
    check=_check_http,
    fields=(
        Field("url", Kind.URL, "Where to POST; null turns the webhook off.", None, nullable=True),
        _TOKEN,
        Field("username", Kind.STR, "Basic-auth user name.", None, nullable=True),
        Field(
            "password_file",
            Kind.PATH,
            "File holding the basic-auth password (same rules as token_file).",
            None,
            nullable=True,
        ),
        _CA,
        _TIMEOUT,
    ),
)

EVENTS = Section(
    name="events",
    doc="Events of the other concerns (journal matches, rotation failures, ...) become "
    "alerts: firing at once, resolved after `hold` without a repeat.",
    build=EventAlerts,
    fields=(
        Field(
            "min_severity",
            Kind.CHOICE,
            "Least severity of an event that becomes an alert.",
            "warning",
            choices=("warning", "error", "critical"),
        ),
        Field("hold", Kind.DURATION, "An event alert resolves after this without a repeat.", "2h"),
    ),
)

DELIVERY = Section(
    name="delivery",
    doc="Delivery to the alert sinks: each sink runs on its own, with a timeout, retries "
    "and an on-disk spool, so a slow or failing sink never holds up the others.",
    build=Delivery,
    fields=(
        Field("attempts", Kind.INT, "Tries per delivery round.", 3, minimum=1, maximum=10),
        Field("backoff", Kind.DURATION, "Wait before the second try; doubles each try.", "1s"),
        Field(
            "max_backoff",
            Kind.DURATION,
            "Longest wait between rounds for a sink that keeps failing.",
            "5m",
        ),
        Field(
            "spool_max",
            Kind.INT,
            "Notifications kept per sink while it is down; the oldest beyond are dropped "
            "and counted (nodeguard_alert_spool_dropped_total).",
            1000,
            minimum=10,
            maximum=100000,
        ),
    ),
)

ALERTS = Section(
    name="alerts",
    doc="Where alerts and metrics go.",
    build=AlertsConfig,
    check=_check_alerts,
    fields=(
        Field("alertmanager", Kind.SECTION, ALERTMANAGER.doc, {}, section=ALERTMANAGER),
        Field("webhook", Kind.SECTION, WEBHOOK.doc, {}, section=WEBHOOK),
        Field(
            "textfile",
            Kind.PATH,
            "Prometheus textfile-collector file, written atomically. Null turns it off.",
            "/var/lib/prometheus/node-exporter/nodeguard.prom",
            nullable=True,
        ),
        Field(
            "metrics_listen",
            Kind.HOSTPORT,
            "Serve /metrics on this address (e.g. 127.0.0.1:9877). Null: no endpoint.",
            None,
            nullable=True,
        ),
        Field(
            "journald",
            Kind.BOOL,
            "Write each alert transition to the journal as a structured entry (where "
            "journald runs).",
            True,
        ),
        Field("node", Kind.STR, "The `node` label. Null: this host's name.", None, nullable=True),
        Field(
            "labels",
            Kind.STR_MAP,
            "Extra labels put on every alert (e.g. cluster).",
            {},
            example={"cluster": "prod-eu"},
        ),
        Field(
            "generator_url",
            Kind.URL,
            "The alerts' generatorURL. Null: http://NODE/nodeguard/disk.",
            None,
            nullable=True,
        ),
        Field("events", Kind.SECTION, EVENTS.doc, {}, section=EVENTS),
        Field("delivery", Kind.SECTION, DELIVERY.doc, {}, section=DELIVERY),
    ),
)
