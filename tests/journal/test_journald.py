"""A real journald: Debian 12 booted in systemd-nspawn, units named kubelet and containerd
logging the real texts, read from the host through the container's journal folder."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from nodeguard.journal.follow import follow_live, follow_once
from nodeguard.journal.model import JournalKind
from nodeguard.journal.retention import enforce_retention, journal_usage
from nodeguard.world import World
from tests.journal.conftest import Collected, journal_config
from tests.journal.samples import SAMPLES
from tests.nspawn import Machine, booted

SCRIPT = """#!/bin/sh
# Writes the lines a real {name} writes before a disk fills, then idles like a daemon.
while IFS= read -r line; do printf '%s\\n' "$line"; done < /etc/{name}-lines
exec sleep infinity
"""
UNIT = """[Unit]
Description={name} (test double logging {name}'s real messages)
[Service]
ExecStart=/usr/local/bin/{name}
"""


@pytest.fixture(scope="module")
def machine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Machine]:
    with booted("ngj", tmp_path_factory.mktemp("nspawn")) as running:
        for name in ("kubelet", "containerd", "cron-ish"):
            lines = [s.message for s in SAMPLES if s.source == name]
            if name == "cron-ish":  # an unwatched unit writing the same texts
                lines = [s.message for s in SAMPLES if s.source in ("kubelet", "containerd")]
            running.write(f"/etc/{name}-lines", "".join(f"{line}\n" for line in lines))
            running.write(f"/usr/local/bin/{name}", SCRIPT.format(name=name), 0o755)
            running.write(f"/etc/systemd/system/{name}.service", UNIT.format(name=name))
        running.run("systemctl", "daemon-reload")
        yield running


def _expected(sources: tuple[str, ...]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for sample in SAMPLES:
        if sample.source in sources:
            for rule in sample.rules:
                counts[rule] = counts.get(rule, 0) + 1
    return counts


def _wait(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_kubelet_lines_from_a_real_journald_match_their_rules(
    machine: Machine, tmp_path: Path
) -> None:
    machine.run("systemctl", "start", "kubelet.service", "cron-ish.service")
    config = journal_config(tmp_path, machine.journal_dir.parent)
    expected = _expected(("kubelet",))
    world = World(stop=threading.Event())

    seen: dict[str, int] = {}

    def caught_up() -> bool:
        result = follow_once(config, world)
        for rule, n in result.metrics.matches.items():
            seen[rule] = seen.get(rule, 0) + n
        return seen == expected

    _wait(caught_up)
    time.sleep(0.5)
    assert dict(follow_once(config, world).metrics.matches) == {}  # nothing from cron-ish
    assert seen == expected


def test_live_follow_of_a_real_journald_sees_containerd_once_across_rotation(
    machine: Machine, tmp_path: Path
) -> None:
    config = journal_config(tmp_path, machine.journal_dir.parent)
    world = World(stop=threading.Event())
    follow_once(config, world)  # cursor at the current end
    sink = Collected()
    thread = threading.Thread(target=follow_live, args=(config, world, sink), daemon=True)
    thread.start()
    try:
        machine.run("journalctl", "--rotate")  # journald archives its files: INVALIDATE
        machine.run("systemctl", "start", "containerd.service")
        expected = _expected(("containerd",))

        def matched() -> dict[str, int]:
            counts: dict[str, int] = {}
            for event in sink.events:
                if event.kind is JournalKind.MATCH:
                    counts[event.facts["rule"]] = counts.get(event.facts["rule"], 0) + 1
            return counts

        _wait(lambda: matched() == expected)
        time.sleep(1.0)  # nothing more arrives later
        assert matched() == expected
        assert {e.facts["unit"] for e in sink.events if e.kind is JournalKind.MATCH} == {
            "containerd.service"
        }
    finally:
        world.stop.set()
        thread.join(timeout=15)
    assert not thread.is_alive()


def test_retention_on_real_journald_files(machine: Machine, tmp_path: Path) -> None:
    machine.run("journalctl", "--rotate")
    journal = machine.journal_dir
    config = journal_config(tmp_path, journal.parent, retention={"max_use": "1Ki"})
    world = World()
    active = {p.name for p in journal.iterdir() if "@" not in p.name}
    reported = subprocess.run(
        ["journalctl", "-D", str(journal.parent), "--disk-usage"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()

    usage = journal_usage(config, world)
    result = enforce_retention(config, world)

    assert usage.text() == reported
    assert any(f.archived for f in usage.files)
    assert result.removed and all(f.archived for f in result.removed)
    assert {p.name for p in journal.iterdir()} == active  # the active files stay
    machine.run("systemd-cat", "-t", "after-vacuum", "echo", "journald still writes")
    assert "journald still writes" in machine.run("journalctl", "-t", "after-vacuum", "-o", "cat")
