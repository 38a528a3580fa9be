"""Read daemon.json and work out the edit that sets nodeguard's logging keys.

The edit is textual: nodeguard replaces the values of ``log-driver`` and of the
``log-opts`` members it manages, and appends the ones that are missing. Every other
byte stays as it was, so numbers such as 1e3 or 1.0, big integers, ``\\u`` escapes,
key order, indentation and a UTF-8 byte-order mark survive exactly. Extra log-opts
members (``labels``, ``tag`` ...) are kept too and checked against the driver.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from nodeguard.config.dockerrules import log_config_problems
from nodeguard.docker.jsontext import JsonTextError, Node, describe, line_col, parse_document
from nodeguard.fsutil import read_fd_capped

BOM = "\ufeff"
# A real daemon.json is a few KiB. Only the managed members get a node per value
# (parse_document); 1 MiB of tiny values edits in about half a second and 30 MB.
MAX_BYTES = 1024 * 1024
DRIVER_KEY = "log-driver"
OPTS_KEY = "log-opts"
MANAGED_KEYS = (DRIVER_KEY, OPTS_KEY)


class DaemonJsonError(Exception):
    """daemon.json cannot be used; ``str()`` is ``file:line:col: problem``."""

    def __init__(self, path: Path, message: str, line: int | None = None, col: int = 1) -> None:
        where = f"{path}:{line}:{col}" if line is not None else str(path)
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class Current:
    """daemon.json as found: raw bytes, text without BOM, and its parsed tree."""

    path: Path
    exists: bool
    raw: bytes
    text: str
    bom: bool
    root: Node | None  # None for a missing, empty or whitespace-only file

    def where(self, pos: int) -> tuple[int, int]:
        """line and column of a text offset."""
        return line_col(self.text, pos)


@dataclass(frozen=True)
class Change:
    """One managed value that differs: its dotted key, old and new display text."""

    key: str
    old: str | None
    new: str


@dataclass(frozen=True)
class Plan:
    """What --apply would write, and why."""

    current: Current
    changes: tuple[Change, ...]
    candidate: bytes

    @property
    def changed(self) -> bool:
        return bool(self.changes)


def read_current(path: Path) -> Current:
    """Read and parse ``path``; raise DaemonJsonError naming the position of a problem."""
    if not path.parent.is_dir():
        raise DaemonJsonError(path, f"folder {path.parent} does not exist (is Docker installed?)")
    try:
        info = path.lstat()
    except FileNotFoundError:
        return Current(path, False, b"", "", False, None)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISREG(info.st_mode):
        kind = "a symlink" if stat.S_ISLNK(info.st_mode) else "not a regular file"
        raise DaemonJsonError(path, f"is {kind}; nodeguard edits only a regular file")
    if info.st_size > MAX_BYTES:
        raise DaemonJsonError(path, f"is {info.st_size} bytes; refusing more than {MAX_BYTES}")
    try:
        raw = _read(path, info)
    except OSError as exc:
        raise DaemonJsonError(path, f"cannot read: {exc.strerror or exc}") from None
    text, bom = _decode(path, raw)
    if not text.strip(" \t\r\n"):
        return Current(path, True, raw, text, bom, None)
    try:
        root = parse_document(text, full=MANAGED_KEYS)
    except JsonTextError as exc:
        raise DaemonJsonError(path, exc.reason, exc.line, exc.col) from None
    if root.kind != "object":
        line, col = line_col(text, root.start)
        raise DaemonJsonError(path, f"top level is {describe(root)}, not an object", line, col)
    return Current(path, True, raw, text, bom, root)


def _read(path: Path, checked: os.stat_result) -> bytes:
    """The file's bytes, from the very file ``checked`` describes (no FIFO swapped in)."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != (checked.st_dev, checked.st_ino):
            raise OSError(errno.EAGAIN, "the file was replaced while nodeguard read it")
        return read_fd_capped(fd, MAX_BYTES)
    finally:
        os.close(fd)


def _decode(path: Path, raw: bytes) -> tuple[str, bool]:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DaemonJsonError(path, "is UTF-16 encoded; convert it to UTF-8", 1, 1)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise DaemonJsonError(path, f"invalid UTF-8 (byte {exc.start})", line, col) from None
    if text.startswith(BOM):
        return text[1:], True
    return text, False


def plan(current: Current, driver: str, opts: dict[str, str]) -> Plan:
    """Compute the candidate file and the list of changed values."""
    root = current.root
    if root is None:
        wanted: dict[str, object] = {DRIVER_KEY: driver}
        if opts:
            wanted[OPTS_KEY] = dict(opts)
        body = json.dumps(wanted, indent=2, ensure_ascii=False) + "\n"
        changes = tuple(Change(k, None, _show(v)) for k, v in _flatten(wanted))
        return Plan(current, changes, _encode(current, body))
    _check_merged(current, root, driver, opts)
    editor = _Editor(current, _Style.of(current.text, root))
    editor.set(root, DRIVER_KEY, driver)
    opts_member = root.member(OPTS_KEY)
    if opts_member is not None and opts_member.value.kind == "object":
        for key, value in opts.items():
            editor.set(opts_member.value, key, value, OPTS_KEY)
    elif opts:
        editor.set(root, OPTS_KEY, dict(opts))
    changes = tuple(editor.changes)
    candidate = _encode(current, editor.result()) if changes else current.raw
    return Plan(current, changes, candidate)


def _encode(current: Current, text: str) -> bytes:
    return ((BOM if current.bom else "") + text).encode("utf-8")


def _flatten(wanted: dict[str, object]) -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for key, value in wanted.items():
        if isinstance(value, dict):
            out += [(f"{key}.{k}", v) for k, v in value.items()]
        else:
            out.append((key, value))
    return out


def _show(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def _check_merged(current: Current, root: Node, driver: str, opts: dict[str, str]) -> None:
    """Refuse log-opts that Docker rejects and nodeguard would keep.

    Values nodeguard replaces (a number where a string belongs, say) are repaired by
    the edit; anything else that is wrong stays wrong, so the file is refused.
    """
    member = root.member(OPTS_KEY)
    if member is None or member.value.kind == "null":
        return
    node = member.value
    if node.kind != "object":
        message = f"{OPTS_KEY} is {describe(node)}; Docker needs an object"
        raise DaemonJsonError(current.path, message, *current.where(node.start))
    merged: dict[str, object] = {}
    for item in node.members:
        if item.key not in opts and item.value.kind != "string":
            message = f"{OPTS_KEY}.{item.key} is {describe(item.value)}; Docker needs a string"
            raise DaemonJsonError(current.path, message, *current.where(item.value.start))
        merged[item.key] = item.value.value
    merged.update(opts)
    for problem in log_config_problems(driver, merged):
        found = node.member(problem.key) if problem.key else None
        pos = found.value.start if found and problem.key not in opts else node.start
        message = f"{OPTS_KEY}: {problem.message} (with nodeguard's settings applied)"
        raise DaemonJsonError(current.path, message, *current.where(pos))


@dataclass(frozen=True)
class _Style:
    """How the file is laid out, so added members look like their neighbours."""

    newline: str
    indent: str  # one level of indentation, "" for a one-line file
    colon: str

    @classmethod
    def of(cls, text: str, root: Node) -> _Style:
        newline = "\r\n" if "\r\n" in text else "\n"
        if not root.members:
            return cls(newline, "  ", ": ")
        first = root.members[0]
        lead = text[root.start + 1 : first.key_start]
        colon = text[first.key_end : first.value.start]
        indent = lead.rsplit("\n", 1)[1] if "\n" in lead else ""
        return cls(newline, indent, ": " if "\n" in colon else colon)

    def render(self, value: object, base: str) -> str:
        """``value`` as JSON, indented to sit at indentation ``base``."""
        if not isinstance(value, dict):
            return _show(value)
        if not self.indent:
            comma = ", " if " " in self.colon else ","
            return json.dumps(value, ensure_ascii=False, separators=(comma, self.colon))
        body = json.dumps(
            value, ensure_ascii=False, indent=self.indent, separators=(",", self.colon)
        )
        return body.replace("\n", self.newline + base)


class _Editor:
    """Collects replacements and appended members, then applies them in one go."""

    def __init__(self, current: Current, style: _Style) -> None:
        self.current = current
        self.style = style
        self.edits: list[tuple[int, int, str]] = []
        self.appends: dict[int, tuple[Node, list[str]]] = {}
        self.changes: list[Change] = []

    def set(self, obj: Node, key: str, value: object, prefix: str = "") -> None:
        """Replace ``key``'s value in ``obj`` when it differs, or append the member."""
        name = f"{prefix}.{key}" if prefix else key
        text = self.current.text
        member = obj.member(key)
        if member is None:
            base = _line_indent(text, obj.start) + self.style.indent
            entry = _show(key) + self.style.colon + self.style.render(value, base)
            self.appends.setdefault(obj.start, (obj, []))[1].append(entry)
            self.changes.append(Change(name, None, _show(value)))
            return
        node = member.value
        if node.kind == "string" and node.value == value:
            return
        rendered = self.style.render(value, _line_indent(text, member.key_start))
        self.edits.append((node.start, node.end, rendered))
        self.changes.append(Change(name, _old(text, node, value), _show(value)))

    def result(self) -> str:
        edits = self.edits + [self._append(obj, entries) for obj, entries in self.appends.values()]
        text = self.current.text
        for start, end, replacement in sorted(edits, reverse=True):
            text = text[:start] + replacement + text[end:]
        return text

    def _append(self, obj: Node, entries: list[str]) -> tuple[int, int, str]:
        """One edit adding ``entries`` as the last members of ``obj``."""
        text, style = self.current.text, self.style
        if obj.members:
            last = obj.members[-1]
            sep = max(
                text.rfind(",", 0, last.key_start), text.rfind("{", obj.start, last.key_start)
            )
            lead = text[sep + 1 : last.key_start]
            if len(obj.members) == 1 and "\n" not in lead:
                lead = " " if " " in style.colon else ""  # "{" told us nothing about ", "
            return (last.value.end, last.value.end, "".join("," + lead + e for e in entries))
        if not style.indent:
            return (obj.start, obj.end, "{" + ", ".join(entries) + "}")
        outer = _line_indent(text, obj.start)
        inner = style.newline + outer + style.indent
        body = inner + ("," + inner).join(entries)
        return (obj.start, obj.end, "{" + body + style.newline + outer + "}")


def _old(text: str, node: Node, wanted: object) -> str:
    source = text[node.start : node.end]
    if node.kind == "string" or isinstance(wanted, dict):
        return source
    return f"{source} ({describe(node)}: dockerd refuses it)"


def _line_indent(text: str, pos: int) -> str:
    start = text.rfind("\n", 0, pos) + 1
    line = text[start:pos]
    return line[: len(line) - len(line.lstrip(" \t"))]
