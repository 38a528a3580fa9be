"""The state directory: one lock, one JSON state file, and intent records.

Everything nodeguard remembers lives under ``state_dir``. The state file is a
cache of facts that can be rebuilt from the files on disk, so a corrupt one is
reported and replaced, never trusted and never a reason to delete anything.
Intent records are written before each step that must not be half-done after a
crash (``intents/<id>.json``) and removed when the step completes; the next
pass finishes or undoes whatever they describe.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nodeguard.fsutil import atomic_write, create_durable

STATE_VERSION = 1


class LockBusy(Exception):
    """Another nodeguard pass holds the lock."""


class StateCorrupt(Exception):
    """The state file could not be read; the message says where and why."""


@contextlib.contextmanager
def pass_lock(state_dir: Path) -> Iterator[None]:
    """Hold ``state_dir/nodeguard.lock`` for one pass; raise LockBusy if taken."""
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = state_dir / "nodeguard.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
                raise LockBusy(f"{path} is held by pid {holder or '?'}") from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


@dataclass
class StateFile:
    """A JSON document in the state directory, read leniently, written atomically."""

    path: Path

    def load(self) -> dict[str, Any]:
        """Return the stored document, or raise StateCorrupt naming the problem."""
        try:
            text = self.path.read_text("utf-8")
        except FileNotFoundError:
            return {"version": STATE_VERSION}
        except (OSError, UnicodeDecodeError) as exc:
            raise StateCorrupt(f"{self.path}: cannot read: {exc}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise StateCorrupt(f"{self.path}:{exc.lineno}:{exc.colno}: {exc.msg}") from None
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            raise StateCorrupt(f"{self.path}: not a nodeguard state file (version mismatch)")
        return data

    def load_or_rebuild(self) -> tuple[dict[str, Any], str | None]:
        """Like load(), but a corrupt file yields a fresh document and the reason."""
        try:
            return self.load(), None
        except StateCorrupt as exc:
            return {"version": STATE_VERSION}, f"{exc}; state rebuilt from the files on disk"

    def save(self, data: dict[str, Any]) -> None:
        data = {**data, "version": STATE_VERSION}
        text = json.dumps(data, indent=1, sort_keys=True) + "\n"
        atomic_write(self.path, text.encode(), mode=0o600)


@dataclass
class IntentJournal:
    """Records of steps in flight, so a crash can be finished or undone next pass."""

    directory: Path

    def begin(self, record: dict[str, Any]) -> str:
        """Durably record a step before it starts; return its id for end()."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        intent_id = uuid.uuid4().hex
        body = json.dumps({**record, "id": intent_id}, sort_keys=True).encode()
        # Written under its final name (a fresh id, O_EXCL), not temp + rename: a crash
        # before this returns leaves no record or an empty one, which recovery removes
        # as torn (its step never began), so one fsync suffices on ext4/xfs.
        fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            create_durable(fd, f"{intent_id}.json", body, 0o600)
        finally:
            os.close(fd)
        return intent_id

    def end(self, intent_id: str) -> None:
        """The step completed (or was undone): forget it.

        Not fsynced: a record that survives a crash describes a finished step, which
        recovery recognises from the files and settles again without harm.
        """
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.directory / f"{intent_id}.json")

    def pending(self) -> list[tuple[str, dict[str, Any] | None]]:
        """Every unfinished record; an unreadable one is returned as None."""
        out: list[tuple[str, dict[str, Any] | None]] = []
        if not self.directory.is_dir():
            return out
        for path in sorted(self.directory.glob("*.json")):
            try:
                record = json.loads(path.read_text("utf-8"))
            except (OSError, ValueError):
                record = None
            out.append((path.stem, record if isinstance(record, dict) else None))
        return out
