"""Intent records: written before each step that a crash could leave half-done, replayed next pass.

A step (rename + create, copytruncate, lossless collapse) first records what it is
about to do in the intent journal, then acts, then ends the record. The next pass,
under the lock and before scanning, finishes or undoes every record still there: see
docs/crash-safety.md for the decision of each kind. A record that does not validate is
moved to ``malformed/`` and reported, and nothing is done or deleted because of it.
"""

from __future__ import annotations

import contextlib
import functools
import grp
import hashlib
import os
import pwd
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from nodeguard import fsutil
from nodeguard.config.model import Config
from nodeguard.rotation import faults, lossless, naming, scan
from nodeguard.rotation.privilege import run_as
from nodeguard.rotation.report import DONE, FAILED, Record
from nodeguard.state import IntentJournal

VERSION = 1
MALFORMED_DIR = "malformed"
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_CHUNK = 1 << 20

# Postrotate runner for a recovered rename: (policy name, live path) -> error or None.
Postrotate = Callable[[str, str], str | None]


class Journal(Protocol):
    """What :class:`nodeguard.state.IntentJournal` offers."""

    directory: Path

    def begin(self, record: dict[str, Any]) -> str: ...

    def end(self, intent_id: str) -> None: ...

    def pending(self) -> list[tuple[str, dict[str, Any] | None]]: ...


class Conflict(Exception):
    """Recovery found a state it must not resolve alone; the record stays for the admin."""


@dataclass
class Intents:
    """The intents one rotation opened: begun before acting, ended when the step is whole."""

    journal: Journal | None
    policy: str
    open: dict[str, dict[str, Any]] = field(default_factory=dict)

    def begin(self, record: dict[str, Any]) -> str:
        if self.journal is None:
            return ""
        full = {"version": VERSION, "policy": self.policy, **record}
        intent_id = self.journal.begin(full)
        self.open[intent_id] = full
        return intent_id

    def end(self, intent_id: str) -> None:
        if self.journal is not None and intent_id:
            self.journal.end(intent_id)
            self.open.pop(intent_id, None)

    def end_all(self) -> None:
        for intent_id in list(self.open):
            self.end(intent_id)


# --- validation --------------------------------------------------------------------------

_ABS = "absolute path"
_COMMON = {"kind": str, "version": int, "policy": str, "live": _ABS, "final": _ABS}
_FILE_ID = {"dev": int, "ino": int}
SCHEMAS: dict[str, dict[str, object]] = {
    "rename": {
        **_COMMON,
        **_FILE_ID,
        "mode": int,
        "uid": int,
        "gid": int,
        "postrotate": bool,
    },
    "copytruncate": {**_COMMON, **_FILE_ID, "temp": _ABS, "length": int},
    lossless.RECORD_KIND: {
        **_COMMON,
        **_FILE_ID,
        "temp": _ABS,
        "length": int,
        "unit": int,
        "tail_length": int,
        "prefix_sha256": str,
        "tail_sha256": str,
        "phys_start": (int, type(None)),
        "phys_at_length": (int, type(None)),
    },
}


def problems(record: dict[str, Any] | None) -> list[str]:
    """Why a record must not be acted on (empty when it is well formed)."""
    if record is None:
        return ["not a JSON object"]
    schema = SCHEMAS.get(str(record.get("kind")))
    if schema is None:
        return [f"unknown kind {record.get('kind')!r}"]
    out = [f"{key}: {why}" for key, want in schema.items() if (why := _bad(record, key, want))]
    if not out and record["version"] != VERSION:
        out.append(f"version {record['version']} (this nodeguard writes {VERSION})")
    return out


def _bad(record: dict[str, Any], key: str, want: object) -> str | None:
    if key not in record:
        return "missing"
    value = record[key]
    if want == _ABS:
        ok = isinstance(value, str) and _valid_path(value)
        return None if ok else "not an absolute path naming a file"
    types = want if isinstance(want, tuple) else (want,)
    if isinstance(value, bool) and bool not in types:
        return "wrong type"
    if not isinstance(value, types):
        return "wrong type"
    return (
        "negative" if isinstance(value, int) and not isinstance(value, bool) and value < 0 else None
    )


def _valid_path(path: str) -> bool:
    head, name = os.path.split(path)
    return path.startswith("/") and "\0" not in path and name not in ("", ".", "..") and bool(head)


# --- replay --------------------------------------------------------------------------------


# Why a well-formed record is not one this configuration could have written (empty: it is).
Belongs = Callable[[dict[str, Any]], list[str]]


@dataclass(frozen=True)
class Replay:
    """What recovery needs from the pass: a postrotate runner, and the check that a
    record names a step this configuration could have taken."""

    postrotate: Postrotate
    belongs: Belongs = lambda record: []


def belongs(record: dict[str, Any], config: Config) -> list[str]:
    """Why ``record`` (well formed) is not a step of ``config``'s policies; empty if it is.

    The policy must exist and its globs match the live path; the final name must be a
    rotated name of that live file, in the folder this policy rotates it into; the temp
    name must be the one nodeguard makes for that final name, beside it.
    """
    policy = config.policy(record["policy"])
    if policy is None:
        return [f"policy: {record['policy']!r} is not configured"]
    live, final = record["live"], record["final"]
    if not any(scan.path_matches(pattern, live) for pattern in policy.paths):
        return [f"live: {live} is not a file of policy {policy.name}"]
    live_dir, live_name = os.path.split(live)
    final_dir, final_name = os.path.split(final)
    out: list[str] = []
    want_dir = rotated_dir_path(policy.olddir, live_dir)
    parsed = naming.parse(final_name)
    if os.path.normpath(final_dir) != os.path.normpath(want_dir):
        out.append(f"final: {final} is not in {want_dir}, where policy {policy.name} rotates")
    elif parsed is None or parsed.compressed or parsed.base != live_name:
        out.append(f"final: {final_name} is not a rotated name of {live_name}")
    if "temp" in record and record["temp"] != f"{final_dir}/{naming.temp_name(final_name)}":
        out.append(f"temp: {record['temp']} is not the temporary name of {final}")
    return out


def rotated_dir_path(olddir: str | None, live_dir: str) -> str:
    """Where a policy's rotated files of a log in ``live_dir`` go."""
    if olddir is None:
        return live_dir
    return olddir if olddir.startswith("/") else f"{live_dir}/{olddir}"


def recover_all(
    config: Config, journal: Journal, replay: Replay, euid: int
) -> tuple[list[Record], frozenset[str]]:
    """Replay the main journal, then each su user's (as that user); return the records
    and the files that records still pending name (a pass must leave those alone)."""
    records = recover(journal, replay)
    protected = pending_paths(journal, replay)
    for su in _su_users(config, euid):
        if not (journal.directory / su_dir_name(su)).is_dir():
            continue
        fd = su_directory(journal, su)
        try:
            done, _ = run_as(su, functools.partial(_recover_in, fd, replay), "recovery")
        finally:
            os.close(fd)
        records += done
        protected |= pending_paths(IntentJournal(journal.directory / su_dir_name(su)), replay)
    return records, frozenset(protected)


def _recover_in(fd: int, replay: Replay) -> tuple[list[Record], dict[tuple[int, int], str]]:
    return recover(cwd_journal(fd), replay), {}


def _su_users(config: Config, euid: int) -> list[tuple[str, str]]:
    if euid != 0:
        return []  # not root: every policy ran in this process, with the main journal
    return sorted({p.su for p in config.policies if p.su is not None})


def su_dir_name(su: tuple[str, str]) -> str:
    return f"su-{pwd.getpwnam(su[0]).pw_uid}-{grp.getgrnam(su[1]).gr_gid}"


def su_directory(journal: Journal, su: tuple[str, str]) -> int:
    """Open (making it, as root) the intent directory of an su user; return its fd.

    The state directory stays root-only: the forked pass reaches its own directory
    through this fd (see :func:`cwd_journal`), and its records are replayed as that
    user only, so a record it wrote can never make root act.
    """
    uid, gid = pwd.getpwnam(su[0]).pw_uid, grp.getgrnam(su[1]).gr_gid
    journal.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.mkdir(journal.directory / su_dir_name(su), 0o700)
    fd = os.open(journal.directory / su_dir_name(su), fsutil.DIR_FLAGS)
    st = os.fstat(fd)
    if (st.st_uid, st.st_gid) != (uid, gid):
        os.fchown(fd, uid, gid)
    os.fchmod(fd, 0o700)
    return fd


def cwd_journal(fd: int) -> IntentJournal:
    """In a forked su pass: a journal in the directory ``fd`` (made the working directory)."""
    os.fchdir(fd)
    return IntentJournal(Path("."))


def recover(journal: Journal, replay: Replay) -> list[Record]:
    """Finish or undo every pending intent in ``journal``; one record for each."""
    records = _remove_torn_writes(journal.directory)
    for intent_id, record in journal.pending():
        why = problems(record)
        label = "malformed"
        if not why and record is not None:
            why, label = replay.belongs(record), "untrusted"
        if why or record is None:
            records.append(_quarantine(journal.directory, intent_id, record, why, label))
            continue
        result = settle_one(record, replay)
        if result.result == DONE:
            faults.point("recover.before-end")
            journal.end(intent_id)
        records.append(result)
    return records


def settle_open(intents: Intents, replay: Replay) -> list[Record]:
    """Resolve, right away, the intents of a step that failed half-way."""
    records: list[Record] = []
    for intent_id, record in list(intents.open.items()):
        result = settle_one(record, replay)
        if result.result == DONE:
            intents.end(intent_id)
        records.append(result)
    return records


def settle_one(record: dict[str, Any], replay: Replay) -> Record:
    """Replay one well-formed record; DONE when the record can go, FAILED when it stays."""
    kind = record["kind"]
    try:
        if kind == "rename":
            reason = _recover_rename(record, replay)
        elif kind == "copytruncate":
            reason = _recover_copytruncate(record)
        else:
            reason = _recover_lossless(record)
    except (Conflict, lossless.RecoveryConflict) as exc:
        return _record(record, FAILED, f"{kind} interrupted; left for the admin: {exc}")
    except OSError as exc:
        why = f"{exc.strerror} ({exc.filename})" if exc.filename else str(exc.strerror or exc)
        return _record(record, FAILED, f"{kind} interrupted; recovery failed, will retry: {why}")
    except (ValueError, ArithmeticError, LookupError) as exc:  # a record odd beyond the schema
        return _record(record, FAILED, f"{kind} interrupted; left for the admin: {exc!r}")
    return _record(record, DONE, f"{kind} interrupted by a crash; {reason}")


def _record(record: dict[str, Any], result: str, reason: str) -> Record:
    return Record(
        record["policy"], record["live"], "recover", result, reason, target=record["final"]
    )


def _quarantine(
    directory: Path,
    intent_id: str,
    record: dict[str, Any] | None,
    why: list[str],
    label: str = "malformed",
) -> Record:
    """Move a record aside that must not be acted on (never delete because of it)."""
    aside = directory / MALFORMED_DIR
    source = directory / f"{intent_id}.json"
    try:
        with contextlib.suppress(FileExistsError):
            os.mkdir(aside, 0o700)
        os.rename(source, aside / source.name)
        fsutil.fsync_dir(directory)
        where = f"moved to {aside / source.name}"
    except OSError as exc:
        where = f"could not move it aside: {exc.strerror}"
    policy = record.get("policy") if isinstance(record, dict) else None
    return Record(
        policy if isinstance(policy, str) else "?",
        str(source),
        "recover",
        FAILED,
        f"{label} intent record ({'; '.join(why) or 'unreadable'}); nothing was done "
        f"because of it, {where}",
    )


def _remove_torn_writes(directory: Path) -> list[Record]:
    """Intent records whose write was cut short (empty, or temp files of older versions:
    their step never began), and temp files of the pass's state file (written under the
    same lock, so none is in use)."""
    torn = sorted(directory.glob(f".*{fsutil.TMP_MARK}")) if directory.is_dir() else []
    torn += [p for p in sorted(directory.glob("*.json")) if _empty_file(p)]
    state = sorted(directory.parent.glob(f".state.json.*{fsutil.TMP_MARK}"))
    records: list[Record] = []
    for path, what in [(p, "intent record (its step never began)") for p in torn] + [
        (p, "state file write (the previous state file is intact)") for p in state
    ]:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            records.append(Record("-", str(path), "cleanup", DONE, f"torn {what}"))
    return records


def _empty_file(path: Path) -> bool:
    """A regular file of 0 bytes: a record is written in one call, then fsynced, before
    its step begins, so an empty one was cut short before its step."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_size == 0


def pending_paths(journal: Journal, replay: Replay) -> set[str]:
    """Files named by records still pending: no cleanup or retention may touch them."""
    out: set[str] = set()
    for _, record in journal.pending():
        if record is not None and not problems(record) and not replay.belongs(record):
            out.update(record[k] for k in ("temp", "final") if k in record)
    return out


# --- per kind ------------------------------------------------------------------------------


@contextlib.contextmanager
def open_dir(path: str) -> Iterator[int]:
    """Open a directory the way a pass does (no symlink followed, except root's own)."""
    reasons: list[str] = []
    opened = scan.open_path(path, lambda p, r: reasons.append(f"{p}: {r}"))
    if opened is None:
        raise OSError(2, reasons[0] if reasons else "no such directory", path)
    try:
        yield opened.fd
    finally:
        os.close(opened.fd)


def _lstat(name: str, dir_fd: int) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _is(st: os.stat_result | None, record: dict[str, Any]) -> bool:
    return st is not None and (st.st_dev, st.st_ino) == (record["dev"], record["ino"])


def _recover_rename(record: dict[str, Any], replay: Replay) -> str:
    """Rename is atomic: either it happened (finish create + postrotate) or it did not."""
    live_dir, live_name = os.path.split(record["live"])
    final_dir, final_name = os.path.split(record["final"])
    with open_dir(live_dir) as live_fd, open_dir(final_dir) as final_fd:
        if not _is(_lstat(final_name, final_fd), record):
            if _is(_lstat(live_name, live_fd), record):
                return "undone: the rename never happened; the live file is as it was"
            return "nothing to do: the file was moved by someone else; left as it is"
        done = ["the rename had happened"]
        if _lstat(live_name, live_fd) is None:
            create_live(live_fd, live_name, record["mode"], record["uid"], record["gid"])
            done.append("created the new live file")
    if record["postrotate"]:
        error = replay.postrotate(record["policy"], record["live"])
        done.append(f"postrotate failed: {error}" if error else "ran postrotate")
    return "completed: " + ", ".join(done)


def create_live(dir_fd: int, name: str, mode: int, uid: int, gid: int) -> bool:
    """Create the empty live file; False if one exists already (the writer made it)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(name, flags, 0o600, dir_fd=dir_fd)
    except FileExistsError:
        return False
    ordered = False
    try:
        if os.geteuid() == 0 or (uid, gid) != (os.geteuid(), os.getegid()):
            with contextlib.suppress(PermissionError):
                os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
        # After fchown/fchmod, so owner and mode are durable with the file; on ext4/xfs
        # this also persists its entry and the rename before it (fsutil.ORDERED_FS).
        os.fsync(fd)
        ordered = fsutil.fsync_covers_entries(fd)
    finally:
        os.close(fd)
    if not ordered:
        os.fsync(dir_fd)
    return True


def _recover_copytruncate(record: dict[str, Any]) -> str:
    """Undo unless the truncate happened: the live file then still holds every byte."""
    live_dir, live_name = os.path.split(record["live"])
    rot_dir, final_name = os.path.split(record["final"])
    temp_name = os.path.basename(record["temp"])
    with open_dir(live_dir) as live_fd, open_dir(rot_dir) as rot_fd:
        temp = _lstat(temp_name, rot_fd)
        if temp is not None:
            if not _is_our_copy(temp, record["length"]):
                raise Conflict(f"{record['temp']} is not the copy that was made")
            os.unlink(temp_name, dir_fd=rot_fd)
            os.fsync(rot_fd)
            return "undone: the copy was never put in place; removed it (the live file is whole)"
        final = _lstat(final_name, rot_fd)
        if final is None:
            return "nothing to do: no copy was made"
        regular = stat.S_ISREG(final.st_mode) and final.st_nlink == 1
        if not regular or final.st_size < record["length"]:
            raise Conflict(f"{record['final']} is not the copy that was made")
        if _untruncated(live_fd, live_name, rot_fd, final_name, record):
            os.unlink(final_name, dir_fd=rot_fd)
            os.fsync(rot_fd)
            return "undone: the live file was never truncated; removed the copy (no duplicate)"
    return "completed: the live file had been truncated; the copy is the rotated file"


def _is_our_copy(st: os.stat_result, length: int) -> bool:
    """The temp copy as made: a regular file with one name, of the recorded length."""
    return stat.S_ISREG(st.st_mode) and st.st_nlink == 1 and st.st_size == length


def _untruncated(
    live_fd: int, live_name: str, rot_fd: int, final_name: str, record: dict[str, Any]
) -> bool:
    """Whether the live file still starts with every byte of the copy (so it was not truncated)."""
    try:
        src = os.open(live_name, _READ_FLAGS, dir_fd=live_fd)
    except FileNotFoundError:
        return False
    try:
        copy = os.open(final_name, _READ_FLAGS, dir_fd=rot_fd)
        try:
            st = os.fstat(src)
            size = os.fstat(copy).st_size
            if not _is(st, record) or st.st_size < size:
                return False
            return _digest(src, size) == _digest(copy, size)
        finally:
            os.close(copy)
    finally:
        os.close(src)


def _digest(fd: int, length: int) -> str:
    digest = hashlib.sha256()
    offset = 0
    while offset < length:
        data = os.pread(fd, min(_CHUNK, length - offset), offset)
        if not data:
            return "short"
        digest.update(data)
        offset += len(data)
    return digest.hexdigest()


def _recover_lossless(record: dict[str, Any]) -> str:
    return lossless.recover_intent(record, open_dir=open_dir)
