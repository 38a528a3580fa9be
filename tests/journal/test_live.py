"""Live following: entries appended by journal-remote while the reader waits; INVALIDATE."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from nodeguard.config import Config
from nodeguard.journal.follow import follow_live
from nodeguard.journal.model import JournalMetrics, JournalResult
from nodeguard.world import World
from tests.journal.conftest import Clock, Collected, world_at
from tests.journal.journalfiles import Stream, append
from tests.journal.seq import assert_exactly_once, seq_config, seq_entries, seqs

ARCHIVED = "system@00112233445566778899aabbccddeeff-0000000000000001-0005f0a1b2c3d4e5.journal"


class Live:
    """A follow_live in a thread, with what its sink and on_batch saw."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.sink = Collected()
        self.totals = JournalMetrics()
        self.result: JournalResult | None = None
        self.error: BaseException | None = None

    def on_batch(self, result: JournalResult) -> None:
        self.totals = result.metrics

    def wait_for(self, check: Callable[[], bool], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            assert self.error is None, self.error
            assert time.monotonic() < deadline, "the live follower did not get there in time"
            time.sleep(0.02)

    def count(self) -> int:
        return len(seqs(self.sink.events))


@contextmanager
def following(config: Config, clock: Clock) -> Iterator[Live]:
    world = world_at(clock)
    live = Live(world)

    def run() -> None:
        try:
            live.result = follow_live(config, world, live.sink, on_batch=live.on_batch)
        except BaseException as exc:  # surfaced by wait_for in the test thread
            live.error = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield live
    finally:
        world.stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive(), "follow_live did not stop when World.stop was set"
    assert live.error is None, live.error


def test_entries_appended_while_waiting_are_followed_exactly_once(tmp_path: Path) -> None:
    directory = tmp_path / "journal"
    directory.mkdir()
    stream = Stream()
    append(directory / "system.journal", seq_entries(stream, 0, 100))
    clock = Clock(stream.realtime_us + 1_000_000)
    config = seq_config(tmp_path, directory, batch=50, lookback="1h")

    with following(config, clock) as live:
        live.wait_for(lambda: live.count() == 100)
        for start in range(100, 400, 100):
            append(directory / "system.journal", seq_entries(stream, start, 100))
            live.wait_for(lambda end=start + 100: live.count() == end)

    assert_exactly_once(seqs(live.sink.events), range(400))
    assert live.result is not None and live.result.metrics.matches["Seq"] == 400


def test_invalidate_new_file_and_vacuum_are_followed_without_loss(tmp_path: Path) -> None:
    directory = tmp_path / "journal"
    directory.mkdir()
    stream = Stream()
    append(directory / ARCHIVED, seq_entries(stream, 0, 100))
    append(directory / "system.journal", seq_entries(stream, 100, 100))
    clock = Clock(stream.realtime_us + 1_000_000)
    config = seq_config(tmp_path, directory, batch=64, lookback="1h")

    with following(config, clock) as live:
        live.wait_for(lambda: live.count() == 200)
        # journald rotating: a new file appears (INVALIDATE), entries continue in it.
        append(
            directory / "system@00112233445566778899aabbccddeef0-01-02.journal",
            seq_entries(stream, 200, 50),
        )
        live.wait_for(lambda: live.count() == 250)
        # Vacuum removes the archived file under the running reader (INVALIDATE again).
        done = subprocess.run(
            ["journalctl", "-D", str(directory), "--vacuum-files=1"],
            capture_output=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert not (directory / ARCHIVED).exists()
        append(directory / "system.journal", seq_entries(stream, 250, 50))
        live.wait_for(lambda: live.count() == 300)
        live.wait_for(lambda: live.totals.invalidations >= 2)

    assert_exactly_once(seqs(live.sink.events), range(300))
