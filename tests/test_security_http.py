"""The streamable HTTP transport: loopback by default, bearer token, Host checks.

The server runs as `python -m ta_cohort_mcp serve --transport http --port 0` in
a subprocess, and the tests read the bound port from its log. Refusing a
non-loopback address is tested through the settings and the command only:
no test binds anything but 127.0.0.1.
"""

import argparse
import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import IO

import httpx
import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

from ta_cohort_mcp import config
from ta_cohort_mcp.config import Settings, SettingsError, load_settings
from ta_cohort_mcp.sandbox import SandboxServer
from ta_cohort_mcp.server.transports import bind_socket

AUTH_TOKEN = "bearer-CANARY-5dX2"
MAX_BODY_BYTES = 4096
START_TIMEOUT = 30.0
SERVING = re.compile(rb"serving MCP over HTTP on http://127\.0\.0\.1:(\d+)/mcp")
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "http-test", "version": "1"},
    },
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}


class HttpServer:
    """A `serve --transport http` subprocess and the URL it serves."""

    def __init__(self, sandbox: SandboxServer, extra_env: dict[str, str]) -> None:
        env = {
            key: value for key, value in os.environ.items() if not key.startswith("TA_")
        }
        env.update(
            TA_BASE_URL=sandbox.base_url,
            TA_TOKEN=sandbox.token,
            TA_TRANSPORT="http",
            TA_PORT="0",
            TA_MAX_BODY_BYTES=str(MAX_BODY_BYTES),
            TA_LOG_LEVEL="INFO",
            **extra_env,
        )
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ta_cohort_mcp", "serve"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
        )
        self.stderr_lines: list[bytes] = []
        self._lines: queue.Queue[bytes] = queue.Queue()
        assert self.process.stderr is not None
        self._reader = threading.Thread(
            target=self._read, args=(self.process.stderr,), daemon=True
        )
        self._reader.start()
        port = self._wait_for_port()
        self._wait_until_listening(port)
        self.url = f"http://127.0.0.1:{port}/mcp"

    def _read(self, stream: IO[bytes]) -> None:
        for line in stream:
            self.stderr_lines.append(line)
            self._lines.put(line)

    def _wait_for_port(self) -> int:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, b"".join(self.stderr_lines).decode()[-2000:]
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                continue
            found = SERVING.search(line)
            if found:
                return int(found.group(1))

    def _wait_until_listening(self, port: int) -> None:
        # The log line comes when the socket is bound, and uvicorn listens later.
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
                return
            except ConnectionRefusedError:
                assert time.monotonic() < deadline, "the server never listened"
                time.sleep(0.02)

    def stderr(self) -> str:
        return b"".join(self.stderr_lines).decode("utf-8", "replace")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self._reader.join(timeout=5)
        assert self.process.stderr is not None
        self.process.stderr.close()


@pytest.fixture(scope="module")
def secured(sandbox: SandboxServer) -> Iterator[HttpServer]:
    server = HttpServer(sandbox, {"TA_MCP_AUTH_TOKEN": AUTH_TOKEN})
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def open_server(sandbox: SandboxServer) -> Iterator[HttpServer]:
    server = HttpServer(sandbox, {})
    try:
        yield server
    finally:
        server.stop()


def post(
    url: str, headers: dict[str, str], content: bytes | None = None
) -> httpx.Response:
    with httpx.Client(timeout=10.0) as http:
        if content is None:
            return http.post(url, json=INITIALIZE, headers={**MCP_HEADERS, **headers})
        merged = {**MCP_HEADERS, "Content-Type": "application/json", **headers}
        return http.post(url, content=content, headers=merged)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# Binding


def test_default_host_is_loopback() -> None:
    settings = load_settings(environ={"TA_TRANSPORT": "http"})
    assert settings.host == "127.0.0.1"
    assert Settings().host == "127.0.0.1"


def test_default_bind_is_loopback() -> None:
    sock = bind_socket(Settings().host, 0)
    try:
        assert sock.getsockname()[0] == "127.0.0.1"
    finally:
        sock.close()


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "ta.example.com"])
def test_public_host_needs_token(host: str) -> None:
    environ = {"TA_TRANSPORT": "http", "TA_HOST": host}
    with pytest.raises(SettingsError, match="TA_MCP_AUTH_TOKEN"):
        load_settings(environ=environ)


def test_public_host_flag_needs_token() -> None:
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    args = parser.parse_args(["--transport", "http", "--host", "0.0.0.0"])
    with pytest.raises(SettingsError, match="--auth-token"):
        load_settings(args, environ={})


def test_public_host_with_token_allowed() -> None:
    environ = {
        "TA_TRANSPORT": "http",
        "TA_HOST": "0.0.0.0",
        "TA_MCP_AUTH_TOKEN": AUTH_TOKEN,
    }
    settings = load_settings(environ=environ)
    assert settings.auth_token is not None
    assert AUTH_TOKEN not in repr(settings)


def test_serve_refuses_public_host(sandbox: SandboxServer) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("TA_")}
    env.update(TA_BASE_URL=sandbox.base_url, TA_TOKEN=sandbox.token)
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "ta_cohort_mcp",
            "serve",
            "--transport",
            "http",
            "--host",
            "0.0.0.0",
            "--port",
            "0",
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
    )
    assert completed.returncode == 2
    assert b"TA_MCP_AUTH_TOKEN" in completed.stderr
    assert b"serving MCP over HTTP" not in completed.stderr


# Bearer token


def test_missing_bearer_401(secured: HttpServer) -> None:
    response = post(secured.url, {})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_wrong_bearer_401(secured: HttpServer) -> None:
    response = post(secured.url, bearer("not-the-token"))
    assert response.status_code == 401


def test_bearer_prefix_only_401(secured: HttpServer) -> None:
    response = post(secured.url, {"Authorization": AUTH_TOKEN})
    assert response.status_code == 401


def test_right_bearer_accepted(secured: HttpServer) -> None:
    response = post(secured.url, bearer(AUTH_TOKEN))
    assert response.status_code == 200, response.text


def test_bearer_not_logged(secured: HttpServer) -> None:
    post(secured.url, bearer("wrong-CANARY-Vb8"))
    post(secured.url, bearer(AUTH_TOKEN))
    deadline = time.monotonic() + 5
    while "bearer token" not in secured.stderr() and time.monotonic() < deadline:
        time.sleep(0.05)
    stderr = secured.stderr()
    assert "wrong bearer token" in stderr
    assert "wrong-CANARY-Vb8" not in stderr
    assert AUTH_TOKEN not in stderr


# DNS rebinding and body size, with and without a bearer token


@pytest.fixture(params=["secured", "open_server"])
def any_server(request: pytest.FixtureRequest) -> HttpServer:
    server: HttpServer = request.getfixturevalue(request.param)
    return server


def test_foreign_host_rejected(any_server: HttpServer) -> None:
    response = post(any_server.url, {"Host": "evil.example", **bearer(AUTH_TOKEN)})
    assert response.status_code == 421


def test_foreign_origin_rejected(any_server: HttpServer) -> None:
    headers = {"Origin": "http://evil.example", **bearer(AUTH_TOKEN)}
    response = post(any_server.url, headers)
    assert response.status_code == 403


def test_local_origin_accepted(any_server: HttpServer) -> None:
    port = any_server.url.split(":")[2].split("/")[0]
    headers = {"Origin": f"http://localhost:{port}", **bearer(AUTH_TOKEN)}
    response = post(any_server.url, headers)
    assert response.status_code == 200, response.text


def test_oversized_body_rejected(any_server: HttpServer) -> None:
    body = b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"x": "'
    body += b"x" * MAX_BODY_BYTES + b'"}}'
    response = post(any_server.url, bearer(AUTH_TOKEN), content=body)
    assert response.status_code == 413


def test_body_at_limit_accepted(any_server: HttpServer) -> None:
    response = post(any_server.url, bearer(AUTH_TOKEN))
    assert response.status_code == 200, response.text


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_session_with_bearer(secured: HttpServer, mode: str) -> None:
    headers = bearer(AUTH_TOKEN)
    async with httpx2.AsyncClient(headers=headers, timeout=30.0) as http:
        transport = streamable_http_client(secured.url, http_client=http)
        async with Client(transport, mode=mode) as client:
            result = await client.call_tool("user_cluster_list", {"projectId": 102})
    assert not result.is_error, result


@pytest.mark.anyio
async def test_confirm_token_crosses_sessions(
    secured: HttpServer, cluster_name: str
) -> None:
    # Confirm tokens belong to the process: every holder of the bearer token is
    # the same principal, so a second session may redeem the first's token.
    qp = {
        "filts": [
            {
                "columnName": "user_level",
                "comparator": "equal",
                "ftv": ["3"],
                "tableType": "user",
            }
        ]
    }
    body = {
        "projectId": 102,
        "clusterName": cluster_name,
        "displayName": cluster_name,
        "qp": qp,
    }
    async with httpx2.AsyncClient(headers=bearer(AUTH_TOKEN), timeout=30.0) as http:
        transport = streamable_http_client(secured.url, http_client=http)
        async with Client(transport, mode="legacy") as first:
            added = await first.call_tool("user_cluster_add", body)
            assert added.structured_content is not None
            key = {"projectId": 102, "clusterId": added.structured_content["clusterId"]}
            preview = await first.call_tool("user_cluster_delete", key)
        assert preview.structured_content is not None
        token = preview.structured_content["confirm"]
        transport = streamable_http_client(secured.url, http_client=http)
        async with Client(transport, mode="legacy") as second:
            deleted = await second.call_tool(
                "user_cluster_delete", {**key, "confirm": token}
            )
    assert deleted.structured_content is not None
    assert deleted.structured_content["deleted"] is True
