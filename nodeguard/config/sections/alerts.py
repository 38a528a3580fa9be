"""``alerts:``: where alerts and metrics go (one sub-section per sink)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from nodeguard.config.fields import Field, Kind, Section


@dataclass(frozen=True)
class AlertmanagerSink:
    url: str | None = "http://127.0.0.1:9093"


@dataclass(frozen=True)
class WebhookSink:
    url: str | None = None
    token_file: Path | None = None


@dataclass(frozen=True)
class AlertsConfig:
    """Alert sinks; a null URL or path turns that sink off."""

    alertmanager: AlertmanagerSink = field(default_factory=AlertmanagerSink)
    webhook: WebhookSink = field(default_factory=WebhookSink)
    textfile: Path | None = Path("/var/lib/prometheus/node-exporter/nodeguard.prom")
    metrics_listen: tuple[str, int] | None = None


ALERTMANAGER = Section(
    name="alertmanager",
    doc="Prometheus Alertmanager (API v2).",
    build=AlertmanagerSink,
    fields=(
        Field(
            "url",
            Kind.URL,
            "Alertmanager's base URL; alerts are POSTed to /api/v2/alerts. Null turns it off.",
            "http://127.0.0.1:9093",
            nullable=True,
        ),
    ),
)

WEBHOOK = Section(
    name="webhook",
    doc="A generic webhook receiving each alert as JSON (see docs/alerts.md).",
    build=WebhookSink,
    fields=(
        Field("url", Kind.URL, "Where to POST; null turns the webhook off.", None, nullable=True),
        Field(
            "token_file",
            Kind.PATH,
            "File holding a bearer token (root-owned, not readable by others). Never inline.",
            None,
            nullable=True,
        ),
    ),
)

ALERTS = Section(
    name="alerts",
    doc="Where alerts and metrics go.",
    build=AlertsConfig,
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
    ),
)
