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
from types import MappingProxyType
from typing import Any

from nodeguard.config import dockerrules
from nodeguard.config.dockerrules import LogBound, log_bound
from nodeguard.containers.layout import (
    LogFile,
    entries,
    lstat_entry,
    open_below,
    open_root,
    read_regular_capped,
)
from nodeguard.fsutil import DIR_FLAGS
from nodeguard.progress import NO_PROGRESS, Progress

MAX_JSON_BYTES = 4 * 1024 * 1024  # dockerd writes a few KiB per file
# Drivers whose logs are files under the container's directory.
FILE_DRIVERS = tuple(sorted(dockerrules.FILE_DRIVERS))
_ROTATED_RE = re.compile(r"\.[0-9]+(?:\.gz)?")


@dataclass(frozen=True)
class DockerContainer:
    """One container as dockerd left it on disk.

    ``problems`` say why its config.v2.json or hostconfig.json could not be used; then
    the values read from that file are unknown (``log_type`` None for hostconfig).
    """

    id: str
    name: str
    running: bool | None
    labels: Mapping[str, str]
    log_type: str | None
    log_opts: Mapping[str, str]
    files: tuple[LogFile, ...]
    log_path: str = ""
    problems: tuple[str, ...] = ()

    @property
    def log_bound(self) -> LogBound | None:
        """What its LogConfig does to its logs, as Docker reads it (None: unknown)."""
        if self.log_type is None:
            return None
        return log_bound(self.log_type, self.log_opts)


def scan_docker(
    docker_root: Path, problems: list[str], progress: Progress = NO_PROGRESS
) -> list[DockerContainer] | None:
    """Every container under ``docker_root/containers``; None when Docker is absent."""
    folder = docker_root / "containers"
    try:
        if not stat.S_ISDIR(os.stat(folder).st_mode):
            problems.append(f"{folder}: not a directory; no container can be read")
            return None
    except FileNotFoundError:
        return None
    except OSError as exc:
        problems.append(f"{folder}: cannot read: {exc.strerror}")
        return None
    found: list[DockerContainer] = []
    with open_root(folder) as fd:
        if fd is None:
            return None
        for entry in entries(fd):
            progress.update(docker_containers=len(found))
            path = folder / entry.name
            if entry.is_symlink() or not entry.is_dir(follow_symlinks=False):
                problems.append(f"{path}: not a container directory; ignored")
                continue
            with contextlib.suppress(FileNotFoundError):
                container = _scan_container(fd, entry.name, path)
                problems.extend(container.problems)
                found.append(container)
    return found


def _scan_container(root_fd: int, name: str, path: Path) -> DockerContainer:
    problems: list[str] = []
    dir_fd = os.open(name, DIR_FLAGS, dir_fd=root_fd)
    try:
        config = _read_json(dir_fd, "config.v2.json", path, problems)
        host = _read_json(dir_fd, "hostconfig.json", path, problems)
        files = _json_file_logs(dir_fd, name, path) + _local_logs(dir_fd, path)
    finally:
        os.close(dir_fd)
    fields = _Fields(path / "config.v2.json", problems)
    cid = fields.text(config, "ID") or name
    state = fields.mapping(config, "State")
    running = fields.flag(state, "State.Running")
    inner = fields.mapping(config, "Config")
    labels = fields.strings(inner, "Config.Labels")
    container_name = fields.text(config, "Name").lstrip("/") or cid[:12]
    log_path = fields.text(config, "LogPath")
    log_type, log_opts = _log_config(host, path / "hostconfig.json", problems)
    return DockerContainer(
        id=cid,
        name=container_name,
        running=running,
        labels=labels,
        log_type=log_type,
        log_opts=log_opts,
        files=tuple(sorted(files, key=lambda f: f.path)),
        log_path=log_path,
        problems=tuple(problems),
    )


def _log_config(
    host: dict[str, Any] | None, path: Path, problems: list[str]
) -> tuple[str | None, Mapping[str, str]]:
    """LogConfig's Type and Config; (None, {}) when they cannot be trusted."""
    if host is None:
        return None, {}
    before = len(problems)
    fields = _Fields(path, problems)
    log_config = fields.mapping(host, "LogConfig", required=True)
    log_type = fields.text(log_config, "LogConfig.Type", required=True)
    opts = fields.strings(log_config, "LogConfig.Config")
    if len(problems) > before:
        return None, {}
    return log_type, opts


@dataclass(frozen=True)
class _Fields:
    """Typed access to a dockerd JSON file; a value of the wrong type is a problem."""

    path: Path
    problems: list[str]

    def _get(self, parent: Mapping[str, Any] | None, key: str, required: bool) -> Any:
        if parent is None:
            return None
        value = parent.get(key.rsplit(".", 1)[-1])
        if value is None and required:
            self.problems.append(f"{self.path}: {key} is missing")
        return value

    def _wrong(self, key: str, value: Any, expected: str) -> None:
        self.problems.append(f"{self.path}: {key} is {_json_type(value)}, not {expected}")

    def text(self, parent: Mapping[str, Any] | None, key: str, *, required: bool = False) -> str:
        value = self._get(parent, key, required)
        if value is None or isinstance(value, str):
            return value or ""
        self._wrong(key, value, "a string")
        return ""

    def flag(self, parent: Mapping[str, Any] | None, key: str) -> bool | None:
        value = self._get(parent, key, False)
        if value is None or isinstance(value, bool):
            return value
        self._wrong(key, value, "true or false")
        return None

    def mapping(
        self, parent: Mapping[str, Any] | None, key: str, *, required: bool = False
    ) -> dict[str, Any] | None:
        value = self._get(parent, key, required)
        if value is None or isinstance(value, dict):
            return value
        self._wrong(key, value, "an object")
        return None

    def strings(self, parent: Mapping[str, Any] | None, key: str) -> Mapping[str, str]:
        value = self.mapping(parent, key)
        if not value:
            return MappingProxyType({})
        bad = next((k for k, v in value.items() if not isinstance(v, str)), None)
        if bad is not None:
            self._wrong(f"{key}.{bad}", value[bad], "a string")
            return MappingProxyType({})
        return MappingProxyType(dict(value))


_JSON_TYPES: tuple[tuple[Any, str], ...] = (
    (bool, "a boolean"),
    (int | float, "a number"),
    (str, "a string"),
    (list, "an array"),
    (dict, "an object"),
)


def _json_type(value: Any) -> str:
    return next((name for kind, name in _JSON_TYPES if isinstance(value, kind)), "null")


def _read_json(dir_fd: int, name: str, path: Path, problems: list[str]) -> dict[str, Any] | None:
    """A JSON object from the container directory; None (and a problem) if unusable."""
    try:
        fd = open_below(dir_fd, [name])
    except OSError as exc:
        problems.append(f"{path / name}: cannot open: {exc.strerror}")
        return None
    try:
        return load_json_object(read_regular_capped(fd, MAX_JSON_BYTES))
    except OSError as exc:
        problems.append(f"{path / name}: cannot read: {exc.strerror}")
        return None
    except ValueError as exc:
        problems.append(f"{path / name}: {exc}")
        return None
    finally:
        os.close(fd)


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
            entry.name.startswith(live) and _ROTATED_RE.fullmatch(entry.name[len(live) :])
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
