"""What a rotation pass did (or would do), per file, for people and for machines."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from nodeguard.config.units import format_size

# result values
DONE = "done"
PLANNED = "planned"
FAILED = "failed"
REFUSED = "refused"
SKIPPED = "skipped"
UNCHANGED = "unchanged"


@dataclass
class Record:
    """One action on one file: what, why, and how it went."""

    policy: str
    path: str
    action: str  # rotate compress remove cleanup postrotate keep skip refuse recover check save
    result: str  # done | planned | failed | refused | skipped | unchanged
    reason: str
    bytes_before: int | None = None
    bytes_after: int | None = None
    target: str | None = None
    error: str | None = None


@dataclass
class Report:
    """All records of one pass plus pass-level notes (state rebuilt, lock, ...)."""

    dry_run: bool
    records: list[Record] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, record: Record) -> None:
        self.records.append(record)

    @property
    def failed(self) -> bool:
        return any(r.result in (FAILED, REFUSED) for r in self.records)

    def counts(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for record in self.records:
            counts[f"{record.action}:{record.result}"] += 1
        return counts

    def to_json(self) -> str:
        body: dict[str, Any] = {
            "dry_run": self.dry_run,
            "ok": not self.failed,
            "notes": self.notes,
            "summary": dict(sorted(self.counts().items())),
            "files": [asdict(r) for r in self.records],
        }
        return json.dumps(body, indent=1)

    def render_text(self, verbose: bool = False) -> str:
        lines = ["dry run: nothing was changed"] if self.dry_run else []
        lines += [f"note: {n}" for n in self.notes]
        for record in self.records:
            if verbose or (record.result not in (UNCHANGED,) and record.action != "keep"):
                lines.append(_line(record, self.dry_run))
        lines.append(self._summary())
        return "\n".join(lines) + "\n"

    def _summary(self) -> str:
        counts = self.counts()
        checked = sum(1 for r in self.records if r.action in ("keep", "rotate"))
        done = PLANNED if self.dry_run else DONE
        parts = [
            f"{counts[f'{a}:{done}']} {w}"
            for a, w in (("rotate", "rotated"), ("compress", "compressed"), ("remove", "removed"))
        ]
        bad = [
            f"{sum(v for k, v in counts.items() if k.endswith(':' + s))} {s}"
            for s in (FAILED, REFUSED, SKIPPED)
        ]
        verb = "would be " if self.dry_run else ""
        return f"summary: {checked} live files checked; {verb}" + ", ".join(parts + bad)


_VERBS = {
    "rotate": "rotate",
    "compress": "compress",
    "remove": "remove",
    "cleanup": "remove leftover",
    "postrotate": "run postrotate for",
    "keep": "keep",
    "skip": "skip",
    "refuse": "refuse",
    "save": "save",
}


def _line(record: Record, dry_run: bool) -> str:
    verb = _VERBS.get(record.action, record.action)
    if record.action == "skip":
        verb = "skipped"
    elif record.action == "refuse":
        verb = "REFUSED"
    elif record.action == "check":  # a problem found, not an action that failed
        verb = "PROBLEM with"
    elif record.result == PLANNED:
        verb = f"would {verb}"
    elif record.result == FAILED:
        verb = f"FAILED to {verb}"
    size = f" [{format_size(record.bytes_before)}]" if record.bytes_before is not None else ""
    target = f" -> {record.target}" if record.target else ""
    error = f": {record.error}" if record.error else ""
    return printable(
        f"[{record.policy}] {verb} {record.path}{size}{target} ({record.reason}){error}"
    )


def printable(text: str) -> str:
    """``text`` with control characters and undecodable bytes escaped, so a file name
    holding a newline or non-UTF-8 bytes can neither split a line nor fail to print."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _escape(ch) for ch in text)


def _escape(ch: str) -> str:
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8, as os.fsdecode keeps it
        return f"\\x{code - 0xDC00:02x}"
    return ascii(ch)[1:-1]
