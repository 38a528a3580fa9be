"""The actions on one log: rotate, run postrotate, remove, compress, clear debris.

Plain functions of the policy's context, the sink that collects their events, and
the live log. Each re-checks what it acts on right before acting (see :mod:`methods`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Callable

from nodeguard import faults
from nodeguard.config.model import Policy
from nodeguard.events import Event
from nodeguard.rotation import naming, recovery, verify
from nodeguard.rotation.checks import roots_of
from nodeguard.rotation.compress import NotSettled, gzip_file
from nodeguard.rotation.context import PolicyContext, Rotation, Sink
from nodeguard.rotation.guards import FileId, Root
from nodeguard.rotation.intents import OpenIntents
from nodeguard.rotation.methods import METHODS, Changed, LiveLog, NeedsIntents, append_symptom
from nodeguard.rotation.plan import Sibling, Step
from nodeguard.rotation.report import (
    DONE,
    FAILED,
    PLANNED,
    REFUSED,
    SKIPPED,
    UNCHANGED,
    Kept,
    RotationKind,
    rotation_event,
)
from nodeguard.world import World


def err(exc: BaseException) -> str:
    """An error as a report shows it: ``No space left on device (ENOSPC)``."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror} ({errno.errorcode.get(exc.errno or 0, exc.errno)})"
    return str(exc)


def keep(pc: PolicyContext, sink: Sink, log: LiveLog) -> None:
    """Record a live file left alone: four fields, its event made only if asked for."""
    size, policy = log.st.st_size, pc.policy
    limit = None if size == 0 and policy.not_if_empty else policy.max_size
    sink.events.append(Kept(sink.policy, log.path, size, limit))


def check_append(sink: Sink, log: LiveLog) -> None:
    """In-place methods need O_APPEND writers: report the NUL mark any other leaves."""
    symptom = append_symptom(log)
    if symptom is not None:
        sink.add(log.path, RotationKind.CHECK, FAILED, symptom, bytes_before=log.st.st_size)


def sibling(
    pc: PolicyContext, sink: Sink, log: LiveLog, name: naming.RotatedName
) -> Sibling | None:
    """A rotated file as retention sees it; None (reported) if it is not ours to count."""
    try:
        st = os.stat(name.name, dir_fd=log.rotated_dir.fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    path = log.rotated_path(name.name)
    if not stat.S_ISREG(st.st_mode):
        reason = "named like a rotated file but not a regular file; left alone"
        sink.add(path, RotationKind.SKIP, SKIPPED, reason)
        return None
    if st.st_nlink > 1 and not pc.policy.allow_hardlinks:  # the other name may be outside
        reason = f"named like a rotated file but has {st.st_nlink} hard links; left alone"
        sink.add(path, RotationKind.SKIP, SKIPPED, reason)
        return None
    return Sibling(name, st.st_size, st.st_mtime)


def clear_debris(
    pc: PolicyContext, sink: Sink, log: LiveLog, rotated: list[naming.RotatedName], temps: list[str]
) -> list[naming.RotatedName]:
    """Remove leftovers of an interrupted pass and finish interrupted compressions;
    return the rotated files retention may count."""
    for tmp in temps:
        if protected(pc, log, tmp):
            continue  # an intent still pending needs it (reported by recovery)
        reason = "leftover temporary file of an interrupted pass"
        remove_file(pc, sink, log, tmp, kind=RotationKind.CLEANUP, reason=reason)
    names = {r.name for r in rotated}
    plains = [r for r in rotated if not r.compressed and r.name + ".gz" in names]
    aside: set[str] = set()  # removed as debris, or kept out of retention as a conflict
    for plain in plains:
        gz = plain.name + ".gz"
        if not _plain_file(log.rotated_dir.fd, gz):  # someone's link: not a copy of ours
            continue
        mismatch = verify.gzip_mismatch(log.rotated_dir.fd, plain.name, gz)
        held = _held_by(pc, log, plain.name, _DEBRIS)[1] if mismatch is None else None
        if held is not None:  # its writer's next lines would be lost with it
            aside.add(plain.name)
            sink.add(log.rotated_path(plain.name), RotationKind.CLEANUP, SKIPPED, held)
            continue
        if mismatch is None:
            reason = "compressed copy is complete; removing the plain file left by an "
            reason += "interrupted pass"
            remove_file(pc, sink, log, plain.name, kind=RotationKind.CLEANUP, reason=reason)
            aside.add(plain.name)
            continue
        aside.update((plain.name, gz))
        sink.add(
            log.rotated_path(plain.name),
            RotationKind.CHECK,
            FAILED,
            f"{gz} exists but does not hold this file ({mismatch}); both kept and "
            "left out of retention: compare them and remove one by hand",
        )
    return [r for r in rotated if r.name not in aside]


def _plain_file(dir_fd: int, name: str) -> bool:
    """A regular file with no other name, as every file nodeguard writes is."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_nlink == 1


def protected(pc: PolicyContext, log: LiveLog, name: str) -> bool:
    """Whether an intent still pending names this file (then it is left alone)."""
    st = log.rotated_dir.st
    return (st.st_dev, st.st_ino, name) in pc.ctx.protected


def run_step(pc: PolicyContext, sink: Sink, log: LiveLog, step: Step) -> int:
    """One remove or compress step; the bytes it freed (a removal's size)."""
    if protected(pc, log, step.name):
        sink.add(
            log.rotated_path(step.name),
            RotationKind(step.action),
            SKIPPED,
            "named by an interrupted step that recovery could not resolve; left alone",
        )
        return 0
    if step.action == "remove":
        kind, reason = RotationKind.REMOVE, step.reason
        return remove_file(pc, sink, log, step.name, kind=kind, reason=reason, size=step.size)
    if step.action == "compress":
        compress(pc, sink, log, step)
    return 0


# --- rotate ----------------------------------------------------------------------------


def rotate(pc: PolicyContext, sink: Sink, log: LiveLog, step: Step) -> Rotation:
    """Rotate the live file by the policy's method; run postrotate; end its intents."""
    policy, target = pc.policy, step.target or ""
    before, rotated_path = log.st.st_size, log.rotated_path(target)
    refusal = writer_refusal(pc, log)
    if refusal is not None:
        sink.add(log.path, RotationKind.REFUSE, REFUSED, refusal, bytes_before=before)
        return Rotation.FAILED
    if pc.ctx.dry_run:
        reason = f"{step.reason}, {policy.method}"
        sink.add(
            log.path,
            RotationKind.ROTATE,
            PLANNED,
            reason,
            bytes_before=before,
            bytes_after=0,
            target=rotated_path,
        )
        return Rotation.DONE
    intents = OpenIntents(pc.ctx.intents)
    try:
        outcome = METHODS[policy.method](log, target, policy, intents)
    except (OSError, Changed, NeedsIntents) as exc:
        sink.add(
            log.path,
            RotationKind.ROTATE,
            FAILED,
            step.reason,
            bytes_before=before,
            target=rotated_path,
            error=err(exc),
        )
        replay = recovery.Replay(postrotate_runner(own(policy), pc.ctx.world))
        sink.events += recovery.settle_open(intents, replay)
        nospace = isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
        return Rotation.NO_SPACE if nospace else Rotation.FAILED
    note = f"; {outcome.note}" if outcome.note else ""
    if not outcome.rotated:
        # Nothing moved: the plan's retention counted a rotated file that does not
        # exist, so stop here; the next pass plans again from what is on disk.
        sink.add(
            log.path,
            RotationKind.ROTATE,
            UNCHANGED,
            f"{step.reason}{note}",
            bytes_after=outcome.bytes_after,
        )
        return Rotation.NOTHING_MOVED
    sink.add(
        log.path,
        RotationKind.ROTATE,
        DONE,
        f"{step.reason}, {policy.method}{note}",
        bytes_before=before,
        bytes_after=outcome.bytes_after,
        target=rotated_path,
    )
    # The new live file is this policy's too: another policy matching the same
    # path must not apply its own retention to this log's rotated files.
    with contextlib.suppress(OSError):
        new = os.stat(log.name, dir_fd=log.directory.fd, follow_symlinks=False)
        sink.handled[(new.st_dev, new.st_ino)] = policy.name
    postrotate(pc, sink, log)
    faults.point("rotate.before-end")
    intents.end_all()
    return Rotation.DONE


def writer_refusal(pc: PolicyContext, log: LiveLog) -> str | None:
    """Why the live file must not be rotated in place: a writer without O_APPEND.

    Such a writer keeps its own offset; after a truncate or a collapse its next write
    leaves a hole of NUL bytes as long as what was moved.
    """
    if pc.policy.method == "rename":
        return None
    culprits = [w for w in pc.writers.of((log.st.st_dev, log.st.st_ino)) if not w.append]
    if not culprits:
        return None
    who = ", ".join(f"pid {w.pid} ({w.command})" for w in culprits)
    reason = (
        f"open for writing without O_APPEND by {who}: an in-place rotation "
        f"({pc.policy.method}) would leave a hole of NUL bytes in the live file"
    )
    if Root.PODS in roots_of(pc, log.directory):
        reason += (
            "; kubelet rotates CRI logs (containerLogMaxSize): let it, with its limit "
            "below this policy's max_size"
        )
    return reason


def own(policy: Policy) -> Callable[[str], Policy | None]:
    """The policy lookup of a pass that settles only its own policy's steps."""
    return lambda name: policy if name == policy.name else None


def postrotate_runner(lookup: Callable[[str], Policy | None], world: World) -> recovery.Postrotate:
    """Recovery re-runs the postrotate of a rename it completes (the writer must reopen)."""

    def postrotate(name: str, live: str) -> str | None:
        policy = lookup(name)
        if policy is None or policy.postrotate is None:
            return f"policy {name} has no postrotate command any more"
        return run_hook(world, policy, live)

    return postrotate


def run_hook(world: World, policy: Policy, live: str) -> str | None:
    """Run the policy's postrotate for ``live``; why it failed, or None."""
    if policy.postrotate is None:
        return None
    argv = ["/bin/sh", "-c", policy.postrotate, "nodeguard", live]
    code, output = world.run(argv, policy.postrotate_timeout)
    return None if code == 0 else f"exit {code}: {output}"


def postrotate(pc: PolicyContext, sink: Sink, log: LiveLog) -> None:
    """Run the policy's postrotate for a rotated log; a failure is the log's event."""
    error = run_hook(pc.ctx.world, pc.policy, log.path)
    if error is not None and pc.policy.postrotate is not None:
        sink.add(log.path, RotationKind.POSTROTATE, FAILED, pc.policy.postrotate, error=error)


# --- remove and compress ---------------------------------------------------------------


def remove_file(
    pc: PolicyContext,
    sink: Sink,
    log: LiveLog,
    name: str,
    *,
    kind: RotationKind,
    reason: str,
    size: int | None = None,
) -> int:
    """Unlink a rotated file or leftover; return the bytes that freed."""
    path = log.rotated_path(name)
    if pc.ctx.dry_run:
        sink.add(path, kind, PLANNED, reason, bytes_before=size, bytes_after=0)
        return 0
    try:
        st = os.stat(name, dir_fd=log.rotated_dir.fd, follow_symlinks=False)
        # unlink never follows: a leftover temp name that is a link goes, link only
        debris_link = stat.S_ISLNK(st.st_mode) and naming.temp_target(name) is not None
        if not stat.S_ISREG(st.st_mode) and not debris_link:
            raise Changed(f"{name} is no longer a regular file")
        faults.point(f"{kind}.before-unlink")
        os.unlink(name, dir_fd=log.rotated_dir.fd)
        faults.point(f"{kind}.after-unlink")
    except FileNotFoundError:
        return 0
    except (OSError, Changed) as exc:
        sink.add(path, kind, FAILED, reason, bytes_before=size, error=err(exc))
        return 0
    sink.add(path, kind, DONE, reason, bytes_before=st.st_size, bytes_after=0)
    return int(st.st_blocks) * 512


def compress(pc: PolicyContext, sink: Sink, log: LiveLog, step: Step) -> None:
    """Compress a rotated file in the pool; its event comes back with the pool's.

    A rotated file a process still holds open for writing (an application that has not
    reopened its log yet) is left plain, reported, and compressed by a later pass: its
    next lines would go to a file that is no longer there.
    """
    path = log.rotated_path(step.name)
    policy = pc.policy

    def event(
        result: str, size: int | None = None, error: str | None = None, why: str = ""
    ) -> Event:
        return rotation_event(
            policy.name,
            path,
            RotationKind.COMPRESS,
            result,
            why or step.reason,
            bytes_before=step.size,
            bytes_after=size,
            target=path + ".gz",
            error=error,
        )

    file_id, held = _held_by(pc, log, step.name)
    if held is not None:
        sink.events.append(event(SKIPPED, why=held))
        return
    if pc.ctx.dry_run:
        sink.events.append(event(PLANNED))
        return
    level, fd, name = policy.compress_level, os.dup(log.rotated_dir.fd), step.name
    links, progress = policy.allow_hardlinks, pc.ctx.progress

    def job() -> Event:
        try:
            size = gzip_file(fd, name, level, allow_links=links, expect=file_id)
        except NotSettled as exc:
            return event(SKIPPED, why=f"{_DEFERRED}: {exc}; {_LATER}")
        except OSError as exc:
            return event(FAILED, error=err(exc))
        finally:
            os.close(fd)
        progress.compressed_bytes(step.size or 0)
        return event(DONE, size)

    pc.jobs.submit(job)


_DEFERRED = "left plain for now"
_DEBRIS = "a later pass removes it (its .gz is complete) once no process writes it"
_LATER = "a later pass compresses it once no process writes it (its writer reopened or exited)"


def _held_by(
    pc: PolicyContext, log: LiveLog, name: str, later: str = _LATER
) -> tuple[FileId | None, str | None]:
    """The rotated file's identity, and why it must stay plain for now: the processes
    holding it open for writing (/proc, looked up once per policy, at the first need)."""
    try:
        st = os.stat(name, dir_fd=log.rotated_dir.fd, follow_symlinks=False)
    except OSError:
        return None, None  # gone or unreadable: the compression reports it
    file_id = (st.st_dev, st.st_ino)
    writers = pc.writers.of(file_id)
    if not writers:
        return file_id, None
    who = ", ".join(f"pid {w.pid} ({w.command})" for w in writers)
    return file_id, f"{_DEFERRED}: open for writing by {who}; {later}"
