"""Checks before acting: which folders and files a policy may touch, and where rotated
files go. Plain functions of the policy's context; each returns what it found, and the
caller turns refusals into events.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from typing import NamedTuple

from nodeguard.fsutil import DIR_FLAGS
from nodeguard.rotation import naming, scan
from nodeguard.rotation.context import PolicyContext, Sink
from nodeguard.rotation.guards import Root
from nodeguard.rotation.methods import LiveLog
from nodeguard.rotation.report import REFUSED, SKIPPED, Result, RotationKind


class Verdict(NamedTuple):
    """Why a file is not acted on: an event's kind, result and reason."""

    kind: RotationKind
    result: Result
    reason: str


# Folders whose files are never candidates, whatever the globs say: the reason reported.
OWN_FOLDERS = {
    Root.STATE: "in nodeguard's own state folder: never a candidate",
    Root.CONFIG: "nodeguard's own configuration: never a candidate",
}
_ROOT_NAMES = {
    Root.STATE: "nodeguard's state folder",
    Root.CONFIG: "nodeguard's config drop-in folder",
    Root.DOCKER: "Docker's containers folder",
    Root.PODS: "the pods root",
}


def roots_of(pc: PolicyContext, d: scan.Directory) -> frozenset[Root]:
    """The guarded roots holding ``d`` (none when it cannot be placed)."""
    if d.fd < 0:
        return frozenset()
    try:
        return pc.ctx.guards.under(d.fd, d.st)
    except OSError:
        return frozenset()


def folder_verdict(pc: PolicyContext, d: scan.Directory, roots: frozenset[Root]) -> Verdict | None:
    """Why no file of folder ``d`` may be acted on: nodeguard's own, or others can write it."""
    own = OWN_FOLDERS.keys() & roots
    if own:
        return Verdict(RotationKind.SKIP, SKIPPED, OWN_FOLDERS[min(own)])
    if scan.insecure(d.st) and pc.policy.su is None:
        return Verdict(
            RotationKind.REFUSE,
            REFUSED,
            f"parent directory {d.path or '/'} has insecure permissions "
            f"({stat.filemode(d.st.st_mode)}): group or others can write "
            "it; set su: [user, group] for this policy",
        )
    return None


def log_verdict(pc: PolicyContext, log: LiveLog, roots: frozenset[Root]) -> Verdict | None:
    """Why this live file is not a candidate of this policy (None: it is)."""
    if _plain_candidate(pc, log.st, roots):
        return None  # what almost every file is: one look instead of the four checks
    return (
        _file_verdict(pc, log.st)
        or _ownership_verdict(pc, log.st)
        or _runtime_verdict(pc, roots)
        or _shared_verdict(pc, log)
    )


def _plain_candidate(pc: PolicyContext, st: os.stat_result, roots: frozenset[Root]) -> bool:
    """A regular file with one name, in no guarded root, that no other rotator has and
    whose rotated files no other log shares: none of the checks below can object."""
    file_id = (st.st_dev, st.st_ino)
    guards = pc.ctx.guards
    return (
        stat.S_ISREG(st.st_mode)
        and st.st_nlink == 1
        and not roots
        and not pc.ctx.shared
        and file_id not in pc.seen
        and file_id not in guards.covered
        and file_id not in guards.config_files
    )


def _file_verdict(pc: PolicyContext, st: os.stat_result) -> Verdict | None:
    """Only a regular file with one name (unless allowed), never nodeguard's config."""
    if stat.S_ISLNK(st.st_mode):
        return Verdict(RotationKind.SKIP, SKIPPED, "is a symlink (never followed)")
    if not stat.S_ISREG(st.st_mode):
        mode = stat.filemode(st.st_mode)
        return Verdict(RotationKind.SKIP, SKIPPED, f"not a regular file ({mode})")
    if (st.st_dev, st.st_ino) in pc.ctx.guards.config_files:
        return Verdict(RotationKind.SKIP, SKIPPED, OWN_FOLDERS[Root.CONFIG])
    if st.st_nlink > 1 and not pc.policy.allow_hardlinks:
        return Verdict(
            RotationKind.REFUSE,
            REFUSED,
            f"has {st.st_nlink} hard links; another name may be "
            "outside this policy (set allow_hardlinks to rotate it)",
        )
    return None


def _ownership_verdict(pc: PolicyContext, st: os.stat_result) -> Verdict | None:
    """Another rotator handles it: an earlier policy of this pass, or logrotate."""
    file_id = (st.st_dev, st.st_ino)
    covered = pc.ctx.guards.covered.get(file_id)
    if file_id in pc.seen:
        return Verdict(RotationKind.SKIP, SKIPPED, f"already handled by policy {pc.seen[file_id]}")
    if covered is not None and not pc.policy.take_over_logrotate:
        return Verdict(
            RotationKind.SKIP,
            SKIPPED,
            f"covered by logrotate ({covered}); set take_over_logrotate to rotate it here",
        )
    return None


def _runtime_verdict(pc: PolicyContext, roots: frozenset[Root]) -> Verdict | None:
    """Logs a container runtime owns: Docker's are never ours, CRI's never renamed."""
    if Root.DOCKER in roots:
        return Verdict(
            RotationKind.SKIP,
            SKIPPED,
            "Docker's own log file: dockerd rotates it; bound it "
            "with log-opts (nodeguard docker-config)",
        )
    if Root.PODS in roots and pc.policy.method == "rename":
        return Verdict(
            RotationKind.REFUSE,
            REFUSED,
            "CRI container log: the runtime keeps it open and "
            "reopens only when kubelet asks, so a rename would lose lines; use "
            "method: lossless",
        )
    return None


def _shared_verdict(pc: PolicyContext, log: LiveLog) -> Verdict | None:
    """Refuse a log whose rotated files another live log's would share by name."""
    r = log.rotated_dir
    sharing = pc.ctx.shared.get((r.st.st_dev, r.st.st_ino, log.name)) if r.fd >= 0 else None
    if not sharing:
        return None
    others = ", ".join(p for p in sharing if p != log.path)
    return Verdict(
        RotationKind.REFUSE,
        REFUSED,
        f"its rotated files would share {r.path} with those of {others} (same name "
        f"{log.name}): retention and cleanup could not tell them apart; use a relative "
        "olddir, or paths whose file names are unique",
    )


def report_lookalikes(sink: Sink, match: scan.DirMatch) -> None:
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
                sink.add(
                    f"{match.directory.path}/{name}",
                    RotationKind.SKIP,
                    SKIPPED,
                    f"named like a rotated file, but there is no live file {parsed.base} "
                    "here: never rotated nor removed by nodeguard; rename it if it is a "
                    "live log, or remove it",
                    bytes_before=st.st_size,
                )


# --- where rotated files go ------------------------------------------------------------


@contextlib.contextmanager
def rotated_dir(pc: PolicyContext, d: scan.Directory) -> Iterator[scan.Directory | str]:
    """The folder the logs of ``d`` rotate into (``d`` itself, or the olddir, open), or
    the reason none can be used. An olddir's fd is closed on exit."""
    olddir = pc.policy.olddir
    if olddir is None:
        yield d
        return
    opened = _open_olddir(pc, d, olddir)
    try:
        if isinstance(opened, str):
            yield opened
        else:
            yield _olddir_problem(pc, d, opened) or opened
    finally:
        if isinstance(opened, scan.Directory) and opened.fd >= 0:
            os.close(opened.fd)


def _olddir_problem(pc: PolicyContext, d: scan.Directory, opened: scan.Directory) -> str | None:
    if scan.insecure(opened.st) and pc.policy.su is None:
        return f"olddir {opened.path} has insecure permissions"
    if opened.st.st_dev != d.st.st_dev and pc.policy.method == "rename":
        return f"olddir {opened.path} is on another filesystem"
    roots = roots_of(pc, opened)
    guarded = (OWN_FOLDERS.keys() | {Root.DOCKER}) & roots
    if guarded:
        return f"olddir {opened.path} is inside {_ROOT_NAMES[min(guarded)]}"
    return None


def _open_olddir(pc: PolicyContext, d: scan.Directory, olddir: str) -> scan.Directory | str:
    """Open (creating each missing folder, outside a dry run) ``olddir``.

    Absolute: walked from ``/`` like a configured path. Relative: one component at a
    time from the log's folder, each opened with O_NOFOLLOW and created with mkdirat
    where missing, so no symlink in any component is ever followed.
    """
    if olddir.startswith("/"):
        problems: list[str] = []
        opened = scan.open_path(
            olddir, lambda p, kind, r: problems.append(scan.describe(p, kind, r))
        )
        return opened or (problems[0] if problems else f"olddir {olddir} does not exist")
    path = f"{d.path}/{olddir}"
    fd = os.dup(d.fd)
    try:
        for part in [p for p in olddir.split("/") if p not in ("", ".")]:
            child = _olddir_component(pc, fd, part, d.st)
            if child is None:  # a dry run: plan against an empty olddir (no fd)
                os.close(fd)
                return scan.Directory(path, -1, d.st)
            os.close(fd)
            fd = child
            if scan.insecure(os.fstat(fd)) and pc.policy.su is None:
                os.close(fd)
                return f"olddir {path}: folder {part} has insecure permissions"
    except OSError as exc:
        os.close(fd)
        return f"olddir {path}: {exc.strerror} (symlinks are never followed)"
    return scan.Directory(path, fd, os.fstat(fd))


def _olddir_component(
    pc: PolicyContext, parent: int, name: str, log_dir: os.stat_result
) -> int | None:
    """Open one folder of a relative olddir, making it if missing (None: dry run)."""
    try:
        return os.open(name, DIR_FLAGS, dir_fd=parent)
    except FileNotFoundError:
        if pc.ctx.dry_run:
            return None
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, stat.S_IMODE(log_dir.st_mode) & 0o755, dir_fd=parent)
    return os.open(name, DIR_FLAGS, dir_fd=parent)
