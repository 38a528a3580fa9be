"""The optional /metrics endpoint (``alerts.metrics_listen``), 127.0.0.1 by default.

prometheus-client's handler over nodeguard's own registry (never the global one), in
a daemon thread; the daemon swaps in each new snapshot with :meth:`update`.
"""

from __future__ import annotations

import socket
import threading
from http.server import ThreadingHTTPServer

from nodeguard.alerts.metrics import Snapshot, SnapshotCollector, registry_for


class _Server(ThreadingHTTPServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class MetricsServer:
    """A running /metrics endpoint."""

    def __init__(self, host: str, port: int, snapshot: Snapshot | None = None) -> None:
        from prometheus_client.exposition import MetricsHandler

        self.collector = SnapshotCollector(snapshot)
        handler = MetricsHandler.factory(registry_for(self.collector))
        server_class = _Server6 if ":" in host else _Server
        self._server = server_class((host, port), handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="nodeguard-metrics", daemon=True
        )
        self._thread.start()

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def update(self, snapshot: Snapshot) -> None:
        self.collector.update(snapshot)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def start_metrics_server(
    listen: tuple[str, int], snapshot: Snapshot | None = None
) -> MetricsServer:
    """Serve /metrics on ``listen`` (OSError when the address cannot be bound)."""
    return MetricsServer(listen[0], listen[1], snapshot)
