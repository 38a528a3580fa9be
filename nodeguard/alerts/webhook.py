"""A generic webhook: each round's transitions POSTed as one JSON document.

The body (documented in docs/alerts.md)::

    {"version": "1", "sender": "nodeguard", "node": "NODE", "sentAt": "RFC3339",
     "notifications": [{"id": "...", "status": "firing" | "resolved",
                        "labels": {...}, "annotations": {...},
                        "startsAt": "RFC3339", "endsAt": "RFC3339" | null}]}

``id`` is unique per transition: a receiver that saw it already can drop it (a request
that timed out after the receiver took it is sent again). Credentials come from files
(bearer token, or basic auth); TLS is always verified (``ca_file`` for a private CA).
"""

from __future__ import annotations

import json
from typing import Any

from nodeguard.alerts.http import auth_header, post_json
from nodeguard.alerts.model import Notification, rfc3339
from nodeguard.alerts.registry import Batch
from nodeguard.config.model import Config
from nodeguard.world import World

VERSION = "1"


def body(batch: Batch) -> dict[str, Any]:
    return {
        "version": VERSION,
        "sender": "nodeguard",
        "node": batch.node,
        "sentAt": rfc3339(batch.now),
        "notifications": [_entry(n) for n in batch.notifications],
    }


def _entry(note: Notification) -> dict[str, Any]:
    return {
        "id": note.id,
        "status": str(note.status),
        "labels": dict(note.labels),
        "annotations": dict(note.annotations),
        "startsAt": rfc3339(note.starts_at),
        "endsAt": rfc3339(note.ends_at) if note.ends_at is not None else None,
    }


def send(batch: Batch, config: Config, world: World) -> None:
    cfg = config.alerts.webhook
    if cfg.url is None or not batch.notifications:
        return
    authorization = auth_header(cfg.token_file, cfg.username, cfg.password_file, world.euid)
    post_json(
        cfg.url,
        json.dumps(body(batch)).encode(),
        timeout=cfg.timeout,
        ca_file=cfg.ca_file,
        authorization=authorization,
        headers={"Idempotency-Key": batch.notifications[-1].id},
    )
