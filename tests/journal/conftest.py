"""Fixtures for the journal tests: configs over real journal directories, a fixed clock."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from nodeguard.config import Config, load_text
from nodeguard.world import World
from tests.journal.journalfiles import Stream, require_journal_remote
from tests.journal.samples import UNITS, Sample


def journal_config(
    tmp_path: Path, directory: Path | None, *, state_dir: Path | None = None, **journal: Any
) -> Config:
    """A config with its state in ``tmp_path/state`` reading the journal in ``directory``."""
    body: dict[str, Any] = {
        "state_dir": str(state_dir or tmp_path / "state"),
        "logrotate_config": None,
        "policies": [],
        "journal": {"directory": str(directory) if directory else None, **journal},
    }
    return load_text(yaml.safe_dump(body), str(tmp_path / "nodeguard.yaml"))


def write_config(tmp_path: Path, directory: Path | None, **journal: Any) -> Path:
    body: dict[str, Any] = {
        "state_dir": str(tmp_path / "state"),
        "logrotate_config": None,
        "policies": [],
        "journal": {"directory": str(directory) if directory else None, **journal},
    }
    path = tmp_path / "nodeguard.yaml"
    path.write_text(yaml.safe_dump(body), "utf-8")
    return path


@dataclass
class Clock:
    """A settable clock for the World (POSIX microseconds)."""

    now_us: int

    def __call__(self) -> datetime:
        return datetime.fromtimestamp(self.now_us / 1e6, UTC)


def world_at(clock: Clock) -> World:
    return World(clock=clock, stop=threading.Event())


def sample_entry(stream: Stream, sample: Sample) -> dict[str, str]:
    """The journal entry a component writes for ``sample``."""
    if sample.source == "kernel":
        return stream.kernel(sample.message)
    unit, ident = UNITS[sample.source]
    if sample.source == "conmon":
        return stream.syslog(ident, sample.message, unit=unit)
    return stream.service(unit, ident, sample.message)


@dataclass
class Collected:
    """A sink that keeps every event it is handed (what the alert path would get)."""

    events: list[Any] = field(default_factory=list)

    def __call__(self, events: Any) -> None:
        self.events.extend(events)


@pytest.fixture(scope="session", autouse=True)
def _journal_remote() -> None:
    require_journal_remote()


@pytest.fixture
def collected() -> Collected:
    return Collected()


SinkFactory = Callable[[], Collected]
