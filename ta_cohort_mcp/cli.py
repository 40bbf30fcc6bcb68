"""The `ta-cohort-mcp` command: serve, sandbox, demo and schemas.

Each subcommand's options and entry point live in a `command` module beside the
code it runs, and those modules import their heavy dependencies (DuckDB, the MCP
SDK) only when the subcommand runs.
"""

import argparse
import importlib
import sys
from collections.abc import Sequence

from ta_cohort_mcp import __version__

# Subcommand name -> (module with add_arguments(parser) and run(args) -> int, help).
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("ta_cohort_mcp.server.command", "run the MCP server (stdio or HTTP)"),
    "sandbox": ("ta_cohort_mcp.sandbox.command", "run the TA-compatible sandbox API"),
    "demo": (
        "ta_cohort_mcp.server.demo",
        "play the reference's scenarios on the sandbox",
    ),
    "schemas": ("ta_cohort_mcp.schemas", "write or check the JSON Schemas in schemas/"),
}


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="ta-cohort-mcp",
        description="MCP server for ThinkingData user clusters and tags.",
    )
    parser.add_argument("--version", action="version", version=__version__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        subparser = subparsers.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(subparser)
        subparser.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit status."""
    args = build_parser().parse_args(argv)
    status: int = args.run(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
