"""A full disk (ENOSPC) or a bad block (EIO) while copying or compressing.

In each case the original stays whole, the partial output is removed, the error is
reported (exit 1) and nothing else changes. ENOSPC comes from a small tmpfs and from a
nearly full ext4 image; EIO from a real btrfs whose data checksum no longer matches
after one byte of the image was flipped (the kernel refuses to return such data).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import random
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nodeguard.fsutil import TMP_MARK
from nodeguard.rotation import naming
from tests.conftest import make_config, numbered_lines, rotate_json, tree_digest
from tests.fsimages import FsToolMissing, Mounted, ext4_image, fill, loop_image, tmpfs_mount

MiB = 1 << 20


def noise(size: int, seed: int) -> bytes:
    """Incompressible bytes, so gzip needs about as much room as the input."""
    return random.Random(seed).randbytes(size)  # noqa: S311 - test data, not secrets


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def policy(logs: Path, **keys: Any) -> dict[str, Any]:
    return {"name": "app", "paths": [f"{logs}/*.log"], "max_size": "1Mi", "max_files": 10} | keys


def failed(body: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [
        (f["action"], Path(f["path"]).name, f["error"] or "")
        for f in body["files"]
        if f["result"] == "failed"
    ]


def leftovers(directory: Path) -> list[str]:
    return [p.name for p in directory.rglob(f"*{TMP_MARK}")]


def bystander(logs: Path) -> Path:
    """A second, small log that must come through untouched."""
    path = logs / "other.log"
    path.write_bytes(numbered_lines("other", 0, 10))
    return path


# --- ENOSPC ---------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["copytruncate", "lossless"])
def test_copy_on_a_full_tmpfs_fails_cleanly_and_keeps_the_log(tmp_path: Path, method: str) -> None:
    with tmpfs_mount(tmp_path / "tmpfs", size_mb=16) as fs:
        logs = fs.path / "logs"
        logs.mkdir()
        (logs / "app.log").write_bytes(noise(6 * MiB, 1))
        other = bystander(logs)
        fill(fs, leave_bytes=MiB)
        digest, other_before = sha(logs / "app.log"), tree_digest(other)
        code, body = rotate_json(make_config(tmp_path, [policy(logs, method=method)]))
        assert code == 1
        assert [(a, n) for a, n, _ in failed(body)] == [("rotate", "app.log")]
        assert "ENOSPC" in failed(body)[0][2]
        assert sha(logs / "app.log") == digest
        assert sorted(os.listdir(logs)) == ["app.log", "other.log"]  # no partial copy
        assert tree_digest(other) == other_before


def test_lossless_copy_on_a_full_ext4_fails_cleanly_and_keeps_the_log(tmp_path: Path) -> None:
    with ext4_image(tmp_path / "ext4", size_mb=32) as fs:
        logs = fs.path / "logs"
        logs.mkdir()
        (logs / "app.log").write_bytes(noise(8 * MiB, 2))
        other = bystander(logs)
        fill(fs, leave_bytes=2 * MiB)
        digest, other_before = sha(logs / "app.log"), tree_digest(other)
        code, body = rotate_json(make_config(tmp_path, [policy(logs, method="lossless")]))
        assert code == 1
        (error,) = [e for a, n, e in failed(body) if (a, n) == ("rotate", "app.log")]
        assert "ENOSPC" in error
        assert sha(logs / "app.log") == digest
        assert (logs / "app.log").stat().st_size == 8 * MiB  # nothing was collapsed
        assert sorted(os.listdir(logs)) == ["app.log", "other.log"]
        assert tree_digest(other) == other_before
        assert list((tmp_path / "state" / "intents").glob("*.json")) == []


def test_compression_on_a_full_ext4_keeps_the_plain_rotated_file(tmp_path: Path) -> None:
    with ext4_image(tmp_path / "ext4", size_mb=32) as fs:
        logs = fs.path / "logs"
        logs.mkdir()
        old = logs / "app.log.20260101-000000"
        old.write_bytes(noise(6 * MiB, 3))
        (logs / "app.log").write_bytes(numbered_lines("live", 0, 20000))  # 1.2 MiB
        live_digest = sha(logs / "app.log")
        other = bystander(logs)
        fill(fs, leave_bytes=2 * MiB)
        old_digest, other_before = sha(old), tree_digest(other)
        code, body = rotate_json(make_config(tmp_path, [policy(logs)]))
        assert code == 1
        errors = {n: e for a, n, e in failed(body) if a == "compress"}
        assert "ENOSPC" in errors[old.name]
        assert sha(old) == old_digest
        assert not Path(f"{old}.gz").exists()
        assert leftovers(logs) == []
        # the rotation itself and the small file's compression were not affected
        (fresh,) = [
            n
            for n in os.listdir(logs)
            if (r := naming.parse(n)) and r.base == "app.log" and n != old.name
        ]
        assert fresh.endswith(".gz")
        assert tree_digest(other) == other_before
        rotated_digest = hashlib.sha256(gzip.decompress((logs / fresh).read_bytes()))
        assert rotated_digest.hexdigest() == live_digest


# --- EIO ------------------------------------------------------------------------------------


@contextlib.contextmanager
def btrfs_image(workdir: Path) -> Iterator[Mounted]:
    mkfs = shutil.which("mkfs.btrfs") or shutil.which("mkfs.btrfs", path="/usr/sbin:/sbin")
    if mkfs is None:
        raise FsToolMissing("mkfs.btrfs not found: apt-get install btrfs-progs (see .ci/setup)")
    with loop_image("btrfs", workdir, 128, [mkfs, "-q", "-f"]) as fs:
        yield fs


@contextlib.contextmanager
def bad_block(fs: Mounted, path: Path, marker: bytes) -> Iterator[None]:
    """Flip one byte of ``path``'s data on the device under btrfs; restore it on exit."""
    os.sync()
    assert fs.image is not None
    with open(fs.image, "r+b") as image:
        blob = image.read()
        offset = blob.find(marker)
        assert offset >= 0 and blob.count(marker) == 1, "marker must be on disk exactly once"
        image.seek(offset)
        image.write(b"\0")
        image.flush()
        os.fsync(image.fileno())
        _drop_cache(path)
        try:
            with pytest.raises(OSError, match="Input/output error"):
                path.read_bytes()  # the precondition: reading it really fails
            yield
        finally:
            image.seek(offset)
            image.write(marker[:1])
            image.flush()
            os.fsync(image.fileno())
            _drop_cache(path)


def _drop_cache(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def lines_with_marker(tag: str) -> tuple[bytes, bytes]:
    data = numbered_lines(tag, 0, 40000)  # 2.5 MiB, stored in data extents
    marker = numbered_lines(tag, 20000, 1)
    return data, marker


def test_compression_reading_a_bad_block_fails_with_eio_and_keeps_the_plain_file(
    tmp_path: Path,
) -> None:
    with btrfs_image(tmp_path / "btrfs") as fs:
        logs = fs.path / "logs"
        logs.mkdir()
        old = logs / "app.log.20260101-000000"
        data, marker = lines_with_marker("eio-gz")
        old.write_bytes(data)
        (logs / "app.log").write_bytes(b"live\n")
        other = bystander(logs)
        other_before = tree_digest(other)
        with bad_block(fs, old, marker):
            code, body = rotate_json(make_config(tmp_path, [policy(logs, max_size="10Mi")]))
        assert code == 1
        assert [(a, n) for a, n, _ in failed(body)] == [("compress", old.name)]
        assert "EIO" in failed(body)[0][2]
        assert old.read_bytes() == data  # once the block reads again, it is all there
        assert not Path(f"{old}.gz").exists()
        assert leftovers(logs) == []
        assert tree_digest(other) == other_before


@pytest.mark.parametrize("method", ["copytruncate", "lossless"])
def test_copy_reading_a_bad_block_fails_with_eio_and_never_truncates(
    tmp_path: Path, method: str
) -> None:
    olddir = tmp_path / "old"  # on another filesystem: the copy really reads the data
    olddir.mkdir()
    with btrfs_image(tmp_path / "btrfs") as fs:
        logs = fs.path / "logs"
        logs.mkdir()
        data, marker = lines_with_marker(f"eio-{method}")
        (logs / "app.log").write_bytes(data)
        other = bystander(logs)
        other_before = tree_digest(other)
        config = make_config(tmp_path, [policy(logs, method=method, olddir=str(olddir))])
        with bad_block(fs, logs / "app.log", marker):
            code, body = rotate_json(config)
        assert code == 1
        (error,) = [e for a, n, e in failed(body) if (a, n) == ("rotate", "app.log")]
        assert "EIO" in error
        assert (logs / "app.log").read_bytes() == data
        assert os.listdir(olddir) == []  # the partial copy was removed
        assert tree_digest(other) == other_before
