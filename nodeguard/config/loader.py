"""Read, merge and validate YAML config into frozen :mod:`model` objects.

The main file (or the embedded default) comes first, then the drop-ins in
``conf.d/*.yaml`` in name order. Every value keeps the file, line and column it
came from, so every error can say where it is; all errors are collected and
raised together as one :class:`ConfigError`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from nodeguard.config.model import Config
from nodeguard.config.schema import ROOT, Field, Kind, Section, parse_scalar

DEFAULT_MAIN = Path("/etc/nodeguard/nodeguard.yaml")
EMBEDDED_NAME = "<embedded default>"


class ConfigError(Exception):
    """One or more problems in the configuration; ``str()`` lists them all."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass
class Node:
    """A YAML value and where it was written (``file:line:col``)."""

    value: Any
    where: str
    keys: dict[str, str] = field(default_factory=dict)  # key -> where the key was written


def embedded_default_text() -> str:
    """The default config shipped inside the package."""
    return (Path(__file__).parent / "default.yaml").read_text("utf-8")


def load_config(main: Path | None = None, *, dropins: bool = True) -> Config:
    """Load the main file (or the embedded default when the default path is absent).

    An explicitly named ``main`` that does not exist is an error. Drop-ins are read
    from ``conf.d/`` beside the main file.
    """
    path = main or DEFAULT_MAIN
    problems: list[str] = []
    if path.exists() or main is not None:
        tree = _read_file(path, problems)
    else:
        tree = parse_text(embedded_default_text(), EMBEDDED_NAME, problems)
    sources = [str(path) if tree is not None and path.exists() else EMBEDDED_NAME]
    if dropins:
        for dropin in sorted((path.parent / "conf.d").glob("*.yaml")):
            overlay = _read_file(dropin, problems)
            sources.append(str(dropin))
            if tree is not None and overlay is not None:
                tree = merge(tree, overlay)
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


def _read_file(path: Path, problems: list[str]) -> Node | None:
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{path}: cannot read: {exc}")
        return None
    return parse_text(text, str(path), problems)


# --- YAML text -> Node tree ----------------------------------------------------------


def parse_text(text: str, name: str, problems: list[str]) -> Node | None:
    """Compose YAML into a :class:`Node` tree; syntax errors go to ``problems``."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = _where(name, mark) if mark else name
        problems.append(f"{where}: invalid YAML: {exc.problem or exc.context}")
        return None
    except yaml.YAMLError as exc:
        problems.append(f"{name}: invalid YAML: {exc}")
        return None
    if root is None:
        return Node({}, f"{name}:1:1")
    return _to_node(root, name, problems)


def _where(name: str, mark: Any) -> str:
    return f"{name}:{mark.line + 1}:{mark.column + 1}"


def _to_node(node: yaml.Node, name: str, problems: list[str], path: str = "") -> Node:
    where = _where(name, node.start_mark)
    if isinstance(node, yaml.MappingNode):
        out = Node({}, where)
        for key_node, value_node in node.value:
            key = _scalar(key_node)
            key_where = _where(name, key_node.start_mark)
            if not isinstance(key, str):
                problems.append(f"{key_where}: key {key!r} is not a string")
                continue
            if key in out.value:
                problems.append(
                    f"{key_where}: {_join(path, key)}: duplicate key (first at {out.keys[key]})"
                )
                continue
            out.value[key] = _to_node(value_node, name, problems, _join(path, key))
            out.keys[key] = key_where
        return out
    if isinstance(node, yaml.SequenceNode):
        items = [_to_node(v, name, problems, f"{path}[{i}]") for i, v in enumerate(node.value)]
        return Node(items, where)
    return Node(_scalar(node), where)


def _scalar(node: yaml.Node) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        return node  # a complex key; reported by the caller
    return yaml.constructor.SafeConstructor().construct_object(node)


def plain(node: Node) -> Any:
    """The Python value of a node, without positions."""
    if isinstance(node.value, dict):
        return {k: plain(v) for k, v in node.value.items()}
    if isinstance(node.value, list):
        return [plain(v) for v in node.value]
    return node.value


# --- drop-in merge -----------------------------------------------------------------------


def merge(base: Node, overlay: Node) -> Node:
    """Overlay a drop-in: sections merge key by key, policies merge by name."""
    if not (isinstance(base.value, dict) and isinstance(overlay.value, dict)):
        return overlay
    merged = Node(dict(base.value), base.where, dict(base.keys))
    for key, node in overlay.value.items():
        old = merged.value.get(key)
        if key == "policies" and old is not None:
            merged.value[key] = _merge_policies(old, node)
        elif old is not None and isinstance(old.value, dict) and isinstance(node.value, dict):
            merged.value[key] = merge(old, node)
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
    return Node(items, overlay.where)


def _policy_name(node: Node) -> Any:
    if isinstance(node.value, dict) and "name" in node.value:
        return node.value["name"].value
    return None


# --- validation: Node tree -> model objects --------------------------------------------


def build(tree: Node | None, problems: list[str]) -> Config | None:
    """Validate the merged tree against the schema and build the model."""
    if tree is None:
        return None
    built = _section(ROOT, tree, "", problems)
    if not isinstance(built, Config):
        return None
    return built


def _section(section: Section, node: Node, path: str, problems: list[str]) -> Any:
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
        if section.field(key) is None:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            problems.append(f"{node.keys[key]}: {_join(path, key)}: unknown key{hint}")


def _field(spec: Field, parent: Node, path: str, problems: list[str]) -> Any:
    node = parent.value.get(spec.key)
    if node is None:
        if spec.required:
            problems.append(f"{parent.where}: {path}: is required")
            return None
        node = _default_node(spec.default, parent.where)
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
    built = tuple(
        _section(section, item, f"{path}[{i}]", problems) for i, item in enumerate(node.value)
    )
    seen: dict[str, str] = {}
    for i, item in enumerate(node.value):
        name = _policy_name(item)
        if isinstance(name, str) and name in seen:
            problems.append(
                f"{item.where}: {path}[{i}].name: duplicate name {name!r} (first at {seen[name]})"
            )
        elif isinstance(name, str):
            seen[name] = item.where
    return built


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
