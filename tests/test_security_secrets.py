"""A canary TA token never leaves the MCP server: not in a tool result, a resource,
an error, a log line at any level, or a logged traceback.

The sandbox here accepts only the canary, which has characters that URL
encoding changes, so each test looks for the raw token and its encoded forms.
Every log record of every logger is captured at DEBUG and formatted with its
traceback. httpx and httpcore stay at WARNING, as the server sets them, because
httpx's INFO line carries the request URL and so the token (tested below).
"""

import logging
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from mcp import types
from mcp.client import Client
from mcp.shared.exceptions import MCPError
from pydantic import SecretStr
from sandbox_fixtures import SANDBOX_TODAY
from server_fixtures import connect
from test_reliability_faults import (
    CASES,
    FAULTS,
    LOCAL_TOOLS,
    add_fault,
    call_all,
    make_targets,
)

from ta_cohort_mcp.client import TAClient
from ta_cohort_mcp.client.sending import CallSender
from ta_cohort_mcp.config import Settings, SettingsError, load_settings
from ta_cohort_mcp.sandbox import SandboxConfig, SandboxServer
from ta_cohort_mcp.server.app import build_server
from ta_cohort_mcp.server.tools import ALL_TOOLS

pytestmark = pytest.mark.anyio

CANARY = "CANARY+s3cr3t/t0ken=Zq#9 x"
CANARY_FORMS = {CANARY, quote(CANARY), quote(CANARY, safe=""), quote_plus(CANARY)}


class RecordCapture(logging.Handler):
    """Keeps every record formatted, with its traceback and stack."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def captured() -> Iterator[RecordCapture]:
    handler = RecordCapture()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


@pytest.fixture(scope="module")
def canary_sandbox() -> Iterator[SandboxServer]:
    config = SandboxConfig(today=SANDBOX_TODAY, users=200, tokens={CANARY: {102, 2}})
    with SandboxServer(config) as server:
        yield server


@pytest.fixture
def canary_settings(
    canary_sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    async def no_wait(self: CallSender, seconds: float) -> None:
        return None

    monkeypatch.setattr(CallSender, "_sleep", no_wait)
    return Settings(
        base_url=canary_sandbox.base_url,
        token=SecretStr(CANARY),
        timeout=1.0,
        wait_seconds=2.0,
        poll_interval=0.05,
    )


@pytest.fixture
async def client(
    canary_settings: Settings, captured: RecordCapture
) -> AsyncIterator[Client]:
    async with connect(canary_settings, mode="legacy") as session:
        yield session


def leaks(text: str) -> list[str]:
    """Return the forms of the canary found in `text`."""
    return sorted(form for form in CANARY_FORMS if form in text)


def result_text(result: types.CallToolResult) -> str:
    """Return everything a caller receives in `result`, as one text."""
    return result.model_dump_json(by_alias=True)


def assert_clean(results: dict[str, types.CallToolResult], logs: RecordCapture) -> None:
    for tool, result in results.items():
        assert leaks(result_text(result)) == [], f"{tool} result"
    for line in logs.lines:
        assert leaks(line) == [], f"log line: {line[:200]}"


async def test_canary_works(client: Client, captured: RecordCapture) -> None:
    result = await client.call_tool("user_cluster_list", {"projectId": 102})
    assert not result.is_error, result_text(result)
    assert captured.lines


async def test_every_tool_succeeds_clean(
    client: Client, captured: RecordCapture
) -> None:
    targets = await make_targets(client)
    results = await call_all(client, CASES, targets)
    for tool, arguments in LOCAL_TOOLS.items():
        if tool in ALL_TOOLS:
            results[tool] = await client.call_tool(tool, arguments)
    results["refresh_and_wait"] = await client.call_tool(
        "refresh_and_wait", {"projectId": 102, "clusterId": targets.cluster_id}
    )
    assert not results["refresh_and_wait"].is_error
    assert_clean(results, captured)


@pytest.mark.parametrize("fault", FAULTS, ids=lambda fault: fault.name)
async def test_every_fault_clean(
    fault: Any,
    client: Client,
    canary_sandbox: SandboxServer,
    captured: RecordCapture,
) -> None:
    targets = await make_targets(client)
    # Every endpoint at once: a tool that reads first fails on that read instead.
    for case in CASES:
        add_fault(canary_sandbox, fault, case.endpoint, None)
    try:
        results = await call_all(client, CASES, targets)
    finally:
        canary_sandbox.faults.clear()
    assert all(result.is_error for result in results.values())
    assert_clean(results, captured)


async def test_resources_clean(client: Client, captured: RecordCapture) -> None:
    targets = await make_targets(client)
    uris = [str(item.uri) for item in (await client.list_resources()).resources]
    uris += [
        "ta://projects/102/clusters",
        f"ta://projects/102/clusters/{targets.cluster_name}",
        "ta://projects/102/catalog",
        "ta://projects/102/clusters/no_such_cluster",
        "ta://projects/999/clusters",
    ]
    texts = []
    for uri in uris:
        try:
            read = await client.read_resource(uri)
        except MCPError as error:
            texts.append(f"{error.code} {error.message} {error.data}")
            continue
        texts.append(read.model_dump_json())
    assert len(texts) == len(uris)
    for uri, content in zip(uris, texts, strict=True):
        assert leaks(content) == [], uri
    for line in captured.lines:
        assert leaks(line) == [], line[:200]


async def test_resources_under_faults_clean(
    client: Client, canary_sandbox: SandboxServer, captured: RecordCapture
) -> None:
    canary_sandbox.faults.add("http_500", "*")
    try:
        for uri in ("ta://projects/102/clusters", "ta://projects/102/clusters/x1"):
            try:
                read = await client.read_resource(uri)
                content = read.model_dump_json()
            except MCPError as error:
                content = f"{error.message} {error.data}"
            assert leaks(content) == [], uri
    finally:
        canary_sandbox.faults.clear()
    for line in captured.lines:
        assert leaks(line) == [], line[:200]


def refused_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def test_unreachable_api_clean(
    canary_settings: Settings, captured: RecordCapture
) -> None:
    settings = canary_settings.with_backend(refused_url(), CANARY)
    async with connect(settings, mode="legacy") as session:
        results = {
            case.tool: await session.call_tool(case.tool, case.arguments(NO_TARGETS))
            for case in CASES
        }
    assert all(result.is_error for result in results.values())
    assert_clean(results, captured)


async def test_rejected_token_clean(
    canary_settings: Settings, sandbox: SandboxServer, captured: RecordCapture
) -> None:
    # The session's sandbox does not accept the canary.
    settings = canary_settings.with_backend(sandbox.base_url, CANARY)
    async with connect(settings, mode="legacy") as session:
        results = {
            case.tool: await session.call_tool(case.tool, case.arguments(NO_TARGETS))
            for case in CASES
        }
    assert all(result.is_error for result in results.values())
    assert_clean(results, captured)


async def test_internal_error_traceback_clean(
    client: Client, captured: RecordCapture, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def explode(self: Any, body: Any) -> Any:
        raise RuntimeError(f"unexpected failure in {type(self).__name__}: {self!r}")

    monkeypatch.setattr(TAClient, "user_cluster_list", explode)
    result = await client.call_tool("user_cluster_list", {"projectId": 102})
    assert structured_kind(result) == "internal_error"
    tracebacks = [line for line in captured.lines if "Traceback" in line]
    assert tracebacks, "the unexpected error was not logged with its traceback"
    assert_clean({"user_cluster_list": result}, captured)


def structured_kind(result: types.CallToolResult) -> Any:
    content = result.structured_content or {}
    return content.get("error", {}).get("kind")


def test_settings_repr_hides_token(canary_settings: Settings) -> None:
    assert leaks(repr(canary_settings)) == []
    assert leaks(str(canary_settings)) == []


def test_http_loggers_held_at_warning(canary_settings: Settings) -> None:
    build_server(canary_settings)
    for name in ("httpx", "httpcore"):
        assert logging.getLogger(name).getEffectiveLevel() >= logging.WARNING, name


class _NoTargets:
    """Targets for calls that never reach a cluster: unreachable or rejected."""

    cluster_id = 1
    cluster_name = "c1"
    import_id = 2
    import_name = "i2"
    delete_id = 3
    delete_id_token = "not-a-token"
    delete_name = "d3"
    delete_name_token = "not-a-token"


NO_TARGETS: Any = _NoTargets()


@pytest.mark.parametrize(
    "url",
    [
        f"http://127.0.0.1:8992/?token={quote(CANARY, safe='')}",
        f"http://user:{quote(CANARY, safe='')}@127.0.0.1:8992",
        "http://127.0.0.1:8992/#section",
    ],
    ids=["query", "user", "fragment"],
)
def test_base_url_with_token_rejected(url: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(environ={"TA_BASE_URL": url})
    assert "TA_BASE_URL" in str(caught.value)
    assert leaks(str(caught.value)) == []
