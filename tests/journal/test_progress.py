"""``journal scan`` and ``journal follow --once`` show the entries read on a terminal's
stderr: never with --json, never when stderr is a pipe, and stdout stays the same."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from nodeguard import cli, progress
from tests.journal.conftest import sample_entry, write_config
from tests.journal.journalfiles import Stream, append
from tests.journal.samples import SAMPLES
from tests.rotation.test_progress import nodeguard, pipe, shown, terminal

LONG_AGO = "2000d"  # the test journals are dated 2025-11-30; the CLI uses the real clock


@pytest.fixture(autouse=True)
def at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "DELAY", 0.0)
    monkeypatch.setattr(progress, "INTERVAL", 0.0)


def test_matches_on_a_shared_terminal_start_on_a_line_of_their_own(tmp_path: Path) -> None:
    """stdout and stderr on one terminal: the progress line is taken away before matches."""
    config = journal_config(tmp_path)
    with terminal() as (stream, master):
        args = ("-c", config, "--no-dropins", "journal", "scan", "--since", LONG_AGO)
        with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
            code = cli.main([str(a) for a in args])
        stream.flush()
        seen = shown(master).replace("\r\n", "\n")
    assert code == 0
    matches = [line for line in seen.split("\n") if "NoSpaceLeftOnDevice" in line]
    assert matches
    for line in matches:  # what the terminal shows of the line: after its last \r
        assert line.rsplit("\r", 1)[-1].startswith("20"), repr(line)


def journal_config(tmp_path: Path) -> Path:
    tmp_path.mkdir(exist_ok=True)
    directory = tmp_path / "journal"
    directory.mkdir()
    stream = Stream()
    append(directory / "system.journal", [sample_entry(stream, s) for s in SAMPLES])
    return write_config(tmp_path, directory, batch=2, lookback=LONG_AGO)


@pytest.mark.parametrize(
    ("action", "label"),
    [(["scan", "--since", LONG_AGO], "journal scan"), (["follow", "--once"], "journal follow")],
)
def test_a_terminal_sees_the_entries_read(tmp_path: Path, action: list[str], label: str) -> None:
    config = journal_config(tmp_path)
    with terminal() as (stream, master):
        code, out = nodeguard(stream, "-c", config, "--no-dropins", "journal", *action)
        seen = shown(master)
    assert code == 0, seen
    assert f"\r{label}: entries read 2" in seen
    assert f"\r{label}: entries read {len(SAMPLES)}" in seen
    assert seen.endswith("\r") and "entries read" not in out


@pytest.mark.parametrize("action", [["scan", "--since", LONG_AGO], ["follow", "--once"]])
def test_nothing_with_json_or_on_a_pipe_and_stdout_is_the_same(
    tmp_path: Path, action: list[str]
) -> None:
    outputs = []
    cases = [(terminal, []), (pipe, []), (terminal, ["--json"])]
    for n, (opener, extra) in enumerate(cases):
        config = journal_config(tmp_path / str(n))
        with opener() as (stream, reader):
            code, out = nodeguard(stream, "-c", config, "--no-dropins", "journal", *action, *extra)
            seen = shown(reader)
        assert code == 0
        outputs.append(out)
        if n == 0:
            assert "entries read" in seen
        else:
            assert "entries read" not in seen and "\r" not in seen
    assert outputs[0] == outputs[1] and outputs[0]
    assert outputs[2].lstrip().startswith("{")
