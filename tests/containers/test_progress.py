"""Progress on stderr: only on a terminal, only after a second, never in --json."""

from __future__ import annotations

import io
import os
import pty
import select
from collections.abc import Iterator

import pytest

from nodeguard.config import load_config
from nodeguard.containers.outcome import ContainersOptions
from nodeguard.containers.run import container_inventory
from nodeguard.progress import NO_PROGRESS, TerminalProgress, progress_for
from nodeguard.world import World
from tests.containers.nodetree import Node, cri_lines


@pytest.fixture
def terminal() -> Iterator[tuple[io.TextIOWrapper, int]]:
    """The writing end of a real pseudo-terminal, and the fd that reads what it shows."""
    master, slave = pty.openpty()
    stream = os.fdopen(slave, "w")
    try:
        yield stream, master
    finally:
        stream.close()
        os.close(master)


def _read_all(fd: int) -> str:
    """Everything the terminal shows so far (it may arrive in several reads)."""
    chunks = []
    while select.select([fd], [], [], 0.5)[0]:
        chunks.append(os.read(fd, 4096))
    return b"".join(chunks).decode()


def test_nothing_is_shown_unless_stderr_is_a_terminal(terminal: tuple) -> None:
    stream, _ = terminal
    assert progress_for(io.StringIO(), "x") is NO_PROGRESS
    assert progress_for(stream, "x", enabled=False) is NO_PROGRESS  # --json
    assert isinstance(progress_for(stream, "x"), TerminalProgress)


def test_a_line_appears_after_the_delay_and_is_cleared_when_done(terminal: tuple) -> None:
    stream, master = terminal
    now = [0.0]
    progress = TerminalProgress(stream, "containers", clock=lambda: now[0])
    progress.update(pod_folders=3)
    now[0] = 1.5
    progress.update(pod_folders=40)
    progress.update(pod_folders=41)  # within the redraw interval: not drawn
    now[0] = 2.0
    progress.update(pod_folders=90)
    progress.done()
    shown = _read_all(master)
    assert "pod folders 3" not in shown and "pod folders 41" not in shown
    assert "\rcontainers: pod folders 40" in shown and "\rcontainers: pod folders 90" in shown
    assert shown.endswith("\r")


def test_the_inventory_reports_progress_as_it_scans(node: Node) -> None:
    for n in range(5):
        node.cri("default", f"p{n}", f"uid-{n}", "app", live=cri_lines(1))

    class Recorder:
        def __init__(self) -> None:
            self.seen: list[dict[str, int]] = []
            self.finished = False

        def update(self, **counts: int) -> None:
            self.seen.append(counts)

        def done(self) -> None:
            self.finished = True

    recorder = Recorder()
    config = load_config(node.config_file(), dropins=False)
    container_inventory(config, ContainersOptions(progress=recorder), World())
    assert {"pod_folders": 4} in recorder.seen and recorder.finished
