"""``nodeguard rotate`` and ``nodeguard run --once``: arguments in, report out, exit code.

The pass itself is :func:`nodeguard.rotation.runner.run_rotation_pass`, which the
daemon calls too; this module only turns arguments into options and renders.
"""

from __future__ import annotations

import argparse
import sys

from nodeguard.config.model import Config
from nodeguard.config.units import format_duration, format_size
from nodeguard.exitcodes import Exit
from nodeguard.rotation.runner import LockBusy, PassOptions, StateUnusable, run_rotation_pass
from nodeguard.world import World


def run_rotation(args: argparse.Namespace, config: Config, world: World | None = None) -> int:
    """Run one pass as the CLI asked and print the report; return the exit code."""
    names = tuple(getattr(args, "policy", None) or ())
    unknown = [n for n in names if config.policy(n) is None]
    if unknown:
        print(
            f"nodeguard: no such policy: {', '.join(unknown)} "
            f"(have: {', '.join(p.name for p in config.policies)})",
            file=sys.stderr,
        )
        return Exit.USAGE
    from nodeguard.progress import progress_for

    options = PassOptions(
        dry_run=args.dry_run,
        force=getattr(args, "force", False),
        policies=names,
        progress=progress_for(sys.stderr, "rotate", enabled=not args.json),
    )
    try:
        report = run_rotation_pass(config, options, world or World())
    except LockBusy as exc:
        print(f"nodeguard: another pass is running: {exc}", file=sys.stderr)
        return Exit.LOCKED
    except StateUnusable as exc:
        print(
            f"nodeguard: state_dir {config.state_dir} cannot be used: {exc}; nothing was changed",
            file=sys.stderr,
        )
        return Exit.USAGE
    if args.json:
        sys.stdout.write(report.to_json() + "\n")
    else:
        sys.stdout.write(pass_header(config, names) + report.render_text())
    return Exit.FAILED if report.failed else Exit.OK


def pass_header(config: Config, names: tuple[str, ...]) -> str:
    """Which config and policies this pass used, so a plan reads on its own."""
    lines = [f"config: {', '.join(config.sources)}"]
    for p in config.policies:
        if names and p.name not in names:
            continue
        age = f", max_age {format_duration(p.max_age)}" if p.max_age else ""
        lines.append(
            f"policy {p.name}: {' '.join(p.paths)} (max_size {format_size(p.max_size)}"
            f", max_files {p.max_files}{age}, {p.method}, compress {p.compress})"
        )
    return "\n".join(lines) + "\n"
