"""``nodeguard run`` (the daemon, or ``--once``) and ``nodeguard status``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from nodeguard.exitcodes import Exit, worst

if TYPE_CHECKING:  # the work modules load only when a command runs: a fast CLI start
    from nodeguard.config.model import Config
    from nodeguard.daemon.parts import Outcome, Part
    from nodeguard.world import World


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``nodeguard run`` and ``nodeguard status``."""
    run = sub.add_parser(
        "run",
        help="the daemon: rotation passes, the size watch, containers, disks, journal, "
        "alerts, each on its schedule (--once: each once, then exit)",
        description="Without --once, run as the service (systemd Type=notify): SIGHUP "
        "reloads the config, SIGTERM stops. With --once, run each part once and exit.",
    )
    run.add_argument("--once", action="store_true", help="run each part once and exit")
    run.add_argument(
        "-n",
        "--dry-run",
        action="store_true",
        help="with --once: change nothing and send nothing; show what would be done and why",
    )
    run.add_argument(
        "--json", action="store_true", help="with --once: print a machine-readable report"
    )
    run.set_defaults(handler=run_handler)
    status = sub.add_parser(
        "status",
        help="what the running daemon last did; exit 1 when it has not reported lately",
        description="Read the daemon's status document from state_dir. Exit 0 when the "
        "daemon reported within three report intervals, 1 otherwise.",
    )
    status.add_argument("--json", action="store_true", help="print the status document")
    status.add_argument(
        "--check",
        action="store_true",
        help="liveness probe: one line; exit 0 when the daemon reports on time and no part "
        "is hung, 1 otherwise",
    )
    status.set_defaults(handler=status_handler)


def run_handler(args: argparse.Namespace, config: Config) -> int:
    if not args.once and (args.dry_run or args.json):
        print("nodeguard: --dry-run and --json need --once", file=sys.stderr)
        return Exit.USAGE
    if args.once:
        return run_once(config, dry_run=args.dry_run, as_json=args.json)
    return serve(args, config)


# --- run --once ----------------------------------------------------------------------


def run_once(config: Config, *, dry_run: bool, as_json: bool, world: World | None = None) -> int:
    """Each part once, in table order; print the whole picture; exit with the worst code."""
    from nodeguard.daemon.parts import table
    from nodeguard.world import World

    world = world or World()
    results: list[tuple[Part, Outcome]] = []
    for part in table():
        if part.in_once:
            outcome = _run_part(part, config, world, results, dry_run=dry_run, as_json=as_json)
            results.append((part, outcome))
    for part, outcome in results:
        if outcome.exit in (Exit.LOCKED, Exit.USAGE) or "error" in outcome.summary:
            print(f"nodeguard: {part.name}: {outcome.text.strip()}", file=sys.stderr)
    if as_json:
        sys.stdout.write(_once_json(results, dry_run) + "\n")
    else:
        sys.stdout.write(_once_text(results, dry_run))
    return worst(o.exit for _, o in results)


def _run_part(
    part: Part,
    config: Config,
    world: World,
    results: list[tuple[Part, Outcome]],
    *,
    dry_run: bool,
    as_json: bool,
) -> Outcome:
    from nodeguard.daemon.parts import Context, Outcome
    from nodeguard.progress import progress_for

    inbox = tuple(e for _, o in results for e in o.forwarded) if part.consumes else ()
    progress = progress_for(sys.stderr, part.name, enabled=not as_json)
    ctx = Context(config, world, dry_run=dry_run, inbox=inbox, render=True, progress=progress)
    try:
        return part.run(ctx)
    except Exception as exc:  # one part failing must not stop the others
        error = f"{type(exc).__name__}: {exc}"
        return Outcome(
            summary={"error": error},
            text=f"FAILED: {error}\n",
            data={"error": error},
            exit=Exit.FAILED,
        )
    finally:
        progress.done()


def _once_text(results: list[tuple[Part, Outcome]], dry_run: bool) -> str:
    out = ["dry run: nothing is changed and nothing is sent\n"] if dry_run else []
    for part, outcome in results:
        out.append(f"\n== {part.name}: {part.doc} ==\n" if out else f"== {part.name} ==\n")
        out.append(outcome.text)
    return "".join(out)


def _once_json(results: list[tuple[Part, Outcome]], dry_run: bool) -> str:
    body: dict[str, Any] = {
        "dry_run": dry_run,
        "ok": all(o.exit == Exit.OK for _, o in results),
        "parts": {p.name: o.data for p, o in results},
    }
    return json.dumps(body, indent=1)


# --- the daemon ----------------------------------------------------------------------


def serve(args: argparse.Namespace, config: Config) -> int:
    """Run until stopped; a step still running after stop_timeout is abandoned."""
    import logging
    import os

    from nodeguard.daemon import sd
    from nodeguard.daemon.loop import Daemon
    from nodeguard.daemon.parts import table
    from nodeguard.state import StateDirUnsafe
    from nodeguard.world import World

    world = World()
    sd.setup_logging(os.environ, config.daemon.log_level)
    daemon = Daemon(config, table(), world, os.environ, args.config, not args.no_dropins)
    try:
        clean = daemon.serve()
    except StateDirUnsafe as exc:
        print(f"nodeguard: unsafe state directory: {exc}; not started", file=sys.stderr)
        return Exit.USAGE
    if not clean:
        logging.shutdown()
        sys.stdout.flush()
        os._exit(Exit.OK)  # abandon the step in progress: no thread is waited for
    return Exit.OK


# --- status ------------------------------------------------------------------------


def status_handler(args: argparse.Namespace, config: Config) -> int:
    import time

    from nodeguard.daemon.status import liveness, read_status, render_json, render_text
    from nodeguard.world import World

    view = read_status(config.state_dir, time.time(), World().euid)
    if args.check:
        alive, line = liveness(view)
        print(line)
        return Exit.OK if alive else Exit.FAILED
    sys.stdout.write(render_json(view) if args.json else render_text(view))
    return Exit.FAILED if view.stale else Exit.OK
