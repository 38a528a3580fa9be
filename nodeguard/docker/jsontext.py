"""A strict JSON reader that remembers where every value was written.

daemon.json is edited in place, member by member, so nodeguard needs the offset of
each key and value, and errors that say ``line:col``. The grammar is RFC 8259 as Go's
encoding/json reads it (no comments, no trailing commas, no NaN), plus one refusal of
our own: duplicate keys, which Go silently resolves to the last one.
"""

from __future__ import annotations

import itertools
import json
import json.decoder
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

MAX_DEPTH = 200

_WS = re.compile(r"[ \t\n\r]*")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
_LITERALS = {"true": True, "false": False, "null": None}


class JsonTextError(ValueError):
    """Malformed JSON at a character offset; ``line`` and ``col`` are 1-based."""

    def __init__(self, message: str, text: str, pos: int) -> None:
        self.line, self.col = line_col(text, pos)
        self.pos = pos
        self.reason = message
        super().__init__(f"{self.line}:{self.col}: {message}")


@dataclass(frozen=True)
class Member:
    """One ``"key": value`` pair of an object, with the key's span."""

    key: str
    key_start: int
    key_end: int
    value: Node


@dataclass(frozen=True)
class Node:
    """A JSON value and its span ``[start, end)`` in the text.

    ``value`` is the Python value for strings, booleans and null; for numbers it is
    the number's source text, so nothing is lost to float rounding.
    """

    kind: str  # object, array, string, number, bool, null
    start: int
    end: int
    value: Any = None
    members: tuple[Member, ...] = ()
    items: tuple[Node, ...] = ()

    def member(self, key: str) -> Member | None:
        """The member called ``key`` (objects only; keys are unique)."""
        return next((m for m in self.members if m.key == key), None)


def line_col(text: str, pos: int) -> tuple[int, int]:
    """1-based line and column (in characters) of offset ``pos``."""
    line = text.count("\n", 0, pos) + 1
    return line, pos - (text.rfind("\n", 0, pos) + 1) + 1


def parse(text: str) -> Node:
    """Parse one JSON document; raise JsonTextError with the position of the problem."""
    return _parse(_Parser(text))


def parse_document(text: str, full: Collection[str]) -> Node:
    """Like :func:`parse`, but only the top-level members named in ``full`` get child
    nodes; other objects and arrays become childless nodes with their exact span.

    They are still checked exactly as :func:`parse` checks them, by Python's C decoder
    (strict, no NaN, duplicate keys found) and a nesting scan: a daemon.json of 1 MiB of
    tiny values takes a tenth of a second instead of seconds. On any error the value is
    parsed again the slow way, for the precise message and position.
    """
    return _parse(_Parser(text, skim=frozenset(full)))


def _parse(parser: _Parser) -> Node:
    text = parser.text
    pos = parser.skip_ws(0)
    if pos == len(text):
        raise JsonTextError("no JSON value (the file is empty)", text, pos)
    node = parser.value(pos, 0)
    end = parser.skip_ws(node.end)
    if end != len(text):
        raise JsonTextError("unexpected data after the top-level value", text, end)
    return node


class _Duplicate(ValueError):
    """A duplicate key seen by the fast path (the slow path says where)."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise _Duplicate
    return out


def _no_constant(name: str) -> Any:
    raise _Duplicate(name)


_FAST = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKETS = re.compile(r"[\[\]{}]")
_DEPTH = {"[": 1, "{": 1, "]": -1, "}": -1}


def _max_depth(source: str) -> int:
    """The deepest nesting in valid JSON ``source`` (strings removed first)."""
    brackets = _BRACKETS.findall(_STRINGS.sub("", source))
    return max(itertools.accumulate(map(_DEPTH.__getitem__, brackets)), default=0)


class _Parser:
    """Recursive descent over ``text``; string scanning is done by json's C code."""

    def __init__(self, text: str, skim: frozenset[str] | None = None) -> None:
        self.text = text
        self.skim = skim  # None: every value gets child nodes

    def skip_ws(self, pos: int) -> int:
        match = _WS.match(self.text, pos)
        return match.end() if match else pos

    def fail(self, message: str, pos: int) -> JsonTextError:
        return JsonTextError(message, self.text, pos)

    def value(self, pos: int, depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise self.fail(f"nested deeper than {MAX_DEPTH} levels", pos)
        char = self.text[pos : pos + 1]
        if char == "{":
            return self.object(pos, depth + 1)
        if char == "[":
            return self.array(pos, depth + 1)
        if char == '"':
            text, end = self.string(pos)
            return Node("string", pos, end, text)
        return self.scalar(pos)

    def scalar(self, pos: int) -> Node:
        number = _NUMBER.match(self.text, pos)
        if number:
            return Node("number", pos, number.end(), number.group())
        for word, value in _LITERALS.items():
            if self.text.startswith(word, pos):
                return Node("null" if value is None else "bool", pos, pos + len(word), value)
        if pos >= len(self.text):
            raise self.fail("unexpected end of file, expected a value", pos)
        raise self.fail(f"unexpected {self.text[pos]!r}, expected a value", pos)

    def string(self, pos: int) -> tuple[str, int]:
        try:
            text, end = json.decoder.scanstring(self.text, pos + 1, True)  # type: ignore[attr-defined]
        except json.JSONDecodeError as exc:
            raise self.fail(exc.msg.lower(), exc.pos) from None
        return str(text), int(end)

    def object(self, start: int, depth: int) -> Node:
        members: list[Member] = []
        seen: dict[str, int] = {}
        pos = self.skip_ws(start + 1)
        if self.text.startswith("}", pos):
            return Node("object", start, pos + 1)
        while True:
            member = self.member(pos, depth)
            if member.key in seen:
                line, col = line_col(self.text, seen[member.key])
                first = f"{line}:{col}"
                raise self.fail(f"duplicate key {member.key!r} (first at {first})", pos)
            seen[member.key] = member.key_start
            members.append(member)
            pos = self.skip_ws(member.value.end)
            if self.text.startswith("}", pos):
                return Node("object", start, pos + 1, members=tuple(members))
            if not self.text.startswith(",", pos):
                raise self.fail("expected ',' or '}' after an object member", pos)
            pos = self.skip_ws(pos + 1)
            if self.text.startswith("}", pos):
                raise self.fail("trailing comma before '}'", pos)

    def member(self, pos: int, depth: int) -> Member:
        if not self.text.startswith('"', pos):
            raise self.fail("expected a string key", pos)
        key, key_end = self.string(pos)
        colon = self.skip_ws(key_end)
        if not self.text.startswith(":", colon):
            raise self.fail("expected ':' after an object key", colon)
        start = self.skip_ws(colon + 1)
        if self.skim is not None and depth == 1 and key not in self.skim:
            return Member(key, pos, key_end, self.skimmed(start, depth))
        return Member(key, pos, key_end, self.value(start, depth))

    def skimmed(self, pos: int, depth: int) -> Node:
        """An object or array checked by the fast path, as a childless node."""
        kind = {"{": "object", "[": "array"}.get(self.text[pos : pos + 1])
        if kind is None:
            return self.value(pos, depth)
        try:
            _, end = _FAST.raw_decode(self.text, pos)
            fast = _max_depth(self.text[pos:end]) + depth <= MAX_DEPTH
        except (ValueError, RecursionError):
            fast = False
        return Node(kind, pos, end) if fast else self.value(pos, depth)

    def array(self, start: int, depth: int) -> Node:
        items: list[Node] = []
        pos = self.skip_ws(start + 1)
        if self.text.startswith("]", pos):
            return Node("array", start, pos + 1)
        while True:
            item = self.value(pos, depth)
            items.append(item)
            pos = self.skip_ws(item.end)
            if self.text.startswith("]", pos):
                return Node("array", start, pos + 1, items=tuple(items))
            if not self.text.startswith(",", pos):
                raise self.fail("expected ',' or ']' after an array item", pos)
            pos = self.skip_ws(pos + 1)
            if self.text.startswith("]", pos):
                raise self.fail("trailing comma before ']'", pos)


def describe(node: Node) -> str:
    """A short human description of a value's type, for error messages."""
    names = {"object": "an object", "array": "an array", "string": "a string"}
    names |= {"number": "a number", "bool": "a boolean", "null": "null"}
    return names[node.kind]
