"""kubelet's container log layout: /var/log/pods and the /var/log/containers symlinks.

``<pods>/<ns>_<pod>_<uid>/<container>/<restart>.log`` is the live log; kubelet
rotates it to ``<restart>.log.<YYYYMMDD-hhmmss>``, gzips older ones via a ``.tmp``
file, and links ``<containers>/<pod>_<ns>_<container>-<id>.log`` to the live log.
Everything below a root is read through directory fds with O_NOFOLLOW, so a symlink
planted in the tree can never lead a read (or a later removal) outside it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from nodeguard import fsutil
from nodeguard.fsutil import DIR_FLAGS
from nodeguard.progress import NO_PROGRESS, Progress

LIVE_RE = re.compile(r"^\d+\.log$")
ROTATED_RE = re.compile(r"^\d+\.log\.\d{8}-\d{6}(?:\.gz)?$")
DEBRIS_RE = re.compile(r"^\d+\.log\.\d{8}-\d{6}(?:\.gz)?\.tmp$")
LINK_RE = re.compile(r"^(?P<pod>[^_]+)_(?P<ns>[^_]+)_(?P<container>.+)-(?P<id>[0-9A-Za-z]+)\.log$")
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


@dataclass(frozen=True)
class LogFile:
    """One file of a container's logs; ``kind`` is live, rotated, debris or other."""

    path: str
    kind: str
    size: int
    mtime: float


def classify(name: str) -> str:
    """The kind of a file found in a kubelet container log directory."""
    if LIVE_RE.match(name):
        return "live"
    if ROTATED_RE.match(name):
        return "rotated"
    if DEBRIS_RE.match(name):
        return "debris"
    return "other"


@dataclass(frozen=True)
class PodRef:
    """The identity encoded in a pod log directory's name ``<ns>_<pod>_<uid>``."""

    namespace: str
    pod: str
    uid: str

    @classmethod
    def parse(cls, name: str) -> PodRef | None:
        # Namespace and pod names are DNS labels/subdomains: they never hold "_".
        parts = name.split("_")
        if len(parts) != 3 or not all(parts):
            return None
        return cls(*parts)


@dataclass(frozen=True)
class CriContainerDir:
    """``<pods>/<pod dir>/<container>/``: the logs of one container across restarts."""

    pod_dir: str
    ref: PodRef
    container: str
    files: tuple[LogFile, ...]
    docker_ids: tuple[str, ...] = ()  # N.log symlinks into Docker (dockershim, cri-dockerd)


@dataclass(frozen=True)
class PodDir:
    """One pod log directory with everything below it."""

    name: str
    path: str
    ref: PodRef | None
    containers: tuple[CriContainerDir, ...]
    newest_mtime: float
    bytes: int
    files: int


@dataclass(frozen=True)
class ContainerLink:
    """A /var/log/containers symlink resolved (by name only) into the pods root."""

    path: str
    namespace: str
    pod: str
    container: str
    id: str
    target: tuple[str, str, str]  # pod dir, container dir, file name
    regular: bool  # the target is a regular file reached without any symlink


@dataclass(frozen=True)
class Roots:
    """The configured roots; a root itself may be a symlink (e.g. to a log disk)."""

    pods: Path
    containers: Path
    docker: Path

    def pods_aliases(self) -> tuple[Path, ...]:
        return _aliases(self.pods)

    def docker_containers_aliases(self) -> tuple[Path, ...]:
        return _aliases(self.docker / "containers")


def _aliases(path: Path) -> tuple[Path, ...]:
    real = Path(os.path.realpath(path))
    return (path,) if real == path else (path, real)


@contextlib.contextmanager
def open_root(path: Path) -> Iterator[int | None]:
    """A directory fd for a configured root, or None when it does not exist."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        yield None
        return
    try:
        yield fd
    finally:
        os.close(fd)


def entries(fd: int) -> list[os.DirEntry[str]]:
    """The entries of an open directory, sorted by name; empty if it vanished."""
    try:
        with os.scandir(fd) as it:
            return sorted(it, key=lambda e: e.name)
    except FileNotFoundError:
        return []


def open_below(root_fd: int, parts: Sequence[str]) -> int:
    """Open the file ``root/parts...`` for reading without following any symlink.

    Every directory is opened with O_NOFOLLOW relative to its parent's fd, and the file
    itself with O_NOFOLLOW: a symlink anywhere raises OSError (ELOOP or ENOTDIR).
    """
    if not parts or any(p in ("", ".", "..") or "/" in p for p in parts):
        raise OSError(errno.EINVAL, f"not a plain relative path: {'/'.join(parts)!r}")
    opened: list[int] = []
    dir_fd = root_fd
    try:
        for part in parts[:-1]:
            dir_fd = os.open(part, DIR_FLAGS, dir_fd=dir_fd)
            opened.append(dir_fd)
        return os.open(parts[-1], FILE_FLAGS, dir_fd=dir_fd)
    finally:
        for fd in opened:
            os.close(fd)


def read_regular_capped(fd: int, cap: int) -> bytes:
    """The content of the open regular file ``fd``, at most ``cap`` bytes.

    OSError (EINVAL "not a regular file", EFBIG "larger than N bytes") otherwise; ``fd``
    stays open.
    """
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        raise OSError(errno.EINVAL, "not a regular file")
    return fsutil.read_fd_capped(fd, cap)


def resolve_lexically(target: str, link_dir: Path, roots: Sequence[Path]) -> tuple[str, ...] | None:
    """The parts of a symlink target relative to one of ``roots``, or None if outside.

    Only the link text is used (never the filesystem), so nothing is followed.
    """
    absolute = Path(os.path.normpath(os.path.join(link_dir, target)))
    for root in roots:
        with contextlib.suppress(ValueError):
            parts = absolute.relative_to(root).parts
            return parts if parts and ".." not in parts else None
    return None


def docker_link_id(target: str, link_dir: Path, roots: Roots) -> str | None:
    """The container ID if a symlink names ``<docker>/containers/<id>/<id>-json.log``."""
    parts = resolve_lexically(target, link_dir, roots.docker_containers_aliases())
    if parts is None or len(parts) != 2 or parts[1] != f"{parts[0]}-json.log":
        return None
    return parts[0]


def scan_links(roots: Roots, pods_fd: int | None, problems: list[str]) -> list[ContainerLink]:
    """Resolve every kubelet symlink in ``containers`` that names a log in the pods root.

    A link that leads anywhere else is reported and ignored (links into Docker's
    containers are kubelet's dockershim layout and are accounted under Docker).
    """
    links: list[ContainerLink] = []
    with open_root(roots.containers) as fd:
        for entry in entries(fd) if fd is not None else []:
            link = _scan_link(roots, fd, entry, pods_fd, problems)
            if link is not None:
                links.append(link)
    return links


def _scan_link(
    roots: Roots,
    dir_fd: int | None,
    entry: os.DirEntry[str],
    pods_fd: int | None,
    problems: list[str],
) -> ContainerLink | None:
    path = roots.containers / entry.name
    match = LINK_RE.match(entry.name)
    if not entry.is_symlink() or match is None:
        if entry.name.endswith(".log"):
            problems.append(f"{path}: not a kubelet container log symlink; ignored")
        return None
    try:
        target = os.readlink(entry.name, dir_fd=dir_fd)
    except OSError as exc:
        problems.append(f"{path}: cannot read symlink: {exc.strerror}")
        return None
    parts = resolve_lexically(target, roots.containers, roots.pods_aliases())
    if parts is not None and len(parts) != 3:
        problems.append(
            f"{path}: symlink leads to {target}, not a <pod dir>/<container>/<file> log "
            "in the pods root: ignored"
        )
        return None
    if parts is None:
        if docker_link_id(target, roots.containers, roots) is None:
            problems.append(
                f"{path}: symlink leads to {target}, outside the pods root "
                f"{roots.pods}: ignored (never opened)"
            )
        return None
    regular = _regular_below(pods_fd, parts, roots, path, problems)
    return ContainerLink(
        str(path),
        match["ns"],
        match["pod"],
        match["container"],
        match["id"],
        (parts[0], parts[1], parts[2]),
        regular,
    )


def _regular_below(
    pods_fd: int | None, parts: tuple[str, ...], roots: Roots, link: Path, problems: list[str]
) -> bool:
    if pods_fd is None:
        problems.append(f"{link}: dangling: the pods root {roots.pods} does not exist")
        return False
    try:
        fd = open_below(pods_fd, parts)
    except FileNotFoundError:
        problems.append(f"{link}: dangling: {roots.pods.joinpath(*parts)} does not exist")
        return False
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and _links_to_docker(pods_fd, parts, roots):
            return False
        problems.append(
            f"{link}: {roots.pods.joinpath(*parts)} is reached through a symlink inside the "
            f"pods root ({exc.strerror}): ignored (never opened)"
        )
        return False
    try:
        return stat.S_ISREG(os.fstat(fd).st_mode)
    finally:
        os.close(fd)


def _links_to_docker(pods_fd: int, parts: tuple[str, ...], roots: Roots) -> bool:
    """Whether ``pods/<pod>/<container>/<N>.log`` is a dockershim symlink into Docker."""
    try:
        with _open_dirs(pods_fd, parts[:-1]) as fd:
            target = os.readlink(parts[-1], dir_fd=fd)
    except OSError:
        return False
    return docker_link_id(target, roots.pods.joinpath(*parts[:-1]), roots) is not None


@contextlib.contextmanager
def _open_dirs(root_fd: int, parts: Sequence[str]) -> Iterator[int]:
    fds: list[int] = []
    try:
        fd = root_fd
        for part in parts:
            fd = os.open(part, DIR_FLAGS, dir_fd=fd)
            fds.append(fd)
        yield fd
    finally:
        for opened in fds:
            os.close(opened)


def scan_pods(
    roots: Roots, pods_fd: int | None, problems: list[str], progress: Progress = NO_PROGRESS
) -> list[PodDir]:
    """Every pod log directory below the pods root, with sizes and newest mtime."""
    pods: list[PodDir] = []
    if pods_fd is None:
        return pods
    for entry in entries(pods_fd):
        progress.update(pod_folders=len(pods))
        path = roots.pods / entry.name
        if entry.is_symlink() or not entry.is_dir(follow_symlinks=False):
            kind = "a symlink" if entry.is_symlink() else "not a directory"
            problems.append(f"{path}: {kind} in the pods root; ignored")
            continue
        ref = PodRef.parse(entry.name)
        if ref is None:
            problems.append(f"{path}: not a kubelet pod log directory (<ns>_<pod>_<uid>)")
        with contextlib.suppress(FileNotFoundError), _open_dirs(pods_fd, [entry.name]) as fd:
            pods.append(_scan_pod(roots, fd, entry.name, ref, problems))
    return pods


def _scan_pod(roots: Roots, fd: int, name: str, ref: PodRef | None, problems: list[str]) -> PodDir:
    path = roots.pods / name
    newest, total, count = os.fstat(fd).st_mtime, 0, 0
    containers: list[CriContainerDir] = []
    for entry in entries(fd):
        st = lstat_entry(entry)
        if st is None:
            continue
        newest = max(newest, st.st_mtime)
        if stat.S_ISDIR(st.st_mode):
            with contextlib.suppress(FileNotFoundError), _open_dirs(fd, [entry.name]) as cfd:
                found = _scan_container_dir(roots, cfd, path / entry.name, problems)
                newest = max([newest, *(f.mtime for f in found.files), found.newest])
                total += sum(f.size for f in found.files)
                count += len(found.files)
                if ref is not None:
                    containers.append(
                        CriContainerDir(name, ref, entry.name, found.files, found.docker_ids)
                    )
        elif stat.S_ISLNK(st.st_mode):
            problems.append(f"{path / entry.name}: symlink in a pod log directory; ignored")
        else:
            total, count = total + st.st_size, count + 1
    return PodDir(name, str(path), ref, tuple(containers), newest, total, count)


@dataclass(frozen=True)
class _Found:
    files: tuple[LogFile, ...]
    docker_ids: tuple[str, ...]
    newest: float


def _scan_container_dir(roots: Roots, fd: int, path: Path, problems: list[str]) -> _Found:
    files: list[LogFile] = []
    docker_ids: list[str] = []
    newest = os.fstat(fd).st_mtime
    for entry in entries(fd):
        st = lstat_entry(entry)
        if st is None:
            continue
        newest = max(newest, st.st_mtime)
        if stat.S_ISREG(st.st_mode):
            files.append(
                LogFile(str(path / entry.name), classify(entry.name), st.st_size, st.st_mtime)
            )
        elif stat.S_ISLNK(st.st_mode):
            docker_id = _docker_symlink(fd, entry.name, path, roots)
            if docker_id is None:
                problems.append(
                    f"{path / entry.name}: symlink that does not lead into Docker's "
                    "containers; ignored (never opened)"
                )
            else:
                docker_ids.append(docker_id)
    return _Found(tuple(files), tuple(docker_ids), newest)


def _docker_symlink(fd: int, name: str, directory: Path, roots: Roots) -> str | None:
    try:
        return docker_link_id(os.readlink(name, dir_fd=fd), directory, roots)
    except OSError:
        return None


def lstat_entry(entry: os.DirEntry[str]) -> os.stat_result | None:
    try:
        return entry.stat(follow_symlinks=False)
    except FileNotFoundError:
        return None
