"""The server over stdio as a subprocess, and cancellation of refresh_and_wait.

The subprocess runs `python -m ta_cohort_mcp serve` with DEBUG logging, a
canary token, and `PYTHONIOENCODING=cp1252` and `LANG=C`, so a server that
relied on the locale's encoding would break non-ASCII names. Tests speak raw
JSON-RPC (protocol 2025-11-25) over its pipes and check every stdout line.
"""

import json
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import IO, Any
from urllib.parse import quote, quote_plus

import anyio
import pytest
from mcp.client import Client
from sandbox_fixtures import SANDBOX_TODAY
from server_fixtures import connect, text, with_settings

from ta_cohort_mcp.config import Settings
from ta_cohort_mcp.sandbox import SandboxConfig, SandboxServer

CANARY = "CANARY+stdio/t0ken=Kq#7"
CANARY_FORMS = {CANARY, quote(CANARY), quote(CANARY, safe=""), quote_plus(CANARY)}
DISPLAY_NAME = "高价值用户"
QP = {
    "filts": [
        {
            "columnName": "user_level",
            "comparator": "equal",
            "ftv": ["3"],
            "tableType": "user",
        }
    ]
}
# Seconds a slow_refresh fault spreads the refresh over: far longer than a test.
SLOW_REFRESH_SECONDS = 60.0
# Seconds a subprocess may take to answer one message (it imports mcp first).
REPLY_TIMEOUT = 30.0
# The requirement: after stdin closes, the process is gone within 2 seconds.
EXIT_TIMEOUT = 2.0
# Time a cancelled call may take to stop polling.
STOP_TIMEOUT = 1.0
POLL_INTERVAL = 0.05
# Nesting depth of a message beyond the limit of the SDK's JSON parser.
DEEP_NESTING = 50_000


@pytest.fixture(scope="module")
def stdio_sandbox() -> Iterator[SandboxServer]:
    config = SandboxConfig(today=SANDBOX_TODAY, users=200, tokens={CANARY: {102}})
    with SandboxServer(config) as server:
        yield server


def unique_name() -> str:
    return f"s_{uuid.uuid4().hex[:16]}"


class StdioServer:
    """A server subprocess: JSON-RPC out on stdin, every stdout line kept."""

    def __init__(self, sandbox: SandboxServer) -> None:
        env = {
            key: value for key, value in os.environ.items() if not key.startswith("TA_")
        }
        env.update(
            TA_BASE_URL=sandbox.base_url,
            TA_TOKEN=CANARY,
            TA_LOG_LEVEL="DEBUG",
            TA_WAIT_SECONDS="30",
            TA_POLL_INTERVAL=str(POLL_INTERVAL),
            PYTHONIOENCODING="cp1252",
            LANG="C",
            LC_ALL="C",
        )
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ta_cohort_mcp", "serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        self.stdout_lines: list[bytes] = []
        self.stderr_lines: list[bytes] = []
        self._messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self._next_id = 0
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        self._threads = [
            threading.Thread(target=self._read_stdout, args=(self.process.stdout,)),
            threading.Thread(target=self._read_stderr, args=(self.process.stderr,)),
        ]
        for thread in self._threads:
            thread.daemon = True
            thread.start()

    def _read_stdout(self, stream: IO[bytes]) -> None:
        for line in stream:
            self.stdout_lines.append(line)
            try:
                message = json.loads(line.decode("utf-8"))
            except ValueError:
                continue
            if isinstance(message, dict):
                self._messages.put(message)

    def _read_stderr(self, stream: IO[bytes]) -> None:
        for line in stream:
            self.stderr_lines.append(line)

    def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        data = json.dumps({"jsonrpc": "2.0", **message}, ensure_ascii=False)
        self.process.stdin.write(data.encode("utf-8") + b"\n")
        self.process.stdin.flush()

    def request(self, method: str, params: dict[str, Any] | None = None) -> int:
        """Send a request and return its id."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)
        return self._next_id

    def response(self, request_id: int) -> dict[str, Any]:
        """Return the response to `request_id`, skipping notifications."""
        deadline = time.monotonic() + REPLY_TIMEOUT
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no response to request {request_id}"
            message = self._messages.get(timeout=remaining)
            if message.get("id") == request_id and "method" not in message:
                return message

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        response = self.response(self.request(method, params))
        assert "error" not in response, response
        return response["result"]

    def call_tool(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.call(
            "tools/call", {"name": name, "arguments": arguments}
        )
        return result

    def initialize(self) -> None:
        self.call(
            "initialize",
            {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "stdio-test", "version": "1"},
            },
        )
        self.send({"method": "notifications/initialized"})

    def close_stdin(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        for thread in self._threads:
            thread.join(timeout=5)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None and not stream.closed:
                stream.close()


@pytest.fixture
def stdio_server(stdio_sandbox: SandboxServer) -> Iterator[StdioServer]:
    server = StdioServer(stdio_sandbox)
    try:
        server.initialize()
        yield server
    finally:
        server.stop()
        stdio_sandbox.faults.clear()


def make_cluster(server: StdioServer, display_name: str = "stdio") -> int:
    result = server.call_tool(
        "user_cluster_add",
        {
            "projectId": 102,
            "clusterName": unique_name(),
            "displayName": display_name,
            "qp": QP,
        },
    )
    assert not result.get("isError"), result
    cluster_id: int = result["structuredContent"]["clusterId"]
    return cluster_id


def polls(sandbox: SandboxServer) -> int:
    return sandbox.stats["user-cluster-refresh-progress"]


def wait_for_polls(sandbox: SandboxServer, start: int) -> None:
    """Wait until the sandbox has seen a progress poll after `start`."""
    deadline = time.monotonic() + REPLY_TIMEOUT
    while polls(sandbox) <= start:
        assert time.monotonic() < deadline, "refresh_and_wait never polled"
        time.sleep(POLL_INTERVAL)


def assert_polls_stopped(sandbox: SandboxServer) -> None:
    """Assert that polling stops within STOP_TIMEOUT and stays stopped."""
    time.sleep(STOP_TIMEOUT)
    settled = polls(sandbox)
    time.sleep(5 * POLL_INTERVAL)
    assert polls(sandbox) == settled, "progress polls went on after the stop"


def test_stdout_is_only_jsonrpc(stdio_server: StdioServer) -> None:
    # Lines that cannot be parsed must not stop the server (mcp 2.3.0 sends no
    # response to any of these: not JSON, too deep, a 5,000-digit integer, a
    # lone surrogate escape).
    assert stdio_server.process.stdin is not None
    nested = "[" * DEEP_NESTING + "]" * DEEP_NESTING
    stdio_server.process.stdin.write(b"this is not JSON\n")
    stdio_server.process.stdin.write(
        b'{"jsonrpc":"2.0","id":900,"method":"tools/call","params":{"name":'
        b'"user_cluster_list","arguments":{"projectId":' + nested.encode() + b"}}}\n"
    )
    stdio_server.process.stdin.write(
        b'{"jsonrpc":"2.0","id":901,"method":"tools/call","params":{"name":'
        b'"user_cluster_list","arguments":{"projectId":' + b"9" * 5000 + b"}}}\n"
    )
    stdio_server.process.stdin.write(
        b'{"jsonrpc":"2.0","id":902,"method":"tools/call","params":{"name":'
        b'"user_cluster_detail","arguments":{"clusterName":"\\ud800"}}}\n'
    )
    stdio_server.call("tools/list")
    stdio_server.call_tool("user_cluster_list", {"projectId": 102})
    stdio_server.call_tool("user_cluster_detail", {"projectId": 102, "clusterId": 0})
    stdio_server.call("resources/list")
    stdio_server.close_stdin()
    stdio_server.process.wait(timeout=EXIT_TIMEOUT)
    stdio_server.stop()
    assert stdio_server.stdout_lines
    for line in stdio_server.stdout_lines:
        message = json.loads(line.decode("utf-8"))
        assert message.get("jsonrpc") == "2.0", line[:200]


def test_non_ascii_round_trip(stdio_server: StdioServer) -> None:
    cluster_id = make_cluster(stdio_server, DISPLAY_NAME)
    detail = stdio_server.call_tool(
        "user_cluster_detail", {"projectId": 102, "clusterId": cluster_id}
    )
    assert detail["structuredContent"]["cluster"]["displayName"] == DISPLAY_NAME
    assert DISPLAY_NAME in detail["content"][0]["text"]


def test_stderr_has_no_token(
    stdio_server: StdioServer, stdio_sandbox: SandboxServer
) -> None:
    cluster_id = make_cluster(stdio_server)
    stdio_sandbox.faults.add("http_500", "user-cluster-detail", count=1)
    stdio_sandbox.faults.add("malformed", "user-cluster-list", count=1)
    stdio_server.call_tool(
        "user_cluster_detail", {"projectId": 102, "clusterId": cluster_id}
    )
    stdio_server.call_tool("user_cluster_list", {"projectId": 102})
    stdio_server.close_stdin()
    stdio_server.process.wait(timeout=EXIT_TIMEOUT)
    stdio_server.stop()
    stderr = b"".join(stdio_server.stderr_lines).decode("utf-8", "replace")
    assert "DEBUG" in stderr
    for form in CANARY_FORMS:
        assert form not in stderr, form


def test_exit_on_stdin_close_mid_poll(
    stdio_server: StdioServer, stdio_sandbox: SandboxServer
) -> None:
    cluster_id = make_cluster(stdio_server)
    stdio_sandbox.faults.add(
        "slow_refresh", "user-cluster-refresh", seconds=SLOW_REFRESH_SECONDS
    )
    start = polls(stdio_sandbox)
    stdio_server.request(
        "tools/call",
        {
            "name": "refresh_and_wait",
            "arguments": {"projectId": 102, "clusterId": cluster_id},
        },
    )
    wait_for_polls(stdio_sandbox, start)
    stdio_server.close_stdin()
    returncode = stdio_server.process.wait(timeout=EXIT_TIMEOUT)
    assert_polls_stopped(stdio_sandbox)
    stdio_server.stop()
    stderr = b"".join(stdio_server.stderr_lines).decode("utf-8", "replace")
    assert returncode == 0, stderr[-2000:]
    # Logged after the server's lifespan, which closes the TA client, has ended.
    assert "stdio client closed the connection; stopping" in stderr


def test_cancel_over_stdio_stops_polls(
    stdio_server: StdioServer, stdio_sandbox: SandboxServer
) -> None:
    cluster_id = make_cluster(stdio_server)
    stdio_sandbox.faults.add(
        "slow_refresh", "user-cluster-refresh", seconds=SLOW_REFRESH_SECONDS
    )
    start = polls(stdio_sandbox)
    request_id = stdio_server.request(
        "tools/call",
        {
            "name": "refresh_and_wait",
            "arguments": {"projectId": 102, "clusterId": cluster_id},
        },
    )
    wait_for_polls(stdio_sandbox, start)
    stdio_server.send(
        {
            "method": "notifications/cancelled",
            "params": {"requestId": request_id, "reason": "test"},
        }
    )
    assert_polls_stopped(stdio_sandbox)
    listed = stdio_server.call_tool("user_cluster_list", {"projectId": 102})
    assert not listed.get("isError"), listed
    assert stdio_server.process.poll() is None


# In-process cancellation, in both protocol eras.


@pytest.fixture
async def slow_client(
    server_settings: Settings, protocol_mode: str
) -> AsyncIterator[Client]:
    settings = with_settings(server_settings, wait_seconds=30.0)
    async with connect(settings, mode=protocol_mode) as client:
        yield client


@pytest.mark.anyio
async def test_cancelled_wait_stops_polling(
    slow_client: Client, sandbox: SandboxServer, cluster_name: str
) -> None:
    added = await slow_client.call_tool(
        "user_cluster_add",
        {
            "projectId": 102,
            "clusterName": cluster_name,
            "displayName": cluster_name,
            "qp": QP,
        },
    )
    assert not added.is_error, text(added)
    sandbox.faults.add(
        "slow_refresh", "user-cluster-refresh-by-name", seconds=SLOW_REFRESH_SECONDS
    )
    start = sandbox.stats["user-cluster-refresh-progress-by-name"]
    arguments = {"projectId": 102, "clusterName": cluster_name}
    with anyio.move_on_after(REPLY_TIMEOUT) as scope:
        async with anyio.create_task_group() as group:
            group.start_soon(slow_client.call_tool, "refresh_and_wait", arguments)
            while sandbox.stats["user-cluster-refresh-progress-by-name"] <= start:
                await anyio.sleep(POLL_INTERVAL)
            group.cancel_scope.cancel()
    assert not scope.cancelled_caught, "refresh_and_wait never polled"
    await anyio.sleep(STOP_TIMEOUT)
    settled = sandbox.stats["user-cluster-refresh-progress-by-name"]
    await anyio.sleep(5 * POLL_INTERVAL)
    assert sandbox.stats["user-cluster-refresh-progress-by-name"] == settled
    listed = await slow_client.call_tool("user_cluster_list", {"projectId": 102})
    assert not listed.is_error, text(listed)
