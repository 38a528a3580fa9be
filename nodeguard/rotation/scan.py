"""Expand a policy's globs into directories held open by fd, without following symlinks.

Each path component is opened relative to its parent's fd with O_NOFOLLOW, so
a directory swapped for a symlink mid-pass cannot redirect nodeguard. The one
exception is a symlink in the literal part of a configured path that root
owns inside a directory only root can write (``/var/log -> /data/log``): the
admin made it, no other user can change it, so it is followed; its target is
walked by the same rules, so it cannot lead on through another user's directory.
Like a shell, ``*`` does not match names starting with a dot.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import fnmatch
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from nodeguard.fsutil import DIR_FLAGS
from nodeguard.rotation import naming


class ScanProblem(enum.StrEnum):
    """What became of a path the scan could not walk into: the kind travels as data."""

    FAILED = "failed"  # it could not be opened
    REFUSED = "refused"  # it must not be followed (a symlink another user could change)
    SKIPPED = "skipped"  # it is never followed (a symlink in a glob's part)


Problem = Callable[[str, ScanProblem, str], None]  # (path, kind, reason)


def describe(path: str, kind: ScanProblem, reason: str) -> str:
    """One line for a problem, as recovery and olddir refusals quote it."""
    return f"{path}: {reason}" if kind is ScanProblem.FAILED else f"{path}: {kind}: {reason}"


_MAGIC = frozenset("*?[")
_MAX_LINKS = 40  # symlinks followed in one lookup, as the kernel's own limit


def has_magic(part: str) -> bool:
    return any(ch in _MAGIC for ch in part)


def insecure(st: os.stat_result) -> bool:
    """A directory that group or others can write (logrotate's rule)."""
    return bool(st.st_mode & (stat.S_IWGRP | stat.S_IWOTH))


@dataclass
class Directory:
    """An open directory: its path for reports and its fd for every operation."""

    path: str
    fd: int
    st: os.stat_result


@dataclass
class DirMatch:
    """Files in one directory that a pattern matched, with their lstat results."""

    directory: Directory
    files: dict[str, os.stat_result] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)  # literal names that do not exist
    listing: list[str] | None = None  # every name in the directory, when it was listed
    lookalikes: list[str] = field(default_factory=list)  # matched, but named like rotated


def expand(pattern: str, problem: Problem) -> Iterator[DirMatch]:
    """Yield one DirMatch per directory the pattern reaches; fds close after each yield."""
    parts = [p for p in pattern.split("/") if p]
    if not parts:
        problem(pattern, ScanProblem.FAILED, "pattern names no file")
        return
    try:
        root = os.open("/", DIR_FLAGS)
    except OSError as exc:
        problem("/", ScanProblem.FAILED, f"cannot open: {exc.strerror}")
        return
    yield from _walk(Directory("", root, os.fstat(root)), parts, problem)


def _walk(parent: Directory, parts: list[str], problem: Problem) -> Iterator[DirMatch]:
    try:
        if len(parts) == 1:
            yield _match_files(parent, parts[0])
            return
        for child in _child_dirs(parent, parts[0], problem):
            yield from _walk(child, parts[1:], problem)
    finally:
        os.close(parent.fd)


def _child_dirs(parent: Directory, part: str, problem: Problem) -> Iterator[Directory]:
    if not has_magic(part):
        child = _open_literal_dir(parent, part, problem)
        if child is not None:
            yield child
        return
    for name in sorted(_glob_names(parent.fd, part)):
        path = f"{parent.path}/{name}"
        try:
            fd = os.open(name, DIR_FLAGS, dir_fd=parent.fd)
        except OSError as exc:
            if _is_symlink(parent.fd, name):
                reason = "a symlink where a directory was expected (never followed)"
                problem(path, ScanProblem.SKIPPED, reason)
            elif exc.errno != errno.ENOTDIR:
                problem(path, ScanProblem.FAILED, f"cannot open directory: {exc.strerror}")
            continue
        yield Directory(path, fd, os.fstat(fd))


def _open_literal_dir(
    parent: Directory, name: str, problem: Problem, links: int = 0
) -> Directory | None:
    path = f"{parent.path}/{name}"
    try:
        fd = os.open(name, DIR_FLAGS, dir_fd=parent.fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if not _is_symlink(parent.fd, name):
            problem(path, ScanProblem.FAILED, f"cannot open directory: {exc.strerror}")
            return None
        followed = _follow_trusted_symlink(parent, name, problem, links)
        if followed is None:
            return None
        fd = followed
    return Directory(path, fd, os.fstat(fd))


def _is_symlink(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _follow_trusted_symlink(
    parent: Directory, name: str, problem: Problem, links: int
) -> int | None:
    path = f"{parent.path}/{name}"
    link = os.stat(name, dir_fd=parent.fd, follow_symlinks=False)
    if link.st_uid != 0 or insecure(parent.st) or parent.st.st_uid != 0:
        reason = "directory is a symlink that a non-root user could change"
        problem(path, ScanProblem.REFUSED, reason)
        return None
    if links >= _MAX_LINKS:
        problem(
            path, ScanProblem.FAILED, "cannot open directory: too many levels of symbolic links"
        )
        return None
    # The target is walked by the same rules: root's link must not lead on through a
    # directory another user controls (they could swap a component for their own link).
    target = os.readlink(name, dir_fd=parent.fd)
    if target.startswith("/"):
        start = _root()
    else:
        start = Directory(parent.path, os.dup(parent.fd), parent.st)
    opened = _walk_literal(start, target, problem, links + 1)
    return None if opened is None else opened.fd


def _glob_names(fd: int, part: str) -> list[str]:
    with contextlib.suppress(OSError):
        names = os.listdir(fd)
        hidden_ok = part.startswith(".")
        return [n for n in fnmatch.filter(names, part) if hidden_ok or not n.startswith(".")]
    return []


def _match_files(directory: Directory, part: str) -> DirMatch:
    match = DirMatch(directory)
    if not has_magic(part):
        try:
            match.files[part] = os.stat(part, dir_fd=directory.fd, follow_symlinks=False)
        except FileNotFoundError:
            match.missing.append(part)
        return match
    try:
        match.listing = os.listdir(directory.fd)
    except OSError:
        return match
    hidden_ok = part.startswith(".")
    fd, files = directory.fd, match.files
    for name in fnmatch.filter(match.listing, part):
        if not hidden_ok and name[0] == ".":
            continue
        if naming.is_rotated_or_temp(name):
            match.lookalikes.append(name)
            continue
        # try/except rather than contextlib.suppress: this loop runs once per log
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            continue  # removed since the listing
        files[name] = st
    return match


def open_path(path: str, problem: Problem) -> Directory | None:
    """Open an absolute directory path component by component, like a literal pattern."""
    return _walk_literal(_root(), path, problem, 0)


def _root() -> Directory:
    fd = os.open("/", DIR_FLAGS)
    return Directory("", fd, os.fstat(fd))


def _walk_literal(start: Directory, path: str, problem: Problem, links: int) -> Directory | None:
    """Open ``path`` below ``start`` (whose fd it takes over) one component at a time."""
    current = start
    for part in [p for p in path.split("/") if p]:
        child = _open_literal_dir(current, part, problem, links)
        os.close(current.fd)
        if child is None:
            return None
        current = child
    return current


def path_matches(pattern: str, path: str) -> bool:
    """Whether :func:`expand` would reach ``path`` from ``pattern`` (names only, no I/O).

    Component by component, like a shell: ``*`` never crosses ``/`` and does not match
    a name starting with a dot unless the pattern component does.
    """
    want = [p for p in pattern.split("/") if p]
    have = [p for p in path.split("/") if p]
    return len(want) == len(have) and all(map(_component_matches, want, have))


def _component_matches(part: str, name: str) -> bool:
    if not has_magic(part):
        return part == name
    hidden_ok = part.startswith(".") or not name.startswith(".")
    return hidden_ok and fnmatch.fnmatchcase(name, part)
