"""One rotation pass: for each policy, scan, check, plan and act on every log.

Every file operation goes through directory fds with O_NOFOLLOW (see :mod:`scan`),
re-checks the inode it planned for right before acting, and reports each refusal
with its reason, as events (:mod:`report`). Compression runs in a small thread pool
(zlib and ISA-L release the GIL), everything else is sequential. The pass is plain
functions of frozen contexts (:mod:`context`) and one sink per policy.
"""

from __future__ import annotations

import contextlib
import os
import pwd
from dataclasses import replace

from nodeguard.config.model import Config, Policy
from nodeguard.rotation import batch, checks, naming, recovery, scan, steps
from nodeguard.rotation.context import (
    Jobs,
    PassContext,
    PassOptions,
    PassProgress,
    PolicyContext,
    Rotation,
    Sink,
    Writers,
)
from nodeguard.rotation.guards import Guards, Root, shared_rotated_names
from nodeguard.rotation.intents import IntentStore
from nodeguard.rotation.logrotate_conf import covered_paths
from nodeguard.rotation.methods import LiveLog
from nodeguard.rotation.plan import Step, plan_log, rotate_due
from nodeguard.rotation.privilege import PassResult, missing_su, run_as
from nodeguard.rotation.report import (
    FAILED,
    REFUSED,
    SKIPPED,
    Report,
    RotationKind,
    rotation_event,
)
from nodeguard.rotation.scan import ScanProblem
from nodeguard.world import World

__all__ = ["PassOptions", "World", "run_pass"]

Groups = dict[str, tuple[list[naming.RotatedName], list[str]]]


def run_pass(
    config: Config,
    options: PassOptions,
    world: World | None = None,
    intents: IntentStore | None = None,
) -> Report:
    """Run (or, with dry_run, plan) one pass over the selected policies.

    With an intent store (state_dir/intents, under the lock), steps a crash could leave
    half-done are recorded first, and the records an interrupted pass left are settled
    before anything is scanned. A dry run takes no store.
    """
    world = world or World()
    report = Report(dry_run=options.dry_run)
    intents = None if options.dry_run else intents
    protected: frozenset[str] = frozenset()
    if intents is not None:
        replay = recovery.Replay.for_config(steps.postrotate_runner(config.policy, world), config)
        recovered, protected = recovery.recover_all(config, intents, replay, world.euid)
        report.extend(recovered)
    ctx = PassContext(
        options,
        world,
        Guards.build(config, _logrotate_coverage(config, report)),
        intents,
        _identities(protected),
        shared_rotated_names(config),
        PassProgress(options.progress),
    )
    seen: dict[tuple[int, int], str] = {}
    for policy in config.policies:
        if options.policies and policy.name not in options.policies:
            continue
        events, handled = _policy_pass(ctx, policy, dict(seen))
        report.extend(events)
        seen.update(handled)
    return report


def _policy_pass(ctx: PassContext, policy: Policy, seen: dict[tuple[int, int], str]) -> PassResult:
    """One policy's pass, as the policy's ``su`` user when it has one (and we are root)."""
    writers = Writers(ctx.world.proc_root)
    if policy.su is None or ctx.world.euid != 0:
        return run_policy(ctx, policy, seen, writers)
    gone = missing_su(policy.su)
    if gone is not None:
        return [rotation_event(policy.name, "", RotationKind.SU, FAILED, gone)], {}
    return _su_pass(ctx, policy, policy.su, seen, writers)


def _su_pass(
    ctx: PassContext,
    policy: Policy,
    su: tuple[str, str],
    seen: dict[tuple[int, int], str],
    writers: Writers,
) -> PassResult:
    """The policy's pass in a child running as ``su`` (its intents in su's own folder)."""
    if policy.method != "rename" or policy.compress != "none":
        writers.ready()  # the user cannot see other users' processes: look now, as root
    user_world = replace(ctx.world, euid=_uid_of(su))
    if ctx.intents is None:
        user_ctx = replace(ctx, world=user_world)
        return run_as(su, lambda: run_policy(user_ctx, policy, seen, writers), policy.name)
    fd = recovery.su_directory(ctx.intents, su)

    def in_child() -> PassResult:  # a fresh context in the child: nothing shared is changed
        child = replace(ctx, world=user_world, intents=recovery.cwd_intents(fd))
        return run_policy(child, policy, seen, writers)

    try:
        return run_as(su, in_child, policy.name)
    finally:
        os.close(fd)


def _uid_of(su: tuple[str, str]) -> int:
    return pwd.getpwnam(su[0]).pw_uid


def run_policy(
    ctx: PassContext, policy: Policy, seen: dict[tuple[int, int], str], writers: Writers
) -> PassResult:
    """Scan and act on every file of one policy; its events and the inodes it handled."""
    sink = Sink(policy.name)
    with Jobs(ctx.world.workers) as jobs:
        pc = PolicyContext(policy, ctx, seen, ctx.world.clock(), jobs, writers)
        for pattern in policy.paths:
            _pattern(pc, sink, pattern)
    return sink.events + jobs.events, sink.handled


def _identities(paths: frozenset[str]) -> frozenset[tuple[int, int, str]]:
    """Files named by pending intents, by the identity of their folder and their name."""
    out: set[tuple[int, int, str]] = set()
    for path in paths:
        folder, name = os.path.split(path)
        with contextlib.suppress(OSError), recovery.open_dir(folder) as fd:
            st = os.fstat(fd)
            out.add((st.st_dev, st.st_ino, name))
    return frozenset(out)


def _logrotate_coverage(config: Config, report: Report) -> dict[str, str]:
    if config.logrotate_config is None or all(p.take_over_logrotate for p in config.policies):
        return {}
    if not config.logrotate_config.exists():
        return {}
    try:
        return covered_paths(config.logrotate_config)
    except OSError as exc:
        report.notes.append(f"cannot read {config.logrotate_config}: {exc.strerror or exc}")
        return {}


_MISSING = "file does not exist (set missing_ok: true if that is expected)"
_PROBLEM_KINDS = {
    ScanProblem.REFUSED: (RotationKind.REFUSE, REFUSED),
    ScanProblem.SKIPPED: (RotationKind.SKIP, SKIPPED),
    ScanProblem.FAILED: (RotationKind.SCAN, FAILED),
}


def _pattern(pc: PolicyContext, sink: Sink, pattern: str) -> None:
    before, found = len(sink.events), False

    def problem(path: str, kind: ScanProblem, reason: str) -> None:
        action, result = _PROBLEM_KINDS[kind]
        sink.add(path, action, result, reason)

    for match in scan.expand(pattern, problem):
        found = True
        _directory(pc, sink, match)
    # A literal path whose directory is missing yields nothing: still not missing_ok.
    quiet = found or len(sink.events) > before or pc.policy.missing_ok
    if not quiet and not scan.has_magic(pattern):
        sink.add(pattern, RotationKind.SCAN, FAILED, _MISSING)


def _directory(pc: PolicyContext, sink: Sink, match: scan.DirMatch) -> None:
    d = match.directory
    if not pc.policy.missing_ok:
        for name in match.missing:
            sink.add(f"{d.path}/{name}", RotationKind.SCAN, FAILED, _MISSING)
    checks.report_lookalikes(sink, match)
    if not match.files:
        return
    names = sorted(match.files)
    roots = checks.roots_of(pc, d)
    verdict = checks.folder_verdict(pc, d, roots)
    if verdict is not None:
        for name in names:
            sink.add(f"{d.path}/{name}", *verdict)
        return
    with checks.rotated_dir(pc, d) as rotated_dir:
        if isinstance(rotated_dir, str):
            for name in names:
                sink.add(f"{d.path}/{name}", RotationKind.REFUSE, REFUSED, rotated_dir)
            return
        try:
            groups = _group_rotated(_rotated_listing(match, rotated_dir))
        except OSError as exc:
            for name in names:
                reason = f"cannot list {rotated_dir.path}"
                sink.add(
                    f"{d.path}/{name}", RotationKind.SCAN, FAILED, reason, error=steps.err(exc)
                )
            return
        logs = [LiveLog(d, rotated_dir, name, match.files[name]) for name in names]
        _logs(pc, sink, logs, roots, groups)


def _logs(
    pc: PolicyContext, sink: Sink, logs: list[LiveLog], roots: frozenset[Root], groups: Groups
) -> None:
    """Check, plan and act on a folder's logs; the rename rotations as one batch."""
    due: list[batch.Due] = []
    for log in logs:
        try:
            found = _log(pc, sink, log, roots, groups.get(log.name, ([], [])))
        except OSError as exc:
            _unexpected(sink, log, exc)
            continue
        if found is not None:
            due.append(found)
    for item, outcome in zip(due, batch.rotate_batch(pc, sink, due), strict=True):
        try:
            _after(pc, sink, item, outcome, retry=True)
        except OSError as exc:
            _unexpected(sink, item.log, exc)


def _unexpected(sink: Sink, log: LiveLog, exc: OSError) -> None:
    """One log's trouble is that log's event."""
    sink.add(log.path, RotationKind.CHECK, FAILED, "unexpected error", error=steps.err(exc))


def _log(
    pc: PolicyContext,
    sink: Sink,
    log: LiveLog,
    roots: frozenset[Root],
    group: tuple[list[naming.RotatedName], list[str]],
) -> batch.Due | None:
    """Check and plan one log; act on it, or return its rotation for the folder's batch."""
    rotated, temps = group
    pc.ctx.progress.scanned()
    if (log.st.st_dev, log.st.st_ino) in sink.handled:  # another glob of this policy
        reason = f"already handled by policy {pc.policy.name}"
        sink.add(log.path, RotationKind.SKIP, SKIPPED, reason, bytes_before=log.st.st_size)
        return None
    verdict = checks.log_verdict(pc, log, roots)
    if verdict is not None:
        sink.add(log.path, *verdict, bytes_before=log.st.st_size)
        return None
    sink.handled[(log.st.st_dev, log.st.st_ino)] = pc.policy.name
    if pc.policy.method != "rename" and (rotated or pc.policy.max_files == 1):
        # Only a file rotated in place before can show the mark; a scan of logs that
        # never were costs nothing here.
        steps.check_append(sink, log)
    if rotated or temps or rotate_due(pc.policy, log.st.st_size, pc.ctx.options.force):
        return _act(pc, sink, log, steps.clear_debris(pc, sink, log, rotated, temps), retry=True)
    steps.keep(pc, sink, log)  # nothing rotated and too small: what most logs are
    return None


def _plan(
    pc: PolicyContext, sink: Sink, log: LiveLog, rotated: list[naming.RotatedName], *, rotate: bool
) -> list[Step]:
    siblings = [s for s in (steps.sibling(pc, sink, log, r) for r in rotated) if s is not None]
    size, force = log.st.st_size, pc.ctx.options.force
    return plan_log(pc.policy, log.name, size, siblings, pc.now, force=force, rotate=rotate)


def _act(
    pc: PolicyContext, sink: Sink, log: LiveLog, rotated: list[naming.RotatedName], *, retry: bool
) -> batch.Due | None:
    """Rotate, then apply retention and compression; a rename rotation is returned
    instead, for its folder's batch (:mod:`batch`), and :func:`_after` does the rest."""
    plan = _plan(pc, sink, log, rotated, rotate=True)
    if not plan:
        steps.keep(pc, sink, log)
        return None
    if plan[0].action != "rotate":
        _run_steps(pc, sink, log, plan)
        return None
    due = batch.Due(log, rotated, plan)
    if batch.batched(pc):
        return due
    _after(pc, sink, due, steps.rotate(pc, sink, log, plan[0]), retry=retry)
    return None


def _after(
    pc: PolicyContext, sink: Sink, due: batch.Due, outcome: Rotation, *, retry: bool
) -> None:
    """A log's retention and compression once its rotation went as ``outcome``.

    A rotation that failed (or was refused) still gets retention and compression of
    what exists: on a full disk that is what frees space. If the rotation failed for
    want of space and removals made room, it is tried once more.
    """
    log, plan = due.log, due.plan[1:]
    if outcome is Rotation.NOTHING_MOVED:
        return
    if outcome in (Rotation.FAILED, Rotation.NO_SPACE):
        fallback = _plan(pc, sink, log, due.rotated, rotate=False)
        freed = _run_steps(pc, sink, log, [s for s in fallback if s.action == "remove"])
        if outcome is Rotation.NO_SPACE and freed and retry:
            again = _act(pc, sink, log, _relist(log), retry=False)
            if again is not None:
                _after(pc, sink, again, batch.rotate_batch(pc, sink, [again])[0], retry=False)
            return
        plan = [s for s in fallback if s.action == "compress"]
    _run_steps(pc, sink, log, plan)


def _run_steps(pc: PolicyContext, sink: Sink, log: LiveLog, plan: list[Step]) -> int:
    """Run remove and compress steps; return the bytes the removals freed."""
    return sum(steps.run_step(pc, sink, log, step) for step in plan)


def _relist(log: LiveLog) -> list[naming.RotatedName]:
    """The log's rotated files as they are now (after removals)."""
    return _group_rotated(_listdir(log.rotated_dir)).get(log.name, ([], []))[0]


def _rotated_listing(match: scan.DirMatch, rotated_dir: scan.Directory) -> list[str]:
    """The names that may be rotated files or leftovers of the logs in ``match``."""
    if rotated_dir is not match.directory or match.listing is None:
        return _listdir(rotated_dir)
    # the scan's listing, less the live logs it found (their names are never rotated ones)
    return [name for name in match.listing if name not in match.files]


def _listdir(directory: scan.Directory) -> list[str]:
    """Names in a directory; none in an olddir a dry run did not create."""
    return os.listdir(directory.fd) if directory.fd >= 0 else []


def _group_rotated(listing: list[str]) -> Groups:
    """Rotated files and temporary leftovers in a directory, by the live name they belong to."""
    groups: Groups = {}
    for name in listing:
        parsed = naming.parse(name)
        if parsed is not None:
            groups.setdefault(parsed.base, ([], []))[0].append(parsed)
            continue
        target = naming.temp_target(name)
        owner = naming.parse(target) if target else None
        if owner is not None:
            groups.setdefault(owner.base, ([], []))[1].append(name)
    return groups
