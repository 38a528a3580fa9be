"""rename + create for every due log of one folder and policy: one record, one fsync.

The logs of a folder whose plan starts with a ``rename`` rotation are rotated together:
one ``rename-batch`` intent record lists them all (one create, one write, one fsync),
then per log the same re-check, ``rename_noreplace``, swap check and create as a single
rename, with no fsync per file; then one fsync makes every rename and create durable,
postrotate runs per log and the record ends. Recovery settles each entry of a record
a crash left as the rename it records. Crash decisions: docs/crash-safety.md.
"""

from __future__ import annotations

import contextlib
import errno
import grp
import os
import pwd
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from nodeguard import faults, fsutil
from nodeguard.config.model import Policy
from nodeguard.rotation import naming, ordering, recovery, steps
from nodeguard.rotation.context import PolicyContext, Rotation, Sink
from nodeguard.rotation.intents import (
    BATCH_BUDGET,
    BATCH_MAX_ENTRIES,
    OpenIntents,
    RenameBatchIntent,
    RenameIntent,
    entry_cost,
)
from nodeguard.rotation.methods import Changed, LiveLog, same_file
from nodeguard.rotation.plan import Step
from nodeguard.rotation.report import DONE, FAILED, RotationKind, result_of


@dataclass(frozen=True)
class Due:
    """A log whose plan starts with a rotation, and the rest of its plan."""

    log: LiveLog
    rotated: list[naming.RotatedName]
    plan: list[Step]  # plan[0] is the rotation

    @property
    def target(self) -> str:
        return self.plan[0].target or ""


def batched(pc: PolicyContext) -> bool:
    """Whether this policy's rotations go through a folder's batch (rename, not a dry run)."""
    return pc.policy.method == "rename" and not pc.ctx.dry_run


@dataclass
class _Entry:
    """One log in a batch and how far it got."""

    due: Due
    intent: RenameIntent
    renamed: bool = False
    error: OSError | Changed | None = None
    new_id: tuple[int, int] | None = None


def rotate_batch(pc: PolicyContext, sink: Sink, dues: list[Due]) -> list[Rotation]:
    """Rotate the due logs of one folder (same policy); their outcomes, in order."""
    if not dues:
        return []
    try:
        entries = _entries(pc.policy, dues)
    except KeyError as exc:  # checked when the config loaded; removed from the host since
        return [_unknown_owner(sink, due, exc) for due in dues]
    outcomes: list[Rotation] = []
    for chunk in _chunks(entries):
        outcomes += _rotate_chunk(pc, sink, chunk)
    return outcomes


def _entries(policy: Policy, dues: list[Due]) -> list[_Entry]:
    spec = policy.create
    uid = pwd.getpwnam(spec.owner).pw_uid if spec and spec.owner else None
    gid = grp.getgrnam(spec.group).gr_gid if spec and spec.group else None
    mode = spec.mode if spec and spec.mode is not None else None
    out = []
    for due in dues:
        st = due.log.st
        intent = RenameIntent(
            policy=policy.name,
            live=due.log.path,
            final=due.log.rotated_path(due.target),
            dev=st.st_dev,
            ino=st.st_ino,
            mode=stat.S_IMODE(st.st_mode) if mode is None else mode,
            uid=st.st_uid if uid is None else uid,
            gid=st.st_gid if gid is None else gid,
            postrotate=policy.postrotate is not None,
        )
        out.append(_Entry(due, intent))
    return out


def _unknown_owner(sink: Sink, due: Due, exc: KeyError) -> Rotation:
    """A ``create`` owner or group that no longer exists: nothing is renamed."""
    detail = exc.args[0] if exc.args else exc
    why = f"create: {detail} (removed from this host since the config loaded); nothing renamed"
    sink.add(due.log.path, RotationKind.ROTATE, FAILED, why, bytes_before=due.log.st.st_size)
    return Rotation.FAILED


def _chunks(entries: list[_Entry]) -> Iterator[list[_Entry]]:
    """Entries in records that stay under the journal's read cap."""
    log = entries[0].due.log
    budget = BATCH_BUDGET - entry_cost(log.directory.path, log.rotated_dir.path) - 512
    chunk: list[_Entry] = []
    cost = 0
    for entry in entries:
        more = entry_cost(entry.due.log.name, entry.due.target)
        if chunk and (cost + more > budget or len(chunk) >= BATCH_MAX_ENTRIES):
            yield chunk
            chunk, cost = [], 0
        chunk.append(entry)
        cost += more
    yield chunk


def _record(policy: Policy, entries: list[_Entry]) -> RenameBatchIntent:
    log = entries[0].due.log
    st = log.directory.st
    return RenameBatchIntent(
        policy=policy.name,
        directory=log.directory.path,
        rotated=log.rotated_dir.path,
        dev=st.st_dev,
        ino=st.st_ino,
        postrotate=policy.postrotate is not None,
        entries=tuple(e.intent for e in entries),
    )


def _rotate_chunk(pc: PolicyContext, sink: Sink, entries: list[_Entry]) -> list[Rotation]:
    """One record, every entry's rename and create, one fsync, then the reports."""
    intents = OpenIntents(pc.ctx.intents)
    log = entries[0].due.log
    try:
        sync = _Durability(log.directory.fd, log.rotated_dir.fd)
        intents.begin(_record(pc.policy, entries))
    except OSError as exc:  # ENOSPC for the record: nothing was moved
        return [_failed(sink, e, exc) for e in entries]
    point = faults.trap()
    point("batch.after-record")
    try:
        for index, entry in enumerate(entries):
            if index:
                point("batch.between-entries")
            _rename(entry, log, sync, point)
        point("batch.before-sync")
        sync.finish()
    except OSError as exc:  # the fsync: settle every renamed entry as after a crash
        for entry in entries:
            if entry.renamed and entry.error is None:
                entry.error = exc
    finally:
        sync.close()
    return _conclude(pc, sink, entries, intents)


def _rename(entry: _Entry, log: LiveLog, sync: _Durability, point: Callable[[str], None]) -> None:
    """One log's rename and create; an error is the entry's own (recorded on it)."""
    d, r, name, target = log.directory, log.rotated_dir, entry.due.log.name, entry.due.target
    want = entry.due.log.st
    try:
        if not same_file(os.stat(name, dir_fd=d.fd, follow_symlinks=False), want):
            raise Changed(f"{entry.due.log.path} changed since it was checked")
        point("rename.before-rename")
        fsutil.rename_noreplace(d.fd, name, r.fd, target)
        entry.renamed = True
        sync.renamed()
        point("rename.after-rename")
        if not same_file(os.stat(target, dir_fd=r.fd, follow_symlinks=False), want):
            fsutil.rename_noreplace(r.fd, target, d.fd, name)  # swapped after the check
            sync.renamed()
            raise Changed(f"{entry.due.log.path} was replaced during rotation; left as it was")
        fd = _create(entry, log, sync)
        if fd is not None:
            st = os.fstat(fd)
            entry.new_id = (st.st_dev, st.st_ino)
            sync.created(fd)
        point("rename.after-create")
    except (OSError, Changed) as exc:
        entry.error = exc


def _create(entry: _Entry, log: LiveLog, sync: _Durability) -> int | None:
    """The entry's new live file (None if the writer made one); if it cannot be made
    (no free block or inode), the rename is undone so that retention can free space and
    the rotation be tried again, instead of leaving no live file until the next pass."""
    i, name, target = entry.intent, entry.due.log.name, entry.due.target
    try:
        return recovery.create_new(log.directory.fd, name, i.mode, i.uid, i.gid)
    except OSError:
        with contextlib.suppress(OSError):  # a file is there now: settled as after a crash
            fsutil.rename_noreplace(log.rotated_dir.fd, target, log.directory.fd, name)
            entry.renamed = False
            sync.renamed()
        raise


class _Durability:
    """What makes a folder's renames and creates durable, once for the folder.

    On ext4 with a journal and xfs an fsync persists every metadata change made before it
    on the filesystem (:mod:`ordering`), so one fsync of the inode holding the newest change
    does: the last new live file (its fchmod) or, if a rename came after it, the
    folder. Elsewhere each new live file is fsynced, then the folder. A separate
    rotated folder is fsynced too (ext4 without a journal persists only the folder of
    a new entry).
    """

    def __init__(self, live_fd: int, rotated_fd: int) -> None:
        self.live_fd, self.rotated_fd = live_fd, rotated_fd
        self.ordered = ordering.fsync_orders(live_fd)
        a, b = os.fstat(live_fd), os.fstat(rotated_fd)
        self.same = (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
        self.moved = False
        self.last = -1  # the newest created file, while it holds the newest change

    def renamed(self) -> None:
        self.moved = True
        self.close()

    def created(self, fd: int) -> None:
        self.close()
        if self.ordered:
            self.last = fd
            return
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def finish(self) -> None:
        if not self.moved:
            return
        if not self.same:
            os.fsync(self.rotated_fd)
        os.fsync(self.last if self.last >= 0 else self.live_fd)

    def close(self) -> None:
        if self.last >= 0:
            os.close(self.last)
            self.last = -1


def _conclude(
    pc: PolicyContext, sink: Sink, entries: list[_Entry], intents: OpenIntents
) -> list[Rotation]:
    """Per log, as a single rename reports it: its event, postrotate, or its failure
    settled at once; then the record ends (kept if a failure could not be settled)."""
    replay = recovery.Replay(steps.postrotate_runner(steps.own(pc.policy), pc.ctx.world))
    outcomes, settled = [], True
    for entry in entries:
        if entry.error is None:
            outcomes.append(_done(pc, sink, entry))
            continue
        outcomes.append(_failed(sink, entry, entry.error))
        if entry.renamed:
            event = recovery.settle_one(entry.intent, replay)
            sink.events.append(event)
            settled = settled and result_of(event) == DONE
    faults.point("batch.before-end")
    if settled:
        intents.end_all()
    return outcomes


def _done(pc: PolicyContext, sink: Sink, entry: _Entry) -> Rotation:
    log, step = entry.due.log, entry.due.plan[0]
    sink.add(
        log.path,
        RotationKind.ROTATE,
        DONE,
        f"{step.reason}, rename",
        bytes_before=log.st.st_size,
        bytes_after=0,
        target=entry.intent.final,
    )
    # The new live file is this policy's too: another policy matching the same path
    # must not apply its own retention to this log's rotated files.
    new_id = entry.new_id or _lstat_id(log)
    if new_id is not None:
        sink.handled[new_id] = pc.policy.name
    steps.postrotate(pc, sink, log)
    return Rotation.DONE


def _lstat_id(log: LiveLog) -> tuple[int, int] | None:
    try:
        st = os.stat(log.name, dir_fd=log.directory.fd, follow_symlinks=False)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _failed(sink: Sink, entry: _Entry, exc: OSError | Changed) -> Rotation:
    log = entry.due.log
    sink.add(
        log.path,
        RotationKind.ROTATE,
        FAILED,
        entry.due.plan[0].reason,
        bytes_before=log.st.st_size,
        target=entry.intent.final,
        error=steps.err(exc),
    )
    nospace = isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
    return Rotation.NO_SPACE if nospace else Rotation.FAILED
