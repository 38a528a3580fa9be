"""nodeguard(8), generated from the CLI's own argparse definitions.

``python3 -m nodeguard.manpage > nodeguard.8``: the packages run this at build time,
so the man page cannot drift from ``nodeguard --help``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator

from nodeguard import __version__

_SECTIONS = """\
.SH FILES
.TP
.I /etc/nodeguard/nodeguard.yaml
The main configuration file (a conffile: upgrades keep the admin's edits). Without it,
the embedded default applies (\\fBnodeguard config default\\fR prints it).
.TP
.I /etc/nodeguard/conf.d/*.yaml
Drop-ins merged on top in name order; policies merge by name.
.TP
.I /var/lib/nodeguard
The state directory (\\fBstate_dir\\fR): the pass lock, intent records, state files and
the daemon's \\fIstatus.json\\fR read by \\fBnodeguard status\\fR.
.SH SIGNALS
.TP
.B SIGHUP
Reload the configuration (\\fBsystemctl reload nodeguard\\fR). A configuration that does
not validate is reported with file, line and key; the daemon keeps running on the one
it had.
.TP
.BR SIGTERM ", " SIGINT
Stop within a few seconds: a step still running after \\fBdaemon.stop_timeout\\fR is
abandoned; its intent record lets the next start finish or undo it.
.SH EXIT STATUS
0 success; 1 some action failed or was refused (\\fBstatus\\fR: the daemon has not
reported for three report intervals); 2 bad configuration, input or usage, nothing
changed, or (\\fBrun --once\\fR) an alert sink's configuration refused (a redirect, a
secret file, credentials); 3 another pass holds the lock; 4 (\\fBrun --once\\fR) not every
alert delivered, the rest kept in the spool for the next run. The most serious code
wins, in the order 3, 2, 1, 4. \\fBcheck\\fR, where present, uses the Nagios
convention (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).
.SH SEE ALSO
.BR systemctl (1),
.BR journalctl (1),
.BR logrotate (8).
The documentation in /usr/share/doc/nodeguard.
"""


def escape(text: str) -> str:
    """Text safe in roff: backslashes doubled, a leading dot or quote neutralised."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    lines = [("\\&" + ln if ln.startswith((".", "'")) else ln) for ln in text.splitlines()]
    return "\n".join(lines)


def render(parser: argparse.ArgumentParser) -> str:
    """The whole man page for ``parser`` (nodeguard's own, from cli.build_parser)."""
    head = [
        f'.TH NODEGUARD 8 "" "nodeguard {__version__}" "System Administration"',
        ".SH NAME",
        f"nodeguard \\- {escape(_first_line(parser.description or ''))}",
        ".SH SYNOPSIS",
        f".B nodeguard\n{escape(_usage_tail(parser))}",
        ".SH DESCRIPTION",
        escape(parser.description or ""),
        ".PP",
        escape(parser.epilog or ""),
        ".SH OPTIONS",
        *_options(parser),
        ".SH COMMANDS",
        *_commands(parser, "nodeguard"),
    ]
    return "\n".join(head) + "\n" + _SECTIONS


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0].rstrip(".") if text.strip() else "nodeguard"


def _usage_tail(parser: argparse.ArgumentParser) -> str:
    usage = " ".join(parser.format_usage().split())
    return usage.removeprefix("usage:").strip().removeprefix(parser.prog).strip()


def _options(parser: argparse.ArgumentParser, *, top: bool = True) -> Iterator[str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) or not action.option_strings:
            continue
        if action.help == argparse.SUPPRESS or (not top and action.dest == "help"):
            continue
        flags = ", ".join(action.option_strings)
        metavar = f" {action.metavar or action.dest.upper()}" if action.nargs != 0 else ""
        yield f".TP\n.B {escape(flags)}{escape(metavar)}\n{escape(action.help or '')}"


def _commands(parser: argparse.ArgumentParser, prefix: str) -> Iterator[str]:
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {a.dest: a.help or "" for a in action._choices_actions}
        for name, sub in action.choices.items():
            full = f"{prefix} {name}"
            yield f'.SS "{escape(full)}"'
            yield escape(helps.get(name, ""))
            if sub.description:
                yield f".PP\n{escape(sub.description)}"
            yield from _options(sub, top=False)
            yield from _commands(sub, full)


def main() -> int:
    from nodeguard.cli import build_parser

    sys.stdout.write(render(build_parser()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
