"""The streamable HTTP transport: sessions, stateless mode, bearer token, Host checks."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import httpx
import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from pydantic import SecretStr
from server_fixtures import structured, text, with_settings

from ta_cohort_mcp.config import Settings, SettingsError
from ta_cohort_mcp.server.app import build_server
from ta_cohort_mcp.server.transports import (
    MCP_PATH,
    bind_socket,
    http_app,
    security_settings,
    uvicorn_server,
)

pytestmark = pytest.mark.anyio

BEARER = "test-bearer-token"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"},
    },
}
JSON_HEADERS = {
    "Content-Type": "application/json",
    "Accept": "application/json, text/event-stream",
}


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[str]:
    """Serve HTTP on a free loopback port; yield the MCP endpoint URL."""
    sock = bind_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = uvicorn_server(build_server(settings), settings, sock)
    async with anyio.create_task_group() as group:
        group.start_soon(server.serve, [sock])
        with anyio.fail_after(10):
            while not server.started:
                await anyio.sleep(0.01)
        try:
            yield f"http://127.0.0.1:{port}{MCP_PATH}"
        finally:
            server.should_exit = True


@pytest.mark.parametrize("stateless", [False, True])
async def test_session_over_http(
    server_settings: Settings, protocol_mode: str, stateless: bool
) -> None:
    settings = with_settings(server_settings, transport="http", stateless=stateless)
    async with running(settings) as url, Client(url, mode=protocol_mode) as client:
        tools = await client.list_tools()
        result = await client.call_tool("user_cluster_list", {"projectId": 102})
    assert len(tools.tools) >= 16
    assert not result.is_error, text(result)
    assert "userClusters" in structured(result)


async def test_bearer_required(server_settings: Settings) -> None:
    settings = with_settings(
        server_settings, transport="http", auth_token=SecretStr(BEARER)
    )
    async with running(settings) as url, httpx.AsyncClient(timeout=10) as http:
        missing = await http.post(url, json=INITIALIZE, headers=JSON_HEADERS)
        wrong = await http.post(
            url,
            json=INITIALIZE,
            headers={**JSON_HEADERS, "Authorization": "Bearer nope"},
        )
        right = await http.post(
            url,
            json=INITIALIZE,
            headers={**JSON_HEADERS, "Authorization": f"Bearer {BEARER}"},
        )
    assert missing.status_code == 401
    assert wrong.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert BEARER not in missing.text
    assert right.status_code == 200


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "bEaReR", "Bearer  "])
async def test_bearer_scheme_any_case(server_settings: Settings, scheme: str) -> None:
    settings = with_settings(
        server_settings, transport="http", auth_token=SecretStr(BEARER)
    )
    async with running(settings) as url, httpx.AsyncClient(timeout=10) as http:
        right = await http.post(
            url,
            json=INITIALIZE,
            headers={**JSON_HEADERS, "Authorization": f"{scheme} {BEARER}"},
        )
        other_scheme = await http.post(
            url,
            json=INITIALIZE,
            headers={**JSON_HEADERS, "Authorization": f"Basic {BEARER}"},
        )
    assert right.status_code == 200
    assert other_scheme.status_code == 401


async def test_bearer_client_session(server_settings: Settings) -> None:
    settings = with_settings(
        server_settings, transport="http", auth_token=SecretStr(BEARER)
    )
    async with running(settings) as url:
        http_client = httpx2.AsyncClient(headers={"Authorization": f"Bearer {BEARER}"})
        async with (
            http_client,
            Client(streamable_http_client(url, http_client=http_client)) as client,
        ):
            tools = await client.list_tools()
    assert tools.tools


async def test_foreign_host_rejected(server_settings: Settings) -> None:
    settings = with_settings(server_settings, transport="http")
    async with running(settings) as url, httpx.AsyncClient(timeout=10) as http:
        host = await http.post(
            url, json=INITIALIZE, headers={**JSON_HEADERS, "Host": "evil.example"}
        )
        origin = await http.post(
            url,
            json=INITIALIZE,
            headers={**JSON_HEADERS, "Origin": "http://evil.example"},
        )
        local = await http.post(
            url,
            json=INITIALIZE,
            headers={**JSON_HEADERS, "Origin": "http://localhost:3000"},
        )
    assert host.status_code == 421
    assert origin.status_code == 403
    assert local.status_code == 200


async def test_oversized_body_rejected(server_settings: Settings) -> None:
    settings = with_settings(server_settings, transport="http", max_body_bytes=4096)
    body = {**INITIALIZE, "params": {**INITIALIZE["params"], "padding": "x" * 8192}}  # type: ignore[dict-item]
    async with running(settings) as url, httpx.AsyncClient(timeout=10) as http:
        response = await http.post(url, json=body, headers=JSON_HEADERS)
    assert response.status_code == 413


def test_public_app_needs_bearer(server_settings: Settings) -> None:
    settings = with_settings(server_settings, transport="http", host="0.0.0.0")
    with pytest.raises(SettingsError, match="TA_MCP_AUTH_TOKEN"):
        http_app(build_server(settings), settings)


def test_allowed_hosts_extend_loopback(server_settings: Settings) -> None:
    settings = with_settings(
        server_settings, host="0.0.0.0", allowed_hosts=("mcp.internal",)
    )
    security = security_settings(settings)
    assert "mcp.internal:*" in security.allowed_hosts
    assert "127.0.0.1:*" in security.allowed_hosts
    assert "http://mcp.internal:*" in security.allowed_origins
    assert "0.0.0.0:*" not in security.allowed_hosts
