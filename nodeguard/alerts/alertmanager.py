"""Alertmanager (API v2): ``POST /api/v2/alerts`` with every alert firing and each transition.

Like Prometheus's notifier: firing alerts are sent again every ``resend_interval``
with ``endsAt`` four intervals ahead, so Alertmanager never expires one that is still
firing (its resolve_timeout is 5m); a resolved alert is sent with its ``endsAt``.
Unlike it, a batch that fails stays in the spool until Alertmanager takes it.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from nodeguard.alerts.http import auth_header, post_json
from nodeguard.alerts.model import AlertState, Notification, Status, rfc3339
from nodeguard.alerts.registry import Batch
from nodeguard.config.model import Config
from nodeguard.world import World

PATH = "/api/v2/alerts"
ENDS_AHEAD = 4  # resend intervals


def generator_url(config: Config, node: str) -> str:
    return config.alerts.generator_url or f"http://{quote(node, safe='')}/nodeguard/disk"


def payload(batch: Batch, config: Config) -> list[dict[str, Any]]:
    """The alerts to post: queued transitions, then the alerts firing now (newest wins)."""
    url = generator_url(config, batch.node)
    ahead = batch.now + ENDS_AHEAD * config.alerts.alertmanager.resend_interval
    alerts: dict[str, dict[str, Any]] = {}
    for note in batch.notifications:
        alerts[note.key] = _from_note(note, url, ahead)
    if batch.resend or batch.notifications:
        for state in batch.firing:
            alerts[state.key] = _from_state(state, url, ahead)
    return list(alerts.values())


def _from_note(note: Notification, url: str, ahead: float) -> dict[str, Any]:
    ends = note.ends_at if note.status is Status.RESOLVED and note.ends_at else ahead
    return _alert(dict(note.labels), dict(note.annotations), note.starts_at, ends, url)


def _from_state(state: AlertState, url: str, ahead: float) -> dict[str, Any]:
    starts = state.fired_at if state.fired_at is not None else state.active_since
    return _alert(dict(state.labels), dict(state.annotations), starts, ahead, url)


def _alert(
    labels: dict[str, str], annotations: dict[str, str], starts: float, ends: float, url: str
) -> dict[str, Any]:
    return {
        "labels": labels,
        "annotations": annotations,
        "startsAt": rfc3339(starts),
        "endsAt": rfc3339(max(starts, ends)),
        "generatorURL": url,
    }


def send(batch: Batch, config: Config, world: World) -> None:
    cfg = config.alerts.alertmanager
    if cfg.url is None:
        return
    alerts = payload(batch, config)
    if not alerts:
        return
    post_json(
        cfg.url + PATH,
        json.dumps(alerts).encode(),
        timeout=cfg.timeout,
        ca_file=cfg.ca_file,
        authorization=auth_header(cfg.token_file, None, None, world.euid),
    )
