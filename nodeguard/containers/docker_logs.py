"""Docker's container log files and settings, read from its data-root on disk.

Docker 20.10 keeps ``<root>/containers/<id>/config.v2.json`` (ID, Name,
Config.Labels, State.Running, LogPath), ``hostconfig.json`` (LogConfig: Type and
Config, the log-opts fixed when the container was created), the json-file log
``<id>-json.log`` with rotated ``<id>-json.log.1`` ... (``.N.gz`` with
compress=true), and for the ``local`` driver ``local-logs/container.log``.
dockerd owns these files: nodeguard only reads them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nodeguard.containers.layout import (
    LogFile,
    entries,
    lstat_entry,
    open_below,
    open_root,
    read_fd_capped,
)
from nodeguard.fsutil import DIR_FLAGS

MAX_JSON_BYTES = 16 * 1024 * 1024
# Drivers whose logs are files under the container's directory.
FILE_DRIVERS = ("json-file", "local")
_ROTATED_RE = re.compile(r"^\.\d+(?:\.gz)?$")


@dataclass(frozen=True)
class DockerContainer:
    """One container as dockerd left it on disk."""

    id: str
    name: str
    running: bool | None
    labels: Mapping[str, str]
    log_type: str | None
    log_opts: Mapping[str, str]
    files: tuple[LogFile, ...]
    log_path: str = ""

    @property
    def log_opts_bound(self) -> bool:
        """Whether the container's own LogConfig caps its log files.

        json-file is bounded only with a ``max-size`` other than ``-1``; ``local``
        always is (20m x 5 by default, and it refuses a negative size).
        """
        if self.log_type == "json-file":
            return self.log_opts.get("max-size", "-1") not in ("-1", "")
        return self.log_type == "local"


def scan_docker(docker_root: Path, problems: list[str]) -> list[DockerContainer] | None:
    """Every container under ``docker_root/containers``; None when Docker is absent."""
    found: list[DockerContainer] = []
    with open_root(docker_root / "containers") as fd:
        if fd is None:
            return None
        for entry in entries(fd):
            path = docker_root / "containers" / entry.name
            if entry.is_symlink() or not entry.is_dir(follow_symlinks=False):
                problems.append(f"{path}: not a container directory; ignored")
                continue
            with contextlib.suppress(FileNotFoundError):
                found.append(_scan_container(fd, entry.name, path, problems))
    return found


def _scan_container(root_fd: int, name: str, path: Path, problems: list[str]) -> DockerContainer:
    dir_fd = os.open(name, DIR_FLAGS, dir_fd=root_fd)
    try:
        config = _read_json(dir_fd, "config.v2.json", path, problems)
        host = _read_json(dir_fd, "hostconfig.json", path, problems)
        files = _json_file_logs(dir_fd, name, path) + _local_logs(dir_fd, path)
    finally:
        os.close(dir_fd)
    cid = _str(config.get("ID")) or name
    state = config.get("State")
    running = state.get("Running") if isinstance(state, dict) else None
    inner = config.get("Config")
    labels = inner.get("Labels") if isinstance(inner, dict) else None
    log_config = host.get("LogConfig")
    log_type, log_opts = None, {}
    if isinstance(log_config, dict):
        log_type = _str(log_config.get("Type")) or None
        log_opts = _str_map(log_config.get("Config"))
    return DockerContainer(
        id=cid,
        name=_str(config.get("Name")).lstrip("/") or cid[:12],
        running=running if isinstance(running, bool) else None,
        labels=_str_map(labels),
        log_type=log_type,
        log_opts=log_opts,
        files=tuple(sorted(files, key=lambda f: f.path)),
        log_path=_str(config.get("LogPath")),
    )


def _read_json(dir_fd: int, name: str, path: Path, problems: list[str]) -> dict[str, Any]:
    """A JSON object from the container directory; problems are reported, not raised."""
    try:
        fd = open_below(dir_fd, [name])
    except OSError as exc:
        problems.append(f"{path / name}: cannot open: {exc.strerror}")
        return {}
    try:
        data = load_json_object(read_fd_capped(fd, MAX_JSON_BYTES))
    except OSError as exc:
        problems.append(f"{path / name}: cannot read: {exc.strerror}")
        return {}
    except ValueError as exc:
        problems.append(f"{path / name}: {exc}")
        return {}
    finally:
        os.close(fd)
    return data


def load_json_object(raw: bytes) -> dict[str, Any]:
    """A JSON object as dockerd writes it; ValueError saying why anything else is not.

    Strict where Python's json is lenient: no NaN or Infinity (Go never writes them),
    and deep nesting is an error instead of a RecursionError.
    """
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise ValueError("not UTF-8") from None
    except RecursionError:
        raise ValueError("not readable JSON: nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"not readable JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def _no_constant(name: str) -> object:
    raise json.JSONDecodeError(f"{name} is not JSON", name, 0)


def _json_file_logs(dir_fd: int, cid: str, path: Path) -> list[LogFile]:
    live = f"{cid}-json.log"
    out: list[LogFile] = []
    for entry in entries(dir_fd):
        if entry.name != live and not (
            entry.name.startswith(live) and _ROTATED_RE.match(entry.name[len(live) :])
        ):
            continue
        st = lstat_entry(entry)
        if st is not None and stat.S_ISREG(st.st_mode):
            kind = "live" if entry.name == live else "rotated"
            out.append(LogFile(str(path / entry.name), kind, st.st_size, st.st_mtime))
    return out


def _local_logs(dir_fd: int, path: Path) -> list[LogFile]:
    try:
        fd = os.open("local-logs", DIR_FLAGS, dir_fd=dir_fd)
    except OSError:
        return []
    try:
        out: list[LogFile] = []
        for entry in entries(fd):
            st = lstat_entry(entry)
            if st is None or not stat.S_ISREG(st.st_mode):
                continue
            kind = "live" if entry.name == "container.log" else "rotated"
            full = path / "local-logs" / entry.name
            out.append(LogFile(str(full), kind, st.st_size, st.st_mtime))
        return out
    finally:
        os.close(fd)


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _str_map(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items() if isinstance(v, str | int | float)}
