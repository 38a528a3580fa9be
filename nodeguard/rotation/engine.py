"""One rotation pass: for each policy, scan, check, plan and act on every log.

Every file operation goes through directory fds with O_NOFOLLOW (see
:mod:`scan`), re-checks the inode it planned for right before acting, and
reports each refusal with its reason. Compression runs in a small thread pool
(zlib and ISA-L release the GIL), everything else is sequential.
"""

from __future__ import annotations

import contextlib
import errno
import grp
import os
import pwd
import stat
import subprocess
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from nodeguard.config.model import Config, Policy
from nodeguard.config.units import format_size
from nodeguard.fsutil import DIR_FLAGS, rename_noreplace
from nodeguard.rotation import naming, scan
from nodeguard.rotation.compress import gzip_file
from nodeguard.rotation.logrotate_conf import covered_paths
from nodeguard.rotation.plan import Sibling, Step, plan_log
from nodeguard.rotation.privilege import run_as
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

CommandRunner = Callable[[list[str], float], tuple[int, str]]
_RDWR_FLAGS = os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def run_command(argv: list[str], timeout: float) -> tuple[int, str]:
    """Run a hook; return its exit code and the tail of its output."""
    try:
        done = subprocess.run(
            argv, capture_output=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        return 124, f"timed out after {timeout:.0f}s"
    output = (done.stderr or done.stdout).decode("utf-8", "replace").strip()
    return done.returncode, output[-500:]


@dataclass(frozen=True)
class World:
    """What a pass needs from outside: the clock, a command runner, worker count."""

    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    run: CommandRunner = run_command
    workers: int = max(1, min(4, os.cpu_count() or 1))


@dataclass(frozen=True)
class PassOptions:
    dry_run: bool = False
    force: bool = False
    policies: tuple[str, ...] = ()


def run_pass(config: Config, options: PassOptions, world: World | None = None) -> Report:
    """Run (or, with dry_run, plan) one pass over the selected policies."""
    world = world or World()
    report = Report(dry_run=options.dry_run)
    covered = _logrotate_coverage(config, report)
    seen: dict[tuple[int, int], str] = {}
    for policy in config.policies:
        if options.policies and policy.name not in options.policies:
            continue
        job = PolicyPass(policy, covered, dict(seen), options, world)
        if policy.su is not None and os.geteuid() == 0:
            records, handled = run_as(policy.su, job.run)
        else:
            records, handled = job.run()
        report.records += records
        seen.update(handled)
    return report


def _logrotate_coverage(config: Config, report: Report) -> dict[str, str]:
    if config.logrotate_config is None or all(p.take_over_logrotate for p in config.policies):
        return {}
    if not config.logrotate_config.exists():
        return {}
    try:
        return covered_paths(config.logrotate_config)
    except OSError as exc:
        report.notes.append(f"cannot read {config.logrotate_config}: {exc}")
        return {}


class Changed(Exception):
    """The file is not the one that was checked (replaced, swapped for a link, ...)."""


def _same(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino) and stat.S_ISREG(a.st_mode)


@dataclass
class _Log:
    """The live log being worked on: its directory, name and checked stat."""

    directory: scan.Directory
    rotated_dir: scan.Directory
    name: str
    st: os.stat_result

    @property
    def path(self) -> str:
        return f"{self.directory.path}/{self.name}"

    def rotated_path(self, name: str) -> str:
        return f"{self.rotated_dir.path}/{name}"


@dataclass
class PolicyPass:
    """The pass of one policy; ``run()`` returns its records and the inodes it handled."""

    policy: Policy
    covered: dict[str, str]
    seen: dict[tuple[int, int], str]
    options: PassOptions
    world: World
    records: list[Record] = field(default_factory=list)
    handled: dict[tuple[int, int], str] = field(default_factory=dict)

    def run(self) -> tuple[list[Record], dict[tuple[int, int], str]]:
        self.now = self.world.clock()
        with _Jobs(self.world.workers) as self.jobs:
            for pattern in self.policy.paths:
                for match in scan.expand(pattern, self._problem):
                    self._directory(match)
        self.records += self.jobs.records
        return self.records, self.handled

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
        if not match.files:
            return
        if scan.insecure(d.st) and self.policy.su is None:
            for name in sorted(match.files):
                self._record(
                    f"{d.path}/{name}",
                    "refuse",
                    REFUSED,
                    f"parent directory {d.path or '/'} has insecure permissions "
                    f"({stat.filemode(d.st.st_mode)}): group or others can write "
                    "it; set su: [user, group] for this policy",
                )
            return
        with self._rotated_dir(d, sorted(match.files)) as rotated_dir:
            if rotated_dir is None:
                return
            same = rotated_dir is d and match.listing is not None
            listing = (
                match.listing if same and match.listing is not None else os.listdir(rotated_dir.fd)
            )
            groups = _group_rotated(listing)
            for name in sorted(match.files):
                log = _Log(d, rotated_dir, name, match.files[name])
                self._log(log, *groups.get(name, ([], [])))

    @contextlib.contextmanager
    def _rotated_dir(self, d: scan.Directory, names: list[str]) -> Iterator[scan.Directory | None]:
        olddir = self.policy.olddir
        if olddir is None:
            yield d
            return
        opened = self._open_olddir(d, olddir)
        reason = opened if isinstance(opened, str) else None
        if (
            isinstance(opened, scan.Directory)
            and scan.insecure(opened.st)
            and self.policy.su is None
        ):
            reason = f"olddir {opened.path} has insecure permissions"
        if (
            isinstance(opened, scan.Directory)
            and opened.st.st_dev != d.st.st_dev
            and self.policy.method == "rename"
        ):
            reason = f"olddir {opened.path} is on another filesystem"
        if reason is not None:
            for name in names:
                self._record(f"{d.path}/{name}", "refuse", REFUSED, reason)
        try:
            yield opened if reason is None and isinstance(opened, scan.Directory) else None
        finally:
            if isinstance(opened, scan.Directory):
                os.close(opened.fd)

    def _open_olddir(self, d: scan.Directory, olddir: str) -> scan.Directory | str:
        problems: list[str] = []
        if olddir.startswith("/"):
            opened = scan.open_path(olddir, lambda p, r: problems.append(f"{p}: {r}"))
            return opened or (problems[0] if problems else f"olddir {olddir} does not exist")
        if not self.options.dry_run:
            with contextlib.suppress(FileExistsError):
                os.mkdir(olddir, stat.S_IMODE(d.st.st_mode) & 0o755, dir_fd=d.fd)
        try:
            fd = os.open(olddir, DIR_FLAGS, dir_fd=d.fd)
        except OSError as exc:
            return f"olddir {d.path}/{olddir}: {exc.strerror} (symlinks are never followed)"
        return scan.Directory(f"{d.path}/{olddir}", fd, os.fstat(fd))

    # --- per log ----------------------------------------------------------------------------

    def _log(self, log: _Log, rotated: list[naming.RotatedName], temps: list[str]) -> None:
        if not self._admissible(log):
            return
        self.handled[(log.st.st_dev, log.st.st_ino)] = self.policy.name
        rotated = self._recover(log, rotated, temps)
        siblings = [s for s in (self._sibling(log, r) for r in rotated) if s is not None]
        steps = plan_log(
            self.policy, log.name, log.st.st_size, siblings, self.now, force=self.options.force
        )
        if not steps:
            self._record(
                log.path,
                "keep",
                UNCHANGED,
                _keep_reason(self.policy, log.st.st_size),
                bytes_before=log.st.st_size,
                bytes_after=log.st.st_size,
            )
            return
        for step in steps:
            if not self._step(log, step):
                return

    def _admissible(self, log: _Log) -> bool:
        st, path = log.st, log.path
        verdict: tuple[str, str, str] | None = None
        if stat.S_ISLNK(st.st_mode):
            verdict = ("skip", SKIPPED, "is a symlink (never followed)")
        elif not stat.S_ISREG(st.st_mode):
            verdict = ("skip", SKIPPED, f"not a regular file ({stat.filemode(st.st_mode)})")
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
        elif path in self.covered and not self.policy.take_over_logrotate:
            verdict = (
                "skip",
                SKIPPED,
                f"covered by logrotate ({self.covered[path]}); set "
                "take_over_logrotate to rotate it here",
            )
        if verdict is not None:
            self._record(path, verdict[0], verdict[1], verdict[2], bytes_before=st.st_size)
        return verdict is None

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
        return Sibling(name, st.st_size, st.st_mtime)

    def _recover(
        self, log: _Log, rotated: list[naming.RotatedName], temps: list[str]
    ) -> list[naming.RotatedName]:
        """Remove debris of an interrupted pass and finish interrupted compressions."""
        for tmp in temps:
            self._remove_file(log, tmp, "cleanup", "leftover temporary file of an interrupted pass")
        names = {r.name for r in rotated}
        done = [r for r in rotated if not r.compressed and r.name + ".gz" in names]
        for plain in done:
            self._remove_file(
                log,
                plain.name,
                "cleanup",
                "compressed copy is complete; removing the plain file left by an interrupted pass",
            )
        return [r for r in rotated if r not in done]

    # --- steps ---------------------------------------------------------------------------------

    def _step(self, log: _Log, step: Step) -> bool:
        if step.action == "rotate":
            return self._rotate(log, step)
        if step.action == "remove":
            self._remove_file(log, step.name, "remove", step.reason, size=step.size)
        elif step.action == "compress":
            self._compress(log, step)
        return True

    def _rotate(self, log: _Log, step: Step) -> bool:
        target = step.target or ""
        extra: dict[str, Any] = {"bytes_before": log.st.st_size, "target": log.rotated_path(target)}
        if self.options.dry_run:
            self._record(
                log.path,
                "rotate",
                PLANNED,
                f"{step.reason}, {self.policy.method}",
                bytes_after=0,
                **extra,
            )
            return True
        try:
            if self.policy.method == "copytruncate":
                after = _copytruncate(log, target)
            else:
                after = _rename_and_create(log, target, self.policy)
        except (OSError, Changed) as exc:
            self._record(log.path, "rotate", FAILED, step.reason, error=_err(exc), **extra)
            return False
        self._record(
            log.path,
            "rotate",
            DONE,
            f"{step.reason}, {self.policy.method}",
            bytes_after=after,
            **extra,
        )
        self._postrotate(log, target)
        return True

    def _postrotate(self, log: _Log, target: str) -> None:
        if self.policy.postrotate is None:
            return
        argv = ["/bin/sh", "-c", self.policy.postrotate, "nodeguard", log.path]
        code, output = self.world.run(argv, self.policy.postrotate_timeout)
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
    ) -> None:
        path = log.rotated_path(name)
        if self.options.dry_run:
            self._record(path, action, PLANNED, reason, bytes_before=size, bytes_after=0)
            return
        try:
            st = os.stat(name, dir_fd=log.rotated_dir.fd, follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode):
                raise Changed(f"{name} is no longer a regular file")
            os.unlink(name, dir_fd=log.rotated_dir.fd)
        except FileNotFoundError:
            return
        except (OSError, Changed) as exc:
            self._record(path, action, FAILED, reason, bytes_before=size, error=_err(exc))
            return
        self._record(path, action, DONE, reason, bytes_before=st.st_size, bytes_after=0)

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
        if self.options.dry_run:
            self.records.append(record)
            return
        level, fd, name = self.policy.compress_level, os.dup(log.rotated_dir.fd), step.name

        def job() -> Record:
            try:
                size = gzip_file(fd, name, level)
            except OSError as exc:
                return replace(record, result=FAILED, error=_err(exc))
            finally:
                os.close(fd)
            return replace(record, result=DONE, bytes_after=size)

        self.jobs.submit(job)


def _keep_reason(policy: Policy, size: int) -> str:
    if size == 0 and policy.not_if_empty:
        return "empty (not_if_empty)"
    return f"size {format_size(size)} < max_size {format_size(policy.max_size)}"


def _err(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror} ({errno.errorcode.get(exc.errno or 0, exc.errno)})"
    return str(exc)


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


# --- the two classic methods ----------------------------------------------------------------


def _rename_and_create(log: _Log, target: str, policy: Policy) -> int:
    """Move the live file aside and create a fresh, empty one in its place."""
    d, r = log.directory, log.rotated_dir
    if not _same(os.stat(log.name, dir_fd=d.fd, follow_symlinks=False), log.st):
        raise Changed(f"{log.path} changed since it was checked")
    rename_noreplace(d.fd, log.name, r.fd, target)
    moved = os.stat(target, dir_fd=r.fd, follow_symlinks=False)
    if not _same(moved, log.st):  # swapped between the check and the rename: put it back
        rename_noreplace(r.fd, target, d.fd, log.name)
        raise Changed(f"{log.path} was replaced during rotation; left as it was")
    os.fsync(r.fd)
    _create_live(log, policy)
    os.fsync(d.fd)
    return 0


def _create_live(log: _Log, policy: Policy) -> None:
    spec = policy.create
    mode = spec.mode if spec and spec.mode is not None else stat.S_IMODE(log.st.st_mode)
    uid = pwd.getpwnam(spec.owner).pw_uid if spec and spec.owner else log.st.st_uid
    gid = grp.getgrnam(spec.group).gr_gid if spec and spec.group else log.st.st_gid
    try:
        fd = os.open(log.name, _CREATE_FLAGS, 0o600, dir_fd=log.directory.fd)
    except FileExistsError:
        return  # the writer already created its new file
    try:
        if os.geteuid() == 0 or (uid, gid) != (os.geteuid(), os.getegid()):
            with contextlib.suppress(PermissionError):
                os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
        os.fsync(fd)
    finally:
        os.close(fd)


def _copytruncate(log: _Log, target: str) -> int:
    """Copy the live file aside, then truncate it in place (logrotate's copytruncate).

    Order: copy, rename the copy into place, truncate, then fsync. The copy is
    complete under its final name before the truncate, so a crash can duplicate
    but never lose what was copied; lines written between the end of the copy
    and the truncate are lost, as with logrotate.
    """
    d, r = log.directory, log.rotated_dir
    src = os.open(log.name, _RDWR_FLAGS, dir_fd=d.fd)
    try:
        st = os.fstat(src)
        if not _same(st, log.st):
            raise Changed(f"{log.path} changed since it was checked")
        tmp = naming.temp_name(target)
        out = os.open(tmp, _CREATE_FLAGS, 0o600, dir_fd=r.fd)
        try:
            _copy_all(src, out)
            os.fchown(out, st.st_uid, st.st_gid)
            os.fchmod(out, stat.S_IMODE(st.st_mode))
            rename_noreplace(r.fd, tmp, r.fd, target)
            os.ftruncate(src, 0)
            os.fsync(out)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=r.fd)
            raise
        finally:
            os.close(out)
        os.fsync(r.fd)
        return os.fstat(src).st_size
    finally:
        os.close(src)


def _copy_all(src: int, dst: int) -> None:
    offset = 0
    while True:
        try:
            n = os.copy_file_range(src, dst, 1 << 30, offset, offset)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                raise
            n = _copy_chunk(src, dst, offset)
        if n == 0:
            return
        offset += n


def _copy_chunk(src: int, dst: int, offset: int) -> int:
    data = os.pread(src, 1 << 20, offset)
    if data:
        os.pwrite(dst, data, offset)
    return len(data)


class _Jobs:
    """A bounded thread pool for compression; records come back in submission order."""

    def __init__(self, workers: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="compress")
        self._slots = threading.BoundedSemaphore(workers * 8)
        self._futures: list[Future[Record]] = []
        self.records: list[Record] = []

    def submit(self, job: Callable[[], Record]) -> None:
        self._slots.acquire()
        future = self._pool.submit(job)
        future.add_done_callback(lambda _: self._slots.release())
        self._futures.append(future)

    def __enter__(self) -> _Jobs:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True)
        self.records = [f.result() for f in self._futures]
