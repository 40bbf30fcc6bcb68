"""Fixtures of the MCP server tests (a pytest plugin listed in conftest.py).

- `server_settings`: Settings pointed at the session's sandbox, with a short
  refresh_and_wait budget and a fast poll, so waits in tests stay short.
- `protocol_mode` (parametrized): "auto" (2026-07-28) and "legacy" (2025-11-25).
- `mcp_client`: an in-memory `mcp.client.Client` session with a server built from
  `server_settings`, in each protocol mode.
- `connect(settings, mode=..., **client_options)`: an async context manager that
  builds a server for other settings and opens a session with it.

Helpers: `call` runs a tool and returns its result; `structured` returns the
structured content of a result as a dict; `text` returns its text.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import pytest
from mcp import types
from mcp.client import Client
from pydantic import SecretStr

from ta_cohort_mcp.config import Settings
from ta_cohort_mcp.sandbox import SandboxServer
from ta_cohort_mcp.server.app import build_server

MODES = ("auto", "legacy")


@pytest.fixture
def server_settings(sandbox: SandboxServer) -> Settings:
    return Settings(
        base_url=sandbox.base_url,
        token=SecretStr(sandbox.token),
        timeout=10.0,
        wait_seconds=10.0,
        poll_interval=0.05,
    )


@pytest.fixture(params=MODES)
def protocol_mode(request: pytest.FixtureRequest) -> str:
    mode: str = request.param
    return mode


@asynccontextmanager
async def connect(
    settings: Settings, *, mode: str = "auto", **options: Any
) -> AsyncIterator[Client]:
    """Open a client session with a new server built for `settings`.

    `clock` and `client_options` go to `build_server`; other options to `Client`.
    """
    server_options: dict[str, Any] = {}
    for name in ("clock", "client_options"):
        if name in options:
            server_options[name] = options.pop(name)
    server = build_server(settings, **server_options)
    async with Client(server, mode=mode, **options) as client:  # type: ignore[arg-type]
        yield client


@pytest.fixture
async def mcp_client(
    server_settings: Settings, protocol_mode: str
) -> AsyncIterator[Client]:
    async with connect(server_settings, mode=protocol_mode) as client:
        yield client


async def call(
    client: Client, name: str, arguments: dict[str, Any]
) -> types.CallToolResult:
    """Call tool `name` and return its result."""
    return await client.call_tool(name, arguments)


def structured(result: types.CallToolResult) -> dict[str, Any]:
    """Return the structured content of `result`, which must be an object."""
    content = result.structured_content
    assert isinstance(content, dict), f"no structured content: {result}"
    return content


def text(result: types.CallToolResult) -> str:
    """Return the text of the first content block of `result`."""
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


def error_kind(result: types.CallToolResult) -> str | None:
    """Return the `error.kind` of an isError result, or None for a success."""
    if not result.is_error:
        return None
    error = structured(result).get("error", {})
    kind: str | None = error.get("kind")
    return kind


def with_settings(settings: Settings, **changes: Any) -> Settings:
    """Return a copy of `settings` with `changes`."""
    return replace(settings, **changes)
