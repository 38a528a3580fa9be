"""The container inventory as one call: :func:`container_inventory`.

The CLI (``nodeguard containers``) and the daemon call it with the validated config,
their options and the World; it takes the inventory, keeps the growth samples in the
state folder, removes the orphans the config allows when asked, and returns events
(:class:`~nodeguard.containers.outcome.ContainersKind`). It prints nothing; what it
did is logged at INFO on ``nodeguard.containers``, what it refused at WARNING.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from nodeguard.config.model import Config
from nodeguard.containers.inventory import ContainerRow, Inventory, take_inventory
from nodeguard.containers.kubelet import kubelet_pods_dir
from nodeguard.containers.orphans import OrphanPodDir, RemovalRefused, RemovalUnsafe, remove_pod_dir
from nodeguard.containers.outcome import ContainersKind, ContainersOptions, ContainersResult
from nodeguard.containers.samples import (
    EMPTY,
    Samples,
    load_samples,
    samples_document,
    save_samples,
)
from nodeguard.events import Event, Severity, Source, log_event
from nodeguard.state import (
    LockBusy,
    StateDirUnsafe,
    StateDocument,
    check_trusted_dir,
    clean_stale_temps,
    ensure_state_dir,
    pass_lock,
)
from nodeguard.world import World

log = logging.getLogger("nodeguard.containers")
_LOGGED = {
    ContainersKind.ORPHAN_REMOVED,
    ContainersKind.ORPHAN_REFUSED,
    ContainersKind.ORPHAN_REMOVAL_FAILED,
    ContainersKind.APPLY_REFUSED,
    ContainersKind.LOCKED,
}


def container_inventory(
    config: Config, options: ContainersOptions, world: World
) -> ContainersResult:
    """Take the inventory (and with ``options.apply`` remove allowed orphans)."""
    report = _Report(world.now())
    min_age = config.containers.remove_orphaned_pod_logs_after
    if options.apply and min_age is None:
        reason = (
            "--apply has nothing to do: containers.remove_orphaned_pod_logs_after is null "
            "(orphaned pod logs are only reported); nothing was changed"
        )
        return _result([report.event(ContainersKind.APPLY_REFUSED, "containers", reason)])
    inventory = _inventory_with_samples(config, options, world)
    if options.apply and not options.dry_run and min_age is not None:
        try:
            inventory = _remove_orphans(inventory, config, min_age, world.euid)
        except LockBusy as exc:
            reason = f"another pass is running: {exc}"
            return _result([report.event(ContainersKind.LOCKED, str(config.state_dir), reason)])
        except (StateDirUnsafe, OSError) as exc:  # LockUnusable is an OSError
            reason = f"orphan removal refused: {_why(exc)}; nothing was changed"
            event = report.event(ContainersKind.APPLY_REFUSED, "containers", reason)
            return _result([event])
    return _result(report.events(inventory))


def _why(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    return str(exc)


def _result(events: list[Event]) -> ContainersResult:
    for event in events:
        if event.kind in _LOGGED:
            log_event(log, event)
    return ContainersResult(tuple(events))


def _inventory_with_samples(config: Config, options: ContainersOptions, world: World) -> Inventory:
    """The inventory, with growth from the stored samples (stored again unless dry)."""
    now = world.timestamp()
    document: StateDocument | None = samples_document(config.state_dir)
    problems: list[str] = []
    samples: Samples = EMPTY
    try:
        if not options.dry_run:
            ensure_state_dir(config.state_dir, world.euid)
            clean_stale_temps(config.state_dir, now)
    except (StateDirUnsafe, OSError) as exc:
        problems.append(f"cannot keep growth samples: {_why(exc)}")
        document = None
    if document is not None:
        samples, problem = load_samples(document)
        problems += [problem] if problem else []
    inventory = take_inventory(config, samples, now, options.progress)
    options.progress.done()
    if document is not None and not options.dry_run:
        try:
            save_samples(document, {r.key: r.total_bytes for r in inventory.containers}, now)
        except OSError as exc:
            problems.append(f"{document.path}: cannot store growth samples: {exc.strerror or exc}")
    return replace(inventory, problems=(*problems, *inventory.problems))


def _remove_orphans(inventory: Inventory, config: Config, min_age: int, euid: int) -> Inventory:
    """Remove the removable orphans under the pass lock.

    What says which pods live must be something only root can change (StateDirUnsafe
    naming the component otherwise): the links folder, or kubelet's pods folder. With
    the links folder and the pods root in folders root alone can change, both are
    trusted as they are; otherwise (Ubuntu's /var/log is root:syslog 0775, so that
    group could swap either) removal needs kubelet's pods folder trusted, and the pods
    root must be the folder the scan read, owned by root, writable by nobody else.
    """
    now = inventory.now
    done: list[OrphanPodDir] = []
    ensure_state_dir(config.state_dir, euid)
    untrusted = _log_folders_problem(config, euid)
    root = None if untrusted is None else _kubelet_authority(inventory, config, untrusted, euid)
    with pass_lock(config.state_dir):
        for orphan in inventory.orphans:
            removable = orphan.removable
            done.append(_remove(orphan, config, min_age, now, root) if removable else orphan)
    return replace(inventory, orphans=tuple(done))


def _log_folders_problem(config: Config, euid: int) -> str | None:
    """Why the links folder or the pods root could be changed by others than root."""
    try:
        check_trusted_dir(config.containers.containers_dir, euid)
        check_trusted_dir(config.containers.pods_dir, euid)
    except StateDirUnsafe as exc:
        return str(exc)
    return None


def _kubelet_authority(
    inventory: Inventory, config: Config, why: str, euid: int
) -> tuple[int, int]:
    """The pods root's identity, once kubelet's pods folder vouches for which pods live."""
    pods = kubelet_pods_dir(config.containers.kubelet_config)
    if inventory.kubelet_pods is None or inventory.pods_root is None:
        raise StateDirUnsafe(f"{why}, and {pods} cannot be read to tell which pods live")
    try:
        check_trusted_dir(pods, euid)
    except StateDirUnsafe as exc:
        raise StateDirUnsafe(f"{why}, and {exc}") from None
    return inventory.pods_root


def _remove(
    orphan: OrphanPodDir, config: Config, min_age: int, now: float, root: tuple[int, int] | None
) -> OrphanPodDir:
    try:
        remove_pod_dir(config.containers.pods_dir, orphan.pod.name, min_age, now, root)
    except RemovalUnsafe as exc:
        note = f"refused: {exc}; nothing removed"
        return replace(orphan, removable=False, refused=True, note=note)
    except RemovalRefused as exc:
        return replace(orphan, removable=False, note=f"kept: {exc}")
    except OSError as exc:
        return replace(orphan, error=f"{exc.strerror or exc} ({exc.filename or orphan.pod.path})")
    return replace(orphan, removed=True, note="removed")


# --- the inventory as events ------------------------------------------------------------


@dataclass(frozen=True)
class _Report:
    """Turns an inventory into events stamped with one time."""

    when: datetime

    def event(
        self,
        kind: ContainersKind,
        subject: str,
        reason: str,
        severity: Severity = Severity.WARNING,
        facts: dict[str, Any] | None = None,
    ) -> Event:
        return Event(Source.CONTAINERS, kind, subject, severity, reason, facts or {}, self.when)

    def events(self, inventory: Inventory) -> list[Event]:
        """Rows, kubelet's limits, orphans, problems and a summary, in report order."""
        out = [self.row(row) for row in inventory.containers]
        out.append(self.kubelet(inventory))
        out += [self.orphan(o) for o in inventory.orphans]
        out += [self.event(ContainersKind.PROBLEM, "containers", p) for p in inventory.problems]
        out += [
            self.event(ContainersKind.POLICY_CONFLICT, "policies", p)
            for p in inventory.policy_conflicts
        ]
        out.append(self.summary(inventory))
        return out

    def row(self, row: ContainerRow) -> Event:
        if row.bounded_by:
            reason = f"logs bounded by {', '.join(row.bounded_by)}"
            return self.event(
                ContainersKind.CONTAINER, row.name, reason, Severity.INFO, row.to_json()
            )
        reason = (
            f"{row.runtime} container logs are bounded by nothing ({row.total_bytes} bytes now)"
        )
        return self.event(
            ContainersKind.UNBOUNDED, row.name, reason, Severity.WARNING, row.to_json()
        )

    def kubelet(self, inventory: Inventory) -> Event:
        limits = inventory.kubelet
        if limits.rotates:
            reason, severity = "kubelet rotates CRI logs", Severity.INFO
        else:
            reason, severity = "kubelet's rotation limits are unknown", Severity.WARNING
        facts = limits.to_json()
        return self.event(ContainersKind.KUBELET, str(limits.path), reason, severity, facts)

    def orphan(self, orphan: OrphanPodDir) -> Event:
        if orphan.removed:
            kind, severity = ContainersKind.ORPHAN_REMOVED, Severity.INFO
        elif orphan.error:
            kind, severity = ContainersKind.ORPHAN_REMOVAL_FAILED, Severity.ERROR
        elif orphan.refused:
            kind, severity = ContainersKind.ORPHAN_REFUSED, Severity.WARNING
        else:
            kind, severity = ContainersKind.ORPHANED, Severity.INFO
        reason = f"removal failed: {orphan.error}" if orphan.error else orphan.note
        return self.event(kind, orphan.pod.path, reason, severity, orphan.to_json())

    def summary(self, inventory: Inventory) -> Event:
        rows = inventory.containers
        facts = {
            "containers": len(rows),
            "bytes": sum(r.total_bytes for r in rows),
            "unbounded": sum(1 for r in rows if not r.bounded_by),
            "orphaned_pod_dirs": len(inventory.orphans),
            "docker_present": inventory.docker_present,
            "generated_at": inventory.now,
        }
        reason = f"{facts['containers']} container(s), {facts['unbounded']} unbounded"
        return self.event(ContainersKind.SUMMARY, "containers", reason, Severity.INFO, facts)
