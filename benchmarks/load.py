"""Load: read tools over streamable HTTP in stateless mode with 50 and 200
concurrent clients, next to the bare SDK echo server under the same load.

Each client sends one JSON-RPC `tools/call` at a time over its own keep-alive
connection, rotating through user_cluster_detail, user_cluster_list and
user_cluster_refresh_progress_by_name (the echo server gets `echo`), until the
level's request count is sent or its time runs out. Direct GETs of the detail
endpoint under the same load show the sandbox's own share. Everything runs on
127.0.0.1 on the same two cores: the load generator, the server and the sandbox
compete for them.
"""

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from benchmarks import definitions, services
from benchmarks.context_cost import wait_refreshed
from benchmarks.report import Section, describe
from benchmarks.runner import RunContext
from benchmarks.stats import percentile

TITLE = "Load (streamable HTTP, stateless)"
CLUSTER = "recent_7_days_consume"
REQUEST_TIMEOUT = 30.0

READ_CALLS: list[tuple[str, dict[str, Any]]] = [
    ("user_cluster_detail", {"clusterName": CLUSTER}),
    ("user_cluster_list", {}),
    ("user_cluster_refresh_progress_by_name", {"clusterName": CLUSTER}),
]
ECHO_CALLS: list[tuple[str, dict[str, Any]]] = [("echo", {"text": CLUSTER})]


@dataclass
class LevelResult:
    """Outcome of one load level: latencies of answered calls and the errors."""

    clients: int
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def add_error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


def parse_rpc_reply(response: httpx.Response) -> dict[str, Any]:
    """Return the JSON-RPC reply of a response in JSON or in one SSE event."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        for line in response.text.splitlines():
            if line.startswith("data:"):
                reply: dict[str, Any] = json.loads(line[5:])
                if "id" in reply:
                    return reply
        raise ValueError("event stream carried no JSON-RPC reply")
    parsed: dict[str, Any] = response.json()
    return parsed


def mcp_request_maker(
    url: str, calls: list[tuple[str, dict[str, Any]]]
) -> Callable[[httpx.AsyncClient, int], Any]:
    headers = {
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
        "MCP-Protocol-Version": "2025-11-25",
    }

    async def send(http: httpx.AsyncClient, number: int) -> str | None:
        name, arguments = calls[number % len(calls)]
        body = {
            "jsonrpc": "2.0",
            "id": number,
            "method": "tools/call",
            "params": {"name": name, "arguments": arguments},
        }
        response = await http.post(url, json=body, headers=headers)
        if response.status_code != 200:
            return f"HTTP {response.status_code}"
        reply = parse_rpc_reply(response)
        if "error" in reply:
            return f"JSON-RPC {reply['error'].get('code')}"
        if reply["result"].get("isError"):
            return "isError result"
        return None

    return send


def direct_request_maker(
    sandbox: services.Endpoint,
) -> Callable[[httpx.AsyncClient, int], Any]:
    url = f"{sandbox.base_url}/open/user-cluster-detail"
    params: dict[str, str | int] = {
        "token": sandbox.token,
        "projectId": definitions.PROJECT_ID,
        "clusterName": CLUSTER,
    }

    async def send(http: httpx.AsyncClient, number: int) -> str | None:
        response = await http.get(url, params=params)
        if response.status_code != 200:
            return f"HTTP {response.status_code}"
        if response.json().get("return_code") != 0:
            return "return_code"
        return None

    return send


async def run_level(
    send: Callable[[httpx.AsyncClient, int], Any],
    clients: int,
    total: int,
    time_limit: float,
) -> LevelResult:
    """Run `clients` concurrent senders until `total` calls or `time_limit` seconds."""
    result = LevelResult(clients)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    counter = iter(range(total))
    async with httpx.AsyncClient(limits=limits, timeout=REQUEST_TIMEOUT) as http:
        started = time.perf_counter()
        deadline = started + time_limit

        async def client_loop() -> None:
            for number in counter:
                if time.perf_counter() > deadline:
                    return
                sent = time.perf_counter()
                try:
                    error = await send(http, number)
                except (httpx.HTTPError, ValueError, KeyError) as exc:
                    error = type(exc).__name__
                if error is None:
                    result.latencies.append(time.perf_counter() - sent)
                else:
                    result.add_error(error)

        await asyncio.gather(*(client_loop() for _ in range(clients)))
        result.seconds = time.perf_counter() - started
    return result


async def warm_up(send: Callable[[httpx.AsyncClient, int], Any], count: int) -> None:
    async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT) as http:
        for number in range(count):
            error = await send(http, number)
            if error is not None:
                raise RuntimeError(f"warm-up call {number} failed: {error}")


def measure(
    sends: dict[str, Callable[[httpx.AsyncClient, int], Any]],
    levels: list[int],
    total: int,
    time_limit: float,
) -> dict[str, list[LevelResult]]:
    async def main() -> dict[str, list[LevelResult]]:
        results: dict[str, list[LevelResult]] = {}
        for name, send in sends.items():
            await warm_up(send, 10)
            results[name] = [
                await run_level(send, clients, total, time_limit) for clients in levels
            ]
        return results

    return asyncio.run(main())


def run(context: RunContext) -> Section:
    section = Section(name="load", title=TITLE, description=describe(__doc__))
    levels = context.pick([3, 6], [50, 200], [50, 200])
    total = context.pick(30, 2_000, 6_000)
    time_limit = context.pick(10.0, 45.0, 90.0)
    with services.sandbox(context) as sandbox:
        with httpx.Client(base_url=sandbox.base_url, timeout=60) as http:
            definitions.add_cluster(http, sandbox.token, definitions.REFERENCE_CLUSTER)
            wait_refreshed(http, sandbox.token, CLUSTER)
        with services.mcp_http_server(context, sandbox) as ours:
            results = measure(
                {"ours": mcp_request_maker(ours.base_url, READ_CALLS)},
                levels,
                total,
                time_limit,
            )
        results.update(
            measure(
                {"direct": direct_request_maker(sandbox)}, levels, total, time_limit
            )
        )
    with services.echo_http_server(context) as echo:
        results.update(
            measure(
                {"echo": mcp_request_maker(echo.base_url, ECHO_CALLS)},
                levels,
                total,
                time_limit,
            )
        )

    for index, clients in enumerate(levels):
        add_level_rows(
            section,
            clients,
            results["ours"][index],
            results["echo"][index],
            results["direct"][index],
        )
    section.checks["some read calls succeeded"] = all(
        level.latencies for level in results["ours"]
    )
    section.parameters = {
        "requests per level": total,
        "time limit per level": f"{time_limit:.0f} s",
    }
    return section


def _throughput(level: LevelResult) -> float:
    return len(level.latencies) / level.seconds if level.seconds else 0.0


def _ms(level: LevelResult, fraction: float) -> float:
    if not level.latencies:
        return float("nan")
    return percentile(level.latencies, fraction) * 1000


def add_level_rows(
    section: Section,
    clients: int,
    ours: LevelResult,
    echo: LevelResult,
    direct: LevelResult,
) -> None:
    prefix = f"{clients} clients"
    section.add(
        f"{prefix}: read tools, throughput",
        _throughput(ours),
        "calls/s",
        _throughput(echo),
        "bare SDK echo",
        higher_is_better=True,
    )
    for label, fraction in (("p50", 0.5), ("p99", 0.99)):
        section.add(
            f"{prefix}: read tools, {label}",
            _ms(ours, fraction),
            "ms",
            _ms(echo, fraction),
            f"bare SDK echo, {label}",
        )
    section.add(
        f"{prefix}: read tools, errors of {len(ours.latencies) + ours.error_count:,} calls",
        ours.error_count,
        "errors",
        note=", ".join(f"{kind}: {count}" for kind, count in ours.errors.items()),
    )
    section.add(
        f"{prefix}: direct sandbox GET, throughput",
        _throughput(direct),
        "calls/s",
    )
    section.add(f"{prefix}: direct sandbox GET, p50", _ms(direct, 0.5), "ms")
    if echo.error_count:
        section.add(
            f"{prefix}: bare SDK echo, errors",
            echo.error_count,
            "errors",
            note=", ".join(f"{kind}: {count}" for kind, count in echo.errors.items()),
        )
