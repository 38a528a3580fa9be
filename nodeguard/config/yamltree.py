"""YAML text -> a tree of positioned :class:`Node` values, with bounded work.

Only plain YAML is accepted: mappings with string keys, sequences, and scalars of the
core types (str, int, float, bool, null; timestamps are kept as their text). The
merge key (``<<: *defaults``) works as YAML 1.1 defines it. Anything else (other
tags, complex keys, a value that contains itself) is a positioned problem, never a
traceback, and the work is bounded: nesting is capped while composing, and aliases
may expand to at most :data:`MAX_VALUES` values (an alias bomb stops there).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

MAX_DEPTH = 64  # a config needs about 6 levels
MAX_VALUES = 20_000  # values, aliases expanded; 500 policies of 15 keys are 8,000

_CORE = "tag:yaml.org,2002:"
_MERGE = _CORE + "merge"
_NULLS = {"", "~", "null", "Null", "NULL"}


@dataclass
class Node:
    """A YAML value and where it was written (``file:line:col``).

    ``path`` is the value's key path in the file it was written in (``policies[0]``);
    ``bad`` marks a value already reported as a problem, so it is not reported again.
    """

    value: Any
    where: str
    keys: dict[str, str] = field(default_factory=dict)  # key -> where the key was written
    path: str = ""
    bad: bool = False


def plain(node: Node) -> Any:
    """The Python value of a node, without positions."""
    if isinstance(node.value, dict):
        return {k: plain(v) for k, v in node.value.items()}
    if isinstance(node.value, list):
        return [plain(v) for v in node.value]
    return node.value


def _reader_problem(text: str, name: str, exc: yaml.YAMLError) -> str:
    """A YAMLError without a mark: PyYAML's reader refusing a control character (it checks
    before any parsing) gets its line and column; anything else its text."""
    if not isinstance(exc, yaml.reader.ReaderError):
        return f"{name}: invalid YAML: {exc}"
    line, column = _line_col(text, exc.position)
    what = f"character #x{exc.character:04x}" if isinstance(exc.character, int) else "byte"
    return f"{name}:{line}:{column}: invalid YAML: {what}: {exc.reason}"


def _line_col(text: str, position: int) -> tuple[int, int]:
    """1-based line and column of character ``position`` in ``text``."""
    before = text[:position]
    return before.count("\n") + 1, position - (before.rfind("\n") + 1) + 1


def parse_text(text: str, name: str, problems: list[str]) -> Node | None:
    """Compose YAML into a :class:`Node` tree; every problem goes to ``problems``."""
    loader: _Loader | None = None
    try:
        loader = _Loader(text)
        root = loader.get_single_node()
    except _Limit as exc:
        problems.append(f"{_where(name, exc.problem_mark)}: {exc.problem}")
        return None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = _where(name, mark) if mark else name
        problems.append(f"{where}: invalid YAML: {exc.problem or exc.context}")
        return None
    except yaml.YAMLError as exc:
        problems.append(_reader_problem(text, name, exc))
        return None
    finally:
        if loader is not None:
            loader.dispose()
    if root is None:
        return Node({}, f"{name}:1:1")
    try:
        return _Builder(name, problems).node(root, "", 0)
    except _TooBig as exc:
        problems.append(f"{exc}")
        return None


def _where(name: str, mark: Any) -> str:
    return f"{name}:{mark.line + 1}:{mark.column + 1}"


class _Alias(yaml.Node):
    """An alias as written (its own position), standing for the node it names."""

    def __init__(self, target: yaml.Node, start_mark: Any, end_mark: Any) -> None:
        super().__init__(target.tag, target.value, start_mark, end_mark)
        self.target = target


class _Limit(yaml.MarkedYAMLError):
    """The document is nested too deeply or has too many values."""


class _Loader(yaml.SafeLoader):
    """PyYAML's safe composer with a nesting cap and aliases that keep their position."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._count = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent):
            target = super().compose_node(parent, index)
            return None if target is None else _Alias(target, event.start_mark, event.end_mark)
        self._depth += 1
        self._count += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Limit(None, None, f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
            if self._count > MAX_VALUES:
                message = f"more than {MAX_VALUES} values; refused"
                raise _Limit(None, None, message, event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _TooBig(Exception):
    """Aliases expand to more values than a config can have."""


class _Builder:
    """Turns composed YAML nodes into :class:`Node` trees, expanding aliases safely."""

    def __init__(self, name: str, problems: list[str]) -> None:
        self.name = name
        self.problems = problems
        self.count = 0
        self.active: set[int] = set()  # ids of the nodes being expanded (cycle check)

    def where(self, node: yaml.Node) -> str:
        return _where(self.name, node.start_mark)

    def bad(self, node: yaml.Node, path: str, message: str) -> Node:
        self.problems.append(f"{self.where(node)}: {_prefix(path)}{message}")
        return Node(None, self.where(node), path=path, bad=True)

    def node(self, node: yaml.Node, path: str, depth: int) -> Node:
        self.count += 1
        if self.count > MAX_VALUES:
            raise _TooBig(
                f"{self.where(node)}: more than {MAX_VALUES} values once aliases are "
                "expanded; refused"
            )
        if depth > MAX_DEPTH:
            return self.bad(node, path, f"nested deeper than {MAX_DEPTH} levels (via aliases)")
        if isinstance(node, _Alias):
            if id(node.target) in self.active:
                return self.bad(node, path, "recursive alias (a value that contains itself)")
            return self.node(node.target, path, depth + 1)
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, path)
        self.active.add(id(node))
        try:
            return self.collection(node, path, depth)
        finally:
            self.active.discard(id(node))

    def collection(self, node: yaml.Node, path: str, depth: int) -> Node:
        if isinstance(node, yaml.MappingNode) and node.tag == _CORE + "map":
            return self.mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode) and node.tag == _CORE + "seq":
            items = [self.node(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(node.value)]
            return Node(items, self.where(node), path=path)
        return self.bad(node, path, f"tag {_short_tag(node.tag)} is not supported")

    def scalar(self, node: yaml.ScalarNode, path: str) -> Node:
        try:
            value = scalar_value(node)
        except ValueError as exc:
            return self.bad(node, path, str(exc))
        return Node(value, self.where(node), path=path)

    def mapping(self, node: yaml.MappingNode, path: str, depth: int) -> Node:
        out = Node({}, self.where(node), path=path)
        merges: list[yaml.Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE and isinstance(key_node, yaml.ScalarNode):
                merges.append(value_node)
                continue
            key = self.key(key_node, path)
            if key is None:
                continue
            key_where = self.where(key_node)
            if key in out.value:
                self.problems.append(
                    f"{key_where}: {_join(path, key)}: duplicate key (first at {out.keys[key]})"
                )
                continue
            out.value[key] = self.node(value_node, _join(path, key), depth + 1)
            out.keys[key] = key_where
        for source in merges:
            self.merge_into(out, source, path, depth)
        return out

    def key(self, node: yaml.Node, path: str) -> str | None:
        """A mapping key as a string, or None after reporting why it is not one."""
        real = node.target if isinstance(node, _Alias) else node
        if not isinstance(real, yaml.ScalarNode):
            kind = "a mapping" if isinstance(real, yaml.MappingNode) else "a sequence"
            self.problems.append(f"{self.where(node)}: {_prefix(path)}key is {kind}, not a string")
            return None
        try:
            key = scalar_value(real)
        except ValueError as exc:
            self.problems.append(f"{self.where(node)}: {_prefix(path)}{exc}")
            return None
        if not isinstance(key, str):
            self.problems.append(
                f"{self.where(node)}: {_prefix(path)}key {_show(key)} is not a string"
            )
            return None
        return key

    def merge_into(self, out: Node, source: yaml.Node, path: str, depth: int) -> None:
        """YAML's merge key: add the keys of ``source`` the mapping does not set itself.

        ``source`` is a mapping or a list of them; earlier mappings in the list win.
        """
        real = source.target if isinstance(source, _Alias) else source
        items = real.value if isinstance(real, yaml.SequenceNode) else [source]
        for item in items:
            inner = item.target if isinstance(item, _Alias) else item
            if not isinstance(inner, yaml.MappingNode):
                self.problems.append(
                    f"{self.where(item)}: {_join(path, '<<')}: merge needs a mapping or a "
                    "list of mappings"
                )
                continue
            merged = self.node(item, path, depth + 1)
            if not isinstance(merged.value, dict):
                continue
            for key, value in merged.value.items():
                if key not in out.value:
                    out.value[key] = value
                    out.keys[key] = merged.keys.get(key, value.where)


def scalar_value(node: yaml.ScalarNode) -> Any:
    """A scalar of a core YAML type; ValueError naming the tag for anything else."""
    tag, text = node.tag, node.value
    if tag == _CORE + "str":
        return text
    if tag == _CORE + "null":
        if text not in _NULLS:
            raise ValueError(f"!!null {_short(text)!r} is not valid")
        return None
    construct = _CONSTRUCTORS.get(tag)
    if construct is None:
        raise ValueError(f"tag {_short_tag(tag)} is not supported")
    try:
        if not text.isascii():
            raise ValueError(text)
        return construct(node)
    except (ValueError, KeyError, TypeError, AttributeError, OverflowError):
        raise ValueError(f"{_short_tag(tag)} {_short(text)!r} is not valid") from None


_SAFE = yaml.constructor.SafeConstructor()


def _timestamp(node: yaml.ScalarNode) -> str:
    # A config has no use for dates: a value that looks like one stays the text written.
    if _SAFE.timestamp_regexp.match(node.value) is None:
        raise ValueError(node.value)
    return str(node.value)


_CONSTRUCTORS: dict[str, Any] = {
    _CORE + "int": _SAFE.construct_yaml_int,
    _CORE + "float": _SAFE.construct_yaml_float,
    _CORE + "bool": _SAFE.construct_yaml_bool,
    _CORE + "timestamp": _timestamp,
}


def _short_tag(tag: str | None) -> str:
    if tag is None:
        return "!"
    return "!!" + tag[len(_CORE) :] if tag.startswith(_CORE) else tag


def _short(text: str) -> str:
    return text if len(text) <= 32 else text[:16] + "…"


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def _prefix(path: str) -> str:
    return f"{path}: " if path else ""


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
