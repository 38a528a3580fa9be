"""The ``nodeguard`` command line.

Each subcommand is a small function that loads the config once, calls the
module that owns the concern, prints, and returns an exit code:
0 success, 1 some action failed, 2 bad config or usage, 3 another pass holds the lock.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

from nodeguard import __version__
from nodeguard.config import Config, ConfigError, load_config
from nodeguard.config.loader import embedded_default_text
from nodeguard.exitcodes import Exit

Handler = Callable[[argparse.Namespace, Config], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nodeguard",
        description="Keeps logs from filling a node's disks.",
        epilog="Exit codes: 0 success, 1 some action failed or was refused, 2 bad config "
        "or usage (nothing changed), 3 another pass holds the lock.",
    )
    parser.add_argument("--version", action="version", version=f"nodeguard {__version__}")
    parser.add_argument(
        "-c",
        "--config",
        type=Path,
        default=None,
        help="main config file (default /etc/nodeguard/nodeguard.yaml, "
        "else the embedded default); drop-ins come from conf.d/ beside it",
    )
    parser.add_argument(
        "--no-dropins", action="store_true", help="ignore conf.d/*.yaml (for checking one file)"
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log more on stderr (-v: info, -vv: debug; default: warnings and errors)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    config = sub.add_parser("config", help="validate, show or generate configuration")
    config_sub = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    config_sub.add_parser("validate", help="check the config; exit 2 with every problem")
    config_sub.add_parser("show", help="print the effective config as JSON")
    config_sub.add_parser("sample", help="print a commented sample config")
    config_sub.add_parser("default", help="print the embedded default config")

    rotate = sub.add_parser("rotate", help="run one rotation pass now")
    _add_pass_options(rotate)
    rotate.add_argument(
        "--policy", action="append", metavar="NAME", help="only this policy (repeatable)"
    )
    rotate.add_argument(
        "--force", action="store_true", help="rotate every matching file regardless of size"
    )

    for module in _plugin_commands():
        module.add_parser(sub)
    return parser


def _add_pass_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-n",
        "--dry-run",
        action="store_true",
        help="change nothing; print what would be done and why",
    )
    parser.add_argument("--json", action="store_true", help="print a machine-readable report")


def _plugin_commands() -> list[ModuleType]:
    """Subcommands owned by their concern's module (an explicit table, no scanning).

    Each module has ``add_parser(sub)``, which sets ``handler`` as a parser default.
    """
    from nodeguard.containers import command as containers_command
    from nodeguard.daemon import command as daemon_command
    from nodeguard.disk import command as disk_command
    from nodeguard.docker import command as docker_command
    from nodeguard.journal import command as journal_command

    return [daemon_command, docker_command, containers_command, disk_command, journal_command]


# Commands whose usage errors exit otherwise than 2: Nagios reads 2 as CRITICAL, and a
# plugin called with bad arguments must say UNKNOWN (3).
_USAGE_EXIT = {"check": 3}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        if exc.code == Exit.USAGE and _command_word(argv) in _USAGE_EXIT:
            raise SystemExit(_USAGE_EXIT[_command_word(argv) or ""]) from None
        raise
    _setup_logging(args.verbose)
    if args.command == "config" and args.config_command in ("sample", "default"):
        from nodeguard.config.docs import render_sample  # textwrap and the sample: only here

        text = render_sample() if args.config_command == "sample" else embedded_default_text()
        sys.stdout.write(text)
        return Exit.OK
    try:
        config = load_config(args.config, dropins=not args.no_dropins)
    except ConfigError as exc:
        return _config_refused(args, exc)
    handler: Handler = getattr(args, "handler", None) or _HANDLERS[args.command]
    return handler(args, config)


def _config_refused(args: argparse.Namespace, exc: ConfigError) -> int:
    """Each problem on stderr; with --json, stdout still holds one JSON document."""
    code = int(getattr(args, "config_error_exit", Exit.USAGE))
    for problem in exc.problems:
        print(f"nodeguard: {problem}", file=sys.stderr)
    summary = f"configuration invalid ({len(exc.problems)} problem(s)); nothing was changed"
    print(f"nodeguard: {summary}", file=sys.stderr)
    if getattr(args, "json", False):
        document = {"error": summary, "problems": list(exc.problems), "exit": code}
        print(json.dumps(document, sort_keys=True))
    return code


def _command_word(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv``: its first word that is no option or option value."""
    words = iter(argv)
    for word in words:
        if word in ("-c", "--config"):
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def _setup_logging(verbose: int) -> None:
    """Log records on stderr as ``nodeguard: LEVEL message`` (journald with fields when
    stderr is the journal), warnings and worse unless -v; stdout stays the command's
    report. ``nodeguard run`` (the daemon) sets its own level from the config."""
    import logging
    import os

    from nodeguard.daemon import sd

    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    logger = logging.getLogger("nodeguard")
    for old in list(logger.handlers):
        logger.removeHandler(old)
    handler = sd.log_handler(os.environ, sd.CLI_FORMAT)
    handler.setLevel(level)
    logger.addHandler(handler)
    if verbose:
        logger.setLevel(level)


def _config(args: argparse.Namespace, config: Config) -> int:
    if args.config_command == "validate":
        print(f"configuration OK: {', '.join(config.sources)} ({len(config.policies)} policies)")
        return Exit.OK
    print(json.dumps(_jsonable(config), indent=2, sort_keys=False))
    return Exit.OK


def _jsonable(value: object) -> object:
    from dataclasses import fields, is_dataclass

    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "items"):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def _rotate(args: argparse.Namespace, config: Config) -> int:
    from nodeguard.rotation.command import run_rotation

    code: int = run_rotation(args, config)
    return code


_HANDLERS: dict[str, Handler] = {
    "config": _config,
    "rotate": _rotate,
}


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
