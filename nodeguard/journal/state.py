"""The follower's saved state: the journal cursor, text-log offsets, rule state.

One document, ``state_dir/journal.json``, written through the state-file API after every
batch (atomic: temp, fsync, rename). Everything read back is checked: a cursor must have
journald's cursor syntax, offsets must be numbers; anything else is reported and the
follower restarts from the lookback (never from the beginning of history).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nodeguard.state import LockBusy, StateDocument, open_lock

STATE_NAME = "journal.json"
LOCK_NAME = "journal.lock"
STATE_CAP = 4 * 1024 * 1024
_HEAD_RE = re.compile(r"(?:[0-9a-f]{64})?")
CURSOR_RE = re.compile(
    r"s=[0-9a-f]{32};i=[0-9a-f]{1,16};b=[0-9a-f]{32};m=[0-9a-f]{1,16};t=[0-9a-f]{1,16};x=[0-9a-f]{1,16}"
)


@dataclass(frozen=True)
class TextOffset:
    """Where reading of one text log stopped: its identity and the byte after the last line.

    ``head`` fingerprints the file's first ``head_len`` bytes: an inode number is reused
    as soon as a deleted file's inode is freed, so device and inode alone can take a new
    file for the old one.
    """

    dev: int
    ino: int
    offset: int
    head: str = ""
    head_len: int = 0


@dataclass(frozen=True)
class FollowState:
    """What a follower remembers between runs."""

    cursor: str | None = None
    source: str | None = None  # which journal the cursor belongs to (directory or system)
    rules: Mapping[str, Any] = field(default_factory=dict)  # RuleState.to_json()
    text: Mapping[str, TextOffset] = field(default_factory=dict)


def document(state_dir: Path) -> StateDocument:
    return StateDocument(state_dir / STATE_NAME, kind="journal", version=1, cap=STATE_CAP)


def load(state_dir: Path) -> tuple[FollowState, str | None]:
    """The saved state and a problem (the file unusable: reported, then ignored)."""
    loaded = document(state_dir).load()
    if loaded.data is None:
        return FollowState(), loaded.problem
    try:
        return _parse(loaded.data), None
    except ValueError as exc:
        return FollowState(), f"{state_dir / STATE_NAME}: {exc}"


def _parse(data: dict[str, Any]) -> FollowState:
    cursor = data.get("cursor")
    if cursor is not None and not (isinstance(cursor, str) and CURSOR_RE.fullmatch(cursor)):
        raise ValueError("cursor is not a journal cursor")
    source = data.get("source")
    if source is not None and not isinstance(source, str):
        raise ValueError("source is not a string")
    rules = data.get("rules", {})
    if not isinstance(rules, dict):
        raise ValueError("rules is not a mapping")
    return FollowState(cursor, source, rules, _offsets(data.get("text", {})))


def _offsets(raw: Any) -> dict[str, TextOffset]:
    if not isinstance(raw, dict) or len(raw) > 1000:
        raise ValueError("text is not a mapping of text logs")
    out = {}
    for path, item in raw.items():
        keys = ("dev", "ino", "offset", "head_len")
        values = [item.get(k) if isinstance(item, dict) else None for k in keys]
        numbers = [v for v in values if isinstance(v, int) and not isinstance(v, bool) and v >= 0]
        head = item.get("head") if isinstance(item, dict) else None
        if len(numbers) != 4 or not (isinstance(head, str) and _HEAD_RE.fullmatch(head)):
            raise ValueError(f"text.{path}: not dev, ino, offset and head")
        dev, ino, offset, head_len = numbers
        out[str(path)] = TextOffset(dev, ino, offset, head, head_len)
    return out


def save(state_dir: Path, state: FollowState) -> None:
    """Write atomically (raises OSError: the caller reports a full or read-only disk)."""
    document(state_dir).save(
        {
            "cursor": state.cursor,
            "source": state.source,
            "rules": dict(state.rules),
            "text": {
                p: {
                    "dev": o.dev,
                    "ino": o.ino,
                    "offset": o.offset,
                    "head": o.head,
                    "head_len": o.head_len,
                }
                for p, o in state.text.items()
            },
        }
    )


@contextlib.contextmanager
def follow_lock(state_dir: Path) -> Iterator[None]:
    """One follower per state folder: the daemon's or ``run --once``'s (the CLI's
    ``journal follow`` only reads the state and takes no lock)."""
    fd = open_lock(state_dir / LOCK_NAME)  # LockUnusable: not a regular file
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise LockBusy(f"{state_dir / LOCK_NAME}: another journal follower runs") from None
            raise
        yield
    finally:
        os.close(fd)
