"""What ``nodeguard containers`` reports: its event kinds, options and result."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from nodeguard.events import Event
from nodeguard.exitcodes import Exit
from nodeguard.progress import NO_PROGRESS, Progress


class ContainersKind(enum.StrEnum):
    """Every finding and action of the container inventory (events of Source.CONTAINERS)."""

    CONTAINER = "container"  # a container's logs, bounded (facts: the report row)
    UNBOUNDED = "unbounded"  # a container's logs that nothing bounds (facts: the row)
    KUBELET = "kubelet"  # kubelet's rotation limits (facts: the kubelet object)
    ORPHANED = "orphaned"  # a pod log folder no container uses (facts: the orphan)
    ORPHAN_REMOVED = "orphan-removed"
    ORPHAN_REFUSED = "orphan-refused"  # it holds a mount or foreign files: kept whole
    ORPHAN_REMOVAL_FAILED = "orphan-removal-failed"
    POLICY_CONFLICT = "policy-conflict"  # a policy fights kubelet or touches Docker's logs
    PROBLEM = "problem"  # a file or folder that could not be used, samples replaced ...
    SUMMARY = "summary"  # totals (facts: containers, bytes, unbounded, generated_at ...)
    APPLY_REFUSED = "apply-refused"  # --apply while removal is switched off
    LOCKED = "locked"  # another pass holds the lock


ORPHAN_KINDS = frozenset(
    {
        ContainersKind.ORPHANED,
        ContainersKind.ORPHAN_REMOVED,
        ContainersKind.ORPHAN_REFUSED,
        ContainersKind.ORPHAN_REMOVAL_FAILED,
    }
)
ROW_KINDS = frozenset({ContainersKind.CONTAINER, ContainersKind.UNBOUNDED})
PROBLEM_KINDS = frozenset({ContainersKind.POLICY_CONFLICT, ContainersKind.PROBLEM})

_EXITS: dict[str, Exit] = {
    ContainersKind.ORPHAN_REFUSED: Exit.FAILED,
    ContainersKind.ORPHAN_REMOVAL_FAILED: Exit.FAILED,
    ContainersKind.APPLY_REFUSED: Exit.USAGE,
    ContainersKind.LOCKED: Exit.LOCKED,
}
_RANK = [Exit.OK, Exit.FAILED, Exit.USAGE, Exit.LOCKED]


@dataclass(frozen=True)
class ContainersOptions:
    """``apply``: remove the orphans the config allows; ``dry_run``: store no samples
    and remove nothing (the daemon's --dry-run)."""

    apply: bool = False
    dry_run: bool = False
    progress: Progress = NO_PROGRESS


@dataclass(frozen=True)
class ContainersResult:
    """The events of one inventory, in report order."""

    events: tuple[Event, ...]

    @property
    def exit(self) -> Exit:
        return exit_for(e.kind for e in self.events)

    def of(self, *kinds: ContainersKind) -> list[Event]:
        return [e for e in self.events if e.kind in kinds]


def exit_for(kinds: Iterable[enum.StrEnum]) -> Exit:
    """0 for a report; 1 a removal failed or was refused; 2 usage; 3 locked."""
    return max((_EXITS.get(str(k), Exit.OK) for k in kinds), default=Exit.OK, key=_RANK.index)
