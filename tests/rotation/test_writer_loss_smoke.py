"""bench/writer_loss.py in quick mode: a busy O_APPEND writer loses no line to rotation.

The full figures (and logrotate's loss beside them) are in docs/performance.md; this
runs a few forced rotations per method on a real ext4 image and checks the count.
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
