"""Literal "needles" a regular expression cannot match without, for the rules' pre-filter.

Most journal entries match no rule, so the cost per entry is the cost of finding out.
One alternation of the rules' own patterns is slow in Python's ``re`` as soon as one of
them starts with a character class or ignores case (every position is tried against
every branch). An alternation of plain literals lets the engine skip to the positions
where a needle's first byte occurs. The needles come from the patterns' parse trees: for
each pattern, a set of literal byte strings one of which every match contains. A pattern
for which none can be found (ignoring case, very short literals) is simply always run.

This reads ``re._parser``, CPython's own parser (a documented-by-source internal that
every CPython 3 ships); anything unexpected there means no needles, never a wrong answer.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable
from typing import Any

MIN_NEEDLE = 4


def needles(pattern: bytes) -> frozenset[bytes] | None:
    """Byte strings one of which every match of ``pattern`` contains (None: unknown)."""
    try:
        parser: Any = importlib.import_module("re._parser")
        parsed = parser.parse(pattern)
        found = _Walk(importlib.import_module("re._constants")).sequence(list(parsed.data))
        ignore_case = bool(parsed.state.flags & re.IGNORECASE)
    except Exception:
        return None
    if ignore_case or not found or min(len(n) for n in found) < MIN_NEEDLE:
        return None
    return found


def needle_filter(patterns: Iterable[bytes]) -> re.Pattern[bytes] | None:
    """One regex of all the needles of ``patterns``; None when one pattern has none."""
    every: set[bytes] = set()
    for pattern in patterns:
        found = needles(pattern)
        if found is None:
            return None
        every |= found
    if not every:
        return None
    return re.compile(b"|".join(re.escape(n) for n in sorted(every)))


class _Walk:
    def __init__(self, constants: Any) -> None:
        self.c = constants

    def sequence(self, items: list[Any]) -> frozenset[bytes] | None:
        """The most selective needle set of a sequence (its longest required literal run,
        or a required group's or alternation's set)."""
        c = self.c
        candidates: list[frozenset[bytes]] = []
        run = bytearray()
        for op, av in items:
            if op is c.LITERAL and av < 256:
                run.append(av)
                continue
            if run:
                candidates.append(frozenset({bytes(run)}))
                run = bytearray()
            inner = self._inner(op, av)
            if inner:
                candidates.append(inner)
        if run:
            candidates.append(frozenset({bytes(run)}))
        return max(candidates, key=lambda s: min(len(n) for n in s), default=None)

    def _inner(self, op: Any, av: Any) -> frozenset[bytes] | None:
        c = self.c
        if op is c.SUBPATTERN:
            _, add_flags, _, sub = av
            return None if add_flags & re.IGNORECASE else self.sequence(list(sub.data))
        if op is c.BRANCH:
            parts = [self.sequence(list(branch.data)) for branch in av[1]]
            if parts and all(parts):
                return frozenset().union(*(p for p in parts if p))
            return None
        if op in (c.MAX_REPEAT, c.MIN_REPEAT) and av[0] >= 1:
            return self.sequence(list(av[2].data))
        return None
