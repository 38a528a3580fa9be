"""Live logs named like rotated files are reported, never silently left unbounded (issue 7,
item 20); copytruncate keeps a sparse log's holes, as lossless does (item 21)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import make_config, numbered_lines, records, rotate_json
from tests.fsimages import ext4_image, tmpfs_mount

DATA = numbered_lines("z", 0, 100)
MiB = 1 << 20


def test_live_logs_named_like_rotated_files_are_reported(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").write_bytes(DATA)
    (logs / "app.log.20240101-000000").write_bytes(DATA)  # app.log's own rotated file
    (logs / "orphan.20240101-000000").write_bytes(DATA * 100)  # a live log, never bounded
    (logs / "orphan.20240102-000000.gz").write_bytes(b"\x1f\x8b")
    pol = {"name": "p", "paths": [f"{logs}/*"], "max_size": "1Mi", "max_files": 5}
    code, body = rotate_json(make_config(tmp_path, [pol]))
    assert code == 0, body
    for name in ("orphan.20240101-000000", "orphan.20240102-000000.gz"):
        assert records(body, logs / name) == [("skip", "skipped")]
        (record,) = [f for f in body["files"] if f["path"] == str(logs / name)]
        assert "named like a rotated file" in record["reason"]
        assert "no live file orphan" in record["reason"]
    assert records(body, logs / "app.log.20240101-000000") == [("compress", "done")]


def sparse_log(path: Path, size: int) -> dict[int, bytes]:
    """A file of ``size`` bytes that is all holes except three small runs of text."""
    marks = {0: b"first lines\n" * 100, size // 2: b"middle\n" * 100, size - 700: b"end\n" * 175}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.ftruncate(fd, size)
        for offset, data in marks.items():
            os.pwrite(fd, data, offset)
        os.fsync(fd)
    finally:
        os.close(fd)
    return marks


def expected_digest(size: int, marks: dict[int, bytes]) -> str:
    digest, pos = hashlib.sha256(), 0
    zero = bytes(MiB)
    for offset, data in sorted(marks.items()):
        while pos < offset:
            n = min(MiB, offset - pos)
            digest.update(zero[:n])
            pos += n
        digest.update(data)
        pos += len(data)
    while pos < size:
        n = min(MiB, size - pos)
        digest.update(zero[:n])
        pos += n
    return digest.hexdigest()


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(MiB):
            digest.update(chunk)
    return digest.hexdigest()


@pytest.fixture(params=["ext4-copytruncate", "tmpfs-lossless-fallback"])
def sparse_case(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    if request.param.startswith("ext4"):
        with ext4_image(tmp_path / "fs", size_mb=64) as fs:
            yield fs.path, "copytruncate"
    else:
        with tmpfs_mount(tmp_path / "fs", size_mb=64) as fs:
            yield fs.path, "lossless"


def test_in_place_copy_keeps_the_holes_of_a_sparse_log(
    tmp_path: Path, sparse_case: tuple[Path, str]
) -> None:
    root, method = sparse_case
    logs = root / "logs"
    logs.mkdir()
    size = 512 * MiB  # on a 64 MiB filesystem: a filled-in copy cannot even fit
    marks = sparse_log(logs / "app.log", size)
    pol = {"name": "p", "paths": [f"{logs}/*.log"], "max_size": "1Mi", "method": method}
    code, body = rotate_json(make_config(tmp_path, [{**pol, "compress": "none"}]))
    assert code == 0, body
    (rotated,) = [p for p in logs.iterdir() if p.name.startswith("app.log.")]
    st = rotated.stat()
    assert st.st_size == size
    assert st.st_blocks * 512 < MiB, f"the copy allocated {st.st_blocks * 512} bytes"
    assert file_digest(rotated) == expected_digest(size, marks)
    assert (logs / "app.log").stat().st_size == 0
