"""The alert sinks: an explicit table, one module per sink, one ``send`` shape.

Every sink module has ``send(batch, config, world)``: it delivers what it takes
from the :class:`Batch` (transitions, the alerts firing now, the metrics) or
raises :class:`DeliveryError`. Spooled sinks get transitions from the on-disk
spool, so what they miss while down arrives when they are back; the textfile
always gets the latest metrics. A module is imported only when its sink is used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from nodeguard.alerts.metrics import Snapshot
from nodeguard.alerts.model import AlertState, Notification
from nodeguard.config.model import Config
from nodeguard.world import World

JOURNAL_SOCKET = "/run/systemd/journal/socket"


class DeliveryError(Exception):
    """A sink could not deliver; ``retry`` is False when trying again cannot help.

    ``config`` marks a refusal the admin fixes in the configuration or the files it
    names (a secret file refused, a redirect, an unusable CA file, credentials refused):
    ``run --once`` exits 2 for it (docs/operations.md, "Exit codes").
    """

    def __init__(
        self,
        message: str,
        *,
        retry: bool = True,
        delivered: frozenset[str] = frozenset(),
        config: bool = False,
    ) -> None:
        super().__init__(message)
        self.retry = retry
        self.delivered = delivered  # ids taken before the failure (sent one by one)
        self.config = config


@dataclass(frozen=True)
class Batch:
    """What one delivery round hands a sink."""

    notifications: tuple[Notification, ...]  # this sink's queued transitions, oldest first
    firing: tuple[AlertState, ...]  # every alert firing now (Alertmanager re-sends them)
    snapshot: Snapshot
    now: float
    node: str
    resend: bool  # Alertmanager: the re-send interval has passed


class SinkModule(Protocol):
    def send(self, batch: Batch, config: Config, world: World) -> None: ...


@dataclass(frozen=True)
class SinkSpec:
    name: str
    module: str
    spooled: bool
    enabled: Callable[[Config], bool]


def _journald(config: Config) -> bool:
    """On where journald runs (its socket exists): hosts without it get no spool of
    entries nobody could write."""
    import os

    return config.alerts.journald and os.path.exists(JOURNAL_SOCKET)


SINKS: tuple[SinkSpec, ...] = (
    SinkSpec(
        "alertmanager",
        "nodeguard.alerts.alertmanager",
        True,
        lambda c: c.alerts.alertmanager.url is not None,
    ),
    SinkSpec(
        "webhook", "nodeguard.alerts.webhook", True, lambda c: c.alerts.webhook.url is not None
    ),
    SinkSpec("journald", "nodeguard.alerts.journald", True, _journald),
    SinkSpec(
        "textfile", "nodeguard.alerts.textfile", False, lambda c: c.alerts.textfile is not None
    ),
)


def enabled_sinks(config: Config) -> list[SinkSpec]:
    return [s for s in SINKS if s.enabled(config)]


def spooled_sinks(config: Config) -> list[str]:
    return [s.name for s in enabled_sinks(config) if s.spooled]


def get_sink(name: str) -> SinkModule:
    """The sink module called ``name`` (KeyError for an unknown one)."""
    spec = next((s for s in SINKS if s.name == name), None)
    if spec is None:
        raise KeyError(name)
    module: SinkModule = importlib.import_module(spec.module)
    return module
