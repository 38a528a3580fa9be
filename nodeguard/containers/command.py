"""``nodeguard containers``: the container log inventory, and orphan clean-up.

Turns the arguments into :class:`~nodeguard.containers.outcome.ContainersOptions`,
calls :func:`~nodeguard.containers.run.container_inventory` and renders its events as
the text table or the ``--json`` document.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the work modules load only when this command runs: a fast CLI start
    from nodeguard.config.model import Config


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
    """The CLI entry: the real world, stdout, and progress on a terminal's stderr."""
    from nodeguard.containers.outcome import ContainersKind, ContainersOptions
    from nodeguard.containers.report import refusal_json, render_json, render_text
    from nodeguard.containers.run import container_inventory
    from nodeguard.progress import progress_for, quiet_logs
    from nodeguard.world import World

    progress = progress_for(sys.stderr, "containers", enabled=not args.json)
    options = ContainersOptions(apply=args.apply, progress=progress)
    with quiet_logs("containers", args.verbose):
        result = container_inventory(config, options, World())
    code = int(result.exit)
    stopped = result.of(ContainersKind.APPLY_REFUSED, ContainersKind.LOCKED)
    for event in stopped:  # the human line, with or without --json
        print(f"nodeguard: {event.reason}", file=sys.stderr)
    if args.json:  # stdout is always one JSON document, a refusal's too
        if stopped:
            body = refusal_json(result.events, [e.reason for e in stopped], code)
        else:
            body = {**render_json(result.events), "exit": code}
        sys.stdout.write(json.dumps(body, indent=2) + "\n")
    elif not stopped:
        sys.stdout.write(render_text(result.events))
    return code
