"""Intent records: one frozen type per kind of step, and the one validator that makes them.

A step a crash could leave half-done (rename + create, copytruncate, a lossless
collapse) writes its intent to ``state_dir/intents/<id>.json`` before it acts and
removes it once whole; the next pass settles what is left (:mod:`recovery`). Records
are written as JSON objects (:meth:`as_record`) and read back only through
:func:`parse`, which checks every key's type; :func:`belongs` then checks that the
record describes a step the configuration could have taken.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Protocol

from nodeguard.config.model import Config
from nodeguard.rotation import naming, scan
from nodeguard.rotation.lossless import RECORD_KIND as LOSSLESS_KIND

VERSION = 1


class InvalidIntent(Exception):
    """A record that must not be acted on; ``problems`` says why."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class _Intent:
    """What every intent names: its policy, the live file, the final rotated name."""

    kind: ClassVar[str]
    policy: str
    live: str
    final: str
    dev: int
    ino: int

    def as_record(self) -> dict[str, Any]:
        # Every field is a str, int, bool or None: a shallow copy is asdict() without its
        # deep copies (this runs once per rotated file).
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return {"kind": self.kind, "version": VERSION, **values}

    @property
    def temp_path(self) -> str | None:
        return None


@dataclass(frozen=True)
class RenameIntent(_Intent):
    """rename + create: the live file is about to be renamed to ``final``."""

    kind: ClassVar[str] = "rename"
    mode: int
    uid: int
    gid: int
    postrotate: bool


@dataclass(frozen=True)
class CopytruncateIntent(_Intent):
    """A complete copy under ``temp`` is about to become ``final``, then the live file is
    truncated."""

    kind: ClassVar[str] = "copytruncate"
    temp: str
    length: int

    @property
    def temp_path(self) -> str | None:
        return self.temp


@dataclass(frozen=True)
class LosslessIntent(_Intent):
    """The prefix copied to ``temp`` is about to be collapsed out of the live file
    (the facts recovery needs: docs/lossless.md)."""

    kind: ClassVar[str] = LOSSLESS_KIND
    temp: str
    length: int
    unit: int
    tail_length: int
    prefix_sha256: str
    tail_sha256: str
    phys_start: int | None
    phys_at_length: int | None
    generation: int | None = field(default=None)

    @property
    def temp_path(self) -> str | None:
        return self.temp

    @classmethod
    def from_facts(cls, facts: Mapping[str, Any], policy: str) -> LosslessIntent:
        """The intent for the facts :func:`nodeguard.rotation.lossless.intent_record` gives."""
        return cls(
            policy=policy,
            **{
                f.name: facts[f.name] for f in fields(cls) if f.name in facts and f.name != "policy"
            },
        )


@dataclass(frozen=True)
class RenameBatchIntent:
    """rename + create for several logs of one folder and policy: one record, one fsync.

    ``entries`` are today's :class:`RenameIntent` of each log (live and final names
    joined to ``directory`` and ``rotated``); ``dev``/``ino`` identify ``directory``.
    """

    kind: ClassVar[str] = "rename-batch"
    policy: str
    directory: str
    rotated: str
    dev: int
    ino: int
    postrotate: bool
    entries: tuple[RenameIntent, ...]

    def as_record(self) -> dict[str, Any]:
        # "batch" sorts first (the journal writes sorted keys): a record cut short by a
        # crash is recognised by that prefix (batch_torn) and removed as torn.
        return {
            "batch": "rename",
            "kind": self.kind,
            "version": VERSION,
            "policy": self.policy,
            "directory": self.directory,
            "rotated": self.rotated,
            "dev": self.dev,
            "ino": self.ino,
            "postrotate": self.postrotate,
            "entries": [_entry_record(e) for e in self.entries],
        }

    @property
    def temp_path(self) -> str | None:
        return None


def _entry_record(e: RenameIntent) -> dict[str, Any]:
    return {
        "live": os.path.basename(e.live),
        "final": os.path.basename(e.final),
        "dev": e.dev,
        "ino": e.ino,
        "mode": e.mode,
        "uid": e.uid,
        "gid": e.gid,
    }


BATCH_MARK = b'{"batch": "rename"'
BATCH_MAX_ENTRIES = 2000
BATCH_BUDGET = 56 * 1024  # bytes of JSON per record: under the journal's 64 KiB read cap


def batch_torn(data: bytes) -> bool:
    """Whether ``data`` (not a JSON object) is the start of a batch record cut short:
    its step never began (a step starts once its record is whole and fsynced)."""
    return data.startswith(BATCH_MARK) or (bool(data) and BATCH_MARK.startswith(data))


def entry_cost(live: str, final: str) -> int:
    """An upper bound of one entry's JSON length (names may need \\uXXXX escapes)."""
    return _text_cost(live) + _text_cost(final) + 200


def _text_cost(text: str) -> int:
    """The length of ``text`` as a JSON string: a quote or a backslash takes two
    characters, a character beyond the BMP twelve (a surrogate pair), so only plain
    text is counted by its length."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return len(text) + 2
    return len(json.dumps(text))


Intent = RenameIntent | CopytruncateIntent | LosslessIntent
AnyIntent = Intent | RenameBatchIntent
_TYPES: dict[str, type[RenameIntent | CopytruncateIntent | LosslessIntent]] = {
    t.kind: t for t in (RenameIntent, CopytruncateIntent, LosslessIntent)
}
_PATHS = frozenset({"live", "final", "temp"})
_OPTIONAL_INT = frozenset({"phys_start", "phys_at_length", "generation"})
_TEXT = frozenset({"policy", "prefix_sha256", "tail_sha256"})


def parse(record: Mapping[str, Any] | None) -> AnyIntent:
    """The one validator: a record read back from disk as its typed intent.

    Raises InvalidIntent listing every problem (unknown kind or version, a missing key,
    a wrong type, a negative number, a path that is not absolute or names no file).
    Keys it does not know (the record's ``id``) are ignored.
    """
    if record is None:
        raise InvalidIntent(["not a JSON object"])
    if record.get("kind") == RenameBatchIntent.kind:
        return _parse_batch(record)
    cls = _TYPES.get(str(record.get("kind")))
    if cls is None:
        raise InvalidIntent([f"unknown kind {record.get('kind')!r}"])
    problems, values = [], {}
    for f in fields(cls):
        if f.name not in record:
            if f.name != "generation":
                problems.append(f"{f.name}: missing")
            continue
        why = _bad(f.name, record[f.name])
        if why:
            problems.append(f"{f.name}: {why}")
        values[f.name] = record[f.name]
    version = record.get("version")
    if not problems and version != VERSION:
        problems.append(f"version {version!r} (this nodeguard writes {VERSION})")
    if problems:
        raise InvalidIntent(problems)
    return cls(**values)


_BATCH_KEYS = {"policy": "", "directory": "", "rotated": "", "dev": 0, "ino": 0}
_ENTRY_KEYS = ("live", "final", "dev", "ino", "mode", "uid", "gid")


def _parse_batch(record: Mapping[str, Any]) -> RenameBatchIntent:
    """A ``rename-batch`` record: its folder's keys, then each entry as a rename."""
    problems = [f"{k}: missing" for k in (*_BATCH_KEYS, "postrotate") if k not in record]
    problems += [
        f"{k}: {why}" for k in _BATCH_KEYS if k in record and (why := _bad_batch(k, record[k]))
    ]
    if not isinstance(record.get("postrotate"), bool) and "postrotate" in record:
        problems.append("postrotate: wrong type")
    if record.get("batch") != "rename":
        problems.append(f"batch: {record.get('batch')!r} (expected 'rename')")
    entries = record.get("entries")
    if not isinstance(entries, list) or not 0 < len(entries) <= BATCH_MAX_ENTRIES:
        problems.append(f"entries: not a list of 1 to {BATCH_MAX_ENTRIES} entries")
        entries = []
    if not problems and record.get("version") != VERSION:
        problems.append(f"version {record.get('version')!r} (this nodeguard writes {VERSION})")
    if problems:
        raise InvalidIntent(problems)
    renames = tuple(_batch_entry(record, i, e, problems) for i, e in enumerate(entries))
    lives = [r.live for r in renames]
    if len(set(lives)) != len(lives):
        problems.append("entries: a live file is named twice")
    if problems:
        raise InvalidIntent(problems)
    return RenameBatchIntent(
        policy=record["policy"],
        directory=record["directory"],
        rotated=record["rotated"],
        dev=record["dev"],
        ino=record["ino"],
        postrotate=record["postrotate"],
        entries=renames,
    )


def _bad_batch(key: str, value: object) -> str | None:
    if key in ("directory", "rotated"):
        ok = isinstance(value, str) and value.startswith("/") and "\0" not in value
        return None if ok else "not an absolute folder path"
    return _bad(key, value)


def _batch_entry(
    record: Mapping[str, Any], index: int, entry: object, problems: list[str]
) -> RenameIntent:
    """Entry ``index`` as the rename it records; its problems are added to ``problems``."""
    where = f"entries[{index}]"
    if not isinstance(entry, dict):
        problems.append(f"{where}: not an object")
        entry = {}
    for key in _ENTRY_KEYS:
        value = entry.get(key)
        if key not in entry:
            problems.append(f"{where}.{key}: missing")
        elif key in ("live", "final"):
            if not _plain_name(value):
                problems.append(f"{where}.{key}: not a file name")
        elif why := _bad(key, value):
            problems.append(f"{where}.{key}: {why}")
    if problems:
        return RenameIntent("", "", "", 0, 0, 0, 0, 0, False)
    return RenameIntent(
        policy=record["policy"],
        live=f"{record['directory'].rstrip('/')}/{entry['live']}",
        final=f"{record['rotated'].rstrip('/')}/{entry['final']}",
        dev=entry["dev"],
        ino=entry["ino"],
        mode=entry["mode"],
        uid=entry["uid"],
        gid=entry["gid"],
        postrotate=record["postrotate"],
    )


def _plain_name(value: object) -> bool:
    return (
        isinstance(value, str)
        and value not in ("", ".", "..")
        and "/" not in value
        and "\0" not in value
    )


def _bad(key: str, value: object) -> str | None:
    if key in _PATHS:
        ok = isinstance(value, str) and _valid_path(value)
        return None if ok else "not an absolute path naming a file"
    if key in _TEXT:
        return None if isinstance(value, str) else "wrong type"
    if key == "postrotate":
        return None if isinstance(value, bool) else "wrong type"
    if value is None and key in _OPTIONAL_INT:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        return "wrong type"
    return "negative" if value < 0 else None


def _valid_path(path: str) -> bool:
    head, name = os.path.split(path)
    return path.startswith("/") and "\0" not in path and name not in ("", ".", "..") and bool(head)


def belongs(intent: AnyIntent, config: Config) -> list[str]:
    """Why ``intent`` is not a step of ``config``'s policies; empty if it is.

    The policy must exist and its globs match the live path; the final name must be a
    rotated name of that live file, in the folder this policy rotates it into; the temp
    name must be the one nodeguard makes for that final name, beside it. A batch
    belongs when every one of its entries does.
    """
    if isinstance(intent, RenameBatchIntent):
        return [
            f"entries[{i}]: {why}"
            for i, entry in enumerate(intent.entries)
            for why in belongs(entry, config)
        ]
    policy = config.policy(intent.policy)
    if policy is None:
        return [f"policy: {intent.policy!r} is not configured"]
    if not any(scan.path_matches(pattern, intent.live) for pattern in policy.paths):
        return [f"live: {intent.live} is not a file of policy {policy.name}"]
    live_dir, live_name = os.path.split(intent.live)
    final_dir, final_name = os.path.split(intent.final)
    out: list[str] = []
    want_dir = rotated_dir_path(policy.olddir, live_dir)
    parsed = naming.parse(final_name)
    if os.path.normpath(final_dir) != os.path.normpath(want_dir):
        out.append(
            f"final: {intent.final} is not in {want_dir}, where policy {policy.name} rotates"
        )
    elif parsed is None or parsed.compressed or parsed.base != live_name:
        out.append(f"final: {final_name} is not a rotated name of {live_name}")
    temp = intent.temp_path
    if temp is not None and temp != f"{final_dir}/{naming.temp_name(final_name)}":
        out.append(f"temp: {temp} is not the temporary name of {intent.final}")
    return out


def rotated_dir_path(olddir: str | None, live_dir: str) -> str:
    """Where a policy's rotated files of a log in ``live_dir`` go."""
    if olddir is None:
        return live_dir
    return olddir if olddir.startswith("/") else f"{live_dir}/{olddir}"


class IntentStore(Protocol):
    """Where intent records are kept (:class:`nodeguard.state.IntentJournal`)."""

    directory: Path

    def begin(self, record: dict[str, Any]) -> str: ...

    def end(self, intent_id: str) -> None: ...

    def pending(self) -> list[tuple[str, dict[str, Any] | None]]: ...


@dataclass
class OpenIntents:
    """The intents one rotation has begun: recorded before acting, ended when whole."""

    store: IntentStore | None
    open: dict[str, AnyIntent] = field(default_factory=dict)

    def begin(self, intent: Intent | RenameBatchIntent) -> str:
        if self.store is None:
            return ""
        intent_id = self.store.begin(intent.as_record())
        self.open[intent_id] = intent
        return intent_id

    def end(self, intent_id: str) -> None:
        if self.store is not None and intent_id:
            self.store.end(intent_id)
            self.open.pop(intent_id, None)

    def end_all(self) -> None:
        for intent_id in list(self.open):
            self.end(intent_id)
