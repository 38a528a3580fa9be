"""The optional /metrics endpoint (``alerts.metrics_listen``), 127.0.0.1 by default.

prometheus-client's handler over nodeguard's own registry (never the global one), in
a daemon thread; the daemon swaps in each new snapshot with :meth:`update`.
"""

from __future__ import annotations

import socket
import threading
from http.server import ThreadingHTTPServer
from typing import Any

from nodeguard.alerts.metrics import Snapshot, SnapshotCollector, registry_for

MAX_CLIENTS = 8  # connections served at once; more are closed at once
CLIENT_TIMEOUT = 5.0  # seconds a client may take to send its request and read the answer


class _Server(ThreadingHTTPServer):
    """One thread per connection, but at most MAX_CLIENTS of them, each with a timeout:
    anyone on the node can connect, and idle connections must not use up the daemon's
    threads and descriptors (rotation needs descriptors)."""

    daemon_threads = True
    request_queue_size = 128  # socketserver's 5 makes a burst of connects wait for SYN retries

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._slots = threading.BoundedSemaphore(MAX_CLIENTS)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # busy: the scraper retries
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class _Server6(_Server):
    address_family = socket.AF_INET6


class MetricsServer:
    """A running /metrics endpoint."""

    def __init__(self, host: str, port: int, snapshot: Snapshot | None = None) -> None:
        from prometheus_client.exposition import MetricsHandler

        self.collector = SnapshotCollector(snapshot)
        base = MetricsHandler.factory(registry_for(self.collector))
        # The socket timeout of each connection (StreamRequestHandler.timeout).
        handler = type("NodeguardMetricsHandler", (base,), {"timeout": CLIENT_TIMEOUT})
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
