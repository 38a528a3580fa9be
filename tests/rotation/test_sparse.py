"""The NUL-prefix symptom and /proc writer flags, with real writer processes and truncates."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodeguard.rotation.lossless import lossless_move_prefix
from nodeguard.rotation.sparse import (
    hole_bytes,
    non_append_symptom,
    nul_prefix,
    nul_prefix_ratio,
    open_writers,
)
from tests.fsimages import Mounted, ext4_image, tmpfs_mount

# Writes 1000 lines, says "ready", waits for a line on stdin, writes 10 more, exits.
WRITER = r"""
import os, sys
flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if sys.argv[2] == "append" else 0)
fd = os.open(sys.argv[1], flags, 0o644)
os.write(fd, b"".join(b"before %04d\n" % i for i in range(1000)))
print("ready", flush=True)
sys.stdin.readline()
os.write(fd, b"".join(b"after %04d\n" % i for i in range(10)))
"""


@pytest.fixture(scope="module")
def ext4(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mounted]:
    with ext4_image(tmp_path_factory.mktemp("ext4"), size_mb=32) as mounted:
        yield mounted


@pytest.fixture(scope="module")
def tmpfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mounted]:
    with tmpfs_mount(tmp_path_factory.mktemp("tmpfs")) as mounted:
        yield mounted


@pytest.fixture(params=["ext4", "tmpfs"])
def fs(request: pytest.FixtureRequest) -> Mounted:
    mounted: Mounted = request.getfixturevalue(request.param)
    return mounted


@pytest.fixture
def log(fs: Mounted, request: pytest.FixtureRequest) -> Path:
    return fs.path / (str(request.node.name).replace("[", "_").replace("]", "") + ".log")


def start_writer(path: Path, mode: str) -> subprocess.Popen[str]:
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None
    if writer.stdout.readline().strip() != "ready":
        writer.kill()
        raise RuntimeError(f"writer did not start (exit {writer.wait()})")
    return writer


def finish_writer(writer: subprocess.Popen[str]) -> None:
    writer.communicate("go\n", timeout=30)
    if writer.returncode != 0:
        raise RuntimeError(f"writer failed with exit {writer.returncode}")


def truncate_under(writer_mode: str, path: Path) -> int:
    """Run a writer, truncate its file to 0 as copytruncate does, let it write again."""
    writer = start_writer(path, writer_mode)
    try:
        written = path.stat().st_size
        os.truncate(path, 0)
    finally:
        finish_writer(writer)
    return written


def open_ro(path: Path) -> int:
    return os.open(path, os.O_RDONLY)


def test_non_append_writer_leaves_a_hole_that_is_reported(log: Path) -> None:
    written = truncate_under("plain", log)
    fd = open_ro(log)
    try:
        found = nul_prefix(fd)
        symptom = non_append_symptom(fd)
        ratio = nul_prefix_ratio(fd)
    finally:
        os.close(fd)
    assert found.leading == written
    assert found.size == written + len(b"".join(b"after %04d\n" % i for i in range(10)))
    assert found.hole_bytes > 0
    assert ratio > 0.9
    assert symptom is not None and "writer does not use O_APPEND" in symptom
    assert f"{written} of {found.size} bytes" in symptom
    assert log.read_bytes()[written:].startswith(b"after 0000\n")


def test_append_writer_after_truncate_shows_no_symptom(log: Path) -> None:
    truncate_under("append", log)
    fd = open_ro(log)
    try:
        assert non_append_symptom(fd) is None
        assert nul_prefix(fd).leading == 0
        assert hole_bytes(fd) == 0
    finally:
        os.close(fd)
    assert log.read_bytes().startswith(b"after 0000\n")


def test_written_nul_bytes_count_without_holes(log: Path) -> None:
    log.write_bytes(b"\0" * 5000 + b"text\n")
    fd = open_ro(log)
    try:
        found = nul_prefix(fd)
        symptom = non_append_symptom(fd)
    finally:
        os.close(fd)
    assert (found.leading, found.hole_bytes, found.capped) == (5000, 0, False)
    assert symptom is not None and "5000 of 5005 bytes" in symptom and "0 in holes" in symptom


def test_short_nul_run_is_not_reported_but_is_measured(log: Path) -> None:
    log.write_bytes(b"\0" * 10 + b"text\n")
    fd = open_ro(log)
    try:
        assert non_append_symptom(fd) is None
        assert nul_prefix(fd).leading == 10
    finally:
        os.close(fd)


def test_scan_limit_makes_the_run_a_lower_bound(log: Path) -> None:
    log.write_bytes(b"\0" * (300 << 10) + b"text\n")
    fd = open_ro(log)
    try:
        found = nul_prefix(fd, limit=64 << 10)
        reported = non_append_symptom(fd)
    finally:
        os.close(fd)
    assert found.capped
    assert 64 << 10 <= found.leading < 300 << 10
    assert reported is not None and "of 307205 bytes" in reported


def test_file_that_is_all_hole_is_all_nul(log: Path) -> None:
    with open(log, "wb") as handle:
        handle.truncate(1 << 20)
    fd = open_ro(log)
    try:
        found = nul_prefix(fd)
    finally:
        os.close(fd)
    assert (found.leading, found.hole_bytes, found.ratio) == (1 << 20, 1 << 20, 1.0)


def test_empty_file_has_ratio_zero_and_no_symptom(log: Path) -> None:
    log.write_bytes(b"")
    fd = open_ro(log)
    try:
        assert nul_prefix_ratio(fd) == 0.0
        assert non_append_symptom(fd) is None
    finally:
        os.close(fd)


READER = "import sys; f = open(sys.argv[1]); print('ready', flush=True); sys.stdin.read()"


def test_open_writers_tells_append_writers_from_plain_ones(log: Path) -> None:
    plain = start_writer(log, "plain")
    appender = start_writer(log, "append")
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(log)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout is not None and reader.stdout.readline().strip() == "ready"
        st = log.stat()
        found = open_writers({(st.st_dev, st.st_ino)})
    finally:
        reader.communicate("", timeout=30)
        finish_writer(plain)
        finish_writer(appender)
    writers = found[(st.st_dev, st.st_ino)]
    assert {w.pid: w.append for w in writers} == {plain.pid: False, appender.pid: True}
    assert all(w.fd >= 3 and w.command for w in writers)


def collapse_under(writer_mode: str, path: Path) -> tuple[int, int]:
    """Run a writer, move a prefix out with the lossless primitive, let it write again."""
    writer = start_writer(path, writer_mode)
    try:
        src = os.open(path, os.O_RDWR | os.O_APPEND)
        dst = os.open(path.with_name(path.name + ".1"), os.O_RDWR | os.O_CREAT | os.O_EXCL)
        try:
            moved = lossless_move_prefix(src, dst)
        finally:
            os.close(src)
            os.close(dst)
        kept = path.stat().st_size
    finally:
        finish_writer(writer)
    return moved, kept


def test_non_append_writer_under_a_collapse_leaves_a_hole_that_is_reported(
    ext4: Mounted, request: pytest.FixtureRequest
) -> None:
    log = ext4.path / f"{request.node.name}.log"
    moved, kept = collapse_under("plain", log)
    data = log.read_bytes()
    fd = open_ro(log)
    try:
        symptom = non_append_symptom(fd)
        holes = hole_bytes(fd)
    finally:
        os.close(fd)
    assert moved > 0
    assert data[kept : kept + moved] == b"\0" * moved  # the writer wrote at its old offset
    assert data[kept + moved :].startswith(b"after 0000\n")
    assert holes > 0
    assert symptom is not None and "writer does not use O_APPEND" in symptom


def test_append_writer_under_a_collapse_continues_right_after_the_tail(
    ext4: Mounted, request: pytest.FixtureRequest
) -> None:
    log = ext4.path / f"{request.node.name}.log"
    moved, _ = collapse_under("append", log)
    fd = open_ro(log)
    try:
        assert non_append_symptom(fd) is None
    finally:
        os.close(fd)
    assert moved > 0
    rotated = log.with_name(log.name + ".1").read_bytes()
    assert rotated + log.read_bytes() == b"".join(b"before %04d\n" % i for i in range(1000)) + (
        b"".join(b"after %04d\n" % i for i in range(10))
    )
