"""Retention decisions for one log, as a pure function of what is on disk.

Given the live file's size, its rotated siblings and the policy, return the
steps of one pass in order: rotate, then remove what falls outside max_files
or max_age, then compress what is kept. No I/O here, so every rule is unit
tested directly and ``--dry-run`` shows exactly what a real pass would do.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from nodeguard.config.model import Policy
from nodeguard.config.units import format_duration, format_size
from nodeguard.rotation import naming


@dataclass(frozen=True)
class Sibling:
    """A rotated file of the log, with what retention needs to know."""

    name: naming.RotatedName
    size: int
    mtime: float


@dataclass(frozen=True)
class Step:
    action: str  # rotate | remove | compress
    name: str  # the file acted on (live name for rotate)
    reason: str
    target: str | None = None
    size: int | None = None


def rotate_due(policy: Policy, size: int, force: bool) -> bool:
    """Whether the live file should be rotated now (:func:`rotate_reason` says why)."""
    if size == 0 and policy.not_if_empty:
        return False
    return force or size >= policy.max_size


def rotate_reason(policy: Policy, size: int, force: bool) -> str | None:
    """Why the live file should be rotated now, or None to keep it."""
    if not rotate_due(policy, size, force):
        return None
    if force:
        return "forced"
    return f"size {format_size(size)} >= max_size {format_size(policy.max_size)}"


def plan_log(
    policy: Policy,
    live: str,
    size: int,
    siblings: list[Sibling],
    now: datetime,
    *,
    force: bool = False,
    rotate: bool = True,
) -> list[Step]:
    """The steps for one log; an empty list means there is nothing to do.

    ``rotate=False`` plans retention and compression of the rotated files alone (after
    a rotation failed: they still free space).
    """
    steps: list[Step] = []
    ordered = sorted(siblings, key=lambda s: s.name.key, reverse=True)  # newest first
    fresh: Sibling | None = None
    reason = rotate_reason(policy, size, force) if rotate else None
    if reason is not None:
        target = naming.new_name(live, now, (s.name.name for s in siblings))
        steps.append(Step("rotate", live, reason, target=target, size=size))
        parsed = naming.parse(target)
        if parsed is not None:
            fresh = Sibling(parsed, size, now.timestamp())
            ordered.insert(0, fresh)
    kept = _retain(policy, ordered, fresh, now, steps)
    steps += _compressions(policy, kept)
    return steps


def _retain(
    policy: Policy,
    ordered: list[Sibling],
    fresh: Sibling | None,
    now: datetime,
    steps: list[Step],
) -> list[Sibling]:
    kept: list[Sibling] = []
    max_age = policy.max_age
    cutoff = now.timestamp() - max_age if max_age is not None else None
    for sibling in ordered:
        if len(kept) >= policy.keep_rotated:
            why = f"beyond max_files {policy.max_files} (live file + {policy.keep_rotated} rotated)"
        elif (
            max_age is not None
            and cutoff is not None
            and sibling is not fresh
            and sibling.mtime < cutoff
        ):
            why = f"older than max_age {format_duration(max_age)}"
        else:
            kept.append(sibling)
            continue
        steps.append(Step("remove", sibling.name.name, why, size=sibling.size))
    return kept


def _compressions(policy: Policy, kept: list[Sibling]) -> list[Step]:
    if policy.compress == "none":
        return []
    plain = [s for s in kept if not s.name.compressed]
    if policy.delay_compress and kept and not kept[0].name.compressed:
        plain = plain[1:]  # the newest rotated file stays readable for shippers
        reason = "rotated file (the newest one stays plain: delay_compress)"
    else:
        reason = "rotated file"
    return [
        Step("compress", s.name.name, reason, target=s.name.name + ".gz", size=s.size)
        for s in plain
    ]
