"""``docker-config --check | --diff | --apply``: compare, show and write daemon.json.

:func:`docker_config` is the entry point the CLI and the daemon call: it returns the
run's events (:class:`~nodeguard.docker.outcome.DockerKind`) and prints nothing.
Everything is read first (daemon.json, its metadata, the containers' files) and
dockerd's verdict taken; the write comes last, so nothing read can fail after it.
Exit codes: 0 the file matches (or was updated), 1 it differs (--check, --diff) or an
action failed (validation gave no answer, the write or the restart failed), 2 the file,
the config or the request is unusable; on 2 nothing was written.
"""

from __future__ import annotations

import difflib
import functools
import json
import logging
from dataclasses import dataclass
from typing import Any

from nodeguard.config.model import Config, DockerConfig
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
from nodeguard.docker.dockerd import ValidatorFailed, Verdict, find_dockerd, keys_named, validate
from nodeguard.docker.jsontext import parse_document
from nodeguard.docker.outcome import DockerKind, DockerOptions, DockerResult, Mode, Validator
from nodeguard.docker.restart import restart_docker
from nodeguard.docker.write import FileMeta, read_meta, replace_file
from nodeguard.events import Event, Severity, Source, log_event
from nodeguard.world import World

BACKUP_SUFFIX = ".nodeguard-bak"
NEW_FILE = FileMeta(0o644, -1, -1, {})  # a created daemon.json: 0644, owned by us
log = logging.getLogger("nodeguard.docker")

# Logged as they happen: what was done (INFO), refused (WARNING) or failed (ERROR).
_LOGGED = {
    DockerKind.UPDATED,
    DockerKind.RESTARTED,
    DockerKind.RESTART_FAILED,
    DockerKind.UNUSABLE,
    DockerKind.NOT_MANAGED,
    DockerKind.NO_VERDICT,
    DockerKind.CHANGED_MEANWHILE,
    DockerKind.WRITE_FAILED,
}


class _Stop(Exception):
    """End the run with this event (already the last word: nothing more happens)."""

    def __init__(self, event: Event) -> None:
        super().__init__(event.reason)
        self.event = event


@dataclass(frozen=True)
class _Run:
    """One run's inputs: the settings, the options, the world, and its dockerd check."""

    config: Config
    options: DockerOptions
    world: World

    @property
    def settings(self) -> DockerConfig:
        return self.config.docker

    @functools.cached_property
    def validator(self) -> Validator | None:
        if self.options.validator is not None:
            return self.options.validator
        binary = find_dockerd() if self.settings.validate_with_dockerd else None
        return functools.partial(validate, binary, world=self.world) if binary else None


def docker_config(config: Config, options: DockerOptions, world: World) -> DockerResult:
    """Check, diff or apply nodeguard's log settings in daemon.json; return the events."""
    run = _Run(config, options, world)
    events: list[Event] = []
    try:
        if options.mode is Mode.CHECK:
            events += _check(run)
        elif options.mode is Mode.DIFF:
            events += _diff(run)
        else:
            events += _apply(run)
    except DaemonJsonError as exc:
        events.append(_event(DockerKind.UNUSABLE, run, Severity.ERROR, str(exc)))
    except _Stop as stop:
        events.append(stop.event)
    for event in events:
        if event.kind in _LOGGED:
            log_event(log, event)
    return DockerResult(options.mode, tuple(events))


def _event(
    kind: DockerKind,
    run: _Run,
    severity: Severity,
    reason: str,
    facts: dict[str, Any] | None = None,
) -> Event:
    subject = str(run.settings.daemon_json)
    return Event(Source.DOCKER, kind, subject, severity, reason, facts or {}, run.world.now())


def _plan(settings: DockerConfig) -> Plan:
    return plan(read_current(settings.daemon_json), settings.log_driver, dict(settings.log_opts))


def _changes(changes: tuple[Change, ...]) -> list[dict[str, str | None]]:
    return [{"key": c.key, "old": c.old, "new": c.new} for c in changes]


def _check(run: _Run) -> list[Event]:
    result = _plan(run.settings)
    path = run.settings.daemon_json
    if result.changed:
        what = "differs from" if result.current.exists else "does not exist; it needs"
        reason = f"{path} {what} nodeguard's log settings:"
        facts = {"changes": _changes(result.changes), "exists": result.current.exists}
        return [_event(DockerKind.DIFFERS, run, Severity.WARNING, reason, facts)]
    _validate(run, result.current, result.current.raw)
    reason = f"{path} matches nodeguard's log settings ({_summary(run.settings)})"
    return [_event(DockerKind.MATCHES, run, Severity.INFO, reason)]


def _diff(run: _Run) -> list[Event]:
    result = _plan(run.settings)
    if not result.changed:
        reason = f"{run.settings.daemon_json}: no changes"
        return [_event(DockerKind.NO_CHANGES, run, Severity.INFO, reason)]
    _validate(run, result.current, result.candidate)
    diff = "".join(_unified(result))
    facts = {"diff": diff, "changes": _changes(result.changes)}
    reason = f"{run.settings.daemon_json} differs from nodeguard's log settings"
    return [_event(DockerKind.DIFF, run, Severity.WARNING, reason, facts)]


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


def _apply(run: _Run) -> list[Event]:
    path = run.settings.daemon_json
    if not run.settings.manage:
        reason = (
            f"docker.manage is false: nodeguard does not change {path} "
            "(set docker.manage: true to allow --apply)"
        )
        return [_event(DockerKind.NOT_MANAGED, run, Severity.WARNING, reason)]
    result = _plan(run.settings)
    if not result.changed:
        reason = f"{path} already has nodeguard's log settings: nothing changed"
        return [_event(DockerKind.UP_TO_DATE, run, Severity.INFO, reason)]
    # Read everything before writing: the file's metadata and the containers' settings.
    meta = _meta(run, result.current)
    driver, opts = _effective(result.candidate)
    containers = inventory.report_events(
        inventory.scan(run.config.containers.docker_root), driver, opts
    )
    _validate(run, result.current, result.candidate)
    backup = _write(run, result, meta)
    facts = {"changes": _changes(result.changes), "backup": str(backup) if backup else None}
    events = [_event(DockerKind.UPDATED, run, Severity.INFO, f"updated {path}:", facts)]
    events += _after_write(run)
    return events + containers


def _meta(run: _Run, current: Current) -> FileMeta | None:
    if not current.exists:
        return None
    try:
        return read_meta(current.path)
    except OSError as exc:
        reason = f"could not read {current.path}'s attributes: {exc.strerror or exc}"
        raise _Stop(_event(DockerKind.WRITE_FAILED, run, Severity.ERROR, reason)) from None


def _write(run: _Run, result: Plan, meta: FileMeta | None) -> str | None:
    """Back up the old file, then replace it atomically with its mode, owner and xattrs."""
    current = result.current
    try:
        unchanged = read_current(current.path).raw == current.raw
    except DaemonJsonError:
        unchanged = False
    if not unchanged:
        reason = f"{current.path} changed while nodeguard read it; try again"
        raise _Stop(_event(DockerKind.CHANGED_MEANWHILE, run, Severity.WARNING, reason))
    backup = current.path.with_name(current.path.name + BACKUP_SUFFIX)
    try:
        if meta is not None:
            replace_file(backup, current.raw, meta)
        replace_file(current.path, result.candidate, meta or NEW_FILE)
    except OSError as exc:
        reason = f"could not write {current.path}: {exc.strerror or exc}"
        raise _Stop(_event(DockerKind.WRITE_FAILED, run, Severity.ERROR, reason)) from None
    return str(backup) if meta is not None else None


def _after_write(run: _Run) -> list[Event]:
    command = run.settings.restart_command
    if not (run.options.restart or run.settings.restart):
        reason = (
            "Docker was not restarted: the new settings apply after a restart "
            "(nodeguard docker-config --apply --restart, or systemctl restart docker), "
            "and then only to containers created afterwards"
        )
        return [_event(DockerKind.RESTART_NEEDED, run, Severity.INFO, reason)]
    outcome = restart_docker(command, run.world)
    if outcome.ok:
        reason = f"restarted Docker ({command})"
        return [_event(DockerKind.RESTARTED, run, Severity.INFO, reason)]
    reason = f"restarting Docker failed: {outcome.detail}"
    return [_event(DockerKind.RESTART_FAILED, run, Severity.ERROR, reason)]


def _effective(candidate: bytes) -> tuple[str, dict[str, str]]:
    """The daemon-wide log-driver and log-opts that the written file sets."""
    document = json.loads(candidate.decode("utf-8").removeprefix(BOM))
    opts = document.get(OPTS_KEY) or {}
    return str(document.get("log-driver", "json-file")), {str(k): str(v) for k, v in opts.items()}


def _validate(run: _Run, current: Current, data: bytes) -> None:
    """Ask dockerd about ``data`` (when there is a dockerd); stop on rejection."""
    validator = run.validator
    if validator is None or not data.strip():
        return
    try:
        verdict = validator(data)
    except ValidatorFailed as exc:
        reason = f"could not validate with dockerd: {exc}"
        raise _Stop(_event(DockerKind.NO_VERDICT, run, Severity.ERROR, reason)) from None
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
        candidate = parse_document(data.decode("utf-8").removeprefix(BOM), full=())
    except ValueError:
        return DaemonJsonError(current.path, reason, 1, 1)
    named = keys_named(verdict.reason, [m.key for m in candidate.members])
    found = current.root.member(named[0]) if named and current.root else None
    if found is None:
        return DaemonJsonError(current.path, reason, 1, 1)
    return DaemonJsonError(current.path, reason, *current.where(found.key_start))


def _summary(settings: DockerConfig) -> str:
    opts = " ".join(f"{k}={v}" for k, v in settings.log_opts.items())
    return f"log-driver {settings.log_driver}" + (f", log-opts {opts}" if opts else "")
