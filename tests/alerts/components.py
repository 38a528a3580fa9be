"""Real Alertmanager, node_exporter and an HTTP receiver on loopback, for the sink tests.

A program that is missing or does not come up fails the test with the reason (never a
skip): .ci/setup installs prometheus-alertmanager and prometheus-node-exporter.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

AM_CONFIG = """route:
  receiver: 'null'
  group_wait: 1s
receivers:
  - name: 'null'
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _binary(name: str, package: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} not found: apt-get install {package} (see .ci/setup)")
    return found


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, what: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited {proc.returncode}: {log.read_text()[-2000:]}")
        with contextlib.suppress(OSError):
            if http_get(url, timeout=1)[0] == 200:
                return
        time.sleep(0.1)
    pytest.fail(f"{what} not ready at {url} after 20s: {log.read_text()[-2000:]}")


@contextlib.contextmanager
def _process(argv: list[str], log: Path, ready: str, what: str) -> Iterator[None]:
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_ready(ready, proc, log, what)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def alertmanager(workdir: Path) -> Iterator[str]:
    """A real Alertmanager on 127.0.0.1; yields its base URL."""
    binary = _binary("prometheus-alertmanager", "prometheus-alertmanager")
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "am.yml").write_text(AM_CONFIG)
    port = free_port()
    argv = [
        binary,
        f"--config.file={workdir / 'am.yml'}",
        f"--storage.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    url = f"http://127.0.0.1:{port}"
    with _process(argv, workdir / "am.log", f"{url}/-/ready", "alertmanager"):
        yield url


def am_alerts(url: str, alertname: str) -> list[dict[str, Any]]:
    query = urllib.parse.quote(f'alertname="{alertname}"')
    status, body = http_get(f"{url}/api/v2/alerts?filter={query}")
    assert status == 200, body
    alerts: list[dict[str, Any]] = json.loads(body)
    return alerts


@contextlib.contextmanager
def node_exporter(textfile_dir: Path, workdir: Path) -> Iterator[str]:
    """node_exporter with only the textfile collector; yields its /metrics URL."""
    binary = _binary("prometheus-node-exporter", "prometheus-node-exporter")
    port = free_port()
    argv = [
        binary,
        f"--web.listen-address=127.0.0.1:{port}",
        "--collector.disable-defaults",
        "--collector.textfile",
        f"--collector.textfile.directory={textfile_dir}",
    ]
    url = f"http://127.0.0.1:{port}/metrics"
    with _process(argv, workdir / "node_exporter.log", url, "node_exporter"):
        yield url


@dataclass
class Received:
    """What the receiver got: one entry per request."""

    bodies: list[Any] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    status: int = 200
    delay: float = 0.0
    release: threading.Event = field(default_factory=threading.Event)


class _Handler(BaseHTTPRequestHandler):
    received: Received

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        if self.received.delay:
            self.received.release.wait(self.received.delay)
        self.received.headers.append(dict(self.headers.items()))
        self.received.bodies.append(json.loads(body))
        self.send_response(self.received.status)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        return


@contextlib.contextmanager
def receiver(
    port: int | None = None, tls: ssl.SSLContext | None = None, received: Received | None = None
) -> Iterator[tuple[str, Received]]:
    """An HTTP(S) server on 127.0.0.1 recording each POST; yields (base URL, record)."""
    record = received or Received()
    handler = type("Handler", (_Handler,), {"received": record})
    server = ThreadingHTTPServer(("127.0.0.1", port or 0), handler)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    scheme = "https" if tls else "http"
    try:
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}", record
    finally:
        record.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def make_ca_and_cert(workdir: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 (openssl); returns
    (ca.pem, server.pem, server.key)."""
    openssl = _binary("openssl", "openssl")
    ca_key, ca = workdir / "ca.key", workdir / "ca.pem"
    key, csr, cert = workdir / "server.key", workdir / "server.csr", workdir / "server.pem"
    ext = workdir / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    steps = [
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key),
         "-out", str(ca), "-days", "2", "-subj", "/CN=nodeguard test CA"],
        [openssl, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
         "-subj", "/CN=127.0.0.1"],
        [openssl, "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
         "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext)],
    ]  # fmt: skip
    for argv in steps:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.fail(f"{' '.join(argv[:3])}: {done.stderr}")
    return ca, cert, key
