"""Numbered kubelet entries and a rule matching each, to count what a follower processed."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from nodeguard.config import Config
from nodeguard.config.sections.journal_rules import BUILTIN_RULES
from nodeguard.events import Event
from tests.journal.conftest import journal_config
from tests.journal.journalfiles import Stream

SEQ_RE = re.compile(r"seq=(\d+)")


def seq_entries(stream: Stream, start: int, count: int) -> list[dict[str, str]]:
    return [
        stream.service(
            "kubelet.service", "kubelet", f"I1130 08:00:00.000000    2211 x.go:1] seq={i:07d}"
        )
        for i in range(start, start + count)
    ]


def seq_journal_settings(batch: int = 500, **extra: Any) -> dict[str, Any]:
    """Only the Seq rule, every match an event, no flood limit: one event per entry."""
    return {
        "rules": [{"reason": "Seq", "pattern": r"seq=\d+", "units": ["kubelet.service"]}],
        "disable_rules": [b.spec.reason for b in BUILTIN_RULES],
        "max_events_per_rule": 100000,
        "batch": batch,
        "flood": {"max_entries": None, "max_bytes": None},
        **extra,
    }


def seq_config(
    tmp_path: Path,
    directory: Path,
    batch: int = 500,
    *,
    state_dir: Path | None = None,
    **extra: Any,
) -> Config:
    settings = seq_journal_settings(batch, **extra)
    return journal_config(tmp_path, directory, state_dir=state_dir, **settings)


def seqs(events: Iterable[Event]) -> list[int]:
    """The sequence numbers of the Seq matches among ``events``, in order."""
    out = []
    for event in events:
        if event.facts.get("rule") == "Seq":
            found = SEQ_RE.search(str(event.facts["message"]))
            if found:
                out.append(int(found.group(1)))
    return out


def assert_exactly_once(seen: Sequence[int], expected: range) -> None:
    dupes = len(seen) - len(set(seen))
    missing = sorted(set(expected) - set(seen))
    assert dupes == 0, f"{dupes} entries processed twice"
    assert not missing, f"{len(missing)} entries never processed, first {missing[:5]}"
    assert sorted(seen) == list(expected)
