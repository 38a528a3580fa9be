"""``method: lossless`` in the engine: prefix moved out with collapse range, tail kept live.

Rotated names, compression and retention work as for the other methods; where the
filesystem cannot collapse, the pass falls back to copytruncate and says so.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nodeguard.config import load_config
from nodeguard.fsutil import TMP_MARK
from nodeguard.rotation import naming
from nodeguard.rotation.engine import PassOptions, World, run_pass
from nodeguard.rotation.report import FAILED
from nodeguard.state import IntentJournal
from tests.conftest import make_config, numbered_lines, read_maybe_gz, records, rotate_json
from tests.fsimages import Mounted, ext4_image, tmpfs_mount, xfs_image

DATA = numbered_lines("l", 0, 1000)  # 64000 bytes: 15 blocks of 4096 and a 2560-byte tail


@pytest.fixture(scope="module")
def ext4(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mounted]:
    with ext4_image(tmp_path_factory.mktemp("lossless"), size_mb=64) as fs:
        yield fs


def fresh_dir(fs: Mounted, tmp_path: Path) -> Path:
    path = fs.path / tmp_path.name
    path.mkdir()
    return path


def policy(logs: Path, **keys: Any) -> dict[str, Any]:
    return {
        "name": "app",
        "paths": [f"{logs}/*.log"],
        "max_size": "8Ki",
        "method": "lossless",
    } | keys


def rotated(logs: Path) -> list[naming.RotatedName]:
    found = [r for r in map(naming.parse, os.listdir(logs)) if r and r.base == "app.log"]
    return sorted(found, key=lambda r: r.key)


def test_lossless_moves_a_block_aligned_prefix_and_keeps_the_inode_and_tail(
    ext4: Mounted, tmp_path: Path
) -> None:
    logs = fresh_dir(ext4, tmp_path)
    (logs / "app.log").write_bytes(DATA)
    inode = (logs / "app.log").stat().st_ino
    code, body = rotate_json(make_config(tmp_path, [policy(logs, compress="none")]))
    assert code == 0, body
    (moved,) = rotated(logs)
    prefix = (logs / moved.name).read_bytes()
    assert len(prefix) == 15 * 4096
    assert prefix + (logs / "app.log").read_bytes() == DATA
    assert (logs / "app.log").stat().st_ino == inode
    assert records(body, logs / "app.log") == [("rotate", "done")]


def test_lossless_names_compresses_and_retains_like_the_other_methods(
    ext4: Mounted, tmp_path: Path
) -> None:
    logs = fresh_dir(ext4, tmp_path)
    config = make_config(tmp_path, [policy(logs, max_files=3, delay_compress=True)])
    written = b""
    for round_ in range(4):
        chunk = numbered_lines(f"r{round_}", 0, 400)
        with open(logs / "app.log", "ab") as handle:
            handle.write(chunk)
        written += chunk
        code, body = rotate_json(config)
        assert code == 0, body
    kept = rotated(logs)
    assert [r.compressed for r in kept] == [True, False]  # newest stays plain: delay_compress
    history = b"".join(read_maybe_gz(logs / r.name) for r in kept) + (logs / "app.log").read_bytes()
    assert written.endswith(history)  # only the oldest rotated files were dropped
    assert len(history) > 2 * 400 * 64 - 4096
    assert [p for p in os.listdir(logs) if p.endswith(TMP_MARK)] == []


def test_lossless_works_on_xfs(tmp_path: Path) -> None:
    with xfs_image(tmp_path / "xfs") as fs:
        logs = fresh_dir(fs, tmp_path)
        (logs / "app.log").write_bytes(DATA)
        code, body = rotate_json(make_config(tmp_path, [policy(logs, compress="none")]))
        assert code == 0, body
        (moved,) = rotated(logs)
        prefix = (logs / moved.name).read_bytes()
        assert len(prefix) % fs.block_size == 0
        assert prefix + (logs / "app.log").read_bytes() == DATA
        assert "fell back" not in body["files"][0]["reason"]


def test_lossless_on_tmpfs_falls_back_to_copytruncate_and_reports_it(tmp_path: Path) -> None:
    with tmpfs_mount(tmp_path / "tmpfs") as fs:
        logs = fresh_dir(fs, tmp_path)
        (logs / "app.log").write_bytes(DATA)
        code, body = rotate_json(make_config(tmp_path, [policy(logs)]))
        assert code == 0, body
        (record,) = [f for f in body["files"] if f["action"] == "rotate"]
        assert record["result"] == "done"
        assert "filesystem does not support collapse range" in record["reason"]
        assert record["reason"].endswith("fell back to copytruncate")
        (moved,) = rotated(logs)
        assert read_maybe_gz(logs / moved.name) == DATA
        assert (logs / "app.log").stat().st_size == 0


def test_lossless_leaves_a_file_of_one_block_unchanged(ext4: Mounted, tmp_path: Path) -> None:
    logs = fresh_dir(ext4, tmp_path)
    small = DATA[:4000]
    (logs / "app.log").write_bytes(small)
    code, body = rotate_json(make_config(tmp_path, [policy(logs, max_size="1Ki")]))
    assert code == 0, body
    (record,) = [f for f in body["files"] if f["action"] == "rotate"]
    assert (record["result"], record["reason"].split("; ")[-1]) == (
        "unchanged",
        "not larger than one filesystem block",
    )
    assert rotated(logs) == []
    assert (logs / "app.log").read_bytes() == small
    assert os.listdir(logs) == ["app.log"]


def test_lossless_that_moves_nothing_keeps_the_existing_rotated_files(
    ext4: Mounted, tmp_path: Path
) -> None:
    logs = fresh_dir(ext4, tmp_path)
    old = logs / "app.log.20260101-000000"
    old.write_bytes(b"the only rotated copy\n")
    (logs / "app.log").write_bytes(DATA[:4000])
    code, body = rotate_json(
        make_config(tmp_path, [policy(logs, max_size="1Ki", max_files=2, compress="none")])
    )
    assert code == 0, body
    assert old.read_bytes() == b"the only rotated copy\n"
    assert [f["action"] for f in body["files"] if f["path"] == str(old)] == []


def test_lossless_without_intent_records_refuses_and_changes_nothing(
    ext4: Mounted, tmp_path: Path
) -> None:
    logs = fresh_dir(ext4, tmp_path)
    (logs / "app.log").write_bytes(DATA)
    config = load_config(make_config(tmp_path, [policy(logs)]), dropins=False)
    report = run_pass(config, PassOptions())  # a library caller that passed no store
    (record,) = report.events
    assert (record.kind, record.facts["result"]) == ("rotate", FAILED)
    assert "needs intent records" in (record.facts["error"] or "")
    assert os.listdir(logs) == ["app.log"]
    assert (logs / "app.log").read_bytes() == DATA


def test_lossless_dry_run_plans_and_changes_nothing(ext4: Mounted, tmp_path: Path) -> None:
    logs = fresh_dir(ext4, tmp_path)
    (logs / "app.log").write_bytes(DATA)
    code, body = rotate_json(make_config(tmp_path, [policy(logs)]), "--dry-run")
    assert code == 0
    assert records(body, logs / "app.log") == [("rotate", "planned")]
    assert "lossless" in body["files"][0]["reason"]
    assert os.listdir(logs) == ["app.log"]


@pytest.mark.parametrize("method", ["copytruncate", "lossless"])
def test_writer_without_o_append_is_reported_after_an_in_place_rotation(
    ext4: Mounted, tmp_path: Path, method: str
) -> None:
    """A writer the pre-rotation check could not see (here: /proc hidden from the first
    pass; on a node, one that opened the file mid-pass) is still reported afterwards."""
    logs = fresh_dir(ext4, tmp_path)
    config = make_config(tmp_path, [policy(logs, method=method, compress="none")])
    blind = World(proc_root=tmp_path / "no-proc")
    fd = os.open(logs / "app.log", os.O_WRONLY | os.O_CREAT, 0o644)  # no O_APPEND
    try:
        os.write(fd, DATA)
        loaded = load_config(config, dropins=False)
        intents = IntentJournal(tmp_path / "state" / "intents")
        report = run_pass(loaded, PassOptions(), blind, intents)
        assert [e.kind for e in report.events] == ["rotate"]  # nothing to report yet
        os.write(fd, b"written at the old offset\n")
        code, body = rotate_json(config)
    finally:
        os.close(fd)
    assert code == 1
    assert records(body, logs / "app.log")[-1] == ("refuse", "refused")  # not again
    (check,) = [f for f in body["files"] if f["action"] == "check"]
    assert check["result"] == "failed"
    assert check["reason"].startswith("writer does not use O_APPEND: file became sparse")
    assert "NUL" in check["reason"]
    assert f"pid {os.getpid()} " in check["reason"]  # /proc names the writer: this test
