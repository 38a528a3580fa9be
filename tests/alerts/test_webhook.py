"""The webhook sink on a loopback receiver: body, credentials from files, TLS, spool."""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from nodeguard.alerts.deliver import Deliverer, DeliveryKind, deliver
from nodeguard.alerts.http import post_json
from nodeguard.alerts.registry import DeliveryError
from nodeguard.disk.cycle import disk_cycle
from tests.alerts.components import Received, free_port, make_ca_and_cert, receiver
from tests.disk.cfg import load
from tests.disk.fakes import GIB, Clock, Probe, fake_world

TOKEN = "s3cr3t-token"  # noqa: S105 (a test token)


def _secret(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text + "\n")
    os.chmod(path, mode)
    return path


def _config(tmp_path: Path, url: str, **webhook: Any) -> Any:
    return load(
        tmp_path,
        disk={"out_of_space": {"for": "0s"}, "clear_for": "0s"},
        alerts={"webhook": {"url": url, **webhook}, "delivery": {"attempts": 1}},
    )


def test_the_receiver_gets_the_documented_body_with_the_bearer_token(tmp_path: Path) -> None:
    token = _secret(tmp_path / "token", TOKEN)
    with receiver() as (url, got):
        config = _config(tmp_path, url + "/hook", token_file=str(token))
        clock, probe = Clock(), Probe(free=2 * GIB)
        world = fake_world(clock, probe)
        assert deliver(config, world, disk_cycle(config, world)).failed == {}
        probe.free = 60 * GIB
        clock.t += 60
        assert deliver(config, world, disk_cycle(config, world)).failed == {}
    assert [h["Authorization"] for h in got.headers] == [f"Bearer {TOKEN}"] * 2
    first, second = got.bodies
    assert first["version"] == "1" and first["node"] == "node-a"
    fired = first["notifications"]
    assert {n["status"] for n in fired} == {"firing"}
    assert {n["labels"]["severity"] for n in fired} == {"warning", "critical"}
    assert all(n["endsAt"] is None and n["id"] for n in fired)
    resolved = second["notifications"]
    assert {n["status"] for n in resolved} == {"resolved"}
    assert {n["labels"]["alertname"] for n in resolved} == {"NodeguardFilesystemAlmostOutOfSpace"}
    assert all(n["endsAt"] for n in resolved)


def test_basic_auth_comes_from_a_password_file(tmp_path: Path) -> None:
    password = _secret(tmp_path / "password", "pw")
    with receiver() as (url, got):
        config = _config(tmp_path, url, username="ng", password_file=str(password))
        world = fake_world(Clock(), Probe(free=2 * GIB))
        assert deliver(config, world, disk_cycle(config, world)).failed == {}
    assert got.headers[0]["Authorization"] == "Basic bmc6cHc="  # ng:pw


def test_a_token_file_others_can_read_is_refused_and_nothing_is_sent(tmp_path: Path) -> None:
    """Refused, but the alerts wait in the spool: once the admin fixes the file's mode
    they arrive (a dropped firing alert would never reach the webhook)."""
    token = _secret(tmp_path / "token", TOKEN, mode=0o644)
    with receiver() as (url, got):
        config = _config(tmp_path, url, token_file=str(token))
        clock = Clock()
        world = fake_world(clock, Probe(free=2 * GIB))
        report = deliver(config, world, disk_cycle(config, world))
        assert got.bodies == []
        assert "readable by others" in report.failed["webhook"]
        assert not any(e.kind is DeliveryKind.DROPPED for e in report.events)
        token.chmod(0o600)
        clock.t += 600  # past the backoff
        assert deliver(config, world, None).failed == {}
    (body,) = got.bodies
    assert {n["status"] for n in body["notifications"]} == {"firing"}
    assert [h["Authorization"] for h in got.headers] == [f"Bearer {TOKEN}"]


def test_a_symlinked_token_file_is_refused(tmp_path: Path) -> None:
    real = _secret(tmp_path / "real-token", TOKEN)
    link = tmp_path / "token"
    link.symlink_to(real)
    with receiver() as (url, got):
        config = _config(tmp_path, url, token_file=str(link))
        world = fake_world(Clock(), Probe(free=2 * GIB))
        report = deliver(config, world, disk_cycle(config, world))
    assert got.bodies == [] and "symlink" in report.failed["webhook"]


def test_tls_is_verified_and_a_private_ca_can_be_given(tmp_path: Path) -> None:
    ca, cert, key = make_ca_and_cert(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with receiver(tls=context) as (url, got):
        (tmp_path / "a").mkdir()
        without_ca = _config(tmp_path / "a", url)
        world = fake_world(Clock(), Probe(free=2 * GIB))
        report = deliver(without_ca, world, disk_cycle(without_ca, world))
        assert "CERTIFICATE_VERIFY_FAILED" in report.failed["webhook"]
        assert got.bodies == []
        (tmp_path / "b").mkdir()
        with_ca = _config(tmp_path / "b", url, ca_file=str(ca))
        report = deliver(with_ca, world, disk_cycle(with_ca, world))
        assert report.failed == {}
        assert len(got.bodies) == 1


def test_an_alert_raised_while_the_receiver_is_down_arrives_once_when_it_is_back(
    tmp_path: Path,
) -> None:
    port = free_port()
    config = _config(tmp_path, f"http://127.0.0.1:{port}/hook")
    clock, probe = Clock(), Probe(free=2 * GIB)
    world = fake_world(clock, probe)
    report = deliver(config, world, disk_cycle(config, world))  # nobody listens
    assert "webhook" in report.failed
    assert any(e.kind is DeliveryKind.FAILED for e in report.events)
    with receiver(port=port) as (_, got):
        clock.t += 0.5  # still inside the backoff: not retried yet
        deliver(config, world, disk_cycle(config, world))
        assert got.bodies == []
        clock.t += 10
        assert deliver(config, world, disk_cycle(config, world)).sent == {"webhook": 2}
        clock.t += 60
        deliver(config, world, disk_cycle(config, world))
        deliver(config, world, disk_cycle(config, world))
    assert len(got.bodies) == 1
    ids = [n["id"] for n in got.bodies[0]["notifications"]]
    assert len(ids) == 2 == len(set(ids))


def test_a_receiver_error_keeps_the_notifications_for_later(tmp_path: Path) -> None:
    with receiver(received=Received(status=503)) as (url, got):
        config = _config(tmp_path, url)
        clock = Clock()
        world = fake_world(clock, Probe(free=2 * GIB))
        report = deliver(config, world, disk_cycle(config, world))
        assert "HTTP 503" in report.failed["webhook"]
        got.status = 200
        clock.t += 10
        assert deliver(config, world, disk_cycle(config, world)).failed == {}
    assert len(got.bodies) == 2
    assert got.bodies[0]["notifications"] == got.bodies[1]["notifications"]


def test_a_slow_sink_does_not_hold_up_the_others(tmp_path: Path) -> None:
    textfiles = tmp_path / "textfile"
    textfiles.mkdir()
    slow = Received(delay=60)
    with receiver(received=slow) as (url, got):
        config = load(
            tmp_path,
            disk={"out_of_space": {"for": "0s"}},
            alerts={
                "webhook": {"url": url, "timeout": "1s"},
                "textfile": str(textfiles / "nodeguard.prom"),
                "delivery": {"attempts": 1},
            },
        )
        world = fake_world(Clock(), Probe(free=2 * GIB))
        deliverer = Deliverer()
        report = deliverer.deliver(config, world, disk_cycle(config, world))
        assert (textfiles / "nodeguard.prom").exists()
        assert "textfile" in report.sent
        assert "webhook" not in report.sent
        assert got.bodies == []  # the receiver is still holding the request


def test_an_alert_is_sent_even_when_the_state_folder_cannot_be_written(tmp_path: Path) -> None:
    """The disk that fills may hold the state folder: the alert must still go out."""
    with receiver() as (url, got):
        config = _config(tmp_path, url)
        world = fake_world(Clock(), Probe(free=2 * GIB))
        (tmp_path / "state").mkdir(mode=0o700)
        (tmp_path / "state" / "alert-spool.json").mkdir()  # every write of it fails
        result = disk_cycle(config, world)
        assert result.unqueued and any(
            "sending them from memory" in e.reason for e in result.events
        )
        report = deliver(config, world, result)
    assert report.sent == {"webhook": 2}
    assert {n["status"] for n in got.bodies[0]["notifications"]} == {"firing"}


def _trickling_receiver(status: bytes) -> tuple[str, socket.socket]:
    """A receiver that answers ``status`` with a 64 KiB body, then sends it five bytes a second."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with contextlib.suppress(OSError):
            conn, _ = server.accept()
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 " + status + b"\r\nContent-Length: 65536\r\n\r\n")
            while True:
                conn.sendall(b"x")
                time.sleep(0.2)

    threading.Thread(target=serve, daemon=True).start()
    return f"http://127.0.0.1:{server.getsockname()[1]}/hook", server


def test_a_receiver_that_trickles_its_answer_cannot_hold_the_sink(tmp_path: Path) -> None:
    """Every byte arrives within the socket timeout, so only a bound on the whole answer
    ends the request: a sink held for 18 hours would deliver nothing else meanwhile."""
    for status in (b"200 OK", b"500 Internal Server Error"):
        url, server = _trickling_receiver(status)
        outcome: list[object] = []

        def post(url: str = url, outcome: list[object] = outcome) -> None:
            try:
                outcome.append(post_json(url, b"{}", timeout=1))
            except DeliveryError as exc:
                outcome.append(exc)

        worker = threading.Thread(target=post, daemon=True)
        started = time.monotonic()
        worker.start()
        worker.join(15)
        server.close()
        assert not worker.is_alive(), f"{status!r}: still reading after 15 s"
        assert time.monotonic() - started < 10, status
        assert outcome, status


def test_a_proxy_in_the_environment_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``http_proxy`` in root's shell (/etc/environment on many hosts) must not route the
    bearer token in clear text through a proxy, nor send 127.0.0.1 to the proxy's own
    loopback: like Prometheus, nodeguard talks to the receiver directly."""
    with receiver() as (proxy_url, via_proxy), receiver() as (url, got):
        for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "all_proxy"):
            monkeypatch.setenv(name, proxy_url)
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.delenv("NO_PROXY", raising=False)
        assert post_json(url + "/hook", b"{}", timeout=5, authorization="Bearer x") == 200
    assert via_proxy.headers == [] and len(got.headers) == 1
