"""``nodeguard journal scan|follow|usage|vacuum`` over real journal files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nodeguard.journal.follow import follow_once
from nodeguard.world import World
from tests.conftest import REPO, run_cli
from tests.journal.conftest import journal_config, sample_entry, write_config
from tests.journal.journalfiles import Stream, append
from tests.journal.samples import SAMPLES
from tests.journal.seq import seq_entries, seq_journal_settings

LONG_AGO = "2000d"  # the test journals are dated 2025-11-30; the CLI uses the real clock


def _samples_journal(tmp_path: Path) -> Path:
    directory = tmp_path / "journal"
    directory.mkdir()
    stream = Stream()
    append(directory / "system.journal", [sample_entry(stream, s) for s in SAMPLES])
    return directory


def test_scan_json_lists_matches_and_changes_nothing(tmp_path: Path) -> None:
    directory = _samples_journal(tmp_path)
    config = write_config(tmp_path, directory)

    result = run_cli("-c", config, "--no-dropins", "journal", "scan", "--since", LONG_AGO, "--json")

    assert result.code == 0, result.err
    body = json.loads(result.out)
    rules = {m["rule"] for m in body["matches"]}
    assert {"EvictingPods", "ImageGCFailed", "NoSpaceLeftOnDevice", "Ext4Error"} <= rules
    for match in body["matches"]:
        assert set(match) >= {"rule", "unit", "message", "cursor", "time"}
        assert match["cursor"].startswith("s=")
    assert body["entries_read"] == len(SAMPLES)
    assert not (tmp_path / "state").exists()


def test_scan_text_prints_one_line_per_match(tmp_path: Path) -> None:
    directory = _samples_journal(tmp_path)
    config = write_config(tmp_path, directory)

    result = run_cli("-c", config, "--no-dropins", "journal", "scan", "--since", LONG_AGO)

    assert result.code == 0
    lines = result.out.splitlines()
    assert any(" ERROR    EvictionFailed kubelet.service: " in line for line in lines)
    assert any("CRITICAL NoSpaceLeftOnDevice docker.service" in line for line in lines)


def test_scan_bad_since_is_a_usage_error(tmp_path: Path) -> None:
    config = write_config(tmp_path, tmp_path)

    result = run_cli("-c", config, "--no-dropins", "journal", "scan", "--since", "yesterdayish")

    assert result.code == 2
    assert "--since" in result.err and "neither a duration" in result.err


def test_scan_since_in_the_future_is_a_usage_error_naming_the_argument(tmp_path: Path) -> None:
    """A future time would match nothing and print nothing: refused, as is a time before
    any journal could be and a duration past the 100-year bound; no state is created."""
    directory = _samples_journal(tmp_path)
    config = write_config(tmp_path, directory)
    cases = {
        "2999-01-01T00:00:00Z": "is in the future (2999-01-01T00:00:00+00:00; now is",
        "2999-01-01": "is in the future",
        "1960-01-01T00:00:00Z": "is before 1970-01-01",
        "99999999d": "too long a duration",
        "3000w": "is before 1970-01-01",
    }
    for since, why in cases.items():
        result = run_cli("-c", config, "--no-dropins", "journal", "scan", "--since", since)
        assert result.code == 2, (since, result)
        assert result.err.startswith("nodeguard: --since: "), result.err
        assert why in result.err and repr(since) in result.err, (since, result.err)
        assert result.out == ""
    assert not (tmp_path / "state").exists()
    ok = run_cli("-c", config, "--no-dropins", "journal", "scan", "--since", LONG_AGO, "--json")
    assert ok.code in (0, 1) and json.loads(ok.out)["matches"], ok.err


def test_follow_once_reads_from_the_daemons_cursor_and_saves_nothing(tmp_path: Path) -> None:
    """Without a saved cursor: the lookback, every time (nothing is saved, no state folder
    made). With the daemon's cursor: from there, and again the same after an append."""
    directory = tmp_path / "journal"
    directory.mkdir()
    stream = Stream()
    append(directory / "system.journal", seq_entries(stream, 0, 5))
    config = write_config(tmp_path, directory, **seq_journal_settings(lookback=LONG_AGO))
    argv = ("-c", config, "--no-dropins", "journal", "follow", "--once")

    first, second = run_cli(*argv), run_cli(*argv)
    no_state = not (tmp_path / "state").exists()
    daemon_config = journal_config(tmp_path, directory, **seq_journal_settings(lookback=LONG_AGO))
    follow_once(daemon_config, World())  # the daemon's follower saves its cursor
    saved = (tmp_path / "state" / "journal.json").read_bytes()
    append(directory / "system.journal", seq_entries(stream, 5, 3))
    third, fourth = run_cli(*argv, "--json"), run_cli(*argv, "--json")
    since = run_cli(*argv, "--since", LONG_AGO)

    assert first.code == second.code == third.code == since.code == 0
    assert [line.rsplit("=", 1)[1] for line in first.out.splitlines()] == [
        f"{i:07d}" for i in range(5)
    ]
    assert second.out == first.out and no_state
    objects = [json.loads(line) for line in third.out.splitlines()]
    assert [o["message"][-11:] for o in objects] == [f"seq={i:07d}" for i in range(5, 8)]
    assert all(o["rule"] == "Seq" and o["cursor"].startswith("s=") for o in objects)
    assert fourth.out == third.out
    assert len(since.out.splitlines()) == 8  # --since: the daemon's cursor is not used
    assert (tmp_path / "state" / "journal.json").read_bytes() == saved


def test_usage_and_vacuum(tmp_path: Path) -> None:
    directory = tmp_path / "journal"
    directory.mkdir()
    stream = Stream()
    archived = "system@0123456789abcdef0123456789abcdef-0000000000000001-0005f0a1b2c3d4e5.journal"
    append(directory / archived, seq_entries(stream, 0, 10))
    append(directory / "system.journal", seq_entries(stream, 10, 10))
    config = write_config(tmp_path, directory, retention={"max_use": "1Mi"})
    expected = subprocess.run(
        ["journalctl", "-D", str(directory), "--disk-usage"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()

    usage = run_cli("-c", config, "--no-dropins", "journal", "usage")
    dry = run_cli("-c", config, "--no-dropins", "journal", "vacuum", "--dry-run")
    still_there = (directory / archived).exists()
    done = run_cli("-c", config, "--no-dropins", "journal", "vacuum")

    assert usage.out.splitlines()[0] == expected
    assert dry.code == 0 and f"would remove: {directory / archived}" in dry.out
    assert still_there
    assert done.code == 0 and f"removed: {directory / archived}" in done.out
    assert sorted(p.name for p in directory.iterdir()) == ["system.journal"]


def test_without_systemd_python_one_clear_message_and_the_rest_runs(tmp_path: Path) -> None:
    config = write_config(tmp_path, tmp_path, text_logs={"read": "never"})
    blocked = (
        "import sys; sys.modules['systemd'] = None\n"  # as if python3-systemd were absent
        "from nodeguard import cli\n"
        "sys.exit(cli.main(sys.argv[1:]))\n"
    )

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-c", blocked, "-c", str(config), "--no-dropins", *args]
        return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=False)

    follow = run("journal", "follow", "--once")
    validate = run("config", "validate")

    assert follow.returncode == 1
    assert follow.stderr.count("systemd-python is not installed") == 1, follow.stderr
    assert "Traceback" not in follow.stderr
    assert validate.returncode == 0, validate.stderr


def test_a_lock_that_is_no_file_is_reported_never_a_traceback(tmp_path: Path) -> None:
    """``journal.lock`` a folder, a symlink or a FIFO: the daemon's follower reports it
    naming it (no cursor saved); the CLI's ``journal follow`` takes no lock, so it reads
    on and leaves the entry as it is."""
    import os

    from nodeguard.state import LockUnusable

    directory = _samples_journal(tmp_path)
    config = write_config(tmp_path, directory, lookback=LONG_AGO)
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    lock = state / "journal.lock"
    for make in (lock.mkdir, lambda: lock.symlink_to("/etc/passwd"), lambda: os.mkfifo(lock)):
        make()
        before = os.lstat(lock)
        with pytest.raises(LockUnusable, match=r"journal\.lock"):
            follow_once(journal_config(tmp_path, directory, lookback=LONG_AGO), World())
        result = run_cli("-c", config, "--no-dropins", "journal", "follow", "--once")
        assert result.code == 0 and "NoSpaceLeftOnDevice" in result.out, result
        assert "Traceback" not in result.err, result.err
        assert not (state / "journal.json").exists()
        after = os.lstat(lock)
        assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino)
        lock.rmdir() if lock.is_dir() and not lock.is_symlink() else lock.unlink()


def test_with_json_a_refusal_is_json_on_stdout_too(tmp_path: Path) -> None:
    """A bad --since, an unsafe state folder, nothing to vacuum: with --json, stdout is
    one JSON document (follow: one JSON line) with the error and the exit code; stderr
    keeps the human line."""
    directory = _samples_journal(tmp_path)
    config = write_config(tmp_path, directory, lookback=LONG_AGO)
    base = ("-c", config, "--no-dropins", "journal")
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o777)

    since = run_cli(*base, "scan", "--since", "yesterdayish", "--json")
    unsafe = run_cli(*base, "follow", "--once", "--json")
    vacuum = run_cli(*base, "vacuum", "--json")

    for result, code in ((since, 2), (unsafe, 2), (vacuum, 0)):
        assert result.code == code, result
        assert result.err.startswith("nodeguard: "), result.err
        (line,) = result.out.splitlines() if result is unsafe else [result.out]
        body = json.loads(line)
        assert body["exit"] == code and body["error"] == result.err.strip()[len("nodeguard: ") :]
    assert "unsafe state folder" in unsafe.err and not (state / "journal.json").exists()
