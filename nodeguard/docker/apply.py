"""``docker-config --check | --diff | --apply``: compare, show and write daemon.json.

Exit codes: 0 the file matches (or was updated), 1 it differs (--check, --diff) or an
action failed (validation gave no answer, the write or the restart failed), 2 the
file, the config or the command line is unusable; on 2 nothing was written.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from nodeguard.config.model import DockerConfig
from nodeguard.docker import inventory
from nodeguard.docker.daemonjson import (
    BOM,
    OPTS_KEY,
    Change,
    Current,
    DaemonJsonError,
    Plan,
    plan,
    read_current,
)
from nodeguard.docker.dockerd import ValidatorFailed, Verdict, keys_named
from nodeguard.docker.jsontext import parse
from nodeguard.docker.restart import RestartResult
from nodeguard.fsutil import atomic_write

EXIT_OK, EXIT_DIFFERS, EXIT_FAILED, EXIT_USAGE = 0, 1, 1, 2
BACKUP_SUFFIX = ".nodeguard-bak"


@dataclass(frozen=True)
class World:
    """Everything outside the process that these commands touch, injectable for tests."""

    out: TextIO
    err: TextIO
    docker_root: Path
    validate: Callable[[bytes], Verdict] | None  # None: no dockerd to ask
    restart: Callable[[str], RestartResult]


class _Refused(Exception):
    """Stop with this exit code after the message was printed."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def run(mode: str, config: DockerConfig, world: World, *, restart: bool = False) -> int:
    """Dispatch one mode (check, diff, apply) and turn refusals into exit codes."""
    try:
        if mode == "check":
            return _check(config, world)
        if mode == "diff":
            return _diff(config, world)
        return _apply(config, world, restart=restart or config.restart)
    except DaemonJsonError as exc:
        print(f"nodeguard: {exc}", file=world.err)
        print("nodeguard: daemon.json was not changed", file=world.err)
        return EXIT_USAGE
    except _Refused as exc:
        return exc.code


def _plan(config: DockerConfig) -> Plan:
    return plan(read_current(config.daemon_json), config.log_driver, dict(config.log_opts))


def _check(config: DockerConfig, world: World) -> int:
    result = _plan(config)
    path = config.daemon_json
    if result.changed:
        what = "differs from" if result.current.exists else "does not exist; it needs"
        print(f"{path} {what} nodeguard's log settings:", file=world.out)
        _print_changes(result.changes, world.out)
        return EXIT_DIFFERS
    _validate(result.current, result.current.raw, world)
    print(f"{path} matches nodeguard's log settings ({_summary(config)})", file=world.out)
    return EXIT_OK


def _diff(config: DockerConfig, world: World) -> int:
    result = _plan(config)
    if not result.changed:
        print(f"nodeguard: {config.daemon_json}: no changes", file=world.err)
        return EXIT_OK
    _validate(result.current, result.candidate, world)
    world.out.writelines(_unified(result))
    return EXIT_DIFFERS


def _unified(result: Plan) -> list[str]:
    path = str(result.current.path)
    old = result.current.text.splitlines(keepends=True)
    new = result.candidate.decode("utf-8").removeprefix(BOM).splitlines(keepends=True)
    lines = difflib.unified_diff(
        old, new, path if result.current.exists else "/dev/null", f"{path} (nodeguard)"
    )
    return [
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines
    ]


def _apply(config: DockerConfig, world: World, *, restart: bool) -> int:
    path = config.daemon_json
    if not config.manage:
        print(
            f"nodeguard: docker.manage is false: nodeguard does not change {path} "
            "(set docker.manage: true to allow --apply)",
            file=world.err,
        )
        return EXIT_USAGE
    result = _plan(config)
    if not result.changed:
        print(f"{path} already has nodeguard's log settings: nothing changed", file=world.out)
        return EXIT_OK
    _validate(result.current, result.candidate, world)
    _write(result, world)
    print(f"updated {path}:", file=world.out)
    _print_changes(result.changes, world.out)
    if result.current.exists:
        print(f"previous file kept as {_backup_path(path)}", file=world.out)
    return _after_write(config, result, world, restart=restart)


def _write(result: Plan, world: World) -> None:
    """Back up the old file, then replace it atomically, keeping its mode and owner."""
    current = result.current
    if read_current(current.path).raw != current.raw:
        print(
            f"nodeguard: {current.path} changed while nodeguard read it; try again", file=world.err
        )
        raise _Refused(EXIT_FAILED)
    try:
        if current.exists:
            info = current.path.stat()
            owner = (info.st_uid, info.st_gid)
            atomic_write(
                _backup_path(current.path), current.raw, mode=info.st_mode & 0o7777, owner=owner
            )
        atomic_write(current.path, result.candidate)
    except OSError as exc:
        print(f"nodeguard: could not write {current.path}: {exc}", file=world.err)
        raise _Refused(EXIT_FAILED) from None


def _backup_path(path: Path) -> Path:
    return path.with_name(path.name + BACKUP_SUFFIX)


def _after_write(config: DockerConfig, result: Plan, world: World, *, restart: bool) -> int:
    code = EXIT_OK
    if restart:
        outcome = world.restart(config.restart_command)
        if outcome.ok:
            print(f"restarted Docker ({config.restart_command})", file=world.out)
        else:
            print(f"nodeguard: restarting Docker failed: {outcome.detail}", file=world.err)
            code = EXIT_FAILED
    else:
        print(
            "Docker was not restarted: the new settings apply after a restart "
            "(nodeguard docker-config --apply --restart, or systemctl restart docker), "
            "and then only to containers created afterwards",
            file=world.out,
        )
    driver, opts = _effective(result.candidate)
    for line in inventory.report_lines(inventory.scan(world.docker_root), driver, opts):
        print(line, file=world.out)
    return code


def _effective(candidate: bytes) -> tuple[str, dict[str, str]]:
    """The daemon-wide log-driver and log-opts that the written file sets."""
    document = json.loads(candidate.decode("utf-8").removeprefix(BOM))
    opts = document.get(OPTS_KEY) or {}
    return str(document.get("log-driver", "json-file")), {str(k): str(v) for k, v in opts.items()}


def _validate(current: Current, data: bytes, world: World) -> None:
    """Ask dockerd about ``data`` (when there is a dockerd); raise on rejection."""
    if world.validate is None or not data.strip():
        return
    try:
        verdict = world.validate(data)
    except ValidatorFailed as exc:
        print(f"nodeguard: could not validate with dockerd: {exc}", file=world.err)
        print("nodeguard: daemon.json was not changed", file=world.err)
        raise _Refused(EXIT_FAILED) from None
    if not verdict.ok:
        raise _rejection(current, data, verdict)


def _rejection(current: Current, data: bytes, verdict: Verdict) -> DaemonJsonError:
    """dockerd's reason, placed at the key it names (in the file as it is now)."""
    reason = f"dockerd rejects it ({verdict.method}): {verdict.reason}"
    if current.bom and "invalid character" in verdict.reason:
        reason += (
            "; the file starts with a UTF-8 byte-order mark, which dockerd before 23.0 refuses"
        )
    try:
        candidate = parse(data.decode("utf-8").removeprefix(BOM))
    except ValueError:
        return DaemonJsonError(current.path, reason, 1, 1)
    named = keys_named(verdict.reason, [m.key for m in candidate.members])
    found = current.root.member(named[0]) if named and current.root else None
    if found is None:
        return DaemonJsonError(current.path, reason, 1, 1)
    return DaemonJsonError(current.path, reason, *current.where(found.key_start))


def _print_changes(changes: tuple[Change, ...], out: TextIO) -> None:
    for change in changes:
        print(f"  {change.key}: {change.old or '(missing)'} -> {change.new}", file=out)


def _summary(config: DockerConfig) -> str:
    opts = " ".join(f"{k}={v}" for k, v in config.log_opts.items())
    return f"log-driver {config.log_driver}" + (f", log-opts {opts}" if opts else "")
