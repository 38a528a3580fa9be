"""The building blocks of the schema: value kinds, fields, sections and their parsers.

Every section of the one schema (``schema.py`` and ``sections/``) is made of these, so
the loader, the sample config and the docs treat every key the same way.
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
from urllib.parse import urlsplit

from nodeguard.config.units import format_duration, parse_duration, parse_size

# The longest duration any key may hold: well inside what every consumer can use
# (datetime arithmetic, threading and subprocess timeouts), so no accepted value can
# fail later in the code. Keys that wait on something set their own, smaller maximum.
DURATION_MAX = 100 * 365 * 86400


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
    PERCENT = "percentage"
    STR_LIST = "list of strings"
    URL = "http(s) URL"
    HOSTPORT = "host:port"
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
    if not -(2**63) <= value < 2**63:
        raise ValueError("is too large for an integer (64 bits)")
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
    seconds = parse_duration(value)
    if spec.minimum is not None and seconds < spec.minimum:
        raise ValueError(f"{value!r} is below the minimum {format_duration(spec.minimum)}")
    maximum = min(spec.maximum, DURATION_MAX) if spec.maximum is not None else DURATION_MAX
    if seconds > maximum:
        raise ValueError(f"{value!r} is above the maximum {format_duration(maximum)}")
    return seconds


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
        _check_log_path(item)
    return tuple(value)


def _check_log_path(item: str) -> None:
    """A path or glob must name files: no trailing '/', no '.', '..' or empty parts."""
    if item.endswith("/"):
        raise ValueError(f"{item!r} names a directory; name the log files, e.g. /var/log/app/*.log")
    if any(part in ("", ".", "..") for part in item[1:].split("/")):
        raise ValueError(f"{item!r} has an empty, '.' or '..' component; write the plain path")


def _choice(spec: Field, value: Any) -> str:
    if value not in spec.choices:
        raise ValueError(f"{value!r} is not one of {', '.join(spec.choices)}")
    return str(value)


_MODE_RE = re.compile(r"0?[0-7]{3,4}")


def _mode(spec: Field, value: Any) -> int:
    # YAML reads an unquoted 0640 as the int 416 and 640 as decimal 640: neither says
    # what the admin meant unambiguously, so only quoted octal strings are accepted.
    if isinstance(value, str) and _MODE_RE.fullmatch(value):
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
    lookup_user(user)
    lookup_group(group)
    return (user, group)


def lookup_user(name: str) -> None:
    try:
        pwd.getpwnam(name)
    except KeyError:
        raise ValueError(f"no such user {name!r}") from None


def lookup_group(name: str) -> None:
    try:
        grp.getgrnam(name)
    except KeyError:
        raise ValueError(f"no such group {name!r}") from None


_PERCENT_RE = re.compile(r"[ \t]*([0-9]{1,3}(?:\.[0-9]{1,6})?)[ \t]*%[ \t]*")


def _percent(spec: Field, value: Any) -> float:
    """``5%`` or ``12.5%`` -> the fraction 0.05 / 0.125 (always written with %)."""
    match = _PERCENT_RE.fullmatch(value) if isinstance(value, str) else None
    if match is None or float(match.group(1)) > 100:
        raise ValueError(f'{value!r} is not a percentage such as "5%"')
    return float(match.group(1)) / 100


def _str_list(spec: Field, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError("must be a list of non-empty strings")
    if spec.maximum is not None and len(value) > spec.maximum:
        raise ValueError(f"has {len(value)} items, above the maximum {spec.maximum}")
    return tuple(value)


def _url(spec: Field, value: Any) -> str:
    if not isinstance(value, str) or any(c.isspace() or c == "\0" for c in value):
        raise ValueError(f"{value!r} is not a URL")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http:// or https:// URL")
    if parts.username or parts.password:
        raise ValueError("credentials do not belong in the URL; use a token or password file")
    return value.rstrip("/")


def _hostport(spec: Field, value: Any) -> tuple[str, int]:
    if not isinstance(value, str) or ":" not in value:
        raise ValueError(f"{value!r} is not host:port, e.g. 127.0.0.1:9877")
    host, _, port = value.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isascii() or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r} is not host:port with a port from 1 to 65535")
    return host, int(port)


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
    Kind.PERCENT: _percent,
    Kind.STR_LIST: _str_list,
    Kind.URL: _url,
    Kind.HOSTPORT: _hostport,
}
