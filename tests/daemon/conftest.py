"""A real ``nodeguard run`` process with a real sd_notify socket, as systemd would give it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import VENV_BIN


class NotifySocket:
    """The NOTIFY_SOCKET end: a unix datagram socket collecting sd_notify messages."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            with self._lock:
                self.messages.append((time.monotonic(), fields))

    def seen(self, key: str, value: str | None = None) -> list[float]:
        """Times of the messages carrying ``key`` (with ``value``, when given)."""
        with self._lock:
            return [t for t, f in self.messages if key in f and (value is None or f[key] == value)]

    def statuses(self) -> list[str]:
        with self._lock:
            return [f["STATUS"] for _, f in self.messages if "STATUS" in f]

    def wait_for(self, key: str, value: str | None = None, timeout: float = 10.0) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            times = self.seen(key, value)
            if times:
                return times[0]
            time.sleep(0.02)
        raise AssertionError(f"no {key}={value} in {timeout}s: {self.messages}")

    def close(self) -> None:
        self._stop.set()
        self.sock.close()
        self._thread.join(2)


def write_config(path: Path, tmp: Path, **top: Any) -> Path:
    """A daemon config: state and container roots inside ``tmp``, fast schedules."""
    body: dict[str, Any] = {
        "state_dir": str(tmp / "state"),
        "logrotate_config": None,
        "interval": "1h",
        "containers": {
            "pods_dir": str(tmp / "pods"),
            "containers_dir": str(tmp / "containers"),
            "docker_root": str(tmp / "docker"),
            "kubelet_config": str(tmp / "kubelet.yaml"),
        },
        "daemon": {"size_watch_interval": "1s", "stop_timeout": "2s", "log_level": "debug"},
        # Nothing leaves the test: no Alertmanager, textfile or journald entry of the host's,
        # and the journal read is an empty folder of the test's own (tests that need the
        # alert path or a journal set these keys themselves).
        "alerts": {"alertmanager": {"url": None}, "textfile": None, "journald": False},
        "journal": {"directory": str(tmp / "journal"), "text_logs": {"read": "never"}},
        "policies": [],
    }
    (tmp / "journal").mkdir(exist_ok=True)
    body.update(top)
    path.write_text(yaml.safe_dump(body, sort_keys=False), "utf-8")
    return path


def policy(logs: Path, **keys: Any) -> dict[str, Any]:
    return {
        "name": "app",
        "paths": [f"{logs}/*.log"],
        "max_size": "4Ki",
        "max_files": 3,
        "method": "rename",
        "compress": "none",
        **keys,
    }


@dataclass
class DaemonProc:
    """A running ``nodeguard -c CONFIG run`` and its notify socket."""

    proc: subprocess.Popen[str]
    notify: NotifySocket
    config: Path
    state: Path
    log_path: Path
    _closed: bool = field(default=False)

    def stderr(self) -> str:
        return self.log_path.read_text("utf-8", "replace")

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def wait_until(self, check: Callable[[], bool], timeout: float, what: str) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if check():
                return time.monotonic() - started
            assert self.alive(), f"daemon died while waiting for {what}:\n{self.stderr()}"
            time.sleep(0.05)
        raise AssertionError(f"{what} did not happen in {timeout}s:\n{self.stderr()}")


@pytest.fixture
def start_daemon(tmp_path: Path) -> Iterator[Callable[..., DaemonProc]]:
    started: list[DaemonProc] = []

    def start(
        config: Path, watchdog_usec: int | None = 2_000_000, env_extra: dict[str, str] | None = None
    ) -> DaemonProc:
        notify = NotifySocket(tmp_path / f"notify-{len(started)}.sock")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFY", "WATCHDOG"))}
        env.update(env_extra or {})
        env["NOTIFY_SOCKET"] = str(notify.path)
        if watchdog_usec:
            env["WATCHDOG_USEC"] = str(watchdog_usec)
        log_path = tmp_path / f"daemon-{len(started)}.log"
        with log_path.open("w") as log:
            proc = subprocess.Popen(
                [str(VENV_BIN / "nodeguard"), "-c", str(config), "run"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
                text=True,
            )
        daemon = DaemonProc(proc, notify, config, tmp_path / "state", log_path)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        with contextlib.suppress(Exception):
            daemon.stop(10)
        if daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait()
        daemon.notify.close()
