"""The cursor: resume after the last processed entry, never twice, never from the start."""

from __future__ import annotations

import itertools
import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nodeguard.journal.follow import follow_once
from nodeguard.journal.model import JournalKind
from nodeguard.journal.state import STATE_NAME
from tests.conftest import REPO
from tests.journal.conftest import Clock, Collected, world_at, write_config
from tests.journal.journalfiles import Stream, append
from tests.journal.seq import (
    assert_exactly_once,
    seq_config,
    seq_entries,
    seq_journal_settings,
    seqs,
)

ARCHIVED = "system@0123456789abcdef0123456789abcdef-0000000000000001-0005f0a1b2c3d4e5.journal"


def _journal(tmp_path: Path) -> Path:
    directory = tmp_path / "journal"
    directory.mkdir()
    return directory


def test_follow_twice_prints_nothing_new_then_exactly_the_appended(tmp_path: Path) -> None:
    directory = _journal(tmp_path)
    stream = Stream()
    append(directory / "system.journal", seq_entries(stream, 0, 300))
    config = seq_config(tmp_path, directory, batch=64, lookback="1h")
    clock = Clock(stream.realtime_us + 1_000_000)

    first = follow_once(config, world_at(clock))
    again = follow_once(config, world_at(clock))
    append(directory / "system.journal", seq_entries(stream, 300, 25))
    clock.now_us = stream.realtime_us + 1_000_000
    third = follow_once(config, world_at(clock))

    assert seqs(first.events) == list(range(300))
    assert seqs(again.events) == []
    assert again.entries_read == 0
    assert seqs(third.events) == list(range(300, 325))


def test_a_thousand_restarts_at_random_points_process_every_entry_once(tmp_path: Path) -> None:
    directory = _journal(tmp_path)
    stream = Stream(step_us=10)
    total = 100_000
    append(directory / "system.journal", seq_entries(stream, 0, total))
    # The state on tmpfs: this test is about the cursor's logic (1000 saves with fsync on a
    # shared disk take long); the SIGKILL test below covers durability on a real disk.
    shm = Path(tempfile.mkdtemp(prefix="ng-journal-", dir="/dev/shm"))
    config = seq_config(tmp_path, directory, batch=97, lookback="1d", state_dir=shm / "state")
    world = world_at(Clock(stream.realtime_us + 1_000_000))
    rng = random.Random(20251130)  # noqa: S311 (seeded: a failure replays)
    sink = Collected()

    for restart in range(1000):
        remaining_runs = 1000 - restart
        left = total - len(sink.events)
        follow_once(
            config, world, sink=sink, limit=rng.randint(1, max(1, 2 * left // remaining_runs))
        )
    follow_once(config, world, sink=sink)
    shutil.rmtree(shm)

    assert_exactly_once(seqs(sink.events), range(total))


def test_cursor_of_a_vacuumed_file_restarts_from_the_lookback(tmp_path: Path) -> None:
    directory = _journal(tmp_path)
    stream = Stream(step_us=1_000_000)  # one entry a second
    append(directory / ARCHIVED, seq_entries(stream, 0, 100))
    append(directory / "system.journal", seq_entries(stream, 100, 100))
    clock = Clock(stream.realtime_us)
    first = follow_once(seq_config(tmp_path, directory, lookback="1d"), world_at(clock), limit=50)
    assert seqs(first.events) == list(range(50))

    vacuum = subprocess.run(
        ["journalctl", "-D", str(directory), "--vacuum-size=1"], capture_output=True, check=False
    )
    assert vacuum.returncode == 0, vacuum.stderr
    assert not (directory / ARCHIVED).exists() and (directory / "system.journal").exists()
    after = follow_once(seq_config(tmp_path, directory, lookback="30s"), world_at(clock))

    resets = [e for e in after.events if e.kind is JournalKind.CURSOR_RESET]
    assert len(resets) == 1 and "not in this journal" in resets[0].reason
    assert after.metrics.cursor_resets == 1
    # From the lookback (the last 30 s), not from the oldest entry left (100).
    assert seqs(after.events) == list(range(169, 200))


def test_corrupt_state_is_reported_and_reading_starts_at_the_lookback(tmp_path: Path) -> None:
    directory = _journal(tmp_path)
    stream = Stream(step_us=1_000_000)
    append(directory / "system.journal", seq_entries(stream, 0, 100))
    config = seq_config(tmp_path, directory, lookback="10s")
    (tmp_path / "state").mkdir(mode=0o700)
    (tmp_path / "state" / STATE_NAME).write_text('{"kind": "journal", "version": 1, "data": {"cu')

    result = follow_once(config, world_at(Clock(stream.realtime_us)))

    (reset,) = [e for e in result.events if e.kind is JournalKind.CURSOR_RESET]
    assert STATE_NAME in reset.reason
    assert seqs(result.events) == list(range(89, 100))
    saved = json.loads((tmp_path / "state" / STATE_NAME).read_text())
    assert saved["data"]["cursor"].startswith("s=")


def test_forged_cursor_in_state_is_refused_before_the_journal_sees_it(tmp_path: Path) -> None:
    directory = _journal(tmp_path)
    stream = Stream(step_us=1_000_000)
    append(directory / "system.journal", seq_entries(stream, 0, 20))
    config = seq_config(tmp_path, directory, lookback="5s")
    (tmp_path / "state").mkdir(mode=0o700)
    doc = {"kind": "journal", "version": 1, "data": {"cursor": "s=x;i=1;../../etc", "rules": {}}}
    (tmp_path / "state" / STATE_NAME).write_text(json.dumps(doc))

    result = follow_once(config, world_at(Clock(stream.realtime_us)))

    assert any("not a journal cursor" in e.reason for e in result.events)
    assert seqs(result.events) == list(range(14, 20))


def test_cursor_of_another_machines_journal_is_reported(tmp_path: Path) -> None:
    ours, theirs = _journal(tmp_path), tmp_path / "other"
    theirs.mkdir()
    stream, other = Stream(step_us=1_000_000), Stream(step_us=1_000_000)
    append(ours / "system.journal", seq_entries(stream, 0, 50))
    append(theirs / "system.journal", seq_entries(other, 0, 50))
    clock = Clock(stream.realtime_us)
    follow_once(seq_config(tmp_path, theirs, lookback="1d"), world_at(clock))
    # Same directory name, other machine's files: the cursor names a journal not here.
    theirs.rename(tmp_path / "theirs-old")
    ours.rename(theirs)

    result = follow_once(seq_config(tmp_path, theirs, lookback="10s"), world_at(clock))

    (reset,) = [e for e in result.events if e.kind is JournalKind.CURSOR_RESET]
    assert "another machine" in reset.reason
    assert seqs(result.events) == list(range(39, 50))


def test_another_configured_journal_does_not_reuse_the_cursor(tmp_path: Path) -> None:
    first_dir, second_dir = _journal(tmp_path), tmp_path / "second"
    second_dir.mkdir()
    stream = Stream(step_us=1_000_000)
    append(first_dir / "system.journal", seq_entries(stream, 0, 30))
    append(second_dir / "system.journal", seq_entries(stream, 30, 30))
    clock = Clock(stream.realtime_us)
    follow_once(seq_config(tmp_path, first_dir, lookback="1d"), world_at(clock))

    result = follow_once(seq_config(tmp_path, second_dir, lookback="5s"), world_at(clock))

    (reset,) = [e for e in result.events if e.kind is JournalKind.CURSOR_RESET]
    assert str(first_dir) in reset.reason
    assert seqs(result.events) == list(range(54, 60))


def test_lag_is_reported_when_a_run_stops_before_the_end(tmp_path: Path) -> None:
    directory = _journal(tmp_path)
    stream = Stream(step_us=1_000_000)
    append(directory / "system.journal", seq_entries(stream, 0, 1000))
    config = seq_config(tmp_path, directory, batch=100, lookback="1d", lag_warning="5m")

    result = follow_once(config, world_at(Clock(stream.realtime_us)), limit=200)

    assert not result.caught_up
    assert result.metrics.lag_seconds == 800.0
    (lag,) = [e for e in result.events if e.kind is JournalKind.LAG]
    assert "800s behind" in lag.reason


def _segments(out: Path) -> list[list[int]]:
    """The sequence numbers each follower process acted on, process by process."""
    runs: list[tuple[str, list[int]]] = []
    for line in out.read_text().splitlines():
        pid, seq = line.split()
        if not runs or runs[-1][0] != pid:
            runs.append((pid, []))
        runs[-1][1].append(int(seq))
    return [numbers for _, numbers in runs]


def _acted(out: Path) -> int:
    try:
        return out.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def test_sigkilled_followers_lose_nothing_and_repeat_at_most_one_batch(tmp_path: Path) -> None:
    directory = _journal(tmp_path)
    stream = Stream(step_us=1000)
    total, batch = 20_000, 200
    append(directory / "system.journal", seq_entries(stream, 0, total))
    config = write_config(tmp_path, directory, **seq_journal_settings(batch, lookback="1d"))
    out = tmp_path / "acted"
    argv = [sys.executable, "-m", "tests.journal.follower_proc", str(config), str(out)]
    argv.append(str(stream.realtime_us + 1_000_000))
    rng = random.Random(7)  # noqa: S311 (seeded: a failure replays)

    kills = 0
    for _ in range(6):
        proc = subprocess.Popen(argv, cwd=REPO)
        target = _acted(out) + rng.randint(1, 3000)
        while proc.poll() is None and _acted(out) < target:
            time.sleep(0.002)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=30)
    done = subprocess.run([*argv, "--once"], cwd=REPO, timeout=120, check=False)
    assert done.returncode == 0

    segments = [s for s in _segments(out) if s]
    assert kills >= 3 and len(segments) >= 3
    for numbers in segments:  # each process acts on consecutive entries, in order
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    for before, after in itertools.pairwise(segments):
        assert after[0] <= before[-1] + 1, "entries lost across a kill"
        assert after[0] >= before[-1] + 1 - batch, "more than one batch repeated after a kill"
    assert segments[0][0] == 0 and segments[-1][-1] == total - 1
