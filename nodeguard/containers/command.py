"""CLI subcommand for this concern (filled in by its issue)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register this module's subcommands."""
