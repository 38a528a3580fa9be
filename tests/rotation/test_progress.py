"""``rotate`` and ``run --once`` show files scanned and bytes compressed on a terminal's
stderr: never with --json, never when stderr is a pipe, and stdout stays the same."""

from __future__ import annotations

import contextlib
import io
import os
import pty
import re
import select
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import pytest

from nodeguard import cli, progress
from tests.conftest import make_config, numbered_lines


@pytest.fixture(autouse=True)
def at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The line appears from the first update and shows every one (a test pass takes well
    under a second)."""
    monkeypatch.setattr(progress, "DELAY", 0.0)
    monkeypatch.setattr(progress, "INTERVAL", 0.0)


@contextlib.contextmanager
def terminal() -> Iterator[tuple[TextIO, int]]:
    """The writing end of a real pseudo-terminal, and the fd that reads what it shows."""
    master, slave = pty.openpty()
    stream = os.fdopen(slave, "w")
    try:
        yield stream, master
    finally:
        stream.close()
        os.close(master)


@contextlib.contextmanager
def pipe() -> Iterator[tuple[TextIO, int]]:
    read, write = os.pipe()
    stream = os.fdopen(write, "w")
    try:
        yield stream, read
    finally:
        stream.close()
        os.close(read)


def shown(fd: int) -> str:
    chunks = []
    while select.select([fd], [], [], 0.2)[0]:
        chunks.append(os.read(fd, 65536))
    return b"".join(chunks).decode()


def nodeguard(stderr: TextIO, *args: str | Path) -> tuple[int, str]:
    """``nodeguard ARGS`` in this process with ``stderr``; the exit code and stdout."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(stderr):
        code = cli.main([str(a) for a in args])
    stderr.flush()
    return code, out.getvalue()


def logs(tmp_path: Path) -> Path:
    """Logs over max_size, each with a rotated file waiting for compression."""
    tmp_path.mkdir(exist_ok=True)
    folder = tmp_path / "logs"
    folder.mkdir()
    for n in range(3):
        (folder / f"app{n}.log").write_bytes(numbered_lines(f"a{n}", 0, 200))
        (folder / f"app{n}.log.20240101-000000").write_bytes(numbered_lines(f"o{n}", 0, 100))
    pol = {"name": "app", "paths": [f"{folder}/*.log"], "max_size": "4Ki", "max_files": 3}
    return make_config(tmp_path, [pol])


@pytest.mark.parametrize("command", [["rotate"], ["run", "--once"]])
def test_a_terminal_sees_files_scanned_and_bytes_compressed(
    tmp_path: Path, command: list[str]
) -> None:
    config = logs(tmp_path)
    with terminal() as (stream, master):
        code, out = nodeguard(stream, "-c", config, "--no-dropins", *command)
        seen = shown(master)
    assert code == 0, seen
    label = "rotate" if command == ["rotate"] else "rotation"
    assert f"\r{label}: files scanned 1, bytes compressed 0" in seen
    # 3 logs of 12,800 bytes rotated and compressed, and their older 6,400-byte files
    assert "files scanned 3, bytes compressed 57600" in seen
    assert seen.endswith("\r")  # the line is taken away at the end
    assert "files scanned" not in out


@pytest.mark.parametrize("command", [["rotate"], ["run", "--once"]])
def test_nothing_with_json_or_on_a_pipe_and_stdout_is_the_same(
    tmp_path: Path, command: list[str]
) -> None:
    outputs = []
    for n, (opener, extra) in enumerate(
        [(terminal, ["--dry-run"]), (pipe, ["--dry-run"]), (terminal, ["--dry-run", "--json"])]
    ):
        config = logs(tmp_path / str(n))
        with opener() as (stream, reader):
            code, out = nodeguard(stream, "-c", config, "--no-dropins", *command, *extra)
            seen = shown(reader)
        assert code == 0
        out = out.replace(str(tmp_path / str(n)), "ROOT")
        outputs.append(re.sub(r"\d{8}-\d{6}", "STAMP", out))  # runs may straddle a second
        if n == 0:
            assert "files scanned" in seen
        else:
            assert "files scanned" not in seen and "\r" not in seen
    if command != ["rotate"]:  # run --once also shows the host's disks, which change
        outputs = [re.sub(r"\d+", "N", o) for o in outputs]
    assert outputs[0] == outputs[1]
    assert outputs[2].lstrip().startswith("{")
