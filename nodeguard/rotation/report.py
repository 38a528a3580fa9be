"""What a rotation pass did (or would do), per file, as events; and their two renderings.

Each action on one file is one :class:`nodeguard.events.Event` from source ``rotation``:
its kind is the action (:class:`RotationKind`), its subject the file's path, and its
facts the policy, the result (:class:`Result`), sizes, the target and the error. The
text report and the ``--json`` report are rendered from these events only.
"""

from __future__ import annotations

import enum
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, cast

from nodeguard.config.units import format_size
from nodeguard.events import Event, Severity, Source


class RotationKind(enum.StrEnum):
    """What was done (or would be, or was refused) to one file."""

    ROTATE = "rotate"
    COMPRESS = "compress"
    REMOVE = "remove"
    CLEANUP = "cleanup"  # leftover of an interrupted pass removed
    POSTROTATE = "postrotate"
    KEEP = "keep"  # looked at, nothing to do
    SKIP = "skip"  # not a candidate (symlink, Docker's own log, ...)
    REFUSE = "refuse"  # a candidate nodeguard must not act on (insecure folder, ...)
    RECOVER = "recover"  # an intent record of an interrupted pass settled
    CHECK = "check"  # a problem found, not an action that failed
    SCAN = "scan"  # a configured path that could not be scanned
    SAVE = "save"  # the pass's state file
    SU = "su"  # the pass of a policy run as another user


class Result(enum.StrEnum):
    DONE = "done"
    PLANNED = "planned"
    FAILED = "failed"
    REFUSED = "refused"
    SKIPPED = "skipped"
    UNCHANGED = "unchanged"


# result values, as the rest of the package names them
DONE = Result.DONE
PLANNED = Result.PLANNED
FAILED = Result.FAILED
REFUSED = Result.REFUSED
SKIPPED = Result.SKIPPED
UNCHANGED = Result.UNCHANGED

_SEVERITY = {
    Result.DONE: Severity.INFO,  # what it did
    Result.PLANNED: Severity.INFO,
    Result.SKIPPED: Severity.INFO,
    Result.UNCHANGED: Severity.DEBUG,
    Result.REFUSED: Severity.WARNING,  # what it refused
    Result.FAILED: Severity.ERROR,
}

RECORD_KEYS = (
    "policy",
    "path",
    "action",
    "result",
    "reason",
    "bytes_before",
    "bytes_after",
    "target",
    "error",
)


def rotation_event(
    policy: str,
    path: str,
    kind: RotationKind | str,
    result: Result | str,
    reason: str,
    *,
    bytes_before: int | None = None,
    bytes_after: int | None = None,
    target: str | None = None,
    error: str | None = None,
) -> Event:
    """One rotation event; its severity follows from the result."""
    outcome = result if isinstance(result, Result) else Result(result)
    facts = {
        "policy": policy,
        "result": str(outcome),
        "bytes_before": bytes_before,
        "bytes_after": bytes_after,
        "target": target,
        "error": error,
    }
    action = kind if isinstance(kind, RotationKind) else RotationKind(kind)
    return Event(Source.ROTATION, action, path, _SEVERITY[outcome], reason, facts)


class Kept(NamedTuple):
    """A live file left alone (``keep``, ``unchanged``), as the pass records it."""

    policy: str
    path: str
    size: int
    max_size: int | None  # the policy's limit; None: left alone because empty

    @property
    def reason(self) -> str:
        if self.max_size is None:
            return "empty (not_if_empty)"
        return f"size {format_size(self.size)} < max_size {format_size(self.max_size)}"

    def as_event(self) -> Event:
        size = self.size
        return rotation_event(
            self.policy,
            self.path,
            RotationKind.KEEP,
            UNCHANGED,
            self.reason,
            bytes_before=size,
            bytes_after=size,
        )


Entry = Event | Kept  # one file's record in a pass: an event, or a kept file's four fields


def as_event(entry: Entry) -> Event:
    return entry.as_event() if isinstance(entry, Kept) else entry


def as_record(entry: Entry) -> dict[str, Any]:
    """The entry as one element of the ``--json`` report's ``files`` (a flat record)."""
    if isinstance(entry, Kept):
        return {
            "policy": entry.policy,
            "path": entry.path,
            "action": "keep",
            "result": "unchanged",
            "reason": entry.reason,
            "bytes_before": entry.size,
            "bytes_after": entry.size,
            "target": None,
            "error": None,
        }
    event = entry
    facts = event.facts
    return {
        "policy": facts.get("policy", "-"),
        "path": event.subject,
        "action": str(event.kind),
        "result": facts.get("result", ""),
        "reason": event.reason,
        "bytes_before": facts.get("bytes_before"),
        "bytes_after": facts.get("bytes_after"),
        "target": facts.get("target"),
        "error": facts.get("error"),
    }


def from_record(record: Mapping[str, Any]) -> Event:
    """The inverse of :func:`as_record` (an su child's events cross a pipe as records)."""
    return rotation_event(
        record["policy"],
        record["path"],
        record["action"],
        record["result"],
        record["reason"],
        bytes_before=record["bytes_before"],
        bytes_after=record["bytes_after"],
        target=record["target"],
        error=record["error"],
    )


def result_of(event: Event) -> str:
    return str(event.facts.get("result", ""))


@dataclass
class Report:
    """The entries of one pass (events and kept files, in order) plus pass-level notes
    (state rebuilt, ...)."""

    dry_run: bool
    entries: list[Entry] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def extend(self, entries: Iterable[Entry]) -> None:
        self.entries.extend(entries)

    @property
    def events(self) -> list[Event]:
        """Every entry as an Event: kept files become events here, once, in place (the
        list returned is the report's own, so an event appended to it is the report's)."""
        entries = self.entries
        for index, entry in enumerate(entries):
            if isinstance(entry, Kept):
                entries[index] = entry.as_event()
        return cast(list[Event], entries)

    def news(self) -> list[Event]:
        """The events that are not a file left alone, in order (no kept file is made
        into an event)."""
        return [e for e in self.entries if not isinstance(e, Kept)]

    @property
    def failed(self) -> bool:
        bad = (FAILED, REFUSED)
        return any(e.facts.get("result") in bad for e in self.news())

    def counts(self) -> Counter[str]:
        pairs = Counter((e.kind, e.facts.get("result", "")) for e in self.news())
        counts = Counter({f"{kind}:{result}": n for (kind, result), n in pairs.items()})
        kept = len(self.entries) - sum(pairs.values())
        if kept:
            counts[f"{RotationKind.KEEP}:{UNCHANGED}"] += kept
        return counts

    @property
    def checked(self) -> int:
        """Live files looked at: those kept and those rotated (or planned, or tried)."""
        checked = (RotationKind.KEEP, RotationKind.ROTATE)
        return sum(1 for e in self.entries if isinstance(e, Kept) or e.kind in checked)

    def to_json(self) -> str:
        body: dict[str, Any] = {
            "dry_run": self.dry_run,
            "ok": not self.failed,
            "notes": self.notes,
            "summary": dict(sorted(self.counts().items())),
            "files": [as_record(e) for e in self.entries],
        }
        return json.dumps(body, indent=1)

    def render_text(self, verbose: bool = False) -> str:
        lines = ["dry run: nothing was changed"] if self.dry_run else []
        lines += [f"note: {n}" for n in self.notes]
        shown = self.entries if verbose else [e for e in self.news() if not _quiet(e)]
        lines += [_line(as_record(entry), self.dry_run) for entry in shown]
        lines.append(self._summary())
        return "\n".join(lines) + "\n"

    def _summary(self) -> str:
        counts = self.counts()
        checked = self.checked
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


def _quiet(event: Event) -> bool:
    """Left out of the text report unless verbose: nothing was or would be done."""
    return result_of(event) == UNCHANGED or event.kind == RotationKind.KEEP


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


def _line(record: Mapping[str, Any], dry_run: bool) -> str:
    action, result = record["action"], record["result"]
    verb = _VERBS.get(action, action)
    if action == "skip":
        verb = "skipped"
    elif action == "refuse":
        verb = "REFUSED"
    elif action == "check":  # a problem found, not an action that failed
        verb = "PROBLEM with"
    elif result == PLANNED:
        verb = f"would {verb}"
    elif result == FAILED:
        verb = f"FAILED to {verb}"
    before = record["bytes_before"]
    size = f" [{format_size(before)}]" if before is not None else ""
    target = f" -> {record['target']}" if record["target"] else ""
    error = f": {record['error']}" if record["error"] else ""
    return printable(
        f"[{record['policy']}] {verb} {record['path']}{size}{target} ({record['reason']}){error}"
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
