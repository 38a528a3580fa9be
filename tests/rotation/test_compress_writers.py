"""A rotated file a process still writes is never compressed (its next lines would be lost).

After a ``rename`` rotation the application appends to the renamed file until it
reopens its log. Compressing that file and removing it drops every line it writes
afterwards. So the compress step looks up /proc writers of the file (device + inode)
and leaves it plain, reported, for a later pass; and the compression re-checks the file
before the plain copy goes, for a writer that came while it was compressed. Writers
and readers here are real processes holding real files.
"""

from __future__ import annotations

import grp
import gzip
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nodeguard import faults
from tests.conftest import make_config, nodeguard_history, numbered_lines, rotate_json

DATA = numbered_lines("w", 0, 200)
ROTATED = "app.log.20260101-000000"
LATE = "echo late-line >&3"  # what a holder writes once told to, then it exits


def policy(logs: Path, **keys: Any) -> dict[str, Any]:
    base = {"name": "app", "paths": [f"{logs}/*.log"], "max_size": "1Ki", "method": "rename"}
    return {**base, "compress": "gzip", **keys}


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    path = tmp_path / "logs"
    path.mkdir()
    return path


def holder(script: str) -> subprocess.Popen[bytes]:
    """A shell that runs ``script`` (opening fd 3), says ready, then waits for a line."""
    proc = subprocess.Popen(
        ["/bin/sh", "-c", f"{script}; echo ready; read x; {LATE}"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    return proc


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


def compress_records(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for f in body["files"] if f["action"] == "compress"]


def test_rotated_file_its_writer_still_holds_is_compressed_only_after_the_writer_let_go(
    tmp_path: Path, logs: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    """rename, no postrotate: the application keeps appending to the rotated file."""
    (logs / "app.log").write_bytes(DATA)
    conf = make_config(tmp_path, [policy(logs)])
    writer = holder(f"exec 3>>'{logs / 'app.log'}'")
    procs.append(writer)
    code, body = rotate_json(conf)
    assert code == 0, body
    (record,) = compress_records(body)
    assert record["result"] == "skipped", record
    assert f"pid {writer.pid} (sh)" in record["reason"]
    assert "a later pass compresses it once no process writes it" in record["reason"]
    names = sorted(p.name for p in logs.iterdir())
    assert len(names) == 2 and not any(n.endswith(".gz") for n in names), names
    writer.communicate(b"\n", timeout=30)  # the late line, then the writer exits

    code, body = rotate_json(conf)
    assert code == 0, body
    assert [r["result"] for r in compress_records(body)] == ["done"]
    rotated, content = nodeguard_history(logs, "app.log")
    assert len(rotated) == 1 and rotated[0].endswith(".gz")
    assert content == DATA + b"late-line\n"


def test_reader_only_does_not_hold_back_compression(
    tmp_path: Path, logs: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    (logs / "app.log").write_bytes(b"live\n")
    (logs / ROTATED).write_bytes(DATA)
    conf = make_config(tmp_path, [policy(logs)])
    procs.append(holder(f"exec 3<'{logs / ROTATED}'"))  # tail -f, a shipper: O_RDONLY
    code, body = rotate_json(conf)
    assert code == 0, body
    assert [r["result"] for r in compress_records(body)] == ["done"]
    assert not (logs / ROTATED).exists()
    assert gzip.decompress((logs / f"{ROTATED}.gz").read_bytes()) == DATA


@pytest.mark.parametrize("point", ["compress.after-tmp", "compress.after-rename"])
def test_writer_that_comes_while_the_file_is_compressed_keeps_the_plain_file(
    tmp_path: Path,
    logs: Path,
    monkeypatch: pytest.MonkeyPatch,
    procs: list[subprocess.Popen[bytes]],
    point: str,
) -> None:
    """No writer when /proc is looked at; one opens the file and writes before the
    plain file goes: the .gz lacks that line, so it is dropped and the file kept."""
    (logs / "app.log").write_bytes(b"live\n")
    (logs / ROTATED).write_bytes(DATA)
    conf = make_config(tmp_path, [policy(logs)])
    real_point = faults.point

    def writer_arrives(name: str) -> None:
        if name == point and not procs:
            procs.append(holder(f"exec 3>>'{logs / ROTATED}'; echo during >&3"))
        real_point(name)

    monkeypatch.setattr(faults, "point", writer_arrives)
    code, body = rotate_json(conf)
    monkeypatch.undo()
    assert code == 0, body
    (record,) = compress_records(body)
    assert record["result"] == "skipped", record
    assert "grew" in record["reason"] and "later pass" in record["reason"]
    assert sorted(p.name for p in logs.iterdir()) == ["app.log", ROTATED]
    assert (logs / ROTATED).read_bytes() == DATA + b"during\n"
    procs[0].communicate(b"\n", timeout=30)

    code, body = rotate_json(conf)
    assert code == 0, body
    assert [r["result"] for r in compress_records(body)] == ["done"]
    content = gzip.decompress((logs / f"{ROTATED}.gz").read_bytes())
    assert content == DATA + b"during\nlate-line\n"


def test_plain_leftover_beside_its_gz_stays_while_a_process_writes_it(
    tmp_path: Path, logs: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    """An interrupted compression's plain copy is removed only once no one writes it."""
    (logs / "app.log").write_bytes(b"live\n")
    (logs / ROTATED).write_bytes(DATA)
    (logs / f"{ROTATED}.gz").write_bytes(gzip.compress(DATA))
    conf = make_config(tmp_path, [policy(logs)])
    writer = holder(f"exec 3>>'{logs / ROTATED}'")
    procs.append(writer)
    code, body = rotate_json(conf)
    assert code == 0, body
    cleanup = [f for f in body["files"] if f["path"] == str(logs / ROTATED)]
    assert [(f["action"], f["result"]) for f in cleanup] == [("cleanup", "skipped")]
    assert f"pid {writer.pid} (sh)" in cleanup[0]["reason"]
    assert (logs / ROTATED).read_bytes() == DATA
    writer.communicate(b"\n", timeout=30)

    # The writer added a line: the .gz no longer holds the file, so both are kept and
    # reported for the admin (nothing is lost either way).
    code, body = rotate_json(conf)
    assert code == 1, body
    records = [
        (f["action"], f["result"]) for f in body["files"] if f["path"] == str(logs / ROTATED)
    ]
    assert records == [("check", "failed")]
    assert (logs / ROTATED).read_bytes() == DATA + b"late-line\n"
    assert gzip.decompress((logs / f"{ROTATED}.gz").read_bytes()) == DATA


def test_su_policy_sees_writers_of_other_users(
    tmp_path: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    """A policy with ``su`` runs as that user, who cannot see root's fds in /proc: the
    writers are looked up as root before the pass drops to the user."""
    top = Path(tempfile.mkdtemp(prefix="nodeguard-test-", dir="/tmp"))
    try:
        os.chmod(top, 0o755)  # noqa: S103 (nobody must reach the logs)
        logs = top / "logs"
        logs.mkdir()
        os.chmod(logs, 0o777)  # noqa: S103 (the shared folder su is for)
        (logs / "app.log").write_bytes(DATA)
        os.chown(logs / "app.log", pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid)
        conf = make_config(tmp_path, [policy(logs, su=["nobody", "nogroup"])])
        writer = holder(f"exec 3>>'{logs / 'app.log'}'")  # a root process
        procs.append(writer)
        code, body = rotate_json(conf)
        assert code == 0, body
        (record,) = compress_records(body)
        assert record["result"] == "skipped", record
        assert f"pid {writer.pid} (sh)" in record["reason"]
        writer.communicate(b"\n", timeout=30)
        _, content = nodeguard_history(logs, "app.log")
        assert content == DATA + b"late-line\n"
    finally:
        shutil.rmtree(top)


def test_plain_file_replaced_while_compressed_is_not_removed(
    tmp_path: Path, logs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plain file is removed by name: if another file took that name while the .gz
    was written (moved aside, a new one written there), that other file stays, and the
    .gz, which does not hold it, is dropped."""
    (logs / "app.log").write_bytes(b"live\n")
    (logs / ROTATED).write_bytes(DATA)
    conf = make_config(tmp_path, [policy(logs)])
    real_point = faults.point

    def swap(name: str) -> None:
        if name == "compress.after-rename" and not (logs / "aside").exists():
            os.rename(logs / ROTATED, logs / "aside")
            (logs / ROTATED).write_bytes(b"other\n")
        real_point(name)

    monkeypatch.setattr(faults, "point", swap)
    code, body = rotate_json(conf)
    monkeypatch.undo()
    (record,) = compress_records(body)
    assert (logs / ROTATED).read_bytes() == b"other\n", record
    assert (logs / "aside").read_bytes() == DATA
    assert record["result"] == "skipped" and "replaced" in record["reason"], record
    assert not (logs / f"{ROTATED}.gz").exists()
    assert code == 0, body
