"""Placeholder subcommand, replaced by its implementation."""

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add this subcommand's options (none yet)."""


def run(args: argparse.Namespace) -> int:
    """Report that the subcommand is not built yet."""
    print(f"ta-cohort-mcp {args.command}: not implemented yet", file=sys.stderr)
    return 2
