"""The `ta-cohort-mcp sandbox` subcommand: run the sandbox API until Ctrl-C.

The sandbox listens on loopback only (127.0.0.1 by default); any other host is
rejected. DuckDB and uvicorn are imported only when the subcommand runs.
"""

import argparse
import datetime
import errno
import logging
import os
import signal
import sys
import threading
from types import FrameType

logger = logging.getLogger(__name__)

DEFAULT_PORT = 8992
TOKEN_ENV = "TA_SANDBOX_TOKEN"


def _date(text: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid date {text!r}; use YYYY-MM-DD, such as 2020-01-10"
        ) from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1; got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the sandbox's options."""
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="loopback address to listen on: 127.0.0.1 (default), ::1 or localhost",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"TCP port to listen on, 0 for a free one (default {DEFAULT_PORT})",
    )
    parser.add_argument(
        "--db",
        metavar="FILE",
        help="DuckDB file that keeps clusters across restarts (default: in memory)",
    )
    parser.add_argument(
        "--today",
        type=_date,
        metavar="YYYY-MM-DD",
        help="day 0 of the sample data and of recentDay windows (default: today)",
    )
    parser.add_argument(
        "--users",
        type=_positive,
        default=1000,
        metavar="N",
        help="sample users per project (default 1000)",
    )
    parser.add_argument(
        "--seed", type=int, default=7, metavar="S", help="sample data seed (default 7)"
    )
    parser.add_argument(
        "--token",
        metavar="T",
        help=f"token the sandbox accepts (default: ${TOKEN_ENV}, else sandbox-token)",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="level of the log on stderr (default INFO)",
    )


def _listen_error(args: argparse.Namespace, error: OSError) -> str:
    if error.errno == errno.EADDRINUSE:
        return (
            f"port {args.port} on {args.host} is already in use; choose another "
            "with --port, or --port 0 for a free one"
        )
    reason = error.strerror or str(error)
    return f"cannot listen on {args.host} port {args.port}: {reason}"


def run(args: argparse.Namespace) -> int:
    """Run the sandbox in the foreground until Ctrl-C or SIGTERM."""
    logging.basicConfig(
        level=args.log_level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from ta_cohort_mcp.sandbox.app import DEFAULT_PROJECTS, DEFAULT_TOKEN, SandboxConfig
    from ta_cohort_mcp.sandbox.runner import SandboxServer

    token = args.token or os.environ.get(TOKEN_ENV) or DEFAULT_TOKEN
    config = SandboxConfig(
        db_path=args.db,
        today=args.today,
        users=args.users,
        seed=args.seed,
        tokens={token: set(DEFAULT_PROJECTS)},
    )
    try:
        server = SandboxServer(config, host=args.host, port=args.port)
    except ValueError as error:
        print(f"ta-cohort-mcp sandbox: {error}", file=sys.stderr)
        return 2
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    try:
        server.start()
    except OSError as error:
        print(f"ta-cohort-mcp sandbox: {_listen_error(args, error)}", file=sys.stderr)
        return 2
    projects = ", ".join(str(project) for project in DEFAULT_PROJECTS)
    # The sandbox token is a local test credential, so printing it is safe.
    print(
        f"TA sandbox on {server.base_url} with token {token} (projects {projects}, "
        f"today {server.today}); Ctrl-C stops it",
        file=sys.stderr,
        flush=True,
    )
    try:
        stopping.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0
