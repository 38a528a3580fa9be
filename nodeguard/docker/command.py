"""``nodeguard docker-config``: keep Docker's daemon-wide log settings bounded.

Turns the arguments into :class:`~nodeguard.docker.outcome.DockerOptions`, calls
:func:`~nodeguard.docker.apply.docker_config` and renders its events: text on stdout
and stderr (as it always read), or one JSON document with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, TextIO

from nodeguard.exitcodes import Exit

if TYPE_CHECKING:  # the work modules load only when this command runs: a fast CLI start
    from nodeguard.config import Config
    from nodeguard.docker.outcome import DockerResult
    from nodeguard.events import Event


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``docker-config``."""
    parser = sub.add_parser(
        "docker-config",
        help="check, show or write log-driver/log-opts in Docker's daemon.json",
        description="Exit codes: 0 matches or updated, 1 differs (--check/--diff) or an "
        "action failed, 2 bad daemon.json, config or usage (nothing written).",
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument(
        "--check", action="store_true", help="exit 0 if daemon.json matches, 1 if not"
    )
    mode.add_argument("--diff", action="store_true", help="print the change as a unified diff")
    mode.add_argument(
        "--apply",
        action="store_true",
        help="write log-driver and log-opts, keeping every other key as it is",
    )
    parser.add_argument(
        "--restart",
        action="store_true",
        help="with --apply: restart Docker after a change (docker.restart_command)",
    )
    parser.add_argument("--json", action="store_true", help="print the outcome as JSON events")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace, config: Config) -> int:
    """Run the chosen mode against the real world (dockerd, systemctl, the files)."""
    from nodeguard.docker.apply import docker_config
    from nodeguard.docker.outcome import DockerOptions, Mode
    from nodeguard.progress import quiet_logs
    from nodeguard.world import World

    mode = Mode.CHECK if args.check else Mode.DIFF if args.diff else Mode.APPLY
    if args.restart and not args.apply:
        print("nodeguard: --restart goes with --apply", file=sys.stderr)
        if args.json:  # stdout is always one JSON document with --json
            body = {
                "mode": str(mode),
                "exit": int(Exit.USAGE),
                "error": "--restart goes with --apply",
                "events": [],
            }
            sys.stdout.write(json.dumps(body, indent=2) + "\n")
        return Exit.USAGE
    with quiet_logs("docker", args.verbose):
        result = docker_config(config, DockerOptions(mode, restart=args.restart), World())
    if args.json:
        sys.stdout.write(render_json(result))
    else:
        render_text(result, sys.stdout, sys.stderr)
    return int(result.exit)


def render_json(result: DockerResult) -> str:
    body = {
        "mode": str(result.mode),
        "exit": int(result.exit),
        "events": [e.as_dict() for e in result.events],
    }
    return json.dumps(body, indent=2) + "\n"


def render_text(result: DockerResult, out: TextIO, err: TextIO) -> None:
    """Each event as the lines operators read; refusals and failures on stderr."""
    from nodeguard.rotation.report import printable

    for event in result.events:
        if str(event.kind) == "diff":
            out.write(str(event.facts["diff"]))  # exactly as patch(1) needs it
            continue
        stream, lines = _lines(event)
        # Names come from Docker's files: no newline, escape or undecodable byte passes.
        (err if stream == "err" else out).writelines(printable(line) + "\n" for line in lines)


_ERR = {
    "no-changes",
    "unusable",
    "not-managed",
    "no-verdict",
    "changed-meanwhile",
    "write-failed",
    "restart-failed",
}
_NOT_CHANGED = {"unusable", "no-verdict"}


def _lines(event: Event) -> tuple[str, list[str]]:
    kind = str(event.kind)
    if kind in _ERR:
        lines = [f"nodeguard: {event.reason}"]
        if kind in _NOT_CHANGED:
            lines.append("nodeguard: daemon.json was not changed")
        return "err", lines
    if kind == "container-unreadable":
        return "out", [f"warning: could not read {event.reason}"]
    if kind == "container-stale":
        return "out", [f"  {event.facts['tag']:<10} {event.reason}"]
    lines = [event.reason, *_change_lines(event)]
    if kind == "updated" and event.facts.get("backup"):
        lines.append(f"previous file kept as {event.facts['backup']}")
    return "out", lines


def _change_lines(event: Event) -> Iterator[str]:
    for change in event.facts.get("changes") or ():
        yield f"  {change['key']}: {change['old'] or '(missing)'} -> {change['new']}"
