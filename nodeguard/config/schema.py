"""The one configuration schema.

Every key nodeguard reads is declared here once, with its type, default,
description and example. The loader validates against it, the defaults come
from it, and ``nodeguard config sample`` and docs/configuration.md are
generated from it, so none of them can drift from the others.
"""

from __future__ import annotations

import grp
import pwd
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from types import MappingProxyType
from typing import Any

from nodeguard.config import model
from nodeguard.config.units import parse_duration, parse_size


class Kind(Enum):
    """Value types a key can hold; each has one parser below."""

    STR = "string"
    INT = "integer"
    BOOL = "boolean"
    SIZE = "size"
    DURATION = "duration"
    PATH = "absolute path"
    GLOBS = "list of absolute globs"
    CHOICE = "one of"
    MODE = "octal mode"
    STR_MAP = "mapping of strings"
    USER_GROUP = "[user, group]"
    SECTION = "section"
    SECTION_LIST = "list of sections"


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


@dataclass(frozen=True)
class Field:
    """One key: its type, its default as written in YAML, and its documentation."""

    key: str
    kind: Kind
    doc: str
    default: Any = REQUIRED
    example: Any = None
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    nullable: bool = False
    section: Section | None = None

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


Check = Callable[[Mapping[str, Any]], list[tuple[str, str]]]


@dataclass(frozen=True)
class Section:
    """A mapping of keys that becomes one frozen model object."""

    name: str
    doc: str
    fields: tuple[Field, ...]
    build: Callable[..., Any]
    check: Check | None = None

    def field(self, key: str) -> Field | None:
        return next((f for f in self.fields if f.key == key), None)


# --- scalar parsers: each returns the typed value or raises ValueError -------


def _is_absolute(value: str) -> bool:
    return value.startswith("/") and "\0" not in value


def parse_scalar(spec: Field, value: Any) -> Any:
    """Turn one YAML value into its typed form according to ``spec``."""
    if value is None:
        if spec.nullable:
            return None
        raise ValueError("must not be empty")
    parser = _PARSERS[spec.kind]
    return parser(spec, value)


def _str(spec: Field, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{value!r} is not a non-empty string")
    return value


def _int(spec: Field, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{value!r} is not an integer")
    if spec.minimum is not None and value < spec.minimum:
        raise ValueError(f"{value} is below the minimum {spec.minimum}")
    if spec.maximum is not None and value > spec.maximum:
        raise ValueError(f"{value} is above the maximum {spec.maximum}")
    return value


def _bool(spec: Field, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{value!r} is not true or false")
    return value


def _size(spec: Field, value: Any) -> int:
    nbytes = parse_size(value)
    if spec.minimum is not None and nbytes < spec.minimum:
        raise ValueError(f"{value!r} is below the minimum of {spec.minimum} bytes")
    return nbytes


def _duration(spec: Field, value: Any) -> int:
    return parse_duration(value)


def _path(spec: Field, value: Any) -> Path:
    if not isinstance(value, str) or not _is_absolute(value):
        raise ValueError(f"{value!r} is not an absolute path")
    return Path(value)


def _globs(spec: Field, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise ValueError("must be a non-empty list of absolute paths or globs")
    for item in value:
        if not isinstance(item, str) or not _is_absolute(item):
            raise ValueError(f"{item!r} is not an absolute path or glob")
        if "**" in item:
            raise ValueError(f"{item!r}: '**' is not supported; spell out each level")
    return tuple(value)


def _choice(spec: Field, value: Any) -> str:
    if value not in spec.choices:
        raise ValueError(f"{value!r} is not one of {', '.join(spec.choices)}")
    return str(value)


_MODE_RE = re.compile(r"^0?[0-7]{3,4}$")


def _mode(spec: Field, value: Any) -> int:
    # YAML reads an unquoted 0640 as the int 416 and 640 as decimal 640: neither says
    # what the admin meant unambiguously, so only quoted octal strings are accepted.
    if isinstance(value, str) and _MODE_RE.match(value):
        return int(value, 8)
    raise ValueError(f'{value!r} is not an octal mode; quote it, e.g. "0640"')


def _str_map(spec: Field, value: Any) -> Mapping[str, str]:
    if not isinstance(value, dict):
        raise ValueError("must be a mapping")
    out: dict[str, str] = {}
    for key, item in value.items():
        if isinstance(item, bool) or not isinstance(item, str | int):
            raise ValueError(f"{key}: {item!r} must be a string")
        out[str(key)] = str(item)
    return MappingProxyType(out)


def _user_group(spec: Field, value: Any) -> tuple[str, str]:
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
        raise ValueError("must be a list of two names: [user, group]")
    user, group = value
    _lookup_user(user)
    _lookup_group(group)
    return (user, group)


def _lookup_user(name: str) -> None:
    try:
        pwd.getpwnam(name)
    except KeyError:
        raise ValueError(f"no such user {name!r}") from None


def _lookup_group(name: str) -> None:
    try:
        grp.getgrnam(name)
    except KeyError:
        raise ValueError(f"no such group {name!r}") from None


_PARSERS: dict[Kind, Callable[[Field, Any], Any]] = {
    Kind.STR: _str,
    Kind.INT: _int,
    Kind.BOOL: _bool,
    Kind.SIZE: _size,
    Kind.DURATION: _duration,
    Kind.PATH: _path,
    Kind.GLOBS: _globs,
    Kind.CHOICE: _choice,
    Kind.MODE: _mode,
    Kind.STR_MAP: _str_map,
    Kind.USER_GROUP: _user_group,
}


# --- cross-field checks --------------------------------------------------------


def _check_create(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    errors: list[tuple[str, str]] = []
    owner, group = values.get("owner"), values.get("group")
    if owner is not None:
        try:
            _lookup_user(owner)
        except ValueError as exc:
            errors.append(("owner", str(exc)))
    if group is not None:
        try:
            _lookup_group(group)
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
    # Imported here: the docker module's rules are the single source for log-opts.
    from nodeguard.docker.restart import restart_problem
    from nodeguard.docker.rules import validate_log_config

    driver = values.get("log_driver")
    opts = values.get("log_opts")
    problems = restart_problem(values.get("restart_command"))
    if not isinstance(driver, str) or opts is None:
        return problems
    return problems + [("log_opts", msg) for msg in validate_log_config(driver, dict(opts))]


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
        Field("postrotate_timeout", Kind.DURATION, "Time allowed for postrotate.", "60s"),
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
    ),
)
