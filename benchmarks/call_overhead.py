"""Call overhead: one `user_cluster_detail` call through MCP over stdio, against
the same GET sent directly with httpx and a bare SDK echo tool over stdio.

Each path runs sequential calls in one session (one connection) after a warm-up.
The limit for the MCP call is the direct GET plus the echo call: what any MCP
server built on this SDK pays. What is left over is our own overhead (argument
validation, the client, result models). The SDK client uses the 2025-11-25
handshake, as chat hosts do.
"""

import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from benchmarks import definitions, services
from benchmarks.context_cost import wait_refreshed
from benchmarks.report import Section, describe
from benchmarks.runner import RunContext
from benchmarks.stats import median, percentile

TITLE = "Call overhead"


async def time_calls(
    call: Callable[[], Awaitable[None]], calls: int, warmup: int
) -> list[float]:
    """Run `call` `warmup` times untimed, then `calls` times; return seconds each."""
    for _ in range(warmup):
        await call()
    samples: list[float] = []
    for _ in range(calls):
        started = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - started)
    return samples


def stdio_client_for(
    argv: list[str], env: dict[str, str], cwd: Path, log: Any
) -> Client:
    parameters = StdioServerParameters(command=argv[0], args=argv[1:], env=env, cwd=cwd)
    return Client(stdio_client(parameters, errlog=log), mode="legacy", cache=None)


async def measure(
    context: RunContext, sandbox: services.Endpoint
) -> dict[str, list[float]]:
    calls = context.pick(10, 300, 2000)
    warmup = context.pick(2, 20, 50)
    cluster = "recent_7_days_consume"
    samples: dict[str, list[float]] = {}

    async with httpx.AsyncClient(base_url=sandbox.base_url, timeout=30) as http:
        query: dict[str, str | int] = {
            "token": sandbox.token,
            "projectId": definitions.PROJECT_ID,
            "clusterName": cluster,
        }

        async def direct() -> None:
            response = await http.get("/open/user-cluster-detail", params=query)
            if response.json()["return_code"] != 0:
                raise RuntimeError(f"direct GET failed: {response.text[:200]}")

        samples["direct"] = await time_calls(direct, calls, warmup)

    with httpx.Client(base_url=sandbox.base_url, timeout=30) as stats_http:
        definitions.reset_sandbox_requests(stats_http)
    log_path = context.scratch_dir / "overhead-stdio.log"
    with log_path.open("w") as log:
        env = services.server_environment(sandbox)
        ours = stdio_client_for(
            [context.python, "-m", "ta_cohort_mcp", "serve"], env, context.root, log
        )
        async with ours as client:

            async def detail() -> None:
                result = await client.call_tool(
                    "user_cluster_detail", {"clusterName": cluster}
                )
                if result.is_error:
                    raise RuntimeError(f"user_cluster_detail failed: {result.content}")

            samples["ours"] = await time_calls(detail, calls, warmup)
        with httpx.Client(base_url=sandbox.base_url, timeout=30) as stats_http:
            requests = definitions.sandbox_request_count(stats_http)
        samples["sandbox requests per call"] = [requests / (calls + warmup)]

        echo_argv = [
            context.python,
            str(context.root / "benchmarks" / "echo_server.py"),
        ]
        async with stdio_client_for(echo_argv, {}, context.root, log) as client:

            async def echo() -> None:
                result = await client.call_tool("echo", {"text": cluster})
                if result.is_error:
                    raise RuntimeError(f"echo failed: {result.content}")

            samples["echo"] = await time_calls(echo, calls, warmup)
    return samples


def run(context: RunContext) -> Section:
    section = Section(name="overhead", title=TITLE, description=describe(__doc__))
    with services.sandbox(context) as sandbox:
        with httpx.Client(base_url=sandbox.base_url, timeout=60) as http:
            definitions.add_cluster(http, sandbox.token, definitions.REFERENCE_CLUSTER)
            wait_refreshed(http, sandbox.token, "recent_7_days_consume")
        samples = anyio.run(measure, context, sandbox)

    ms = {
        name: [value * 1000 for value in samples[name]]
        for name in ("ours", "direct", "echo")
    }
    for label, statistic in (
        ("median", median),
        ("p99", lambda s: percentile(s, 0.99)),
    ):
        ours = statistic(ms["ours"])
        direct = statistic(ms["direct"])
        echo = statistic(ms["echo"])
        section.add(
            f"`user_cluster_detail` via MCP stdio, {label}",
            ours,
            "ms",
            direct + echo,
            "direct GET + bare echo",
        )
        section.add(f"direct httpx GET, {label}", direct, "ms")
        section.add(f"bare SDK echo via MCP stdio, {label}", echo, "ms")
        if label == "median":
            # Medians of the parts roughly add up and high percentiles do not,
            # so only the median is split into parts (an estimate).
            section.add(
                "our overhead (MCP − GET − echo), median", ours - direct - echo, "ms"
            )
    section.add(
        "sandbox requests per `user_cluster_detail` call",
        samples["sandbox requests per call"][0],
        "",
        1.0,
        "one GET",
    )
    section.notes.append(
        "The p99 limit is the sum of the two p99s, which overstates the p99 of their "
        "sum, so a p99 ratio near 1 is still some overhead."
    )
    section.parameters = {"calls per path": len(samples["ours"])}
    return section
