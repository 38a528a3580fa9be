"""Retention on real directory trees: size boundaries, max_files, max_age, compression."""

from __future__ import annotations

import gzip
import os
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from nodeguard.config import load_config
from nodeguard.rotation import naming
from nodeguard.rotation.engine import PassOptions, World, run_pass
from tests.conftest import (
    VENV_BIN,
    make_config,
    nodeguard_history,
    numbered_lines,
    records,
    rotate_json,
    tree_digest,
)

KI = 1024


def policy(logs: Path, **keys: Any) -> dict[str, Any]:
    return {"name": "app", "paths": [f"{logs}/*.log"], **keys}


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    path = tmp_path / "logs"
    path.mkdir()
    return path


def rotated_names(logs: Path, live: str = "app.log") -> list[str]:
    return sorted(n for n in os.listdir(logs) if (r := naming.parse(n)) and r.base == live)


def test_file_at_max_size_rotates_and_one_byte_under_does_not(tmp_path: Path, logs: Path) -> None:
    (logs / "app.log").write_bytes(numbered_lines("eq", 0, 64))  # 64 x 64 = 4096 bytes
    (logs / "under.log").write_bytes(numbered_lines("un", 0, 64)[:-1])
    under_before = tree_digest(logs / "under.log")
    conf = make_config(tmp_path, [policy(logs, max_size="4Ki")])
    code, body = rotate_json(conf)
    assert code == 0
    assert records(body, logs / "app.log") == [("rotate", "done")]
    assert records(body, logs / "under.log") == [("keep", "unchanged")]
    (rotated,) = rotated_names(logs)
    assert rotated.endswith(".gz")
    assert records(body, logs / rotated.removesuffix(".gz")) == [("compress", "done")]
    assert gzip.decompress((logs / rotated).read_bytes()) == numbered_lines("eq", 0, 64)
    assert (logs / "app.log").stat().st_size == 0
    assert tree_digest(logs / "under.log") == under_before


def test_max_files_keeps_the_live_file_and_the_newest_rotated_ones(
    tmp_path: Path, logs: Path
) -> None:
    conf = make_config(tmp_path, [policy(logs, max_size="2Ki", max_files=3, compress="none")])
    rounds = [numbered_lines(f"r{i}", 0, 40) for i in range(6)]
    for data in rounds:
        with open(logs / "app.log", "ab") as f:
            f.write(data)
        assert rotate_json(conf)[0] == 0
    names, content = nodeguard_history(logs, "app.log")
    assert len(names) == 2
    assert content == rounds[-2] + rounds[-1]
    assert sorted(os.listdir(logs)) == sorted(["app.log", *names])


def test_max_files_1_keeps_only_the_empty_live_file(tmp_path: Path, logs: Path) -> None:
    (logs / "app.log").write_bytes(numbered_lines("a", 0, 100))
    conf = make_config(tmp_path, [policy(logs, max_size="1Ki", max_files=1)])
    code, body = rotate_json(conf)
    assert code == 0
    assert [a for a, _ in records(body, logs / "app.log")] == ["rotate"]
    assert os.listdir(logs) == ["app.log"]
    assert (logs / "app.log").stat().st_size == 0


def test_max_age_removes_rotated_files_whose_mtime_is_too_old(tmp_path: Path, logs: Path) -> None:
    (logs / "app.log").write_bytes(b"live\n")
    now = time.time()
    ages = {
        "app.log.20240101-000000.gz": 40,
        "app.log.20240102-000000": 31,
        "app.log.20240103-000000.gz": 29,
    }
    for name, days in ages.items():
        data = b"old %d\n" % days
        (logs / name).write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
        os.utime(logs / name, (now - days * 86400, now - days * 86400))
    conf = make_config(tmp_path, [policy(logs, max_age="30d", compress="none")])
    code, body = rotate_json(conf)
    assert code == 0
    removed = [f["path"] for f in body["files"] if f["action"] == "remove"]
    assert sorted(removed) == [str(logs / n) for n in sorted(ages)[:2]]
    assert sorted(os.listdir(logs)) == ["app.log", "app.log.20240103-000000.gz"]
    assert (logs / "app.log").read_bytes() == b"live\n"


def write_rounds(logs: Path, conf: Path, sizes: list[int]) -> bytes:
    """Append numbered lines in rounds, rotating after each; return everything written."""
    written = b""
    start = 0
    for count in sizes:
        data = numbered_lines("line", start, count)
        start += count
        with open(logs / "app.log", "ab") as f:
            f.write(data)
        written += data
        code, body = rotate_json(conf)
        assert code == 0, body
    return written


@pytest.mark.parametrize("method", ["rename", "copytruncate"])
@pytest.mark.parametrize("delay", [False, True])
def test_compressed_history_plus_live_file_is_exactly_what_was_written(
    tmp_path: Path, logs: Path, method: str, delay: bool
) -> None:
    conf = make_config(
        tmp_path,
        [policy(logs, max_size="16Ki", max_files=20, method=method, delay_compress=delay)],
    )
    # Rounds above and below max_size, ending with a live file that is not rotated.
    written = write_rounds(logs, conf, [300, 100, 400, 700, 50, 260, 256, 90])
    names, content = nodeguard_history(logs, "app.log")
    assert content == written
    assert len(names) == 5
    plain = [n for n in names if not n.endswith(".gz")]
    assert plain == ([names[-1]] if delay else [])
    assert not [n for n in os.listdir(logs) if naming.temp_target(n)]
    for name in names:
        if name.endswith(".gz"):
            zcat = subprocess.run(["zcat", logs / name], capture_output=True, check=True)
            assert zcat.stdout == gzip.decompress((logs / name).read_bytes())


def test_compress_none_keeps_rotated_files_plain_and_whole(tmp_path: Path, logs: Path) -> None:
    conf = make_config(tmp_path, [policy(logs, max_size="4Ki", max_files=10, compress="none")])
    written = write_rounds(logs, conf, [100, 100, 100])
    names, content = nodeguard_history(logs, "app.log")
    assert content == written
    assert len(names) == 3 and not any(n.endswith(".gz") for n in names)


def test_rotation_through_the_installed_command(tmp_path: Path, logs: Path) -> None:
    data = numbered_lines("cmd", 0, 200)
    (logs / "app.log").write_bytes(data)
    conf = make_config(tmp_path, [policy(logs, max_size="8Ki", compress_level=9)])
    done = subprocess.run(
        [VENV_BIN / "nodeguard", "-c", conf, "--no-dropins", "rotate"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (name,) = rotated_names(logs)
    assert f"{logs}/app.log" in done.stdout and name in done.stdout
    assert gzip.decompress((logs / name).read_bytes()) == data


def fixed_clock(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


def test_clock_going_backwards_keeps_age_order_and_the_newest_content(
    tmp_path: Path, logs: Path
) -> None:
    conf = load_config(
        make_config(tmp_path, [policy(logs, max_size="1Ki", max_files=3, compress="none")]),
        dropins=False,
    )
    times = iter(
        datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC) - timedelta(hours=h) for h in (0, 5, 10, 1)
    )
    rounds = [numbered_lines(f"t{i}", 0, 20) for i in range(4)]
    for data in rounds:
        (logs / "app.log").write_bytes(data)
        now = next(times)
        report = run_pass(conf, PassOptions(), World(clock=fixed_clock(now)))
        assert not report.failed, report.events
    names, content = nodeguard_history(logs, "app.log")
    assert names == ["app.log.20240601-120000-2", "app.log.20240601-120000-3"]
    assert content == rounds[2] + rounds[3]


def test_a_catch_all_glob_never_treats_rotated_temp_or_hidden_files_as_live_logs(
    tmp_path: Path, logs: Path
) -> None:
    (logs / "app.log").write_bytes(numbered_lines("a", 0, 100))
    (logs / ".hidden.log").write_bytes(numbered_lines("h", 0, 100))
    (logs / "app.log.20240101-000000.gz").write_bytes(gzip.compress(numbered_lines("o", 0, 100)))
    conf = make_config(tmp_path, [policy(logs, paths=[f"{logs}/*"], max_size="1Ki")])
    hidden = tree_digest(logs / ".hidden.log")
    code, body = rotate_json(conf)
    assert code == 0
    assert {f["path"] for f in body["files"] if f["action"] in ("rotate", "keep")} == {
        str(logs / "app.log")
    }
    code, body = rotate_json(conf)
    assert code == 0
    assert [f["path"] for f in body["files"]] == [str(logs / "app.log")]
    assert len(rotated_names(logs)) == 2
    assert tree_digest(logs / ".hidden.log") == hidden
