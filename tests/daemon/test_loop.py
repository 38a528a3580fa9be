"""The loop in-process with the real scheduler, lanes and signals, and parts made to fail."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodeguard.config import load_config
from nodeguard.daemon import loop as loop_module
from nodeguard.daemon.loop import Daemon
from nodeguard.daemon.parts import Context, Outcome, Part
from nodeguard.daemon.status import read_status
from nodeguard.events import Event, Severity, Source
from nodeguard.world import World
from tests.daemon.conftest import NotifySocket, write_config


class _Kind(str):
    pass


@pytest.fixture(autouse=True)
def _restore_signals() -> Iterator[None]:
    saved = {s: signal.getsignal(s) for s in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def sigterm_after(seconds: float) -> threading.Timer:
    timer = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    return timer


def every_second(config: object) -> int:
    return 1


def test_a_failing_part_is_reported_and_the_others_keep_running(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path / "ng.yaml", tmp_path), dropins=False)
    ticks: list[float] = []

    def broken(ctx: Context) -> Outcome:
        raise OSError(5, "Input/output error")

    def healthy(ctx: Context) -> Outcome:
        ticks.append(time.monotonic())
        return Outcome(summary={"ticks": len(ticks)})

    parts = (Part("broken", every_second, broken), Part("healthy", every_second, healthy))
    daemon = Daemon(config, parts, World(), {})
    sigterm_after(3.5)
    assert daemon.serve() is True
    assert len(ticks) >= 3
    view = read_status(config.state_dir, time.time())
    assert view.data is not None
    broken_status = view.data["parts"]["broken"]
    assert broken_status["last_ok"] is False and broken_status["failures"] >= 3
    assert "OSError" in broken_status["last_error"]
    assert view.data["parts"]["healthy"]["last_ok"] is True


def test_sigterm_abandons_a_step_that_outlives_stop_timeout(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path / "ng.yaml", tmp_path), dropins=False)
    release = threading.Event()

    def stuck(ctx: Context) -> Outcome:
        release.wait(60)  # ignores world.stop, like a long compression would
        return Outcome()

    daemon = Daemon(config, (Part("stuck", every_second, stuck),), World(), {})
    sigterm_after(0.5)
    started = time.monotonic()
    try:
        assert daemon.serve() is False  # stop_timeout is 2s in write_config
        # Back long before the stuck step would end (60 s), however busy the machine.
        assert time.monotonic() - started < 30
    finally:
        release.set()
    view = read_status(config.state_dir, time.time())
    assert view.data is not None and view.data["state"] == "stopped"


def test_consuming_parts_receive_the_events_of_the_others(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path / "ng.yaml", tmp_path), dropins=False)
    received: list[Event] = []
    event = Event(Source.DISK, _Kind("probe"), "/", Severity.WARNING, "filling up")

    def producer(ctx: Context) -> Outcome:
        return Outcome(events=(event,))

    def consumer(ctx: Context) -> Outcome:
        received.extend(ctx.inbox)
        return Outcome()

    parts = (
        Part("producer", every_second, producer),
        Part("alerts", every_second, consumer, consumes=True),
    )
    sigterm_after(2.5)
    assert Daemon(config, parts, World(), {}).serve() is True
    assert event in received
    assert all(e.subject != "alerts" for e in received)


def test_a_hung_part_stops_the_watchdog_pings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loop_module, "HUNG_AFTER_MIN", 1.0)
    monkeypatch.setattr(loop_module, "HUNG_INTERVALS", 0)
    config = load_config(write_config(tmp_path / "ng.yaml", tmp_path), dropins=False)
    notify = NotifySocket(tmp_path / "notify.sock")
    release = threading.Event()

    def hangs(ctx: Context) -> Outcome:
        release.wait(30)
        return Outcome()

    monkeypatch.setenv("NOTIFY_SOCKET", str(notify.path))  # sd_notify reads the real env
    environ = {"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "400000"}
    daemon = Daemon(config, (Part("hangs", every_second, hangs),), World(), environ)
    sigterm_after(3.0)
    try:
        daemon.serve()
    finally:
        release.set()
        notify.close()
    ready = notify.seen("READY", "1")[0]
    pings = [t - ready for t in notify.seen("WATCHDOG", "1")]
    assert pings and min(pings) < 0.5  # pinged while the part was young
    assert max(pings) < 1.5  # then silent: systemd's watchdog restarts the daemon


def test_frequent_reloads_never_postpone_a_part(tmp_path: Path) -> None:
    conf = write_config(tmp_path / "ng.yaml", tmp_path, interval="2s")
    config = load_config(conf, dropins=False)
    runs: list[float] = []

    def hourly(ctx: Context) -> Outcome:
        runs.append(time.monotonic())
        return Outcome()

    part = Part("pass", lambda c: c.interval, hourly)
    daemon = Daemon(config, (part,), World(), {}, config_path=conf, dropins=False)
    stop = threading.Event()

    def reload_often() -> None:
        while not stop.wait(0.4):
            os.kill(os.getpid(), signal.SIGHUP)

    threading.Thread(target=reload_often, daemon=True).start()
    sigterm_after(5.5)
    try:
        assert daemon.serve() is True
    finally:
        stop.set()
    assert len(runs) >= 3  # at start, then every 2 s although reloaded every 0.4 s
