"""The sandbox and the MCP servers, started as child processes for the benchmarks.

Each runs in its own process, so the benchmark's client code does not share a
Python interpreter (and its GIL) with the server it measures.
"""

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from benchmarks.processes import (
    HOST,
    child_environment,
    free_port,
    running,
    wait_for_file,
    wait_for_port,
)
from benchmarks.runner import RunContext

logger = logging.getLogger(__name__)

PROJECT_ID = 102
SANDBOX_TOKEN = "bench-token"
START_TIMEOUT = 120.0


@dataclass(frozen=True)
class Endpoint:
    """A running server: its base URL and, for the sandbox, its token and pid."""

    base_url: str
    pid: int
    token: str = ""


def server_environment(sandbox: Endpoint) -> dict[str, str]:
    """Settings that point `ta-cohort-mcp serve` at a running sandbox."""
    return {
        "TA_BASE_URL": sandbox.base_url,
        "TA_TOKEN": sandbox.token,
        "TA_PROJECT_ID": str(PROJECT_ID),
        "TA_LOG_LEVEL": "WARNING",
    }


@contextlib.contextmanager
def sandbox(
    context: RunContext, *, users: int = 1000, db_path: Path | None = None
) -> Iterator[Endpoint]:
    """Run `ta-cohort-mcp sandbox` on a free loopback port until the block ends."""
    port = free_port()
    argv = [
        context.python,
        "-m",
        "ta_cohort_mcp",
        "sandbox",
        "--host",
        HOST,
        "--port",
        str(port),
        "--users",
        str(users),
        "--token",
        SANDBOX_TOKEN,
    ]
    if db_path is not None:
        argv += ["--db", str(db_path)]
    log_path = context.scratch_dir / f"sandbox-{port}.log"
    with running(
        argv, log_path=log_path, env=child_environment(), cwd=context.root
    ) as process:
        wait_for_port(port, START_TIMEOUT, process)
        yield Endpoint(f"http://{HOST}:{port}", process.pid, SANDBOX_TOKEN)


@contextlib.contextmanager
def mcp_http_server(
    context: RunContext,
    sandbox_endpoint: Endpoint,
    *,
    extra_env: dict[str, str] | None = None,
) -> Iterator[Endpoint]:
    """Run `ta-cohort-mcp serve` over stateless streamable HTTP; yield its /mcp URL."""
    port = free_port()
    argv = [
        context.python,
        "-m",
        "ta_cohort_mcp",
        "serve",
        "--transport",
        "http",
        "--host",
        HOST,
        "--port",
        str(port),
        "--stateless",
    ]
    env = child_environment(
        {**server_environment(sandbox_endpoint), **(extra_env or {})}
    )
    log_path = context.scratch_dir / f"serve-http-{port}.log"
    with running(argv, log_path=log_path, env=env, cwd=context.root) as process:
        wait_for_port(port, START_TIMEOUT, process)
        yield Endpoint(f"http://{HOST}:{port}/mcp", process.pid)


@contextlib.contextmanager
def echo_http_server(context: RunContext) -> Iterator[Endpoint]:
    """Run the bare SDK echo server over stateless streamable HTTP."""
    port_file = context.scratch_dir / "echo-http.port"
    port_file.unlink(missing_ok=True)
    argv = [
        context.python,
        str(context.root / "benchmarks" / "echo_server.py"),
        "--http",
        "--stateless",
        "--port-file",
        str(port_file),
    ]
    log_path = context.scratch_dir / "echo-http.log"
    with running(
        argv, log_path=log_path, env=child_environment(), cwd=context.root
    ) as process:
        port = int(wait_for_file(port_file, START_TIMEOUT, process))
        yield Endpoint(f"http://{HOST}:{port}/mcp", process.pid)
