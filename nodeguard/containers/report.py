"""The container inventory's events rendered for operators (text) and machines (JSON).

Both renderings are made from the events of
:func:`~nodeguard.containers.run.container_inventory` alone: a row's facts are its
``--json`` object, so the table, the JSON and an alert read the same data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from nodeguard.config.units import format_size
from nodeguard.containers.orphans import human_duration
from nodeguard.containers.outcome import ORPHAN_KINDS, PROBLEM_KINDS, ROW_KINDS, ContainersKind
from nodeguard.events import Event
from nodeguard.rotation.report import printable

HEADERS = ("RUNTIME", "CONTAINER", "LIVE", "ROTATED", "FILES", "GROWTH", "BOUNDED BY")


def render_json(events: Sequence[Event]) -> dict[str, Any]:
    """The ``--json`` document: containers, orphans, kubelet, problems, totals."""
    summary = _one(events, ContainersKind.SUMMARY)
    kubelet = _one(events, ContainersKind.KUBELET)
    return {
        "containers": [dict(e.facts) for e in events if e.kind in ROW_KINDS],
        "orphan_pod_dirs": [dict(e.facts) for e in events if e.kind in ORPHAN_KINDS],
        "kubelet": dict(kubelet),
        "docker_present": summary.get("docker_present"),
        "problems": [e.reason for e in events if e.kind in PROBLEM_KINDS],
        "generated_at": summary.get("generated_at"),
    }


def refusal_json(events: Sequence[Event], refused: Sequence[str], code: int) -> dict[str, Any]:
    """The ``--json`` document of a run that stopped before the report (``--apply``
    refused, or the lock held): the reasons and the exit code, no inventory."""
    return {"exit": code, "refused": list(refused), "events": [e.as_dict() for e in events]}


def render_text(events: Sequence[Event]) -> str:
    """A table of containers (top consumers first), then kubelet, orphans and problems."""
    rows = [e.facts for e in events if e.kind in ROW_KINDS]
    lines = _table([_cells(r) for r in rows]) if rows else []
    lines.append(_summary(_one(events, ContainersKind.SUMMARY)))
    lines.append(_kubelet_line(_one(events, ContainersKind.KUBELET)))
    orphans = [e.facts for e in events if e.kind in ORPHAN_KINDS]
    if orphans:
        lines.append("orphaned pod log directories (no container refers to them):")
        lines += [f"  {_orphan_line(o)}" for o in orphans]
    problems = [e.reason for e in events if e.kind in PROBLEM_KINDS]
    if problems:
        lines.append("problems:")
        lines += [f"  - {p}" for p in problems]
    # Names are their creators' choice: no newline, escape sequence or undecodable byte
    # may reach the terminal (rotation's report escapes them the same way).
    return "\n".join(printable(line) for line in lines) + "\n"


def _one(events: Sequence[Event], kind: ContainersKind) -> Mapping[str, Any]:
    return next((e.facts for e in events if e.kind == kind), {})


def _cells(row: Mapping[str, Any]) -> tuple[str, ...]:
    who = row["name"]
    if row["runtime"] == "docker" and row["namespace"] and row["pod"] and row["container"]:
        who = f"{row['namespace']}/{row['pod']}/{row['container']} ({row['name']})"
    growth = row["growth_bytes_per_s"]
    shown = "-" if growth is None else f"{format_size(round(growth))}/s"
    return (
        row["runtime"],
        printable(who),
        format_size(row["live_bytes"]),
        format_size(row["rotated_bytes"]),
        str(row["files"]),
        shown,
        ", ".join(row["bounded_by"]) or "UNBOUNDED",
    )


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(c) for c in col) for col in zip(HEADERS, *rows, strict=True)]
    right = {2, 3, 4, 5}

    def line(cells: tuple[str, ...]) -> str:
        parts = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    return [line(HEADERS), *(line(r) for r in rows)]


def _summary(summary: Mapping[str, Any]) -> str:
    total = format_size(summary.get("bytes", 0))
    return (
        f"{summary.get('containers', 0)} container(s), {total} of logs, "
        f"{summary.get('unbounded', 0)} unbounded"
    )


def _kubelet_line(limits: Mapping[str, Any]) -> str:
    if not limits.get("rotates_cri_logs"):
        return (
            f"kubelet: rotation limits unknown ({limits.get('config')} is unusable; see problems)"
        )
    source = "kubelet defaults" if not limits["present"] else str(limits["config"])
    if limits["present"] and limits["defaulted"]:
        source += f"; defaults for {', '.join(limits['defaulted'])}"
    return (
        f"kubelet: containerLogMaxSize {limits['container_log_max_size_text']}, "
        f"containerLogMaxFiles {limits['container_log_max_files']} ({source})"
    )


def _orphan_line(orphan: Mapping[str, Any]) -> str:
    if orphan["removed"]:
        action = "removed"
    elif orphan["error"]:
        action = f"removal failed: {orphan['error']}"
    elif orphan["removable"]:
        action = "would be removed with --apply"
    else:
        action = orphan["note"]
    return (
        f"{orphan['path']}  {format_size(orphan['bytes'])} in {orphan['files']} file(s), "
        f"idle {human_duration(orphan['idle_seconds'])}: {action}"
    )
