"""The on-disk spool: notifications wait here until their sink has taken them.

Prometheus drops a batch it could not deliver; nodeguard keeps it. Each transition
is queued once per spooled sink (``alert-spool.json`` in the state folder, through
the state-file API), removed by id when that sink accepted it, and retried with
exponential backoff while it fails. A full queue drops its oldest entries and counts
them. The spool is bounded and validated on load like every state document.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from nodeguard.alerts.model import Notification
from nodeguard.state import StateDocument

SPOOL_NAME = "alert-spool.json"
MAX_SINKS = 16


@dataclass(frozen=True)
class Queue:
    """One sink's pending notifications and its retry schedule."""

    items: tuple[Notification, ...] = ()
    failures: int = 0  # consecutive failed rounds
    next_try: float = 0.0
    last_error: str | None = None
    last_resend: float = 0.0  # Alertmanager: when firing alerts were last re-sent

    def to_json(self) -> dict[str, Any]:
        return {
            "items": [n.to_json() for n in self.items],
            "failures": self.failures,
            "next_try": self.next_try,
            "last_error": self.last_error,
            "last_resend": self.last_resend,
        }


@dataclass(frozen=True)
class Spool:
    queues: Mapping[str, Queue] = field(default_factory=dict)

    def queue(self, sink: str) -> Queue:
        return self.queues.get(sink, Queue())

    def with_queue(self, sink: str, queue: Queue) -> Spool:
        queues = dict(self.queues)
        queues[sink] = queue
        return Spool(MappingProxyType(queues))

    def enqueue(
        self, sinks: Iterable[str], notes: Sequence[Notification], limit: int
    ) -> tuple[Spool, dict[str, int]]:
        """Add ``notes`` to each sink's queue; return the spool and drops per sink."""
        spool = self
        dropped: dict[str, int] = {}
        for sink in sinks:
            q = spool.queue(sink)
            known = {n.id for n in q.items}
            items = (*q.items, *(n for n in notes if n.id not in known))
            if len(items) > limit:
                dropped[sink] = len(items) - limit
                items = items[-limit:]
            spool = spool.with_queue(sink, replace(q, items=items))
        return spool, dropped

    def acknowledge(self, sink: str, ids: set[str], now: float) -> Spool:
        """``sink`` took these notifications: forget them, reset its backoff."""
        q = self.queue(sink)
        items = tuple(n for n in q.items if n.id not in ids)
        return self.with_queue(
            sink, replace(q, items=items, failures=0, next_try=0.0, last_error=None)
        )

    def failed(self, sink: str, error: str, now: float, backoff: float, cap: float) -> Spool:
        """A failed round: wait backoff * 2**failures (at most ``cap``) before the next."""
        q = self.queue(sink)
        failures = q.failures + 1
        wait = min(cap, backoff * 2 ** min(failures, 20))
        return self.with_queue(
            sink, replace(q, failures=failures, next_try=now + wait, last_error=error[:500])
        )

    def sizes(self) -> dict[str, int]:
        return {k: len(v.items) for k, v in self.queues.items()}

    def to_json(self) -> dict[str, Any]:
        return {"queues": {k: v.to_json() for k, v in self.queues.items()}}


def _doc(state_dir: Path) -> StateDocument:
    return StateDocument(state_dir / SPOOL_NAME, "alert-spool")


def load_spool(state_dir: Path, limit: int) -> tuple[Spool, list[str]]:
    """The stored spool; unreadable parts are dropped and named in the problems."""
    loaded = _doc(state_dir).load()
    problems = [f"{loaded.problem}; queued notifications lost"] if loaded.problem else []
    raw = (loaded.data or {}).get("queues")
    queues: dict[str, Queue] = {}
    if isinstance(raw, dict):
        for sink, value in list(raw.items())[:MAX_SINKS]:
            q, bad = _queue(value, limit)
            if isinstance(sink, str):
                queues[sink] = q
                if bad:
                    problems.append(
                        f"{_doc(state_dir).path}: {bad} malformed {sink} entries dropped"
                    )
    return Spool(MappingProxyType(queues)), problems


def save_spool(state_dir: Path, spool: Spool) -> None:
    _doc(state_dir).save(spool.to_json())


def _queue(raw: object, limit: int) -> tuple[Queue, int]:
    if not isinstance(raw, dict):
        return Queue(), 1
    items_raw = raw.get("items")
    items: list[Notification] = []
    bad = 0
    for entry in items_raw[-limit:] if isinstance(items_raw, list) else []:
        note = Notification.from_json(entry)
        if note is None:
            bad += 1
        else:
            items.append(note)
    return (
        Queue(
            items=tuple(items),
            failures=_int(raw.get("failures")),
            next_try=_num(raw.get("next_try")),
            last_error=str(raw.get("last_error"))[:500] if raw.get("last_error") else None,
            last_resend=_num(raw.get("last_resend")),
        ),
        bad,
    )


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _num(value: object) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if ok else 0.0  # type: ignore[arg-type]
