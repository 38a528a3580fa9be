"""gzip output at every level, the encoder choice per level, and NODEGUARD_COMPRESSOR.

Real files, the real gzip binary as the reference, and zcat, ``gzip -t`` and Python's
gzip module as readers. libdeflate is Debian's ``libdeflate0`` (.ci/setup installs it):
without it these tests fail, as the deb would silently lose its speed.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodeguard.rotation import compress, deflate
from nodeguard.rotation.compress import COMPRESSOR_ENV, MEMBER, PREFERENCES, encoder, gzip_file
from tests.conftest import REPO

sys.path.insert(0, str(REPO / "bench"))
from corpora import GENERATED, SIZE

CORPORA = {name: make() for name, make in GENERATED.items()}
SAMPLE = CORPORA["bench"]
BUDGET = {level: 1.10 if level <= 6 else 1.005 for level in range(1, 10)}


@pytest.fixture(params=["auto", "libdeflate", "zlib"])
def choice(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Each encoder set: all installed, what the deb depends on, zlib alone."""
    monkeypatch.setenv(COMPRESSOR_ENV, request.param)
    yield request.param


def _zcat(path: Path) -> bytes:
    return subprocess.run(["zcat", "--", str(path)], capture_output=True, check=True).stdout


@functools.cache
def _gzip_size(name: str, level: int) -> int:
    """What ``gzip -N`` writes for corpus ``name`` (once per test session)."""
    done = subprocess.run(
        ["gzip", f"-{level}", "-n", "-c"], input=CORPORA[name], capture_output=True, check=True
    )
    return len(done.stdout)


def _compress_in(directory: Path, name: str, data: bytes, level: int) -> Path:
    (directory / name).write_bytes(data)
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        gzip_file(fd, name, level)
    finally:
        os.close(fd)
    return directory / f"{name}.gz"


def _members(blob: bytes) -> int:
    """How many gzip members ``blob`` holds."""
    count = 0
    while blob:
        reader = zlib.decompressobj(31)
        reader.decompress(blob)
        if not reader.eof:
            raise AssertionError("truncated gzip member")
        blob, count = reader.unused_data, count + 1
    return count


def test_libdeflate_is_installed_as_the_deb_depends_on_it() -> None:
    lib = deflate.load()  # raises Unavailable naming the library when libdeflate0 is missing
    member = lib.compressor(6).gzip(SAMPLE)
    assert gzip.decompress(bytes(member)) == SAMPLE


@pytest.mark.parametrize("level", range(1, 10))
def test_every_level_writes_gzip_that_zcat_reads_back_exactly(
    tmp_path: Path, level: int, choice: str
) -> None:
    out = _compress_in(tmp_path, "app.log.20240501-000000", SAMPLE, level)
    assert hashlib.sha256(_zcat(out)).digest() == hashlib.sha256(SAMPLE).digest()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.log.20240501-000000.gz"]


@pytest.mark.parametrize("level", range(1, 10))
def test_every_level_keeps_within_10_percent_of_gzip_on_every_corpus(
    tmp_path: Path, level: int, choice: str
) -> None:
    worst = {}
    for name, data in CORPORA.items():
        out = _compress_in(tmp_path, f"{name}.log.1", data, level)
        worst[name] = out.stat().st_size / _gzip_size(name, level)
        out.unlink()
    assert max(worst.values()) <= BUDGET[level], (encoder(level), worst)


def test_large_file_is_written_as_independent_members_every_reader_accepts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(COMPRESSOR_ENV, "libdeflate")
    data = b"".join(CORPORA.values())[: 5 * MEMBER + 12345]  # six members, the last short
    out = _compress_in(tmp_path, "big.log.1", data, 6)
    blob = out.read_bytes()
    assert _members(blob) == 6
    assert _zcat(out) == data
    assert gzip.decompress(blob) == data
    subprocess.run(["gzip", "-t", "--", str(out)], check=True)


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("size", [0, 1, MEMBER - 1, MEMBER, MEMBER + 1, 4 * MEMBER])
def test_member_boundaries_and_threads_give_back_the_exact_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int, threads: int
) -> None:
    monkeypatch.setenv(COMPRESSOR_ENV, "libdeflate")
    monkeypatch.setattr(compress, "_MAX_THREADS", threads)
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(threads)))
    data = (SAMPLE * (size // len(SAMPLE) + 1))[:size]
    out = _compress_in(tmp_path, "a.log.1", data, 6)
    assert _zcat(out) == data
    assert _members(out.read_bytes()) == max(1, -(-size // MEMBER))


def test_the_deb_gets_libdeflate_at_the_default_level(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(COMPRESSOR_ENV, "libdeflate")
    assert encoder(6) == ("libdeflate", 6)
    assert all(encoder(n)[0] in ("libdeflate", "zlib") for n in range(1, 10))


def test_zlib_choice_uses_no_accelerator_and_still_has_an_encoder_per_level(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(COMPRESSOR_ENV, "zlib")
    chosen = [encoder(n) for n in range(1, 10)]
    assert all(backend == "zlib" for backend, _ in chosen)
    assert chosen == [next(e for e in PREFERENCES[n] if e[0] == "zlib") for n in range(1, 10)]


def test_default_takes_the_first_installed_encoder_of_each_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(COMPRESSOR_ENV, "auto")  # ISA-L, zlib-ng and libdeflate are installed
    assert [encoder(n) for n in range(1, 10)] == [PREFERENCES[n][0] for n in range(1, 10)]


def test_every_level_list_ends_with_zlib_so_the_promise_holds_anywhere() -> None:
    for level, encoders in PREFERENCES.items():
        assert any(backend == "zlib" for backend, _ in encoders), level


def test_unknown_choice_falls_back_to_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(COMPRESSOR_ENV, "nosuch")
    assert encoder(6) == PREFERENCES[6][0]


def test_forced_zlib_output_in_a_fresh_process_is_read_back_by_zcat(tmp_path: Path) -> None:
    (tmp_path / "x.log.20240501-000000").write_bytes(SAMPLE)
    code = (
        "import os, sys; from nodeguard.rotation.compress import gzip_file; "
        "fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY); "
        "gzip_file(fd, 'x.log.20240501-000000', 6)"
    )
    env = {**os.environ, COMPRESSOR_ENV: "zlib", "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], env=env, check=True)
    assert _zcat(tmp_path / "x.log.20240501-000000.gz") == SAMPLE
    assert len(SAMPLE) == SIZE


def test_an_idle_process_holds_no_compression_buffers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 2 MiB input buffer and the output mapping live for one file, not for good."""
    monkeypatch.setenv(COMPRESSOR_ENV, "libdeflate")
    monkeypatch.setattr(compress, "_MAX_THREADS", 1)  # this thread compresses every member
    assert compress._buffers.input is None  # neither importing nor earlier files left one
    data = (SAMPLE * (3 * MEMBER // len(SAMPLE) + 1))[: 3 * MEMBER]
    out = _compress_in(tmp_path, "a.log.1", data, 6)
    assert _zcat(out) == data
    assert compress._buffers.input is None and compress._buffers.output is None
