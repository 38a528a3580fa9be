"""Journal retention against real journal files and the real journalctl."""

from __future__ import annotations

import hashlib
import subprocess
import time
from pathlib import Path

from nodeguard.journal.model import JournalKind
from nodeguard.journal.retention import (
    enforce_retention,
    format_bytes,
    journal_usage,
    vacuum_to_floor,
)
from tests.journal.conftest import Clock, journal_config, world_at
from tests.journal.journalfiles import Stream, append
from tests.journal.seq import seq_entries

SEQNUM_ID = "0123456789abcdef0123456789abcdef"


def _archived_name(seqnum: int, realtime_us: int) -> str:
    return f"system@{SEQNUM_ID}-{seqnum:016x}-{realtime_us:016x}.journal"


def _journal_dir(tmp_path: Path, recent_us: int | None = None) -> tuple[Path, list[str]]:
    """Two archived files (old, then recent or old) and the active one, real entries in each."""
    directory = tmp_path / "journal"
    directory.mkdir()
    stream = Stream()
    old = _archived_name(1, stream.realtime_us)
    append(directory / old, seq_entries(stream, 0, 3000))
    newer = _archived_name(3001, recent_us or stream.realtime_us + 1)
    append(directory / newer, seq_entries(stream, 3000, 6000))
    append(directory / "system.journal", seq_entries(stream, 9000, 100))
    return directory, [old, newer]


def _digest(path: Path) -> tuple[int, str]:
    return path.stat().st_ino, hashlib.sha256(path.read_bytes()).hexdigest()


def _journalctl_usage(directory: Path) -> str:
    done = subprocess.run(
        ["journalctl", "-D", str(directory), "--disk-usage"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_usage_is_what_journalctl_disk_usage_says(tmp_path: Path) -> None:
    directory, archived = _journal_dir(tmp_path)
    config = journal_config(tmp_path, directory)

    usage = journal_usage(config, world_at(Clock(0)))

    assert usage.text() == _journalctl_usage(directory)
    assert [Path(f.path).name for f in usage.files if f.archived] == sorted(archived)
    assert usage.total == sum((directory / n).stat().st_blocks * 512 for n in os_names(directory))


def os_names(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.endswith(".journal")]


def test_format_bytes_matches_systemd() -> None:
    assert [format_bytes(n) for n in (900, 1024, 1536, 8 << 20, (24 << 20) + 300000)] == [
        "900B",
        "1.0K",
        "1.5K",
        "8.0M",
        "24.2M",
    ]


def test_max_use_vacuums_the_oldest_archived_files_only(tmp_path: Path) -> None:
    directory, (old, newer) = _journal_dir(tmp_path)
    active = _digest(directory / "system.journal")
    # The limit counts active files too (Debian 12's journalctl): room for one archive more.
    kept = sum((directory / n).stat().st_blocks * 512 for n in (newer, "system.journal"))
    config = journal_config(tmp_path, directory, retention={"max_use": kept})
    world = world_at(Clock(int(time.time() * 1e6)))

    planned = enforce_retention(config, world, dry_run=True)
    done = enforce_retention(config, world)

    assert [Path(f.path).name for f in planned.removed] == [old]
    assert [Path(f.path).name for f in done.removed] == [old]
    assert not (directory / old).exists() and (directory / newer).exists()
    assert _digest(directory / "system.journal") == active
    (event,) = done.events
    assert event.kind is JournalKind.VACUUMED and event.facts["freed_bytes"] == done.freed > 0


def test_max_age_vacuums_archived_files_older_than_it(tmp_path: Path) -> None:
    now_us = int(time.time() * 1e6)
    directory, (old, recent) = _journal_dir(tmp_path, recent_us=now_us - 3_600_000_000)
    config = journal_config(tmp_path, directory, retention={"max_age": "1d"})
    world = world_at(Clock(now_us))

    planned = enforce_retention(config, world, dry_run=True)
    done = enforce_retention(config, world)

    assert [Path(f.path).name for f in planned.removed] == [old]
    assert [Path(f.path).name for f in done.removed] == [old]
    assert (directory / recent).exists() and (directory / "system.journal").exists()


def test_vacuum_to_floor_leaves_the_active_file(tmp_path: Path) -> None:
    directory, archived = _journal_dir(tmp_path)
    active = _digest(directory / "system.journal")
    config = journal_config(tmp_path, directory, retention={"floor": "1Mi"})

    result = vacuum_to_floor(config, world_at(Clock(int(time.time() * 1e6))))

    assert sorted(Path(f.path).name for f in result.removed) == sorted(archived)
    assert os_names(directory) == ["system.journal"]
    assert _digest(directory / "system.journal") == active
    assert result.after.archived == 0


def test_no_limits_means_no_vacuum(tmp_path: Path) -> None:
    directory, _ = _journal_dir(tmp_path)
    config = journal_config(tmp_path, directory)
    before = sorted(os_names(directory))

    result = enforce_retention(config, world_at(Clock(int(time.time() * 1e6))))

    assert result.removed == () and result.events == ()
    assert sorted(os_names(directory)) == before
