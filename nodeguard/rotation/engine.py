"""One rotation pass: for each policy, scan, check, plan and act on every log.

Every file operation goes through directory fds with O_NOFOLLOW (see
:mod:`scan`), re-checks the inode it planned for right before acting, and
reports each refusal with its reason. Compression runs in a small thread pool
(zlib and ISA-L release the GIL), everything else is sequential.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import functools
import os
import stat
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nodeguard.config.model import Config, Policy
from nodeguard.config.units import format_size
from nodeguard.fsutil import DIR_FLAGS
from nodeguard.rotation import faults, naming, recovery, scan, verify
from nodeguard.rotation.compress import gzip_file
from nodeguard.rotation.guards import Guards, Root, SharedKey, shared_rotated_names
from nodeguard.rotation.logrotate_conf import covered_paths
from nodeguard.rotation.methods import METHODS, Changed, LiveLog, NeedsJournal, append_symptom
from nodeguard.rotation.plan import Sibling, Step, plan_log, rotate_reason
from nodeguard.rotation.privilege import PassResult, run_as
from nodeguard.rotation.report import (
    DONE,
    FAILED,
    PLANNED,
    REFUSED,
    SKIPPED,
    UNCHANGED,
    Record,
    Report,
)
from nodeguard.rotation.sparse import Writer, all_writers
from nodeguard.world import World

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

__all__ = ["PassOptions", "World", "run_pass"]


@dataclass(frozen=True)
class PassOptions:
    dry_run: bool = False
    force: bool = False
    policies: tuple[str, ...] = ()


def run_pass(
    config: Config,
    options: PassOptions,
    world: World | None = None,
    journal: recovery.Journal | None = None,
) -> Report:
    """Run (or, with dry_run, plan) one pass over the selected policies.

    With a journal (the CLI gives state_dir/intents, under the lock), steps a crash
    could leave half-done are recorded first, and the records an interrupted pass
    left are replayed before anything is scanned. A dry run takes no journal.
    """
    world = world or World()
    report = Report(dry_run=options.dry_run)
    journal = None if options.dry_run else journal
    protected: frozenset[str] = frozenset()
    if journal is not None:
        replay = _replay(config.policy, world, config)
        recovered, protected = recovery.recover_all(config, journal, replay, world.euid)
        report.records += recovered
    ctx = PassContext(
        options,
        world,
        Guards.build(config, _logrotate_coverage(config, report)),
        journal,
        _identities(protected),
        shared_rotated_names(config),
    )
    seen: dict[tuple[int, int], str] = {}
    for policy in config.policies:
        if options.policies and policy.name not in options.policies:
            continue
        job = PolicyPass(policy, ctx, dict(seen))
        if policy.su is not None and world.euid == 0:
            if policy.method != "rename":  # the user cannot see other users' fds: look now
                job.writers = all_writers(proc=world.proc_root)
            records, handled = _run_as_user(job, policy.su)
        else:
            records, handled = job.run()
        report.records += records
        seen.update(handled)
    return report


@dataclass(frozen=True)
class PassContext:
    """What every policy's pass shares, fixed for the whole pass."""

    options: PassOptions
    world: World
    guards: Guards
    journal: recovery.Journal | None = None
    # (folder device, folder inode, name) of files that intents still pending name
    protected: frozenset[tuple[int, int, str]] = frozenset()
    # (rotated folder device, inode, live name) -> the live logs that would share it
    shared: Mapping[SharedKey, tuple[str, ...]] = field(default_factory=dict)


def _identities(paths: frozenset[str]) -> frozenset[tuple[int, int, str]]:
    """Files named by pending intents, by the identity of their folder and their name."""
    out: set[tuple[int, int, str]] = set()
    for path in paths:
        folder, name = os.path.split(path)
        with contextlib.suppress(OSError), recovery.open_dir(folder) as fd:
            st = os.fstat(fd)
            out.add((st.st_dev, st.st_ino, name))
    return frozenset(out)


def _run_as_user(job: PolicyPass, su: tuple[str, str]) -> PassResult:
    """The policy's pass in a child as ``su``, journaling into that user's own directory."""
    if job.ctx.journal is None:
        return run_as(su, job.run, job.policy.name)
    fd = recovery.su_directory(job.ctx.journal, su)

    def in_child() -> PassResult:
        ctx = replace(job.ctx, journal=recovery.cwd_journal(fd))
        return PolicyPass(job.policy, ctx, job.seen, writers=job.writers).run()

    try:
        return run_as(su, in_child, job.policy.name)
    finally:
        os.close(fd)


def _replay(
    lookup: Callable[[str], Policy | None], world: World, config: Config | None = None
) -> recovery.Replay:
    """Recovery re-runs the postrotate of a rename it completes (the writer must reopen)."""

    def postrotate(name: str, live: str) -> str | None:
        policy = lookup(name)
        if policy is None or policy.postrotate is None:
            return f"policy {name} has no postrotate command any more"
        argv = ["/bin/sh", "-c", policy.postrotate, "nodeguard", live]
        code, output = world.run(argv, policy.postrotate_timeout)
        return None if code == 0 else f"exit {code}: {output}"

    if config is None:  # records this pass just wrote: settled right away
        return recovery.Replay(postrotate)
    return recovery.Replay(postrotate, functools.partial(recovery.belongs, config=config))


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


_Log = LiveLog

# Folders whose files are never candidates, whatever the globs say: the reason reported.
_OWN_FOLDERS = {
    Root.STATE: "in nodeguard's own state folder: never a candidate",
    Root.CONFIG: "nodeguard's own configuration: never a candidate",
}
_ROOT_NAMES = {
    Root.STATE: "nodeguard's state folder",
    Root.CONFIG: "nodeguard's config drop-in folder",
    Root.DOCKER: "Docker's containers folder",
    Root.PODS: "the pods root",
}


class _Rotation(enum.Enum):
    """How one rotation step went, as far as the rest of the log's steps care."""

    DONE = "done"  # (or planned, in a dry run)
    NOTHING_MOVED = "nothing moved"
    FAILED = "failed"
    NO_SPACE = "no space"  # failed with ENOSPC or EDQUOT: removals may make room


@dataclass
class PolicyPass:
    """The pass of one policy; ``run()`` returns its records and the inodes it handled."""

    policy: Policy
    ctx: PassContext
    seen: dict[tuple[int, int], str]
    records: list[Record] = field(default_factory=list)
    handled: dict[tuple[int, int], str] = field(default_factory=dict)
    writers: Mapping[tuple[int, int], list[Writer]] | None = None  # from /proc, when needed

    def run(self) -> tuple[list[Record], dict[tuple[int, int], str]]:
        self.now = self.ctx.world.clock()
        with _Jobs(self.ctx.world.workers) as self.jobs:
            for pattern in self.policy.paths:
                self._pattern(pattern)
        self.records += self.jobs.records
        return self.records, self.handled

    def _pattern(self, pattern: str) -> None:
        before, found = len(self.records), False
        for match in scan.expand(pattern, self._problem):
            found = True
            self._directory(match)
        # A literal path whose directory is missing yields nothing: still not missing_ok.
        quiet = found or len(self.records) > before or self.policy.missing_ok
        if not quiet and not scan.has_magic(pattern):
            self._record(
                pattern,
                "scan",
                FAILED,
                "file does not exist (set missing_ok: true if that is expected)",
            )

    # --- reporting ---------------------------------------------------------------------

    def _record(
        self,
        path: str,
        action: str,
        result: str,
        reason: str,
        *,
        bytes_before: int | None = None,
        bytes_after: int | None = None,
        target: str | None = None,
        error: str | None = None,
    ) -> None:
        self.records.append(
            Record(
                self.policy.name,
                path,
                action,
                result,
                reason,
                bytes_before,
                bytes_after,
                target,
                error,
            )
        )

    def _problem(self, path: str, reason: str) -> None:
        if reason.startswith("refused: "):
            self._record(path, "refuse", REFUSED, reason.removeprefix("refused: "))
        elif reason.startswith("skipped: "):
            self._record(path, "skip", SKIPPED, reason.removeprefix("skipped: "))
        else:
            self._record(path, "scan", FAILED, reason)

    # --- per directory -----------------------------------------------------------------

    def _directory(self, match: scan.DirMatch) -> None:
        d = match.directory
        for name in match.missing:
            if not self.policy.missing_ok:
                self._record(
                    f"{d.path}/{name}",
                    "scan",
                    FAILED,
                    "file does not exist (set missing_ok: true if that is expected)",
                )
        self._lookalikes(match)
        if not match.files:
            return
        names = sorted(match.files)
        roots = self._roots(d)
        own = _OWN_FOLDERS.keys() & roots
        if own:
            for name in names:
                self._record(f"{d.path}/{name}", "skip", SKIPPED, _OWN_FOLDERS[min(own)])
            return
        if scan.insecure(d.st) and self.policy.su is None:
            for name in names:
                self._record(
                    f"{d.path}/{name}",
                    "refuse",
                    REFUSED,
                    f"parent directory {d.path or '/'} has insecure permissions "
                    f"({stat.filemode(d.st.st_mode)}): group or others can write "
                    "it; set su: [user, group] for this policy",
                )
            return
        with self._rotated_dir(d, names) as rotated_dir:
            if rotated_dir is None:
                return
            cached = match.listing if rotated_dir is d else None
            try:
                listing = cached if cached is not None else _listdir(rotated_dir)
            except OSError as exc:
                for name in names:
                    reason = f"cannot list {rotated_dir.path}"
                    self._record(f"{d.path}/{name}", "scan", FAILED, reason, error=_err(exc))
                return
            groups = _group_rotated(listing)
            for name in names:
                log = _Log(d, rotated_dir, name, match.files[name])
                try:
                    self._log(log, roots, *groups.get(name, ([], [])))
                except OSError as exc:  # one log's trouble is that log's record
                    self._record(log.path, "check", FAILED, "unexpected error", error=_err(exc))

    def _lookalikes(self, match: scan.DirMatch) -> None:
        """Report files the glob matched that are named like rotated files of a live log
        that does not exist here: nodeguard never takes them for live logs, so nothing
        would ever bound them (``orphan.20240101-000000`` under ``*``)."""
        present = set(match.listing or ())
        for name in match.lookalikes:
            parsed = naming.parse(naming.temp_target(name) or name)
            if parsed is None or parsed.base in present:
                continue  # the rotated file (or temp) of a log that is here
            with contextlib.suppress(OSError):
                st = os.stat(name, dir_fd=match.directory.fd, follow_symlinks=False)
                if stat.S_ISREG(st.st_mode):
                    self._record(
                        f"{match.directory.path}/{name}",
                        "skip",
                        SKIPPED,
                        f"named like a rotated file, but there is no live file {parsed.base} "
                        "here: never rotated nor removed by nodeguard; rename it if it is a "
                        "live log, or remove it",
                        bytes_before=st.st_size,
                    )

    def _roots(self, d: scan.Directory) -> frozenset[Root]:
        """The guarded roots holding ``d`` (none when it cannot be placed)."""
        if d.fd < 0:
            return frozenset()
        try:
            return self.ctx.guards.under(d.fd, d.st)
        except OSError:
            return frozenset()

    @contextlib.contextmanager
    def _rotated_dir(self, d: scan.Directory, names: list[str]) -> Iterator[scan.Directory | None]:
        olddir = self.policy.olddir
        if olddir is None:
            yield d
            return
        opened = self._open_olddir(d, olddir)
        reason = opened if isinstance(opened, str) else None
        if isinstance(opened, scan.Directory):
            reason = self._olddir_problem(d, opened)
        if reason is not None:
            for name in names:
                self._record(f"{d.path}/{name}", "refuse", REFUSED, reason)
        try:
            yield opened if reason is None and isinstance(opened, scan.Directory) else None
        finally:
            if isinstance(opened, scan.Directory) and opened.fd >= 0:
                os.close(opened.fd)

    def _olddir_problem(self, d: scan.Directory, opened: scan.Directory) -> str | None:
        if scan.insecure(opened.st) and self.policy.su is None:
            return f"olddir {opened.path} has insecure permissions"
        if opened.st.st_dev != d.st.st_dev and self.policy.method == "rename":
            return f"olddir {opened.path} is on another filesystem"
        guarded = _OWN_FOLDERS.keys() & self._roots(opened) | {Root.DOCKER} & self._roots(opened)
        if guarded:
            return f"olddir {opened.path} is inside {_ROOT_NAMES[min(guarded)]}"
        return None

    def _open_olddir(self, d: scan.Directory, olddir: str) -> scan.Directory | str:
        """Open (creating each missing folder, outside a dry run) ``olddir``.

        Absolute: walked from ``/`` like a configured path. Relative: one component at a
        time from the log's folder, each opened with O_NOFOLLOW and created with mkdirat
        where missing, so no symlink in any component is ever followed.
        """
        problems: list[str] = []
        if olddir.startswith("/"):
            opened = scan.open_path(olddir, lambda p, r: problems.append(f"{p}: {r}"))
            return opened or (problems[0] if problems else f"olddir {olddir} does not exist")
        path = f"{d.path}/{olddir}"
        fd = os.dup(d.fd)
        try:
            for part in [p for p in olddir.split("/") if p not in ("", ".")]:
                child = self._olddir_component(fd, part, d.st)
                if child is None:  # a dry run: plan against an empty olddir (no fd)
                    return scan.Directory(path, -1, d.st)
                os.close(fd)
                fd = child
                st = os.fstat(fd)
                if scan.insecure(st) and self.policy.su is None:
                    return f"olddir {path}: folder {part} has insecure permissions"
        except OSError as exc:
            os.close(fd)
            return f"olddir {path}: {exc.strerror} (symlinks are never followed)"
        except BaseException:
            os.close(fd)
            raise
        return scan.Directory(path, fd, os.fstat(fd))

    def _olddir_component(self, parent: int, name: str, log_dir: os.stat_result) -> int | None:
        """Open one folder of a relative olddir, making it if missing (None: dry run)."""
        try:
            return os.open(name, DIR_FLAGS, dir_fd=parent)
        except FileNotFoundError:
            if self.ctx.options.dry_run:
                return None
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, stat.S_IMODE(log_dir.st_mode) & 0o755, dir_fd=parent)
        return os.open(name, DIR_FLAGS, dir_fd=parent)

    # --- per log ----------------------------------------------------------------------------

    def _log(
        self,
        log: _Log,
        roots: frozenset[Root],
        rotated: list[naming.RotatedName],
        temps: list[str],
    ) -> None:
        if not self._admissible(log, roots):
            return
        self.handled[(log.st.st_dev, log.st.st_ino)] = self.policy.name
        if self.policy.method != "rename" and (rotated or self.policy.max_files == 1):
            # Only a file rotated in place before can show the mark; a scan of logs that
            # never were costs nothing here.
            self._check_append(log)
        if rotated or temps or rotate_reason(self.policy, log.st.st_size, self.ctx.options.force):
            self._act(log, self._recover(log, rotated, temps), retry=True)
        else:  # nothing rotated and too small: what most logs are in most passes
            self._keep(log)

    def _keep(self, log: _Log) -> None:
        size = log.st.st_size
        reason = _keep_reason(self.policy, size)
        self._record(log.path, "keep", UNCHANGED, reason, bytes_before=size, bytes_after=size)

    def _plan(self, log: _Log, rotated: list[naming.RotatedName], *, rotate: bool) -> list[Step]:
        siblings = [s for s in (self._sibling(log, r) for r in rotated) if s is not None]
        size, force = log.st.st_size, self.ctx.options.force
        return plan_log(self.policy, log.name, size, siblings, self.now, force=force, rotate=rotate)

    def _act(self, log: _Log, rotated: list[naming.RotatedName], *, retry: bool) -> None:
        """Rotate, then apply retention and compression.

        A rotation that failed still gets retention and compression of what exists:
        on a full disk that is what frees space. If the rotation failed for want of
        space and removals made room, it is tried once more.
        """
        steps = self._plan(log, rotated, rotate=True)
        if not steps:
            self._keep(log)
            return
        if steps[0].action == "rotate":
            outcome = self._rotate(log, steps[0])
            if outcome == _Rotation.NOTHING_MOVED:
                return
            if outcome in (_Rotation.FAILED, _Rotation.NO_SPACE):
                fallback = self._plan(log, rotated, rotate=False)
                freed = self._run_steps(log, [s for s in fallback if s.action == "remove"])
                if outcome == _Rotation.NO_SPACE and freed and retry:
                    self._act(log, self._relist(log), retry=False)
                    return
                steps = [s for s in fallback if s.action == "compress"]
            else:
                steps = steps[1:]
        self._run_steps(log, steps)

    def _relist(self, log: _Log) -> list[naming.RotatedName]:
        """The log's rotated files as they are now (after removals)."""
        groups = _group_rotated(_listdir(log.rotated_dir))
        return groups.get(log.name, ([], []))[0]

    def _run_steps(self, log: _Log, steps: list[Step]) -> int:
        """Run remove and compress steps; return the bytes the removals freed."""
        return sum(self._step(log, step) for step in steps)

    def _check_append(self, log: _Log) -> None:
        """In-place methods need O_APPEND writers: report the NUL mark any other leaves."""
        symptom = append_symptom(log)
        if symptom is not None:
            self._record(log.path, "check", FAILED, symptom, bytes_before=log.st.st_size)

    def _admissible(self, log: _Log, roots: frozenset[Root]) -> bool:
        st, path = log.st, log.path
        verdict: tuple[str, str, str] | None = None
        covered = self.ctx.guards.covered.get((st.st_dev, st.st_ino))
        if stat.S_ISLNK(st.st_mode):
            verdict = ("skip", SKIPPED, "is a symlink (never followed)")
        elif not stat.S_ISREG(st.st_mode):
            verdict = ("skip", SKIPPED, f"not a regular file ({stat.filemode(st.st_mode)})")
        elif (st.st_dev, st.st_ino) in self.ctx.guards.config_files:
            verdict = ("skip", SKIPPED, _OWN_FOLDERS[Root.CONFIG])
        elif st.st_nlink > 1 and not self.policy.allow_hardlinks:
            verdict = (
                "refuse",
                REFUSED,
                f"has {st.st_nlink} hard links; another name may be "
                "outside this policy (set allow_hardlinks to rotate it)",
            )
        elif (st.st_dev, st.st_ino) in self.seen:
            verdict = (
                "skip",
                SKIPPED,
                f"already handled by policy {self.seen[(st.st_dev, st.st_ino)]}",
            )
        elif covered is not None and not self.policy.take_over_logrotate:
            verdict = (
                "skip",
                SKIPPED,
                f"covered by logrotate ({covered}); set take_over_logrotate to rotate it here",
            )
        verdict = verdict or self._runtime_verdict(roots) or self._shared_verdict(log)
        if verdict is not None:
            self._record(path, verdict[0], verdict[1], verdict[2], bytes_before=st.st_size)
        return verdict is None

    def _shared_verdict(self, log: _Log) -> tuple[str, str, str] | None:
        """Refuse a log whose rotated files another live log's would share by name."""
        r = log.rotated_dir
        sharing = self.ctx.shared.get((r.st.st_dev, r.st.st_ino, log.name)) if r.fd >= 0 else None
        if not sharing:
            return None
        others = ", ".join(p for p in sharing if p != log.path)
        return (
            "refuse",
            REFUSED,
            f"its rotated files would share {r.path} with those of {others} (same name "
            f"{log.name}): retention and cleanup could not tell them apart; use a relative "
            "olddir, or paths whose file names are unique",
        )

    def _runtime_verdict(self, roots: frozenset[Root]) -> tuple[str, str, str] | None:
        """Logs a container runtime owns: Docker's are never ours, CRI's never renamed."""
        if Root.DOCKER in roots:
            return (
                "skip",
                SKIPPED,
                "Docker's own log file: dockerd rotates it; bound it "
                "with log-opts (nodeguard docker-config)",
            )
        if Root.PODS in roots and self.policy.method == "rename":
            return (
                "refuse",
                REFUSED,
                "CRI container log: the runtime keeps it open and "
                "reopens only when kubelet asks, so a rename would lose lines; use "
                "method: lossless",
            )
        return None

    def _sibling(self, log: _Log, name: naming.RotatedName) -> Sibling | None:
        try:
            st = os.stat(name.name, dir_fd=log.rotated_dir.fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        if not stat.S_ISREG(st.st_mode):
            self._record(
                log.rotated_path(name.name),
                "skip",
                SKIPPED,
                "named like a rotated file but not a regular file; left alone",
            )
            return None
        if st.st_nlink > 1 and not self.policy.allow_hardlinks:  # the other name may be outside
            self._record(
                log.rotated_path(name.name),
                "skip",
                SKIPPED,
                f"named like a rotated file but has {st.st_nlink} hard links; left alone",
            )
            return None
        return Sibling(name, st.st_size, st.st_mtime)

    def _recover(
        self, log: _Log, rotated: list[naming.RotatedName], temps: list[str]
    ) -> list[naming.RotatedName]:
        """Remove debris of an interrupted pass and finish interrupted compressions."""
        for tmp in temps:
            if self._protected(log, tmp):
                continue  # an intent still pending needs it (reported by recovery)
            self._remove_file(log, tmp, "cleanup", "leftover temporary file of an interrupted pass")
        names = {r.name for r in rotated}
        plains = [r for r in rotated if not r.compressed and r.name + ".gz" in names]
        aside: set[str] = set()  # removed as debris, or kept out of retention as a conflict
        for plain in plains:
            gz = plain.name + ".gz"
            if not _plain_file(log.rotated_dir.fd, gz):  # someone's link: not a copy of ours
                continue
            mismatch = verify.gzip_mismatch(log.rotated_dir.fd, plain.name, gz)
            if mismatch is None:
                reason = "compressed copy is complete; removing the plain file left by an "
                self._remove_file(log, plain.name, "cleanup", reason + "interrupted pass")
                aside.add(plain.name)
                continue
            aside.update((plain.name, gz))
            self._record(
                log.rotated_path(plain.name),
                "check",
                FAILED,
                f"{gz} exists but does not hold this file ({mismatch}); both kept and "
                "left out of retention: compare them and remove one by hand",
            )
        return [r for r in rotated if r.name not in aside]

    # --- steps ---------------------------------------------------------------------------------

    def _protected(self, log: _Log, name: str) -> bool:
        """Whether an intent still pending names this file (then it is left alone)."""
        st = log.rotated_dir.st
        return (st.st_dev, st.st_ino, name) in self.ctx.protected

    def _step(self, log: _Log, step: Step) -> int:
        """One remove or compress step; the bytes it freed (a removal's size)."""
        if self._protected(log, step.name):
            self._record(
                log.rotated_path(step.name),
                step.action,
                SKIPPED,
                "named by an interrupted step that recovery could not resolve; left alone",
            )
            return 0
        if step.action == "remove":
            return self._remove_file(log, step.name, "remove", step.reason, size=step.size)
        if step.action == "compress":
            self._compress(log, step)
        return 0

    def _rotate(self, log: _Log, step: Step) -> _Rotation:
        target = step.target or ""
        extra: dict[str, Any] = {"bytes_before": log.st.st_size, "target": log.rotated_path(target)}
        refusal = self._writer_refusal(log)
        if refusal is not None:
            self._record(log.path, "refuse", REFUSED, refusal, bytes_before=log.st.st_size)
            return _Rotation.FAILED
        if self.ctx.options.dry_run:
            self._record(
                log.path,
                "rotate",
                PLANNED,
                f"{step.reason}, {self.policy.method}",
                bytes_after=0,
                **extra,
            )
            return _Rotation.DONE
        intents = recovery.Intents(self.ctx.journal, self.policy.name)
        try:
            outcome = METHODS[self.policy.method](log, target, self.policy, intents)
        except (OSError, Changed, NeedsJournal) as exc:
            self._record(log.path, "rotate", FAILED, step.reason, error=_err(exc), **extra)
            self.records += recovery.settle_open(intents, _replay(self._own_policy, self.ctx.world))
            nospace = isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
            return _Rotation.NO_SPACE if nospace else _Rotation.FAILED
        note = f"; {outcome.note}" if outcome.note else ""
        if not outcome.rotated:
            # Nothing moved: the plan's retention counted a rotated file that does not
            # exist, so stop here; the next pass plans again from what is on disk.
            self._record(
                log.path,
                "rotate",
                UNCHANGED,
                f"{step.reason}{note}",
                bytes_after=outcome.bytes_after,
            )
            return _Rotation.NOTHING_MOVED
        self._record(
            log.path,
            "rotate",
            DONE,
            f"{step.reason}, {self.policy.method}{note}",
            bytes_after=outcome.bytes_after,
            **extra,
        )
        # The new live file is this policy's too: another policy matching the same
        # path must not apply its own retention to this log's rotated files.
        with contextlib.suppress(OSError):
            new = os.stat(log.name, dir_fd=log.directory.fd, follow_symlinks=False)
            self.handled[(new.st_dev, new.st_ino)] = self.policy.name
        self._postrotate(log, target)
        faults.point("rotate.before-end")
        intents.end_all()
        return _Rotation.DONE

    def _writer_refusal(self, log: _Log) -> str | None:
        """Why the live file must not be rotated in place: a writer without O_APPEND.

        Such a writer keeps its own offset; after a truncate or a collapse its next
        write leaves a hole of NUL bytes as long as what was moved.
        """
        if self.policy.method == "rename":
            return None
        if self.writers is None:  # one /proc scan per policy pass, at the first need
            self.writers = all_writers(proc=self.ctx.world.proc_root)
        culprits = [w for w in self.writers.get((log.st.st_dev, log.st.st_ino), ()) if not w.append]
        if not culprits:
            return None
        who = ", ".join(f"pid {w.pid} ({w.command})" for w in culprits)
        reason = (
            f"open for writing without O_APPEND by {who}: an in-place rotation "
            f"({self.policy.method}) would leave a hole of NUL bytes in the live file"
        )
        if Root.PODS in self._roots(log.directory):
            reason += (
                "; kubelet rotates CRI logs (containerLogMaxSize): let it, with its limit "
                "below this policy's max_size"
            )
        return reason

    def _own_policy(self, name: str) -> Policy | None:
        return self.policy if name == self.policy.name else None

    def _postrotate(self, log: _Log, target: str) -> None:
        if self.policy.postrotate is None:
            return
        argv = ["/bin/sh", "-c", self.policy.postrotate, "nodeguard", log.path]
        code, output = self.ctx.world.run(argv, self.policy.postrotate_timeout)
        if code != 0:
            self._record(
                log.path,
                "postrotate",
                FAILED,
                self.policy.postrotate,
                error=f"exit {code}: {output}",
            )

    def _remove_file(
        self, log: _Log, name: str, action: str, reason: str, size: int | None = None
    ) -> int:
        """Unlink a rotated file or leftover; return the bytes that freed."""
        path = log.rotated_path(name)
        if self.ctx.options.dry_run:
            self._record(path, action, PLANNED, reason, bytes_before=size, bytes_after=0)
            return 0
        try:
            st = os.stat(name, dir_fd=log.rotated_dir.fd, follow_symlinks=False)
            # unlink never follows: a leftover temp name that is a link goes, link only
            debris_link = stat.S_ISLNK(st.st_mode) and naming.temp_target(name) is not None
            if not stat.S_ISREG(st.st_mode) and not debris_link:
                raise Changed(f"{name} is no longer a regular file")
            faults.point(f"{action}.before-unlink")
            os.unlink(name, dir_fd=log.rotated_dir.fd)
            faults.point(f"{action}.after-unlink")
        except FileNotFoundError:
            return 0
        except (OSError, Changed) as exc:
            self._record(path, action, FAILED, reason, bytes_before=size, error=_err(exc))
            return 0
        self._record(path, action, DONE, reason, bytes_before=st.st_size, bytes_after=0)
        return st.st_blocks * 512

    def _compress(self, log: _Log, step: Step) -> None:
        path = log.rotated_path(step.name)
        record = Record(
            self.policy.name,
            path,
            "compress",
            PLANNED,
            step.reason,
            bytes_before=step.size,
            target=path + ".gz",
        )
        if self.ctx.options.dry_run:
            self.records.append(record)
            return
        level, fd, name = self.policy.compress_level, os.dup(log.rotated_dir.fd), step.name
        links = self.policy.allow_hardlinks

        def job() -> Record:
            try:
                size = gzip_file(fd, name, level, allow_links=links)
            except OSError as exc:
                return replace(record, result=FAILED, error=_err(exc))
            finally:
                os.close(fd)
            return replace(record, result=DONE, bytes_after=size)

        self.jobs.submit(job)


def _plain_file(dir_fd: int, name: str) -> bool:
    """A regular file with no other name, as every file nodeguard writes is."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_nlink == 1


def _keep_reason(policy: Policy, size: int) -> str:
    if size == 0 and policy.not_if_empty:
        return "empty (not_if_empty)"
    return f"size {format_size(size)} < max_size {_size_text(policy.max_size)}"


@functools.lru_cache(maxsize=64)
def _size_text(size: int) -> str:
    return format_size(size)  # one policy limit, formatted once per pass, not once per log


def save_error(path: Path, exc: OSError) -> Record:
    """The record of a state file that could not be written (a full disk, ...)."""
    reason = "state of this pass (when each log was last rotated); the files on disk stay the truth"
    return Record("-", str(path), "save", FAILED, reason, error=_err(exc))


def _err(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror} ({errno.errorcode.get(exc.errno or 0, exc.errno)})"
    return str(exc)


def _listdir(directory: scan.Directory) -> list[str]:
    """Names in a directory; none in an olddir a dry run did not create."""
    return os.listdir(directory.fd) if directory.fd >= 0 else []


def _group_rotated(listing: list[str]) -> dict[str, tuple[list[naming.RotatedName], list[str]]]:
    """Rotated files and temporary leftovers in a directory, by the live name they belong to."""
    groups: dict[str, tuple[list[naming.RotatedName], list[str]]] = {}
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


class _Jobs:
    """A bounded thread pool for compression; records come back in submission order."""

    def __init__(self, workers: int) -> None:
        self._workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._slots = threading.BoundedSemaphore(workers * 8)
        self._futures: list[Future[Record]] = []
        self.records: list[Record] = []

    def submit(self, job: Callable[[], Record]) -> None:
        if self._pool is None:  # started on first use: a pass with nothing to compress
            # skips importing concurrent.futures (and logging) altogether
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="compress")
        self._slots.acquire()
        future = self._pool.submit(job)
        future.add_done_callback(lambda _: self._slots.release())
        self._futures.append(future)

    def __enter__(self) -> _Jobs:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self.records = [f.result() for f in self._futures]
