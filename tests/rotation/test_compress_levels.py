"""gzip output at every level, the encoder choice per level, and NODEGUARD_COMPRESSOR.

Real files, the real gzip binary as the reference and zcat as the reader. The encoder
is chosen once at import, so choices under another environment run in a subprocess.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from nodeguard.rotation.compress import COMPRESSOR_ENV, gzip_file
from tests.conftest import REPO


def _bench_module() -> ModuleType:
    """The bench script, for its log-like line generator (bench/ is not a package)."""
    path = REPO / "bench" / "rotate_vs_logrotate.py"
    spec = importlib.util.spec_from_file_location("rotate_vs_logrotate", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


SAMPLE: bytes = _bench_module().log_text(1 << 20)


def _zcat(path: Path) -> bytes:
    return subprocess.run(["zcat", "--", str(path)], capture_output=True, check=True).stdout


def _gzip_size(data: bytes, level: int) -> int:
    done = subprocess.run(["gzip", f"-{level}", "-c"], input=data, capture_output=True, check=True)
    return len(done.stdout)


def _compress_in(tmp_path: Path, name: str, level: int) -> Path:
    (tmp_path / name).write_bytes(SAMPLE)
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        gzip_file(fd, name, level)
    finally:
        os.close(fd)
    return tmp_path / f"{name}.gz"


@pytest.mark.parametrize("level", range(1, 10))
def test_every_level_writes_gzip_that_zcat_reads_back_exactly(tmp_path: Path, level: int) -> None:
    out = _compress_in(tmp_path, "app.log.20240501-000000", level)
    assert hashlib.sha256(_zcat(out)).digest() == hashlib.sha256(SAMPLE).digest()
    assert not (tmp_path / "app.log.20240501-000000").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.log.20240501-000000.gz"]


@pytest.mark.parametrize("level", [1, 4, 5, 6, 9])
def test_output_stays_within_15_percent_of_gzip_at_the_same_level(
    tmp_path: Path, level: int
) -> None:
    out = _compress_in(tmp_path, "app.log.20240501-000000", level)
    assert out.stat().st_size <= 1.15 * _gzip_size(SAMPLE, level)


_CHOICES = (
    "from nodeguard.rotation.compress import compressor_name as c; "
    "import json; print(json.dumps([c(n) for n in range(1, 10)]))"
)


def _choices(value: str) -> list[str]:
    env = {**os.environ, COMPRESSOR_ENV: value, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", _CHOICES], env=env, capture_output=True, text=True, check=True
    )
    result: list[str] = json.loads(done.stdout)
    return result


def test_zlib_choice_uses_neither_accelerator() -> None:
    assert all(c.startswith("zlib-") for c in _choices("zlib"))


def test_default_uses_isal_only_where_it_keeps_the_size_promise() -> None:
    choices = _choices("auto")  # python-isal and zlib-ng are both in the test venv
    assert choices[:4] == ["isal-1", "isal-1", "isal-1", "isal-3"]
    assert choices[4:] == ["zlibng-4", "zlibng-4", "zlib-7", "zlib-8", "zlib-9"]


def test_without_accelerators_every_level_is_plain_zlib_as_from_the_deb() -> None:
    assert _choices("zlib") == ["zlib-1"] * 3 + [
        "zlib-2",
        "zlib-4",
        "zlib-4",
        "zlib-7",
        "zlib-8",
        "zlib-9",
    ]


def test_isal_choice_puts_speed_first_at_every_level() -> None:
    assert _choices("isal") == ["isal-1"] * 3 + ["isal-3"] * 6


def test_forced_zlib_output_is_read_back_by_zcat(tmp_path: Path) -> None:
    (tmp_path / "x.log.20240501-000000").write_bytes(SAMPLE)
    code = (
        "import os, sys; from nodeguard.rotation.compress import gzip_file; "
        "fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY); "
        "gzip_file(fd, 'x.log.20240501-000000', 6)"
    )
    env = {**os.environ, COMPRESSOR_ENV: "zlib", "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], env=env, check=True)
    assert _zcat(tmp_path / "x.log.20240501-000000.gz") == SAMPLE
