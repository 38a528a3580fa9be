"""The Prometheus textfile collector: nodeguard's metrics in a ``.prom`` file.

Written through the folder's directory fd, never by path: the folder is opened one
component at a time as the rotation scan opens a literal path (a symlink only if root
made it in a folder only root can change) and must be, on that fd, owned by root (or
us) and not writable by group or others. The file is
created under a unique hidden temp name in that fd, fsynced, renamed over the old one
within the same fd (renameat), and the folder fsynced. A folder swapped for a symlink,
or one anybody can write, cannot redirect the write: it is refused with an event naming
the path. Parent folders may belong to another user (Debian's /var/lib/prometheus is
the prometheus user's): such a user can only rename entries of their own folder, and
none of those is a root-owned folder of their making. Mode 0644, no timestamps. The
folder must exist: node_exporter's package creates it; nodeguard does not guess where a
collector would look.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from nodeguard.alerts.metrics import render_text
from nodeguard.alerts.registry import Batch, DeliveryError
from nodeguard.config.model import Config
from nodeguard.fsutil import create_durable, unique_temp_name
from nodeguard.rotation import scan
from nodeguard.world import World


class TextfileRefused(Exception):
    """The textfile's folder is not safe to write into (the message names the path)."""


def send(batch: Batch, config: Config, world: World) -> None:
    path = config.alerts.textfile
    if path is None:
        return
    try:
        with open_folder(path.parent, world.euid) as dir_fd:
            write_at(dir_fd, path.name, render_text(batch.snapshot))
    except TextfileRefused as exc:
        raise DeliveryError(
            f"{exc}; textfile {path} not written", retry=False, config=True
        ) from None
    except OSError as exc:
        raise DeliveryError(f"{path}: {exc.strerror or exc}") from None


@contextlib.contextmanager
def open_folder(folder: Path, euid: int) -> Iterator[int]:
    """The checked folder's fd (TextfileRefused naming the path when it is unsafe).

    Opened component by component as the rotation scan opens a literal path
    (:func:`nodeguard.rotation.scan.open_path`): no symlink followed unless root made it
    in a folder only root can change, so nothing swapped in on the way redirects it.
    """
    if not folder.is_dir() and not folder.is_symlink():
        raise TextfileRefused(
            f"{folder} does not exist (node_exporter's textfile collector folder)"
        )
    problems: list[str] = []
    directory = scan.open_path(
        os.path.abspath(folder),
        lambda path, kind, why: problems.append(scan.describe(path, kind, why)),
    )
    if directory is None:
        why = problems[0] if problems else f"{folder}: cannot be opened"
        raise TextfileRefused(f"unsafe textfile folder: {why}")
    try:
        _check_fd(directory.fd, folder, euid)
        yield directory.fd
    finally:
        os.close(directory.fd)


def _check_fd(fd: int, folder: Path, euid: int) -> None:
    st = os.fstat(fd)
    if st.st_uid not in (0, euid):
        raise TextfileRefused(f"unsafe textfile folder: {folder}: owned by uid {st.st_uid}")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        mode = stat.S_IMODE(st.st_mode)
        raise TextfileRefused(
            f"unsafe textfile folder: {folder}: writable by group or others (mode {mode:o})"
        )


def write_at(dir_fd: int, name: str, data: bytes) -> None:
    """Replace ``name`` in ``dir_fd`` with ``data``: temp, fsync, renameat, fsync folder."""
    tmp = unique_temp_name(name)
    create_durable(dir_fd, tmp, data, 0o644)  # removed again if it fails
    try:
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise
    os.fsync(dir_fd)
