"""The one configuration schema.

Every key nodeguard reads is declared here once, with its type, default,
description and example. The loader validates against it, the defaults come
from it, and ``nodeguard config sample`` and docs/configuration.md are
generated from it, so none of them can drift from the others.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

from nodeguard.config import model
from nodeguard.config.dockerrules import validate_log_config
from nodeguard.config.fields import (
    REQUIRED,
    Field,
    Kind,
    Section,
    lookup_group,
    lookup_user,
    parse_scalar,
)
from nodeguard.config.sections import ALERTS, DAEMON, DISK, JOURNAL

__all__ = ["REQUIRED", "ROOT", "Field", "Kind", "Section", "parse_scalar"]


# --- cross-field checks --------------------------------------------------------


def _check_create(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    errors: list[tuple[str, str]] = []
    owner, group = values.get("owner"), values.get("group")
    if owner is not None:
        try:
            lookup_user(owner)
        except ValueError as exc:
            errors.append(("owner", str(exc)))
    if group is not None:
        try:
            lookup_group(group)
        except ValueError as exc:
            errors.append(("group", str(exc)))
    return errors


def _check_policy(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    errors: list[tuple[str, str]] = []
    if values.get("delay_compress") and values.get("compress") == "none":
        errors.append(("delay_compress", "needs compress: gzip"))
    if values.get("create") is not None and values.get("method") != "rename":
        errors.append(("create", "applies only to method: rename"))
    olddir = values.get("olddir")
    if olddir is not None and (".." in olddir.split("/") or "\0" in olddir):
        errors.append(("olddir", f"{olddir!r} must not contain '..'"))
    return errors


def _check_docker(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    driver = values.get("log_driver")
    opts = values.get("log_opts")
    problems = _restart_command_problems(values.get("restart_command"))
    if not isinstance(driver, str) or opts is None:
        return problems
    return problems + [("log_opts", msg) for msg in validate_log_config(driver, dict(opts))]


def _restart_command_problems(command: object) -> list[tuple[str, str]]:
    """``restart_command`` must split into a non-empty argv (it runs without a shell)."""
    if not isinstance(command, str):
        return []
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        return [("restart_command", f"cannot be split into words: {exc}")]
    return [] if argv else [("restart_command", "must name a command")]


# --- the schema itself -----------------------------------------------------------

CREATE = Section(
    name="create",
    doc="Mode and ownership for the new live file after a rename. Unset keys copy the old file's.",
    build=model.CreateSpec,
    check=_check_create,
    fields=(
        Field(
            "mode",
            Kind.MODE,
            "Permission bits, as a quoted octal string.",
            None,
            example="0640",
            nullable=True,
        ),
        Field(
            "owner",
            Kind.STR,
            "User name that owns the new file.",
            None,
            example="root",
            nullable=True,
        ),
        Field("group", Kind.STR, "Group name of the new file.", None, example="adm", nullable=True),
    ),
)

POLICY = Section(
    name="policy",
    doc="A retention policy: the files it covers and how they are rotated and kept.",
    build=model.Policy,
    check=_check_policy,
    fields=(
        Field(
            "name", Kind.STR, "Unique name, used in reports, metrics and `--policy`.", example="app"
        ),
        Field(
            "paths",
            Kind.GLOBS,
            "Absolute paths or shell globs (`*`, `?`, `[...]`) of the live log files. "
            "Symlinks are never followed.",
            example=["/var/log/app/*.log"],
        ),
        Field(
            "max_size",
            Kind.SIZE,
            "Rotate the live file when it reaches this size.",
            "10Mi",
            minimum=1,
        ),
        Field(
            "max_files",
            Kind.INT,
            "Files kept per log INCLUDING the live one (like Docker's max-file and "
            "kubelet's containerLogMaxFiles): 5 keeps the live file and 4 rotated ones.",
            5,
            minimum=1,
        ),
        Field(
            "max_age",
            Kind.DURATION,
            "Remove rotated files whose last change is older than this. Unset keeps "
            "them until max_files pushes them out.",
            None,
            example="14d",
            nullable=True,
        ),
        Field(
            "compress",
            Kind.CHOICE,
            "Compression of rotated files.",
            "gzip",
            choices=("gzip", "none"),
        ),
        Field(
            "compress_level",
            Kind.INT,
            "gzip level, 1 (fastest) to 9 (smallest).",
            6,
            minimum=1,
            maximum=9,
        ),
        Field(
            "delay_compress",
            Kind.BOOL,
            "Leave the newest rotated file uncompressed until the next rotation, as "
            "kubelet does, so shippers can finish reading it.",
            False,
        ),
        Field(
            "method",
            Kind.CHOICE,
            "`rename`: move the live file aside and create a new one (the writer must "
            "reopen: use postrotate). `copytruncate`: copy, then truncate in place, for "
            "writers that cannot reopen; lines written between copy and truncate are "
            "lost, as with logrotate. `lossless`: for writers that cannot reopen and "
            "append with O_APPEND: move a block-aligned prefix out with collapse range "
            "(ext4, xfs), keeping the tail live; no byte lost or duplicated. Where the "
            "filesystem cannot collapse (tmpfs, ...) it falls back to copytruncate and "
            "says so in the report. Needs state_dir for its intent records.",
            "rename",
            choices=("rename", "copytruncate", "lossless"),
        ),
        Field(
            "missing_ok",
            Kind.BOOL,
            "A literal path (no glob) that does not exist is not an error.",
            True,
        ),
        Field("not_if_empty", Kind.BOOL, "Never rotate an empty file.", True),
        Field(
            "create",
            Kind.SECTION,
            CREATE.doc,
            None,
            nullable=True,
            section=CREATE,
            example={"mode": "0640", "owner": "root", "group": "adm"},
        ),
        Field(
            "postrotate",
            Kind.STR,
            "Shell command run after the files of this policy were renamed, e.g. to "
            "make the writer reopen its log. `$1` is the rotated log's path. A non-zero "
            "exit is reported as a failure.",
            None,
            nullable=True,
            example="systemctl kill -s HUP rsyslog.service",
        ),
        Field(
            "postrotate_timeout",
            Kind.DURATION,
            "Time allowed for postrotate, at most 1h (the pass waits for it under the "
            "lock). Only the hook's exit status counts: a background child it leaves "
            "holding its output is not waited for.",
            "60s",
            minimum=1,
            maximum=3600,
        ),
        Field(
            "olddir",
            Kind.STR,
            "Directory for rotated files: absolute, or relative to the log's directory. "
            "It must be on the same filesystem and is never created through a symlink.",
            None,
            nullable=True,
            example="old",
        ),
        Field(
            "su",
            Kind.USER_GROUP,
            "Work as this user and group. Required to rotate in a directory that group "
            "or others can write (refused otherwise, as logrotate does).",
            None,
            nullable=True,
            example=["www-data", "adm"],
        ),
        Field(
            "allow_hardlinks",
            Kind.BOOL,
            "Rotate files that have more than one hard link (refused by default: the "
            "other name may be outside this policy).",
            False,
        ),
        Field(
            "take_over_logrotate",
            Kind.BOOL,
            "Rotate files that a logrotate config on this host also covers. By default "
            "they are reported and skipped, so two rotators never race on one file.",
            False,
        ),
    ),
)

# A pod's log directory exists before its first container starts (image pulls can take
# long); removing it sooner would race kubelet.
MIN_ORPHAN_AGE = 3600


def _check_containers(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    after = values.get("remove_orphaned_pod_logs_after")
    if after is not None and after < MIN_ORPHAN_AGE:
        return [("remove_orphaned_pod_logs_after", f"must be at least 1h (got {after}s)")]
    return []


CONTAINERS = Section(
    name="containers",
    doc="Where the node keeps container logs (kubelet's and Docker's layouts).",
    build=model.ContainersConfig,
    check=_check_containers,
    fields=(
        Field("pods_dir", Kind.PATH, "kubelet's pod log root.", "/var/log/pods"),
        Field(
            "containers_dir",
            Kind.PATH,
            "kubelet's symlinks to the pod logs.",
            "/var/log/containers",
        ),
        Field("docker_root", Kind.PATH, "Docker's data-root.", "/var/lib/docker"),
        Field(
            "kubelet_config",
            Kind.PATH,
            "kubelet's KubeletConfiguration file.",
            "/var/lib/kubelet/config.yaml",
        ),
        Field(
            "remove_orphaned_pod_logs_after",
            Kind.DURATION,
            "Let `nodeguard containers --apply` remove a pod log directory that no "
            "container refers to any more once nothing in it changed for this long. "
            "Null never removes them (they are only reported). At least 1h.",
            None,
            example="7d",
            nullable=True,
        ),
    ),
)

DOCKER = Section(
    name="docker",
    doc="Docker's daemon.json logging keys, which nodeguard can check and rewrite.",
    build=model.DockerConfig,
    check=_check_docker,
    fields=(
        Field(
            "daemon_json",
            Kind.PATH,
            "Docker's daemon configuration file.",
            "/etc/docker/daemon.json",
        ),
        Field(
            "manage",
            Kind.BOOL,
            "Whether `nodeguard docker-config --apply` may rewrite the file.",
            True,
        ),
        Field("log_driver", Kind.STR, "Value written to `log-driver`.", "json-file"),
        Field(
            "log_opts",
            Kind.STR_MAP,
            "Values written to `log-opts` (always as JSON strings).",
            {"max-size": "10m", "max-file": "5"},
        ),
        Field(
            "restart",
            Kind.BOOL,
            "Restart docker.service after a change (only new containers pick it up).",
            False,
        ),
        Field(
            "restart_command",
            Kind.STR,
            "Command (split like a shell would, run without one) that restarts Docker "
            "for `restart: true` or `docker-config --apply --restart`.",
            "systemctl restart docker.service",
        ),
        Field(
            "validate_with_dockerd",
            Kind.BOOL,
            "Before writing daemon.json, check the new file with the installed dockerd "
            "(`--validate` on Docker 23+, an unprivileged dry start on older ones).",
            True,
        ),
    ),
)

ROOT = Section(
    name="nodeguard",
    doc="Top level of /etc/nodeguard/nodeguard.yaml and the drop-ins in conf.d/.",
    build=model.Config,
    fields=(
        Field("state_dir", Kind.PATH, "State, locks and intent records.", "/var/lib/nodeguard"),
        Field("interval", Kind.DURATION, "Time between full rotation passes.", "1h"),
        Field(
            "logrotate_config",
            Kind.PATH,
            "logrotate's main config. Files it covers are skipped unless a policy sets "
            "take_over_logrotate. Null disables the check.",
            "/etc/logrotate.conf",
            nullable=True,
        ),
        Field(
            "policies",
            Kind.SECTION_LIST,
            "Retention policies. Drop-ins add policies; one with an existing name replaces it.",
            [],
            section=POLICY,
        ),
        Field("containers", Kind.SECTION, CONTAINERS.doc, {}, section=CONTAINERS),
        Field("docker", Kind.SECTION, DOCKER.doc, {}, section=DOCKER),
        Field("disk", Kind.SECTION, DISK.doc, {}, section=DISK),
        Field("alerts", Kind.SECTION, ALERTS.doc, {}, section=ALERTS),
        Field("journal", Kind.SECTION, JOURNAL.doc, {}, section=JOURNAL),
        Field("daemon", Kind.SECTION, DAEMON.doc, {}, section=DAEMON),
    ),
)
