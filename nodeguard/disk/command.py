"""``nodeguard disk`` and ``nodeguard check``: the disk guard's view, read-only.

Both evaluate once without writing anything (the daemon and ``run --once`` keep the
history and send the alerts): usage, forecast, alert states and top consumers per
filesystem; ``check`` as a Nagios/Icinga plugin (exit 0 OK, 1 WARNING, 2 CRITICAL,
3 UNKNOWN).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, TextIO

from nodeguard.exitcodes import Exit, Nagios

if TYPE_CHECKING:  # the work modules load only when a command runs: a fast CLI start
    from nodeguard.config.model import Config
    from nodeguard.world import World


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``nodeguard disk`` and ``nodeguard check``."""
    disk = sub.add_parser(
        "disk",
        help="watched filesystems: usage, inodes, forecast, alert state, top consumers",
    )
    disk.add_argument("--json", action="store_true", help="print a machine-readable report")
    disk.set_defaults(handler=disk_handler)
    check = sub.add_parser(
        "check",
        help="Nagios/Icinga plugin: exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN",
        epilog="One status line, then one line with perfdata per filesystem. A bad "
        "config or bad arguments exit 3 (UNKNOWN).",
    )
    check.add_argument("--json", action="store_true", help="print a machine-readable status")
    check.set_defaults(handler=check_handler, config_error_exit=Nagios.UNKNOWN)


def disk_handler(args: argparse.Namespace, config: Config) -> int:
    return run_disk(args, config, out=sys.stdout)


def check_handler(args: argparse.Namespace, config: Config) -> int:
    return run_check(args, config, out=sys.stdout)


def run_disk(
    args: argparse.Namespace, config: Config, *, out: TextIO, world: World | None = None
) -> int:
    from nodeguard.disk.cycle import disk_cycle
    from nodeguard.disk.render import render_text

    result = disk_cycle(config, world, dry_run=True)
    if args.json:
        out.write(json.dumps(result.to_json(), indent=2) + "\n")
    else:
        out.write(render_text(result, chart=out.isatty()))
    return Exit.OK


def run_check(
    args: argparse.Namespace, config: Config, *, out: TextIO, world: World | None = None
) -> int:
    from nodeguard.disk.cycle import disk_cycle
    from nodeguard.disk.render import check, check_json, nagios_text

    try:
        result = disk_cycle(config, world, dry_run=True)
    except Exception as exc:  # a plugin must answer UNKNOWN, never a traceback
        out.write(f"NODEGUARD DISK UNKNOWN - {type(exc).__name__}: {exc}\n")
        return Nagios.UNKNOWN
    code, checks = check(result)
    if args.json:
        out.write(json.dumps(check_json(result, code, checks), indent=2) + "\n")
    else:
        out.write(nagios_text(result, code, checks, config.disk))
    return code
