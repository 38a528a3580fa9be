"""The DaemonSet's liveness probe, run exactly as kubelet runs it (the manifest's exec
command, with this venv's nodeguard and the test's config) against a real daemon: alive
while it reports; not alive once its process is frozen (SIGSTOP: hung), and once it
stopped; alive again after SIGCONT."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.conftest import VENV_BIN
from tests.daemon.conftest import DaemonProc, write_config
from tests.fleet.manifests import container, rendered


def probe_argv(config: Path) -> list[str]:
    command = list(container(rendered("base"))["livenessProbe"]["exec"]["command"])
    assert command[0] == "/usr/bin/nodeguard" and command[1:3] == ["--config", command[2]]
    return [str(VENV_BIN / "nodeguard"), "--config", str(config), "--no-dropins", *command[3:]]


def probe(config: Path) -> tuple[int, str]:
    done = subprocess.run(
        probe_argv(config), capture_output=True, text=True, timeout=60, check=False
    )
    return done.returncode, done.stdout + done.stderr


def test_the_liveness_probe_tells_a_live_daemon_from_a_hung_or_stopped_one(
    tmp_path: Path, start_daemon: Callable[..., DaemonProc]
) -> None:
    daemon_cfg = {"size_watch_interval": "2s", "stop_timeout": "2s"}
    conf = write_config(tmp_path / "ng.yaml", tmp_path, daemon=daemon_cfg)
    code, out = probe(conf)
    assert code == 1 and "not alive" in out and "has not run" in out, out
    daemon = start_daemon(conf, watchdog_usec=None)
    daemon.notify.wait_for("READY", "1", timeout=20)
    daemon.wait_until(lambda: probe(conf)[0] == 0, 30, "the probe passing")
    assert "alive: pid" in probe(conf)[1]
    daemon.signal(signal.SIGSTOP)  # the whole process hangs: no more reports
    try:
        daemon.wait_until(lambda: probe(conf)[0] == 1, 60, "the probe failing on a hung daemon")
        assert "hung or gone" in probe(conf)[1]
    finally:
        daemon.signal(signal.SIGCONT)
    daemon.wait_until(lambda: probe(conf)[0] == 0, 30, "the probe passing again")
    assert daemon.stop() == 0
    code, out = probe(conf)
    assert code == 1 and "the daemon stopped" in out, out


def test_a_part_past_its_hang_limit_fails_the_probe(tmp_path: Path) -> None:
    """The status document's ``hung`` list (written by the loop's watchdog check) is part
    of the verdict: a daemon whose main loop still reports but whose part hangs for good
    (a hung NFS mount) is not alive."""
    import time

    from nodeguard.daemon.status import StatusBook, status_document

    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    conf = write_config(tmp_path / "ng.yaml", tmp_path)
    book = StatusBook(1234, "x", "node", time.time(), 30.0, state="running")
    status_document(state).save(book.as_data(time.time()))
    assert probe(conf)[0] == 0
    book.hung = ["journal"]
    status_document(state).save(book.as_data(time.time()))
    code, out = probe(conf)
    assert code == 1 and "part(s) hung: journal" in out, out
    from tests.conftest import run_cli

    assert "HUNG: journal" in run_cli("-c", conf, "--no-dropins", "status").out
