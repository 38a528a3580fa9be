"""Recovery: settle the intent records an interrupted pass left, before anything is scanned.

A step first records what it is about to do (:mod:`intents`), then acts, then ends the
record. The next pass, under the lock and before scanning, finishes or undoes every
record still there: see docs/crash-safety.md for the decision of each kind. A record
that does not validate, or names a step this configuration could not have taken, is
moved to ``malformed/`` and reported, and nothing is done or deleted because of it.
"""

from __future__ import annotations

import contextlib
import functools
import grp
import json
import os
import pwd
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from nodeguard import faults, fsutil
from nodeguard.config.model import Config
from nodeguard.events import Event
from nodeguard.rotation import lossless, ordering, scan
from nodeguard.rotation.intents import (
    AnyIntent,
    CopytruncateIntent,
    Intent,
    IntentStore,
    InvalidIntent,
    LosslessIntent,
    OpenIntents,
    RenameBatchIntent,
    RenameIntent,
    batch_torn,
    belongs,
    parse,
)
from nodeguard.rotation.privilege import missing_su, run_as
from nodeguard.rotation.report import DONE, FAILED, RotationKind, result_of, rotation_event
from nodeguard.state import INTENT_READ_CAP, IntentJournal, read_capped

MALFORMED_DIR = "malformed"
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_CHUNK = 1 << 20

# Postrotate runner for a recovered rename: (policy name, live path) -> error or None.
Postrotate = Callable[[str, str], str | None]
# Why a well-formed intent is not one this configuration could have written (empty: it is).
Belongs = Callable[[AnyIntent], list[str]]


class Conflict(Exception):
    """Recovery found a state it must not resolve alone; the record stays for the admin."""


@dataclass(frozen=True)
class Replay:
    """What recovery needs from the pass: a postrotate runner, and the check that an
    intent names a step this configuration could have taken."""

    postrotate: Postrotate
    belongs: Belongs = lambda intent: []

    @classmethod
    def for_config(cls, postrotate: Postrotate, config: Config) -> Replay:
        return cls(postrotate, functools.partial(belongs, config=config))


def _checked(
    record: dict[str, object] | None, replay: Replay
) -> tuple[AnyIntent | None, list[str], str]:
    """The typed intent of a stored record, or why it must be quarantined."""
    try:
        intent = parse(record)
    except InvalidIntent as exc:
        return None, exc.problems, "malformed"
    why = replay.belongs(intent)
    return (None, why, "untrusted") if why else (intent, [], "")


def recover_all(
    config: Config, store: IntentStore, replay: Replay, euid: int
) -> tuple[list[Event], frozenset[str]]:
    """Settle the main intent records, then each su user's (as that user); return the
    events and the files that records still pending name (a pass leaves those alone)."""
    events = recover(store, replay)
    protected = pending_paths(store, replay)
    for su in _su_users(config, euid):
        if not (store.directory / su_dir_name(su)).is_dir():
            continue
        fd = su_directory(store, su)
        try:
            done, _ = run_as(su, functools.partial(_recover_in, fd, replay), "recovery")
        finally:
            os.close(fd)
        events += done
        protected |= pending_paths(IntentJournal(store.directory / su_dir_name(su)), replay)
    return events, frozenset(protected)


def _recover_in(fd: int, replay: Replay) -> tuple[list[Event], dict[tuple[int, int], str]]:
    return recover(cwd_intents(fd), replay), {}


def _su_users(config: Config, euid: int) -> list[tuple[str, str]]:
    if euid != 0:
        return []  # not root: every policy ran in this process, with the main records
    # A user removed since the config loaded: its records wait (the pass says why).
    return sorted({p.su for p in config.policies if p.su is not None and not missing_su(p.su)})


def su_dir_name(su: tuple[str, str]) -> str:
    return f"su-{pwd.getpwnam(su[0]).pw_uid}-{grp.getgrnam(su[1]).gr_gid}"


def su_directory(store: IntentStore, su: tuple[str, str]) -> int:
    """Open (making it, as root) the intent folder of an su user; return its fd.

    The state folder stays root-only: the forked pass reaches its own folder through
    this fd (see :func:`cwd_intents`), and its records are settled as that user only,
    so a record it wrote can never make root act.
    """
    uid, gid = pwd.getpwnam(su[0]).pw_uid, grp.getgrnam(su[1]).gr_gid
    store.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.mkdir(store.directory / su_dir_name(su), 0o700)
    fd = os.open(store.directory / su_dir_name(su), fsutil.DIR_FLAGS)
    try:
        st = os.fstat(fd)
        if (st.st_uid, st.st_gid) != (uid, gid):
            os.fchown(fd, uid, gid)
        os.fchmod(fd, 0o700)
    except BaseException:
        os.close(fd)
        raise
    return fd


def cwd_intents(fd: int) -> IntentJournal:
    """In a forked su pass: the intent records in the folder ``fd`` (made the cwd)."""
    os.fchdir(fd)
    return IntentJournal(Path("."))


def recover(store: IntentStore, replay: Replay) -> list[Event]:
    """Finish or undo every pending intent in ``store``; one event for each."""
    events = _remove_torn_writes(store.directory)
    for intent_id, record in store.pending():
        intent, why, label = _checked(record, replay)
        if intent is None:
            events.append(_quarantine(store.directory, intent_id, record, why, label))
            continue
        if isinstance(intent, RenameBatchIntent):
            settled = settle_batch(intent, replay)
        else:
            settled = [settle_one(intent, replay)]
        if all(result_of(event) == DONE for event in settled):
            faults.point("recover.before-end")
            store.end(intent_id)
        events += settled
    return events


def settle_batch(intent: RenameBatchIntent, replay: Replay) -> list[Event]:
    """Each entry of a batch settled as the rename it records, independently.

    A folder that is no longer the recorded one (removed, replaced) holds none of the
    recorded files: every entry is then left as it is and the record ends.
    """
    found = _folder_at(intent.directory)
    if found is None or (isinstance(found, tuple) and found != (intent.dev, intent.ino)):
        what = "is gone" if found is None else "was replaced"
        why = f"rename interrupted by a crash; nothing to do: the folder {what}"
        return [_event(entry, DONE, why) for entry in intent.entries]
    return [settle_one(entry, replay) for entry in intent.entries]


def _folder_at(path: str) -> tuple[int, int] | str | None:
    """The identity of the folder at ``path``; None if a component is missing; "?" if
    it cannot be told now (a symlink a pass refuses, an error: each entry's own settling
    then says why, and the record stays until the path leads to a folder again)."""
    problems: list[scan.ScanProblem] = []
    opened = scan.open_path(path, lambda p, kind, r: problems.append(kind))
    if opened is None:
        return "?" if problems else None
    st = os.fstat(opened.fd)
    os.close(opened.fd)
    return st.st_dev, st.st_ino


def settle_open(intents: OpenIntents, replay: Replay) -> list[Event]:
    """Resolve, right away, the intents of a step that failed half-way."""
    events: list[Event] = []
    for intent_id, intent in list(intents.open.items()):
        if isinstance(intent, RenameBatchIntent):
            continue  # settled entry by entry by the batch (see batch.py)
        event = settle_one(intent, replay)
        if result_of(event) == DONE:
            intents.end(intent_id)
        events.append(event)
    return events


def settle_one(intent: Intent, replay: Replay) -> Event:
    """Replay one intent; DONE when its record can go, FAILED when it stays."""
    kind = intent.kind
    try:
        if isinstance(intent, RenameIntent):
            reason = _recover_rename(intent, replay)
        elif isinstance(intent, CopytruncateIntent):
            reason = _recover_copytruncate(intent)
        else:
            reason = _recover_lossless(intent)
    except (Conflict, lossless.RecoveryConflict) as exc:
        return _event(intent, FAILED, f"{kind} interrupted; left for the admin: {exc}")
    except OSError as exc:
        why = f"{exc.strerror} ({exc.filename})" if exc.filename else str(exc.strerror or exc)
        return _event(intent, FAILED, f"{kind} interrupted; recovery failed, will retry: {why}")
    except (ValueError, ArithmeticError, LookupError) as exc:  # odd beyond the schema
        return _event(intent, FAILED, f"{kind} interrupted; left for the admin: {exc!r}")
    return _event(intent, DONE, f"{kind} interrupted by a crash; {reason}")


def _event(intent: Intent, result: str, reason: str) -> Event:
    return rotation_event(
        intent.policy, intent.live, RotationKind.RECOVER, result, reason, target=intent.final
    )


def _quarantine(
    directory: Path,
    intent_id: str,
    record: dict[str, object] | None,
    why: list[str],
    label: str,
) -> Event:
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
    return rotation_event(
        policy if isinstance(policy, str) else "?",
        str(source),
        RotationKind.RECOVER,
        FAILED,
        f"{label} intent record ({'; '.join(why) or 'unreadable'}); nothing was done "
        f"because of it, {where}",
    )


def _remove_torn_writes(directory: Path) -> list[Event]:
    """Intent records whose write was cut short (empty, or temp files of older versions:
    their step never began), and temp files of the pass's state file (written under the
    same lock, so none is in use). Only regular files are removed."""
    torn = sorted(directory.glob(f".*{fsutil.TMP_MARK}")) if directory.is_dir() else []
    torn += [p for p in sorted(directory.glob("*.json")) if _torn_record(p)]
    state = sorted(directory.parent.glob(f".state.json.*{fsutil.TMP_MARK}"))
    events: list[Event] = []
    for path, what in [(p, "intent record (its step never began)") for p in torn] + [
        (p, "state file write (the previous state file is intact)") for p in state
    ]:
        with contextlib.suppress(OSError):
            if stat.S_ISREG(path.lstat().st_mode):
                path.unlink()
                events.append(
                    rotation_event("-", str(path), RotationKind.CLEANUP, DONE, f"torn {what}")
                )
    return events


def _torn_record(path: Path) -> bool:
    """A record cut short: a record is written in one call, then fsynced, before its step
    begins, so an empty file, or the start of a batch record that is not whole JSON
    (a batch may span pages, which a crash can cut apart), was cut before its step."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return False
    return stat.S_ISREG(st.st_mode) and (st.st_size == 0 or _cut_batch(path))


def _cut_batch(path: Path) -> bool:
    try:
        data = read_capped(path, INTENT_READ_CAP)
        if not batch_torn(data):
            return False
        json.loads(data)
    except OSError:
        return False
    except ValueError:
        return True  # not whole JSON
    return False


def pending_paths(store: IntentStore, replay: Replay) -> set[str]:
    """Files named by records still pending: no cleanup or retention may touch them."""
    out: set[str] = set()
    for _, record in store.pending():
        intent, _, _ = _checked(record, replay)
        if isinstance(intent, RenameBatchIntent):
            out.update(entry.final for entry in intent.entries)
        elif intent is not None:
            out.add(intent.final)
            if intent.temp_path is not None:
                out.add(intent.temp_path)
    return out


# --- per kind ------------------------------------------------------------------------------


@contextlib.contextmanager
def open_dir(path: str) -> Iterator[int]:
    """Open a directory the way a pass does (no symlink followed, except root's own)."""
    reasons: list[str] = []
    opened = scan.open_path(path, lambda p, kind, r: reasons.append(scan.describe(p, kind, r)))
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


def _is(st: os.stat_result | None, intent: Intent) -> bool:
    return st is not None and (st.st_dev, st.st_ino) == (intent.dev, intent.ino)


def _recover_rename(intent: RenameIntent, replay: Replay) -> str:
    """Rename is atomic: either it happened (finish create + postrotate) or it did not."""
    live_dir, live_name = os.path.split(intent.live)
    final_dir, final_name = os.path.split(intent.final)
    with open_dir(live_dir) as live_fd, open_dir(final_dir) as final_fd:
        if not _is(_lstat(final_name, final_fd), intent):
            if _is(_lstat(live_name, live_fd), intent):
                return "undone: the rename never happened; the live file is as it was"
            return "nothing to do: the file was moved by someone else; left as it is"
        done = ["the rename had happened"]
        if _lstat(live_name, live_fd) is None:
            create_live(live_fd, live_name, intent.mode, intent.uid, intent.gid)
            done.append("created the new live file")
    if intent.postrotate:
        error = replay.postrotate(intent.policy, intent.live)
        done.append(f"postrotate failed: {error}" if error else "ran postrotate")
    return "completed: " + ", ".join(done)


def create_new(dir_fd: int, name: str, mode: int, uid: int, gid: int) -> int | None:
    """Create the empty live file with its owner and mode, not fsynced; its open fd, or
    None if one exists already (the writer made it)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(name, flags, 0o600, dir_fd=dir_fd)
    except FileExistsError:
        return None
    try:
        st = os.fstat(fd)
        if (st.st_uid, st.st_gid) != (uid, gid):
            with contextlib.suppress(PermissionError):  # not root: keep our own ids
                os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
    except BaseException:
        os.close(fd)
        raise
    return fd


def create_live(dir_fd: int, name: str, mode: int, uid: int, gid: int) -> bool:
    """Create the empty live file, durably; False if one exists already (the writer made it)."""
    fd = create_new(dir_fd, name, mode, uid, gid)
    if fd is None:
        return False
    ordered = False
    try:
        # After fchown/fchmod, so owner and mode are durable with the file; on ext4 with
        # a journal and xfs this also persists its entry and the rename before it.
        os.fsync(fd)
        ordered = ordering.fsync_orders(fd)
    finally:
        os.close(fd)
    if not ordered:
        os.fsync(dir_fd)
    return True


def _recover_copytruncate(intent: CopytruncateIntent) -> str:
    """Undo unless the truncate happened: the live file then still holds every byte."""
    live_dir, live_name = os.path.split(intent.live)
    rot_dir, final_name = os.path.split(intent.final)
    temp_name = os.path.basename(intent.temp)  # beside final: checked by belongs()
    with open_dir(live_dir) as live_fd, open_dir(rot_dir) as rot_fd:
        temp = _lstat(temp_name, rot_fd)
        if temp is not None:
            if not _is_our_copy(temp, intent.length):
                raise Conflict(f"{intent.temp} is not the copy that was made")
            os.unlink(temp_name, dir_fd=rot_fd)
            os.fsync(rot_fd)
            return "undone: the copy was never put in place; removed it (the live file is whole)"
        final = _lstat(final_name, rot_fd)
        if final is None:
            return "nothing to do: no copy was made"
        regular = stat.S_ISREG(final.st_mode) and final.st_nlink == 1
        if not regular or final.st_size < intent.length:
            raise Conflict(f"{intent.final} is not the copy that was made")
        if _untruncated(live_fd, live_name, rot_fd, final_name, intent):
            os.unlink(final_name, dir_fd=rot_fd)
            os.fsync(rot_fd)
            return "undone: the live file was never truncated; removed the copy (no duplicate)"
    return "completed: the live file had been truncated; the copy is the rotated file"


def _is_our_copy(st: os.stat_result, length: int) -> bool:
    """The temp copy as made: a regular file with one name, of the recorded length."""
    return stat.S_ISREG(st.st_mode) and st.st_nlink == 1 and st.st_size == length


def _untruncated(
    live_fd: int, live_name: str, rot_fd: int, final_name: str, intent: Intent
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
            if not _is(st, intent) or st.st_size < size:
                return False
            return _digest(src, size) == _digest(copy, size)
        finally:
            os.close(copy)
    finally:
        os.close(src)


def _digest(fd: int, length: int) -> str:
    import hashlib  # here: OpenSSL's libcrypto costs ~3.5 MiB of RSS once loaded

    digest = hashlib.sha256()
    offset = 0
    while offset < length:
        data = os.pread(fd, min(_CHUNK, length - offset), offset)
        if not data:
            return "short"
        digest.update(data)
        offset += len(data)
    return digest.hexdigest()


def _recover_lossless(intent: LosslessIntent) -> str:
    return lossless.recover_intent(intent.as_record(), open_dir=open_dir)
