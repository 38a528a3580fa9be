"""bench/writer_loss.py in quick mode: a busy O_APPEND writer loses no line to rotation.

The full figures (and logrotate's loss beside them) are in docs/performance.md; this
runs a few forced rotations per method on a real loop image and checks the count, and
that lossless cuts between lines whenever a block boundary follows a newline.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.writer_loss import Options, run_method

QUICK = Options(rotations=4, min_lines=0, interval=0.05, image_mb=256)


@pytest.mark.parametrize("method", ["rename", "lossless"])
def test_busy_writer_loses_and_duplicates_no_line(method: str, tmp_path: Path) -> None:
    result = run_method(method, QUICK, tmp_path)
    assert result.rotated_files >= QUICK.rotations
    assert result.written > 10_000
    assert (result.lost, result.duplicated, result.garbled) == (0, 0, 0)


@pytest.mark.parametrize(
    ("mix", "fs_kind"), [("fixed75", "ext4-1k"), ("mixed30-300", "xfs"), ("cri16k", "ext4-4k")]
)
def test_lossless_splits_a_line_only_where_no_block_end_follows_a_newline(
    mix: str, fs_kind: str, tmp_path: Path
) -> None:
    options = Options(rotations=6, min_lines=0, interval=0.2, image_mb=512)
    result = run_method("lossless", options, tmp_path, mix, fs_kind)
    assert result.rotated_files >= options.rotations
    assert (result.lost, result.duplicated, result.garbled) == (0, 0, 0)
    assert result.avoidable == 0
