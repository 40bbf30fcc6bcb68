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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx

from benchmarks import definitions, services
from benchmarks.context_cost import wait_refreshed
from benchmarks.http_load import Connection, HttpError, Response, build_request
from benchmarks.processes import HOST
from benchmarks.report import Section, describe
from benchmarks.runner import RunContext
from benchmarks.stats import percentile

TITLE = "Load (streamable HTTP, stateless)"
CLUSTER = "recent_7_days_consume"
REQUEST_TIMEOUT = 30.0
WARM_UP_TIMEOUT = 120.0

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


Sender = Callable[[Connection, int], Awaitable[str | None]]


def parse_rpc_reply(response: Response) -> dict[str, Any]:
    """Return the JSON-RPC reply of a response in JSON or in one SSE event."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        for line in response.body.decode().splitlines():
            if line.startswith("data:"):
                reply: dict[str, Any] = json.loads(line[5:])
                if "id" in reply:
                    return reply
        raise ValueError("event stream carried no JSON-RPC reply")
    parsed: dict[str, Any] = json.loads(response.body)
    return parsed


def mcp_sender(url: str, calls: list[tuple[str, dict[str, Any]]]) -> Sender:
    """Return a sender of `tools/call` requests, one prepared request per call."""
    parsed = urlsplit(url)
    host, port = parsed.hostname or HOST, parsed.port or 80
    headers = {
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
        "MCP-Protocol-Version": "2025-11-25",
    }
    prepared = []
    for number, (name, arguments) in enumerate(calls):
        body = json.dumps(
            {
                "jsonrpc": "2.0",
                "id": number + 1,
                "method": "tools/call",
                "params": {"name": name, "arguments": arguments},
            }
        ).encode()
        prepared.append(
            build_request("POST", host, port, parsed.path, headers=headers, body=body)
        )

    async def send(connection: Connection, number: int) -> str | None:
        response = await connection.request(prepared[number % len(prepared)])
        if response.status != 200:
            return f"HTTP {response.status}"
        reply = parse_rpc_reply(response)
        if "error" in reply:
            return f"JSON-RPC {reply['error'].get('code')}"
        if reply["result"].get("isError"):
            return "isError result"
        return None

    return send


def direct_sender(sandbox: services.Endpoint) -> Sender:
    """Return a sender of the detail GET straight to the sandbox."""
    parsed = urlsplit(sandbox.base_url)
    query = urlencode(
        {
            "token": sandbox.token,
            "projectId": definitions.PROJECT_ID,
            "clusterName": CLUSTER,
        }
    )
    prepared = build_request(
        "GET",
        parsed.hostname or HOST,
        parsed.port or 80,
        f"/open/user-cluster-detail?{query}",
    )

    async def send(connection: Connection, number: int) -> str | None:
        response = await connection.request(prepared)
        if response.status != 200:
            return f"HTTP {response.status}"
        if json.loads(response.body).get("return_code") != 0:
            return "return_code"
        return None

    return send


async def run_level(
    send: Sender, endpoint: tuple[str, int], clients: int, total: int, time_limit: float
) -> LevelResult:
    """Run `clients` concurrent senders until `total` calls or `time_limit` seconds.

    Each client has its own keep-alive connection; a call that takes longer than
    REQUEST_TIMEOUT counts as an error and the client reconnects.
    """
    result = LevelResult(clients)
    counter = iter(range(total))
    started = time.perf_counter()
    deadline = started + time_limit

    async def client_loop() -> None:
        connection = Connection(*endpoint)
        try:
            for number in counter:
                if time.perf_counter() > deadline:
                    return
                sent = time.perf_counter()
                try:
                    error = await asyncio.wait_for(
                        send(connection, number), REQUEST_TIMEOUT
                    )
                except (OSError, HttpError, ValueError, KeyError, TimeoutError) as exc:
                    error = type(exc).__name__
                    await connection.close()
                if error is None:
                    result.latencies.append(time.perf_counter() - sent)
                else:
                    result.add_error(error)
        finally:
            await connection.close()

    await asyncio.gather(*(client_loop() for _ in range(clients)))
    result.seconds = time.perf_counter() - started
    return result


async def warm_up(send: Sender, endpoint: tuple[str, int], count: int) -> None:
    connection = Connection(*endpoint)
    try:
        for number in range(count):
            # The first call also waits for a server that listens before it is ready.
            error = await asyncio.wait_for(send(connection, number), WARM_UP_TIMEOUT)
            if error is not None:
                raise RuntimeError(f"warm-up call {number} failed: {error}")
    finally:
        await connection.close()


def measure(
    send: Sender,
    url: str,
    levels: list[int],
    total: int,
    time_limit: float,
) -> list[LevelResult]:
    """Warm up, then run each load level in turn against one server."""
    parsed = urlsplit(url)
    endpoint = (parsed.hostname or HOST, parsed.port or 80)

    async def main() -> list[LevelResult]:
        await warm_up(send, endpoint, 10)
        return [
            await run_level(send, endpoint, clients, total, time_limit)
            for clients in levels
        ]

    return asyncio.run(main())


def run(context: RunContext) -> Section:
    section = Section(name="load", title=TITLE, description=describe(__doc__))
    levels = context.pick([3, 6], [50, 200], [50, 200])
    total = context.pick(30, 2_000, 6_000)
    time_limit = context.pick(10.0, 45.0, 90.0)
    results: dict[str, list[LevelResult]] = {}
    with services.sandbox(context) as sandbox:
        with httpx.Client(base_url=sandbox.base_url, timeout=60) as http:
            definitions.add_cluster(http, sandbox.token, definitions.REFERENCE_CLUSTER)
            wait_refreshed(http, sandbox.token, CLUSTER)
        with services.mcp_http_server(context, sandbox) as ours:
            results["ours"] = measure(
                mcp_sender(ours.base_url, READ_CALLS),
                ours.base_url,
                levels,
                total,
                time_limit,
            )
        results["direct"] = measure(
            direct_sender(sandbox), sandbox.base_url, levels, total, time_limit
        )
    with services.echo_http_server(context) as echo:
        results["echo"] = measure(
            mcp_sender(echo.base_url, ECHO_CALLS),
            echo.base_url,
            levels,
            total,
            time_limit,
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
