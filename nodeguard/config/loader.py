"""Read, merge and validate YAML config into frozen :mod:`model` objects.

The main file (or the embedded default) comes first, then the drop-ins in
``conf.d/*.yaml`` in name order. Every value keeps the file, line and column it
came from, so every error can say where it is; all errors are collected and
raised together as one :class:`ConfigError`.

Config files are input like any other: each is opened without blocking, must be a
regular file that root (or the user running nodeguard) owns and nobody else can
write, and is read up to a cap; drop-ins are never followed through a symlink. The
YAML is composed with bounded nesting, aliases expand to a bounded number of values,
and only plain YAML types are accepted (:mod:`nodeguard.config.yamltree`).
"""

from __future__ import annotations

import difflib
import os
import stat
from dataclasses import replace
from pathlib import Path
from typing import Any

from nodeguard.config.model import Config
from nodeguard.config.readfile import Refused, read_bounded
from nodeguard.config.schema import ROOT, Field, Kind, Section, parse_scalar
from nodeguard.config.yamltree import Node, parse_text, plain

__all__ = ["ConfigError", "Node", "load_config", "load_text", "parse_text", "plain"]

DEFAULT_MAIN = Path("/etc/nodeguard/nodeguard.yaml")
EMBEDDED_NAME = "<embedded default>"
DROPIN_DIR = "conf.d"
MAX_CONFIG_BYTES = 1024 * 1024  # a real config is a few KiB
EXTENSION_PREFIX = "x-"  # top-level keys for YAML anchors, ignored (as in docker compose)


class ConfigError(Exception):
    """One or more problems in the configuration; ``str()`` lists them all."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def embedded_default_text() -> str:
    """The default config shipped inside the package."""
    return (Path(__file__).parent / "default.yaml").read_text("utf-8")


def load_config(
    main: Path | None = None, *, dropins: bool = True, euid: int | None = None
) -> Config:
    """Load the main file (or the embedded default when the default path is absent).

    An explicitly named ``main`` that does not exist is an error. Drop-ins are read
    from ``conf.d/`` beside the main file. ``euid`` (default: ours) may own config
    files besides root.
    """
    uid = os.geteuid() if euid is None else euid
    path = main or DEFAULT_MAIN
    problems: list[str] = []
    if main is not None or os.path.lexists(path):
        tree = _read_file(path, problems, uid, dropin=False)
        sources = [str(path)]
    else:
        tree = parse_text(embedded_default_text(), EMBEDDED_NAME, problems)
        sources = [EMBEDDED_NAME]
    if dropins:
        for dropin in _dropin_paths(path.parent / DROPIN_DIR, problems, uid):
            overlay = _read_file(dropin, problems, uid, dropin=True)
            sources.append(str(dropin))
            if tree is not None and overlay is not None:
                tree = merge(tree, overlay, problems)
    config = build(tree, problems)
    if problems or config is None:
        raise ConfigError(problems)
    return replace(config, sources=tuple(sources))


def load_text(text: str, name: str = "<string>") -> Config:
    """Validate one YAML document (used by tests and ``config validate -``)."""
    problems: list[str] = []
    tree = parse_text(text, name, problems)
    config = build(tree, problems)
    if problems or config is None:
        raise ConfigError(problems)
    return replace(config, sources=(name,))


# --- config files: checked before a byte is read -------------------------------------


def _unsafe(st: os.stat_result, euid: int) -> str | None:
    """Why a config file or folder with this stat must not be trusted (None: fine)."""
    if st.st_uid not in (0, euid):
        return f"owned by uid {st.st_uid}, not root"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"writable by group or others (mode {stat.S_IMODE(st.st_mode):o})"
    return None


def _dropin_paths(folder: Path, problems: list[str], euid: int) -> list[Path]:
    """``conf.d/*.yaml`` in name order, if the folder is one only root can change."""
    try:
        st = os.stat(folder)
    except FileNotFoundError:
        return []
    except OSError as exc:
        problems.append(f"{folder}: cannot read: {exc.strerror}")
        return []
    if not stat.S_ISDIR(st.st_mode):
        problems.append(f"{folder}: not a directory; drop-ins refused")
        return []
    reason = _unsafe(st, euid)
    if reason:
        problems.append(f"{folder}: {reason}; drop-ins refused (not read)")
        return []
    try:
        names = os.listdir(folder)
    except OSError as exc:
        problems.append(f"{folder}: cannot read: {exc.strerror}")
        return []
    return [folder / n for n in sorted(names) if n.endswith(".yaml") and not n.startswith(".")]


def _read_file(path: Path, problems: list[str], euid: int, *, dropin: bool) -> Node | None:
    """Parse one config file, or report why it is refused (its content never shown)."""

    def trusted(st: os.stat_result) -> str | None:
        reason = _unsafe(st, euid)
        return f"{reason}; refused (not read)" if reason else None

    try:
        raw = read_bounded(path, MAX_CONFIG_BYTES, follow=not dropin, check=trusted)
    except Refused as exc:
        problems.append(f"{path}: {_refusal(exc.reason)}")
        return None
    except OSError as exc:
        problems.append(f"{path}: cannot read: {exc.strerror or exc}")
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        problems.append(f"{path}:{line}:{col}: not UTF-8 text")
        return None
    return parse_text(text, str(path), problems)


def _refusal(reason: str) -> str:
    if reason == "is a symlink":
        return "is a symlink; a drop-in must be a regular file (not read)"
    if reason.startswith("larger than"):
        return f"{reason}; refused"
    return reason


# --- drop-in merge -----------------------------------------------------------------------


def merge(base: Node, overlay: Node, problems: list[str] | None = None) -> Node:
    """Overlay a drop-in: sections merge key by key, policies merge by name.

    ``policies:`` left empty (null) in a drop-in is an error: it would remove every
    policy, which no one means by an empty key.
    """
    if not (isinstance(base.value, dict) and isinstance(overlay.value, dict)):
        return overlay
    merged = Node(dict(base.value), base.where, dict(base.keys), base.path)
    for key, node in overlay.value.items():
        old = merged.value.get(key)
        if key == "policies" and node.value is None and not node.bad:
            if problems is not None:
                problems.append(
                    f"{overlay.keys[key]}: policies: null in a drop-in would remove every "
                    "policy; drop-ins add or replace policies by name (write `policies: []` "
                    "to add none)"
                )
            continue
        if key == "policies" and old is not None:
            merged.value[key] = _merge_policies(old, node)
        elif old is not None and isinstance(old.value, dict) and isinstance(node.value, dict):
            merged.value[key] = merge(old, node, problems)
        else:
            merged.value[key] = node
        merged.keys[key] = overlay.keys[key]
    return merged


def _merge_policies(base: Node, overlay: Node) -> Node:
    if not (isinstance(base.value, list) and isinstance(overlay.value, list)):
        return overlay
    items = list(base.value)
    for policy in overlay.value:
        name = _policy_name(policy)
        index = next((i for i, p in enumerate(items) if name and _policy_name(p) == name), None)
        if index is None:
            items.append(policy)
        else:
            items[index] = policy
    return Node(items, overlay.where, path=overlay.path)


def _policy_name(node: Node) -> Any:
    if isinstance(node.value, dict) and "name" in node.value:
        return node.value["name"].value
    return None


# --- validation: Node tree -> model objects --------------------------------------------


def build(tree: Node | None, problems: list[str]) -> Config | None:
    """Validate the merged tree against the schema and build the model."""
    if tree is None or tree.bad:
        return None
    built = _section(ROOT, tree, "", problems)
    if not isinstance(built, Config):
        return None
    return built


def _section(section: Section, node: Node, path: str, problems: list[str]) -> Any:
    if node.bad:
        return None
    if not isinstance(node.value, dict):
        problems.append(f"{node.where}: {path or section.name}: must be a mapping")
        return None
    before = len(problems)
    _unknown_keys(section, node, path, problems)
    values: dict[str, Any] = {}
    for spec in section.fields:
        values[spec.key] = _field(spec, node, _join(path, spec.key), problems)
    if len(problems) > before:
        return None
    for key, message in section.check(values) if section.check else []:
        where = node.value[key].where if key in node.value else node.where
        problems.append(f"{where}: {_join(path, key)}: {message}")
    return None if len(problems) > before else section.build(**values)


def _unknown_keys(section: Section, node: Node, path: str, problems: list[str]) -> None:
    known = [f.key for f in section.fields]
    for key in node.value:
        if section.field(key) is not None or (not path and key.startswith(EXTENSION_PREFIX)):
            continue
        close = difflib.get_close_matches(key, known, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        problems.append(f"{node.keys[key]}: {_join(path, key)}: unknown key{hint}")


def _field(spec: Field, parent: Node, path: str, problems: list[str]) -> Any:
    node = parent.value.get(spec.key)
    if node is None and spec.required:
        problems.append(f"{parent.where}: {path}: is required")
        return None
    if node is None:
        node = _default_node(spec.default, parent.where)
    return None if node.bad else _value(spec, node, path, problems)


def _value(spec: Field, node: Node, path: str, problems: list[str]) -> Any:
    if spec.kind is Kind.SECTION and spec.section is not None:
        if node.value is None and spec.nullable:
            return None
        return _section(spec.section, node, path, problems)
    if spec.kind is Kind.SECTION_LIST and spec.section is not None:
        return _section_list(spec.section, node, path, problems)
    try:
        return parse_scalar(spec, plain(node))
    except ValueError as exc:
        problems.append(f"{node.where}: {path}: {exc}")
        return None


def _default_node(value: Any, where: str) -> Node:
    """A schema default as the loader's positioned tree (located at the parent)."""
    if isinstance(value, dict):
        return Node({k: _default_node(v, where) for k, v in value.items()}, where)
    if isinstance(value, list):
        return Node([_default_node(v, where) for v in value], where)
    return Node(value, where)


def _section_list(section: Section, node: Node, path: str, problems: list[str]) -> Any:
    if node.value is None:
        return ()
    if not isinstance(node.value, list):
        problems.append(f"{node.where}: {path}: must be a list")
        return None
    # Each item is named by its path in the file it was written in, so an error in a
    # drop-in says policies[0] of that drop-in, not the item's place after merging.
    paths = [item.path or f"{path}[{i}]" for i, item in enumerate(node.value)]
    built = tuple(
        _section(section, item, item_path, problems)
        for item, item_path in zip(node.value, paths, strict=True)
    )
    seen: dict[str, str] = {}
    for item, item_path in zip(node.value, paths, strict=True):
        name = _policy_name(item)
        if isinstance(name, str) and name in seen:
            problems.append(
                f"{item.where}: {item_path}.name: duplicate name {name!r} (first at {seen[name]})"
            )
        elif isinstance(name, str):
            seen[name] = item.where
    return built


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
