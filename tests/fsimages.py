"""Real filesystems for tests: ext4 and xfs images on loop devices, and tmpfs mounts.

Each context manager yields a mounted :class:`Mounted` and always unmounts and detaches,
even when the test fails. A missing tool raises :class:`FsToolMissing` (the test fails
with the reason; it is never skipped): .ci/setup installs e2fsprogs, xfsprogs and mount.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

XFS_MIN_MB = 300  # mkfs.xfs 6.1 refuses smaller data sections


class FsToolMissing(RuntimeError):
    """A program needed to build a test filesystem is not installed."""


@dataclass(frozen=True)
class Mounted:
    """A mounted test filesystem."""

    kind: str
    path: Path
    device: str | None = None
    image: Path | None = None

    @property
    def block_size(self) -> int:
        return os.statvfs(self.path).f_bsize

    def free_bytes(self) -> int:
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize


def require_tool(name: str, package: str) -> str:
    """The program's path, or FsToolMissing naming the Debian package to install."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        raise FsToolMissing(f"{name} not found: apt-get install {package} (see .ci/setup)")
    return found


def _run(argv: Sequence[str]) -> str:
    proc = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout.strip()


def _unmount(path: Path) -> None:
    """Unmount, retrying briefly while busy, lazily as the last resort."""
    umount = require_tool("umount", "mount")
    for _ in range(20):
        proc = subprocess.run([umount, str(path)], capture_output=True, text=True, check=False)
        if proc.returncode == 0 or not os.path.ismount(path):
            return
        time.sleep(0.05)
    _run([umount, "-l", str(path)])


@contextlib.contextmanager
def _mounted_at(workdir: Path, argv: Sequence[str]) -> Iterator[Path]:
    """Run ``argv + [mountpoint]``; unmount on exit."""
    mountpoint = workdir / "mnt"
    mountpoint.mkdir(parents=True, exist_ok=True)
    _run([*argv, str(mountpoint)])
    try:
        yield mountpoint
    finally:
        _unmount(mountpoint)


@contextlib.contextmanager
def loop_image(kind: str, workdir: Path, size_mb: int, mkfs: Sequence[str]) -> Iterator[Mounted]:
    """Make a sparse image, mkfs it, attach a loop device, mount it; undo all on exit."""
    losetup = require_tool("losetup", "util-linux")
    mount = require_tool("mount", "mount")
    workdir.mkdir(parents=True, exist_ok=True)
    image = workdir / f"{kind}.img"
    with open(image, "wb") as handle:
        handle.truncate(size_mb << 20)
    try:
        _run([*mkfs, str(image)])
        device = _run([losetup, "-f", "--show", str(image)])
        try:
            with _mounted_at(workdir, [mount, "-t", kind, device]) as path:
                yield Mounted(kind, path, device, image)
        finally:
            _run([losetup, "-d", device])
    finally:
        image.unlink(missing_ok=True)


def ext4_image(
    workdir: Path, *, size_mb: int = 64, block_size: int = 4096, options: Sequence[str] = ()
) -> contextlib.AbstractContextManager[Mounted]:
    """An ext4 filesystem; ``-m 0`` so root's reserved blocks do not hide ENOSPC."""
    mkfs = require_tool("mkfs.ext4", "e2fsprogs")
    argv = [mkfs, "-q", "-F", "-m", "0", "-b", str(block_size), *options]
    return loop_image("ext4", workdir, size_mb, argv)


def xfs_image(
    workdir: Path, *, size_mb: int = XFS_MIN_MB, options: Sequence[str] = ()
) -> contextlib.AbstractContextManager[Mounted]:
    """An xfs filesystem (at least 300 MiB: the image is sparse, so it costs little)."""
    mkfs = require_tool("mkfs.xfs", "xfsprogs")
    return loop_image("xfs", workdir, max(size_mb, XFS_MIN_MB), [mkfs, "-q", "-f", *options])


@contextlib.contextmanager
def tmpfs_mount(workdir: Path, *, size_mb: int = 16) -> Iterator[Mounted]:
    """A small tmpfs (no COLLAPSE_RANGE support: the fallback case)."""
    mount = require_tool("mount", "mount")
    argv = [mount, "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0755", "tmpfs"]
    with _mounted_at(workdir, argv) as path:
        yield Mounted("tmpfs", path)


def fill(fs: Mounted, *, leave_bytes: int, name: str = ".filler") -> Path:
    """Nearly fill ``fs``: allocate a filler so about ``leave_bytes`` stay available.

    The filler is allocated with fallocate, then topped up by writes until the free space
    is at most ``leave_bytes`` (metadata makes one fallocate imprecise). Returns its path.
    """
    path = fs.path / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        want = fs.free_bytes() - leave_bytes
        if want > 0:
            _allocate_at_most(fd, want)
        while fs.free_bytes() > leave_bytes:
            try:
                os.write(fd, b"\xff" * min(65536, fs.free_bytes() - leave_bytes))
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
            os.fsync(fd)
    finally:
        os.close(fd)
    return path


def _allocate_at_most(fd: int, want: int) -> None:
    """posix_fallocate ``want`` bytes, shrinking the request until it fits."""
    while want > 0:
        try:
            os.posix_fallocate(fd, os.fstat(fd).st_size, want)
            return
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            want -= max(want // 16, 1 << 20)
