"""``nodeguard containers``: the container log inventory, and orphan clean-up."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, TextIO

from nodeguard.state import LockBusy, pass_lock

if TYPE_CHECKING:  # the work modules load only when this command runs: a fast CLI start
    from nodeguard.config.model import Config
    from nodeguard.containers.inventory import Inventory
    from nodeguard.containers.orphans import OrphanPodDir

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_LOCKED = 0, 1, 2, 3


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``nodeguard containers``."""
    parser = sub.add_parser(
        "containers",
        help="container logs per container: sizes, growth, what bounds them, orphans",
    )
    parser.add_argument("--json", action="store_true", help="print a machine-readable report")
    parser.add_argument(
        "--apply",
        action="store_true",
        help="remove orphaned pod log directories idle longer than "
        "containers.remove_orphaned_pod_logs_after (without it: report only)",
    )
    parser.set_defaults(handler=handler)


def handler(args: argparse.Namespace, config: Config) -> int:
    """The CLI entry: the real clock and stdout."""
    return run(args, config, clock=time.time, out=sys.stdout)


def run(
    args: argparse.Namespace, config: Config, *, clock: Callable[[], float], out: TextIO
) -> int:
    """Take the inventory, store this run's samples, optionally remove orphans, print."""
    from nodeguard.containers.report import render_text

    min_age = config.containers.remove_orphaned_pod_logs_after
    if args.apply and min_age is None:
        print(
            "nodeguard: --apply has nothing to do: containers.remove_orphaned_pod_logs_after "
            "is null (orphaned pod logs are only reported); nothing was changed",
            file=sys.stderr,
        )
        return EXIT_USAGE
    now = clock()
    inventory = _inventory_with_samples(config, now)
    code = EXIT_OK
    if args.apply and min_age is not None:
        try:
            inventory, code = apply_removals(inventory, config, min_age, now)
        except LockBusy as exc:
            print(f"nodeguard: another pass is running: {exc}", file=sys.stderr)
            return EXIT_LOCKED
    if args.json:
        out.write(json.dumps(inventory.to_json(), indent=2) + "\n")
    else:
        out.write(render_text(inventory))
    return code


def _inventory_with_samples(config: Config, now: float) -> Inventory:
    from nodeguard.containers.inventory import take_inventory
    from nodeguard.containers.samples import EMPTY, load_samples, samples_document, save_samples
    from nodeguard.state import StateDirUnsafe, clean_stale_temps, ensure_state_dir

    document = samples_document(config.state_dir)
    problems: list[str] = []
    try:
        ensure_state_dir(config.state_dir, os.geteuid())
    except (StateDirUnsafe, OSError) as exc:
        problems.append(f"cannot keep growth samples: {exc}")
        return replace(take_inventory(config, EMPTY, now), problems=tuple(problems))
    clean_stale_temps(config.state_dir, now)
    samples, problem = load_samples(document)
    inventory = take_inventory(config, samples, now)
    problems += [problem] if problem else []
    try:
        save_samples(document, {r.key: r.total_bytes for r in inventory.containers}, now)
    except OSError as exc:
        problems.append(f"{document.path}: cannot store growth samples: {exc}")
    return replace(inventory, problems=(*problems, *inventory.problems))


def apply_removals(
    inventory: Inventory, config: Config, min_age: int, now: float
) -> tuple[Inventory, int]:
    """Remove the removable orphans under the pass lock; exit 1 if any removal failed."""
    done: list[OrphanPodDir] = []
    with pass_lock(config.state_dir):
        for orphan in inventory.orphans:
            done.append(_remove(orphan, config, min_age, now) if orphan.removable else orphan)
    failed = any(o.error for o in done)
    return replace(inventory, orphans=tuple(done)), EXIT_FAILED if failed else EXIT_OK


def _remove(orphan: OrphanPodDir, config: Config, min_age: int, now: float) -> OrphanPodDir:
    from nodeguard.containers.orphans import RemovalRefused, remove_pod_dir

    try:
        remove_pod_dir(config.containers.pods_dir, orphan.pod.name, min_age, now)
    except RemovalRefused as exc:
        return replace(orphan, removable=False, note=f"kept: {exc}")
    except OSError as exc:
        return replace(orphan, error=f"{exc.strerror or exc} ({exc.filename or orphan.pod.path})")
    return replace(orphan, removed=True, note="removed")
