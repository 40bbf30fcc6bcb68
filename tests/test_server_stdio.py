"""`ta-cohort-mcp serve` as a subprocess over stdio, as chat clients run it."""

import json
import os
import sys
from typing import Any

import anyio
import pytest
from anyio.abc import Process
from mcp import StdioServerParameters
from mcp.client import Client
from server_fixtures import structured, text

from ta_cohort_mcp.sandbox import SandboxServer

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

CANARY = "stdio-canary-token"


def server_environment(sandbox: SandboxServer, **extra: str) -> dict[str, str]:
    environ = {
        key: value for key, value in os.environ.items() if not key.startswith("TA_")
    }
    return {**environ, "TA_TOKEN": sandbox.token, **extra}


def serve_command(sandbox: SandboxServer) -> list[str]:
    return [
        sys.executable,
        "-m",
        "ta_cohort_mcp",
        "serve",
        "--base-url",
        sandbox.base_url,
        "--log-level",
        "DEBUG",
    ]


async def test_client_session_over_stdio(
    sandbox: SandboxServer, protocol_mode: str
) -> None:
    command = serve_command(sandbox)
    parameters = StdioServerParameters(
        command=command[0], args=command[1:], env=server_environment(sandbox)
    )
    with anyio.fail_after(60):
        async with Client(parameters, mode=protocol_mode) as client:
            tools = await client.list_tools()
            result = await client.call_tool("user_cluster_list", {"projectId": 102})
    assert len(tools.tools) >= 16
    assert not result.is_error, text(result)
    assert "pagerResult" in structured(result)


class LineReader:
    """Reads newline-terminated lines from a process's stdout."""

    def __init__(self, process: Process) -> None:
        assert process.stdout is not None
        self.stream = process.stdout
        self.buffer = b""
        self.lines: list[str] = []

    async def line(self) -> str:
        while b"\n" not in self.buffer:
            self.buffer += await self.stream.receive()
        raw, self.buffer = self.buffer.split(b"\n", 1)
        line = raw.decode("utf-8")
        self.lines.append(line)
        return line

    async def rest(self) -> None:
        try:
            while True:
                self.buffer += await self.stream.receive()
        except anyio.EndOfStream:
            pass
        self.lines += [part.decode() for part in self.buffer.split(b"\n") if part]


async def send(process: Process, message: dict[str, Any]) -> None:
    assert process.stdin is not None
    await process.stdin.send((json.dumps(message) + "\n").encode())


async def test_stdout_is_only_protocol(sandbox: SandboxServer) -> None:
    # A wrong token makes TA answer with an error envelope, so error paths log too.
    environ = server_environment(sandbox)
    environ["TA_TOKEN"] = CANARY
    with anyio.fail_after(60):
        async with await anyio.open_process(
            serve_command(sandbox), env=environ
        ) as process:
            reader = LineReader(process)
            await send(
                process,
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "initialize",
                    "params": {
                        "protocolVersion": "2025-11-25",
                        "capabilities": {},
                        "clientInfo": {"name": "test", "version": "1"},
                    },
                },
            )
            await reader.line()
            await send(
                process, {"jsonrpc": "2.0", "method": "notifications/initialized"}
            )
            await send(
                process,
                {
                    "jsonrpc": "2.0",
                    "id": 2,
                    "method": "tools/call",
                    "params": {
                        "name": "user_cluster_detail",
                        "arguments": {"projectId": 102, "clusterId": 1},
                    },
                },
            )
            answer = json.loads(await reader.line())
            assert process.stdin is not None
            await process.stdin.aclose()
            await reader.rest()
            assert process.stderr is not None
            errors = b""
            async for chunk in process.stderr:
                errors += chunk
            await process.wait()
    messages = [json.loads(line) for line in reader.lines]
    assert all(message["jsonrpc"] == "2.0" for message in messages)
    assert answer["result"]["isError"] is True
    assert CANARY not in json.dumps(messages)
    log = errors.decode("utf-8", "replace")
    assert "DEBUG" in log
    assert CANARY not in log
    assert "token=" not in log
