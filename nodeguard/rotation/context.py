"""What a pass knows, as frozen values, and what it accumulates, as one explicit sink.

A pass has a :class:`PassContext` (the options, the World, the guards, the intent
store, fixed for the whole pass) and, per policy, a :class:`PolicyContext`. The code
that acts on files is plain functions of a context and a :class:`Sink`: the only
mutable state of a policy's pass is the sink's events and handled files, so a forked
``su`` child works on its own copy and never reassigns anything shared.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from nodeguard.config.model import Policy
from nodeguard.events import Event
from nodeguard.progress import NO_PROGRESS, Progress
from nodeguard.rotation.guards import FileId, Guards, SharedKey
from nodeguard.rotation.intents import IntentStore
from nodeguard.rotation.report import Entry, Result, RotationKind, rotation_event
from nodeguard.rotation.sparse import Writer, all_writers
from nodeguard.world import World

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor


@dataclass(frozen=True)
class PassOptions:
    """What the caller asked of a pass."""

    dry_run: bool = False
    force: bool = False
    policies: tuple[str, ...] = ()  # only these (empty: all)
    # where the pass reports files scanned and bytes compressed as it goes (the CLI
    # passes a terminal's line; the engine never knows where, or whether, it shows)
    progress: Progress = field(default=NO_PROGRESS, compare=False)


class PassProgress:
    """The pass's running counts, fed from the pass and its compression threads."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._shown = progress is not NO_PROGRESS  # the daemon's passes: not even counted
        self._lock = threading.Lock()  # compression threads report too
        self.files = 0
        self.compressed = 0

    def scanned(self) -> None:
        if not self._shown:
            return
        with self._lock:
            self.files += 1
            self._show()

    def compressed_bytes(self, size: int) -> None:
        if not self._shown:
            return
        with self._lock:
            self.compressed += size
            self._show()

    def _show(self) -> None:
        self._progress.update(files_scanned=self.files, bytes_compressed=self.compressed)


@dataclass(frozen=True)
class PassContext:
    """What every policy's pass shares, fixed for the whole pass."""

    options: PassOptions
    world: World
    guards: Guards
    intents: IntentStore | None = None
    # (folder device, folder inode, name) of files that intents still pending name
    protected: frozenset[tuple[int, int, str]] = frozenset()
    # (rotated folder device, inode, live name) -> the live logs that would share it
    shared: Mapping[SharedKey, tuple[str, ...]] = field(default_factory=dict)
    progress: PassProgress = field(default_factory=lambda: PassProgress(NO_PROGRESS))

    @property
    def dry_run(self) -> bool:
        return self.options.dry_run


class Writers:
    """The files processes hold open for writing, read from /proc once, at first need.

    Filled ahead of time (:meth:`ready`) for a pass that will run as another user, who
    could not see other users' processes.
    """

    def __init__(self, proc: Path) -> None:
        self._proc = proc
        self._found: Mapping[FileId, list[Writer]] | None = None

    def ready(self) -> Writers:
        if self._found is None:
            self._found = all_writers(proc=self._proc)
        return self

    def of(self, file_id: FileId) -> list[Writer]:
        found = self.ready()._found
        return list(found.get(file_id, ())) if found is not None else []


class Jobs:
    """A bounded thread pool for compression; events come back in submission order."""

    def __init__(self, workers: int) -> None:
        self._workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._slots = threading.BoundedSemaphore(workers * 8)
        self._futures: list[Future[Event]] = []
        self.events: list[Event] = []

    def submit(self, job: Callable[[], Event]) -> None:
        if self._pool is None:  # started on first use: a pass with nothing to compress
            # skips importing concurrent.futures altogether
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="compress")
        self._slots.acquire()
        future = self._pool.submit(job)
        future.add_done_callback(lambda _: self._slots.release())
        self._futures.append(future)

    def __enter__(self) -> Jobs:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self.events = [f.result() for f in self._futures]


@dataclass(frozen=True)
class PolicyContext:
    """One policy's pass: its policy, the pass, and what it may not touch again."""

    policy: Policy
    ctx: PassContext
    seen: Mapping[FileId, str]  # inodes earlier policies handled, and by which
    now: datetime
    jobs: Jobs
    writers: Writers


@dataclass
class Sink:
    """What one policy's pass produces: its events and the inodes it handled."""

    policy: str
    events: list[Entry] = field(default_factory=list)  # events, and kept files (Kept)
    handled: dict[FileId, str] = field(default_factory=dict)

    def add(
        self,
        path: str,
        kind: RotationKind,
        result: Result,
        reason: str,
        *,
        bytes_before: int | None = None,
        bytes_after: int | None = None,
        target: str | None = None,
        error: str | None = None,
    ) -> None:
        event = rotation_event(
            self.policy,
            path,
            kind,
            result,
            reason,
            bytes_before=bytes_before,
            bytes_after=bytes_after,
            target=target,
            error=error,
        )
        self.events.append(event)


class Rotation(enum.Enum):
    """How one rotation step went, as far as the log's other steps care."""

    DONE = "done"  # (or planned, in a dry run)
    NOTHING_MOVED = "nothing moved"
    FAILED = "failed"  # failed or refused
    NO_SPACE = "no space"  # failed with ENOSPC or EDQUOT: removals may make room
