"""``method: lossless`` in the engine cuts between lines, and reports a line it had to split.

The primitive's choice of cut is tested in test_lossless.py on every filesystem; this
checks what an operator sees from ``nodeguard rotate``: rotated files that end with a
whole line, and a report naming the file and the reason when no block boundary follows
a newline.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.linemix import make_line
from nodeguard.rotation import naming
from tests.conftest import make_config, rotate_json
from tests.fsimages import Mounted, ext4_image


@pytest.fixture(scope="module")
def ext4(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mounted]:
    with ext4_image(tmp_path_factory.mktemp("lines"), size_mb=64) as fs:
        yield fs


def _rotate(fs: Mounted, tmp_path: Path, data: bytes) -> tuple[bytes, bytes, dict[str, object]]:
    logs = fs.path / tmp_path.name
    logs.mkdir()
    (logs / "app.log").write_bytes(data)
    policy = {
        "name": "app",
        "paths": [f"{logs}/*.log"],
        "max_size": "8Ki",
        "method": "lossless",
        "compress": "none",
    }
    code, body = rotate_json(make_config(tmp_path, [policy]))
    assert code == 0, body
    (moved,) = [r for r in map(naming.parse, os.listdir(logs)) if r and r.base == "app.log"]
    (record,) = [f for f in body["files"] if f["action"] == "rotate"]
    assert record["path"] == str(logs / "app.log")
    return (logs / moved.name).read_bytes(), (logs / "app.log").read_bytes(), record


def test_rotated_file_ends_with_a_whole_line(ext4: Mounted, tmp_path: Path) -> None:
    data = b"".join(make_line("mixed30-300", n) for n in range(20_000))  # about 3.3 MB
    bs = ext4.block_size
    ends = [n for n in range(bs, len(data), bs) if data[n - 1] == 0x0A]
    rotated, live, record = _rotate(ext4, tmp_path, data)
    assert rotated + live == data
    assert len(rotated) == max(ends)  # the largest cut after a newline at a block end
    assert record["result"] == "done" and "mid-line" not in str(record["reason"])


def test_a_split_line_is_reported_with_the_file_and_the_reason(
    ext4: Mounted, tmp_path: Path
) -> None:
    data = b"x" * 40_000 + b"\n"  # one long line: no block ends with a newline
    rotated, live, record = _rotate(ext4, tmp_path, data)
    assert rotated + live == data and len(rotated) == 36_864
    assert record["result"] == "done"
    reason = str(record["reason"])
    assert "no line ends at a 4096-byte block boundary in the first 36864 bytes" in reason
    assert "the live file starts with the rest of that line" in reason
