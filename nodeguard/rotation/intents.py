"""Intent records: one frozen type per kind of step, and the one validator that makes them.

A step a crash could leave half-done (rename + create, copytruncate, a lossless
collapse) writes its intent to ``state_dir/intents/<id>.json`` before it acts and
removes it once whole; the next pass settles what is left (:mod:`recovery`). Records
are written as JSON objects (:meth:`as_record`) and read back only through
:func:`parse`, which checks every key's type; :func:`belongs` then checks that the
record describes a step the configuration could have taken.
"""

from __future__ import annotations

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


Intent = RenameIntent | CopytruncateIntent | LosslessIntent
_TYPES: dict[str, type[RenameIntent | CopytruncateIntent | LosslessIntent]] = {
    t.kind: t for t in (RenameIntent, CopytruncateIntent, LosslessIntent)
}
_PATHS = frozenset({"live", "final", "temp"})
_OPTIONAL_INT = frozenset({"phys_start", "phys_at_length", "generation"})
_TEXT = frozenset({"policy", "prefix_sha256", "tail_sha256"})


def parse(record: Mapping[str, Any] | None) -> Intent:
    """The one validator: a record read back from disk as its typed intent.

    Raises InvalidIntent listing every problem (unknown kind or version, a missing key,
    a wrong type, a negative number, a path that is not absolute or names no file).
    Keys it does not know (the record's ``id``) are ignored.
    """
    if record is None:
        raise InvalidIntent(["not a JSON object"])
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


def belongs(intent: Intent, config: Config) -> list[str]:
    """Why ``intent`` is not a step of ``config``'s policies; empty if it is.

    The policy must exist and its globs match the live path; the final name must be a
    rotated name of that live file, in the folder this policy rotates it into; the temp
    name must be the one nodeguard makes for that final name, beside it.
    """
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
    open: dict[str, Intent] = field(default_factory=dict)

    def begin(self, intent: Intent) -> str:
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
