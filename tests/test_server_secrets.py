"""A planted token appears in no tool result and no log record, on every error path."""

import json
import logging
import socket

import pytest
from mcp import types
from pydantic import SecretStr
from server_fixtures import call, connect, error_kind, text, with_settings

from ta_cohort_mcp.config import Settings
from ta_cohort_mcp.sandbox import SandboxServer

pytestmark = pytest.mark.anyio

CANARY = "canary-9f8e7d6c5b4a"
# Retries still run, without waits between them, to keep the tests short.
NO_WAITS = {"max_retry_wait": 0.0}
DETAIL = {"projectId": 102, "clusterId": 1}


def leaked(result: types.CallToolResult, caplog: pytest.LogCaptureFixture) -> list[str]:
    """Return where the canary shows up: the result, a log message, or a traceback."""
    places = []
    dumped = json.dumps(result.model_dump(mode="json", by_alias=True))
    if CANARY in dumped:
        places.append("result")
    for record in caplog.records:
        if CANARY in record.getMessage():
            places.append(f"log {record.name}")
        if record.exc_text and CANARY in record.exc_text:
            places.append(f"traceback {record.name}")
    if CANARY in caplog.text:
        places.append("log text")
    return places


@pytest.fixture
def canary_settings(server_settings: Settings) -> Settings:
    return with_settings(server_settings, token=SecretStr(CANARY), timeout=0.5)


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        ("http_500", "http_error"),
        ("http_429", "rate_limited"),
        ("drop", "connection_error"),
        ("malformed", "bad_response"),
        ("html", "http_error"),
        ("return_code", "api_error"),
    ],
)
async def test_fault_hides_token(
    canary_settings: Settings,
    sandbox: SandboxServer,
    caplog: pytest.LogCaptureFixture,
    fault: str,
    kind: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    sandbox.faults.add(fault, "user-cluster-detail", retry_after=0)
    async with connect(canary_settings, client_options=NO_WAITS) as client:
        result = await call(client, "user_cluster_detail", DETAIL)
    assert error_kind(result) == kind, text(result)
    assert leaked(result, caplog) == []


async def test_wrong_token_hides_token(
    canary_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with connect(canary_settings, client_options=NO_WAITS) as client:
        result = await call(client, "user_cluster_list", {"projectId": 102})
    assert error_kind(result) == "api_error"
    assert leaked(result, caplog) == []


async def test_timeout_hides_token(
    canary_settings: Settings, sandbox: SandboxServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sandbox.faults.add("latency", "user-cluster-detail", seconds=2)
    settings = with_settings(canary_settings, timeout=0.2)
    async with connect(settings, client_options=NO_WAITS) as client:
        result = await call(client, "user_cluster_detail", DETAIL)
    assert error_kind(result) == "timeout"
    assert "TA_TIMEOUT" in text(result)
    assert leaked(result, caplog) == []


async def test_refused_connection_hides_token(
    canary_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = with_settings(canary_settings, base_url=f"http://127.0.0.1:{port}")
    async with connect(settings, client_options=NO_WAITS) as client:
        result = await call(client, "user_cluster_detail", DETAIL)
    assert error_kind(result) == "connection_error"
    assert "TA_BASE_URL" in text(result)
    assert leaked(result, caplog) == []


async def test_write_uncertain_hides_token(
    canary_settings: Settings, sandbox: SandboxServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sandbox.faults.add("http_500", "user-cluster-refresh")
    async with connect(canary_settings, client_options=NO_WAITS) as client:
        result = await call(client, "user_cluster_refresh", DETAIL)
    assert error_kind(result) in {"write_uncertain", "http_error"}
    assert leaked(result, caplog) == []
