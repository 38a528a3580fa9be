"""Expand a policy's globs into directories held open by fd, without following symlinks.

Each path component is opened relative to its parent's fd with O_NOFOLLOW, so
a directory swapped for a symlink mid-pass cannot redirect nodeguard. The one
exception is a symlink in the literal part of a configured path that root
owns inside a directory only root can write (``/var/log -> /data/log``): the
admin made it, no other user can change it, so it is followed. Like a shell,
``*`` does not match names starting with a dot.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from nodeguard.fsutil import DIR_FLAGS
from nodeguard.rotation import naming

Problem = Callable[[str, str], None]  # (path, reason)

_MAGIC = frozenset("*?[")


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


def expand(pattern: str, problem: Problem) -> Iterator[DirMatch]:
    """Yield one DirMatch per directory the pattern reaches; fds close after each yield."""
    parts = [p for p in pattern.split("/") if p]
    if not parts:
        problem(pattern, "pattern names no file")
        return
    try:
        root = os.open("/", DIR_FLAGS)
    except OSError as exc:
        problem("/", f"cannot open: {exc.strerror}")
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
                problem(path, "skipped: a symlink where a directory was expected (never followed)")
            elif exc.errno != errno.ENOTDIR:
                problem(path, f"cannot open directory: {exc.strerror}")
            continue
        yield Directory(path, fd, os.fstat(fd))


def _open_literal_dir(parent: Directory, name: str, problem: Problem) -> Directory | None:
    path = f"{parent.path}/{name}"
    try:
        fd = os.open(name, DIR_FLAGS, dir_fd=parent.fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if not _is_symlink(parent.fd, name):
            problem(path, f"cannot open directory: {exc.strerror}")
            return None
        followed = _follow_trusted_symlink(parent, name, problem)
        if followed is None:
            return None
        fd = followed
    return Directory(path, fd, os.fstat(fd))


def _is_symlink(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _follow_trusted_symlink(parent: Directory, name: str, problem: Problem) -> int | None:
    path = f"{parent.path}/{name}"
    link = os.stat(name, dir_fd=parent.fd, follow_symlinks=False)
    if link.st_uid != 0 or insecure(parent.st) or parent.st.st_uid != 0:
        problem(path, "refused: directory is a symlink that a non-root user could change")
        return None
    try:
        return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=parent.fd)
    except OSError as exc:
        problem(path, f"cannot open directory: {exc.strerror}")
        return None


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
    for name in fnmatch.filter(match.listing, part):
        if (hidden_ok or not name.startswith(".")) and not naming.is_rotated_or_temp(name):
            with contextlib.suppress(FileNotFoundError):
                match.files[name] = os.stat(name, dir_fd=directory.fd, follow_symlinks=False)
    return match


def open_path(path: str, problem: Problem) -> Directory | None:
    """Open an absolute directory path component by component, like a literal pattern."""
    current = Directory("", os.open("/", DIR_FLAGS), os.stat("/"))
    for part in [p for p in path.split("/") if p]:
        child = _open_literal_dir(current, part, problem)
        os.close(current.fd)
        if child is None:
            return None
        current = child
    return current
