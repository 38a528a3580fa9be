"""``nodeguard docker-config``: keep Docker's daemon-wide log settings bounded."""

from __future__ import annotations

import argparse
import functools
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the work modules load only when this command runs: a fast CLI start
    from nodeguard.config import Config


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
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace, config: Config) -> int:
    """Run the chosen mode against the real world (dockerd, systemctl, the files)."""
    from nodeguard.docker import apply, dockerd
    from nodeguard.docker.restart import restart_docker

    if args.restart and not args.apply:
        print("nodeguard: --restart goes with --apply", file=sys.stderr)
        return apply.EXIT_USAGE
    settings = config.docker
    binary = dockerd.find_dockerd() if settings.validate_with_dockerd else None
    validate = functools.partial(dockerd.validate, binary) if binary else None
    world = apply.World(
        out=sys.stdout,
        err=sys.stderr,
        docker_root=config.containers.docker_root,
        validate=validate,
        restart=restart_docker,
    )
    mode = "check" if args.check else "diff" if args.diff else "apply"
    return apply.run(mode, settings, world, restart=args.restart)
