"""journald: each alert transition as one structured entry, for log shippers.

Entries carry a stable ``MESSAGE_ID`` (one for firing, one for resolved: ``journalctl
MESSAGE_ID=...`` finds them all) and the alert's labels as ``NODEGUARD_*`` fields.
systemd-python is imported only here, when the sink runs; without it (or without a
running journald) the sink reports that its entries cannot be written.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

from nodeguard.alerts.model import Notification, Status, rfc3339
from nodeguard.alerts.registry import JOURNAL_SOCKET, Batch, DeliveryError
from nodeguard.config.model import Config
from nodeguard.world import World

MESSAGE_ID_FIRING = "5b1f0c3e8a2d4f6e9c7b1a0d3e5f7a92"
MESSAGE_ID_RESOLVED = "8c2e4a6b0d1f3e5a7c9b2d4f6a8e0c13"
SOCKET = JOURNAL_SOCKET
_PRIORITY = {"critical": "2", "warning": "4"}
_FIELD_RE = re.compile(r"[^A-Z0-9_]")

Sender = Callable[..., Any]


def fields(note: Notification) -> dict[str, str]:
    """The journal fields of one transition."""
    name = note.labels.get("alertname", "")
    firing = note.status is Status.FIRING
    out = {
        "MESSAGE": f"{name} {note.status}: {note.annotations.get('summary', '')}",
        "MESSAGE_ID": MESSAGE_ID_FIRING if firing else MESSAGE_ID_RESOLVED,
        "PRIORITY": _PRIORITY.get(note.labels.get("severity", ""), "4") if firing else "6",
        "SYSLOG_IDENTIFIER": "nodeguard",
        "NODEGUARD_ALERT_STATUS": str(note.status),
        "NODEGUARD_NOTIFICATION_ID": note.id,
        "NODEGUARD_STARTS_AT": rfc3339(note.starts_at),
        "NODEGUARD_DESCRIPTION": note.annotations.get("description", ""),
    }
    if note.ends_at is not None:
        out["NODEGUARD_ENDS_AT"] = rfc3339(note.ends_at)
    for key, value in note.labels.items():
        out["NODEGUARD_" + _FIELD_RE.sub("_", key.upper())] = value
    return out


def _sender() -> Sender:
    try:
        from systemd import journal
    except ImportError:
        raise DeliveryError("systemd-python is not installed", retry=False) from None
    send: Sender = journal.send
    return send


def send(batch: Batch, config: Config, world: World, sender: Sender | None = None) -> None:
    if not batch.notifications:
        return
    if sender is None:
        if not os.path.exists(SOCKET):
            raise DeliveryError(f"journald is not running ({SOCKET} missing)", retry=False)
        sender = _sender()
    done: set[str] = set()
    for note in batch.notifications:
        entry = fields(note)
        try:
            sender(entry.pop("MESSAGE"), **entry)
        except OSError as exc:
            raise DeliveryError(
                f"journal: {exc.strerror or exc}", delivered=frozenset(done)
            ) from None
        done.add(note.id)
