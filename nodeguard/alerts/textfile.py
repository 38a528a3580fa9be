"""The Prometheus textfile collector: nodeguard's metrics in a ``.prom`` file.

Written to a temp name in the same folder, fsynced and renamed (node_exporter never
reads half a file), mode 0644, no timestamps. The folder must exist: node_exporter's
package creates it; nodeguard does not guess where a collector would look.
"""

from __future__ import annotations

from nodeguard.alerts.metrics import render_text
from nodeguard.alerts.registry import Batch, DeliveryError
from nodeguard.config.model import Config
from nodeguard.fsutil import atomic_write
from nodeguard.world import World


def send(batch: Batch, config: Config, world: World) -> None:
    path = config.alerts.textfile
    if path is None:
        return
    if not path.parent.is_dir():
        raise DeliveryError(
            f"{path.parent} does not exist (node_exporter's textfile collector folder)",
            retry=False,
        )
    try:
        atomic_write(path, render_text(batch.snapshot), mode=0o644)
    except OSError as exc:
        raise DeliveryError(f"{path}: {exc.strerror or exc}") from None
