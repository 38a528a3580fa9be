"""Text rendering of the container log inventory for operators."""

from __future__ import annotations

from nodeguard.config.units import format_size
from nodeguard.containers.inventory import ContainerRow, Inventory
from nodeguard.containers.kubelet import KubeletLimits
from nodeguard.containers.orphans import OrphanPodDir, human_duration

HEADERS = ("RUNTIME", "CONTAINER", "LIVE", "ROTATED", "FILES", "GROWTH", "BOUNDED BY")


def render_text(inventory: Inventory) -> str:
    """A table of containers (top consumers first), then kubelet, orphans and problems."""
    lines = _table([_cells(r) for r in inventory.containers]) if inventory.containers else []
    lines.append(_summary(inventory))
    lines.append(_kubelet_line(inventory.kubelet))
    if inventory.orphans:
        lines.append("orphaned pod log directories (no container refers to them):")
        lines += [f"  {_orphan_line(o)}" for o in inventory.orphans]
    if inventory.problems:
        lines.append("problems:")
        lines += [f"  - {p}" for p in inventory.problems]
    return "\n".join(lines) + "\n"


def _cells(row: ContainerRow) -> tuple[str, ...]:
    who = row.name
    if row.runtime == "docker" and row.namespace and row.pod and row.container:
        who = f"{row.namespace}/{row.pod}/{row.container} ({row.name})"
    growth = "-" if row.growth is None else f"{format_size(round(row.growth))}/s"
    return (
        row.runtime,
        who,
        format_size(row.bytes_of("live")),
        format_size(row.bytes_of("rotated")),
        str(len(row.files)),
        growth,
        ", ".join(row.bounded_by) or "UNBOUNDED",
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


def _summary(inventory: Inventory) -> str:
    rows = inventory.containers
    unbounded = sum(1 for r in rows if not r.bounded_by)
    total = sum(r.total_bytes for r in rows)
    return f"{len(rows)} container(s), {format_size(total)} of logs, {unbounded} unbounded"


def _kubelet_line(limits: KubeletLimits) -> str:
    if not limits.rotates:
        return f"kubelet: rotation limits unknown ({limits.path} is unusable; see problems)"
    source = "kubelet defaults" if not limits.present else str(limits.path)
    if limits.present and limits.defaulted:
        source += f"; defaults for {', '.join(limits.defaulted)}"
    return (
        f"kubelet: containerLogMaxSize {limits.max_size_text}, "
        f"containerLogMaxFiles {limits.max_files} ({source})"
    )


def _orphan_line(orphan: OrphanPodDir) -> str:
    if orphan.removed:
        action = "removed"
    elif orphan.error:
        action = f"removal failed: {orphan.error}"
    elif orphan.removable:
        action = "would be removed with --apply"
    else:
        action = orphan.note
    pod = orphan.pod
    return (
        f"{pod.path}  {format_size(pod.bytes)} in {pod.files} file(s), "
        f"idle {human_duration(orphan.age)}: {action}"
    )
