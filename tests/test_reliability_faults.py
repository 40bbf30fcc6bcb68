"""Every tool under the sandbox's injected faults, through an MCP session.

Each fault kind is applied to the endpoint of every tool at once, and the tools
run concurrently, so a latency fault costs one timeout, not one per tool. Every
call must end in an isError result whose kind and text let the model act:

- reads (detail, list, progress) retry transient faults, so one transient
  fault is recovered from, and a persistent one is reported after the retries;
- writes (add, update, delete, refresh, id upload) are sent exactly once, and
  when they failed in flight the error states that the outcome is unknown and
  how to check it.

Retry waits are recorded instead of slept, through `CallSender._sleep`.
"""

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
from mcp import types
from mcp.client import Client
from server_fixtures import connect, error_kind, structured, text, with_settings

from ta_cohort_mcp.client.sending import CallSender
from ta_cohort_mcp.config import Settings
from ta_cohort_mcp.sandbox import SandboxServer
from ta_cohort_mcp.server.tools import ALL_TOOLS

pytestmark = pytest.mark.anyio

# Seconds the client waits for each request, and the injected latency past it.
TIMEOUT = 1.0
LATENCY = 2.5
# TAClient's default: a read is sent once and retried up to three times.
READ_ATTEMPTS = 4

QP = {
    "events": [
        {
            "eventName": "consume_item",
            "comparator": "greater",
            "num": "4",
            "recentDay": "1-7",
            "taPropQuota": {"analysis": "TIMES"},
        }
    ]
}


def unique_name() -> str:
    return f"f_{uuid.uuid4().hex[:16]}"


@dataclass
class Targets:
    """Clusters the tools act on, made before any fault is added."""

    cluster_id: int
    cluster_name: str
    import_id: int
    import_name: str
    delete_id: int
    delete_id_token: str
    delete_name: str
    delete_name_token: str


@dataclass(frozen=True)
class ToolCase:
    """A tool, the endpoint its call reaches, and arguments for it.

    `reads_first` lists the endpoints the tool reads before its own, such as
    the detail an id upload reads to learn whether the cluster is a tag.
    """

    tool: str
    endpoint: str
    writes: bool
    arguments: Callable[[Targets], dict[str, Any]]
    reads_first: tuple[str, ...] = ()


CASES = [
    ToolCase(
        "user_cluster_add",
        "user-cluster-add",
        True,
        lambda t: {
            "projectId": 102,
            "clusterName": unique_name(),
            "displayName": "fault add",
            "qp": QP,
        },
    ),
    ToolCase(
        "user_cluster_detail",
        "user-cluster-detail",
        False,
        lambda t: {"projectId": 102, "clusterId": t.cluster_id},
    ),
    ToolCase(
        "user_cluster_update",
        "user-cluster-update",
        True,
        lambda t: {
            "projectId": 102,
            "clusterId": t.cluster_id,
            "displayName": "fault update",
            "qp": QP,
        },
    ),
    ToolCase(
        "user_cluster_update_by_name",
        "user-cluster-update-by-name",
        True,
        lambda t: {
            "projectId": 102,
            "clusterName": t.cluster_name,
            "displayName": "fault update",
            "qp": QP,
        },
    ),
    ToolCase(
        "user_cluster_delete",
        "user-cluster-delete",
        True,
        lambda t: {
            "projectId": 102,
            "clusterId": t.delete_id,
            "confirm": t.delete_id_token,
        },
    ),
    # The by-name delete looks the name up again and deletes the previewed id.
    ToolCase(
        "delete_user_cluster_by_name",
        "user-cluster-delete",
        True,
        lambda t: {
            "projectId": 102,
            "clusterName": t.delete_name,
            "confirm": t.delete_name_token,
        },
        reads_first=("user-cluster-detail",),
    ),
    ToolCase(
        "user_cluster_list",
        "user-cluster-list",
        False,
        lambda t: {"projectId": 102},
    ),
    ToolCase(
        "user_cluster_refresh",
        "user-cluster-refresh",
        True,
        lambda t: {"projectId": 102, "clusterId": t.cluster_id},
    ),
    ToolCase(
        "user_cluster_refresh_by_name",
        "user-cluster-refresh-by-name",
        True,
        lambda t: {"projectId": 102, "clusterName": t.cluster_name},
    ),
    ToolCase(
        "user_cluster_refresh_progress",
        "user-cluster-refresh-progress",
        False,
        lambda t: {"projectId": 102, "clusterId": t.cluster_id},
    ),
    ToolCase(
        "user_cluster_refresh_progress_by_name",
        "user-cluster-refresh-progress-by-name",
        False,
        lambda t: {"projectId": 102, "clusterName": t.cluster_name},
    ),
    ToolCase(
        "import_id_cluster_add",
        "import-id-cluster-add",
        True,
        lambda t: {
            "projectId": 102,
            "displayName": "fault import",
            "mainColumnName": "#account_id",
            "clusterName": unique_name(),
            "ids": ["a1", "a2", "a3"],
        },
    ),
    ToolCase(
        "import_id_cluster_modify",
        "import-id-cluster-modify",
        True,
        lambda t: {"projectId": 102, "clusterId": t.import_id, "ids": ["b1", "b2"]},
        reads_first=("user-cluster-detail",),
    ),
    ToolCase(
        "import_id_cluster_modify_by_name",
        "import-id-cluster-modify-by-name",
        True,
        lambda t: {"projectId": 102, "clusterName": t.import_name, "ids": ["c1"]},
        reads_first=("user-cluster-detail",),
    ),
]
READS = [case for case in CASES if not case.writes]
WRITES = [case for case in CASES if case.writes]
# Tools that send nothing to an /open/ endpoint, with arguments for them.
LOCAL_TOOLS: dict[str, dict[str, Any]] = {
    "validate_definition": {"qp": QP},
    "event_catalog": {"projectId": 102},
}


@dataclass(frozen=True)
class Fault:
    """One fault rule's settings, and the error kinds a read and a write get."""

    name: str
    kind: str
    read_kind: str
    write_kind: str
    read_attempts: int
    options: tuple[tuple[str, Any], ...] = ()


FAULTS = [
    Fault(
        "latency",
        "latency",
        "timeout",
        "write_uncertain",
        READ_ATTEMPTS,
        (("seconds", LATENCY),),
    ),
    Fault("http_500", "http_500", "http_error", "write_uncertain", READ_ATTEMPTS),
    Fault(
        "429_short_repeated",
        "http_429",
        "rate_limited",
        "rate_limited",
        READ_ATTEMPTS,
        (("retry_after", 1),),
    ),
    Fault(
        "429_long",
        "http_429",
        "rate_limited",
        "rate_limited",
        1,
        (("retry_after", 600),),
    ),
    Fault("drop", "drop", "connection_error", "write_uncertain", READ_ATTEMPTS),
    Fault("malformed", "malformed", "bad_response", "write_uncertain", 1),
    Fault("html", "html", "http_error", "write_uncertain", READ_ATTEMPTS),
    Fault(
        "return_code",
        "return_code",
        "api_error",
        "api_error",
        1,
        (("return_code", -1006), ("return_message", "injected failure")),
    ),
]
TRANSIENT = [fault for fault in FAULTS if fault.read_attempts > 1]


@pytest.fixture
def retry_waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the client's retry waits instead of sleeping them."""
    waits: list[float] = []

    async def record(self: CallSender, seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(CallSender, "_sleep", record)
    return waits


@pytest.fixture
async def client(
    server_settings: Settings, retry_waits: list[float]
) -> AsyncIterator[Client]:
    settings = with_settings(server_settings, timeout=TIMEOUT)
    async with connect(settings, mode="legacy") as session:
        yield session


async def ok(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, text(result)
    return structured(result)


async def preview_token(client: Client, tool: str, arguments: dict[str, Any]) -> str:
    content = await ok(client, tool, arguments)
    token: str = content["confirm"]
    return token


async def add_cluster(client: Client) -> tuple[int, str]:
    """Create a cluster of project 102 and return its id and name."""
    name = unique_name()
    body = {"projectId": 102, "clusterName": name, "displayName": name, "qp": QP}
    content = await ok(client, "user_cluster_add", body)
    return int(content["clusterId"]), name


async def make_targets(client: Client) -> Targets:
    cluster_id, cluster_name = await add_cluster(client)
    delete_id, _ = await add_cluster(client)
    _, delete_name = await add_cluster(client)
    import_name = unique_name()
    imported = await ok(
        client,
        "import_id_cluster_add",
        {
            "projectId": 102,
            "displayName": "fault target",
            "mainColumnName": "#account_id",
            "clusterName": import_name,
            "ids": ["a1"],
        },
    )
    id_token = await preview_token(
        client, "user_cluster_delete", {"projectId": 102, "clusterId": delete_id}
    )
    name_token = await preview_token(
        client,
        "delete_user_cluster_by_name",
        {"projectId": 102, "clusterName": delete_name},
    )
    return Targets(
        cluster_id=cluster_id,
        cluster_name=cluster_name,
        import_id=int(imported["clusterId"]),
        import_name=import_name,
        delete_id=delete_id,
        delete_id_token=id_token,
        delete_name=delete_name,
        delete_name_token=name_token,
    )


def add_fault(
    sandbox: SandboxServer, fault: Fault, endpoint: str, count: int | None
) -> None:
    sandbox.faults.add(fault.kind, endpoint, count=count, **dict(fault.options))


async def call_all(
    client: Client, cases: list[ToolCase], targets: Targets
) -> dict[str, types.CallToolResult]:
    """Call every case's tool concurrently and return the results by tool."""
    results: dict[str, types.CallToolResult] = {}

    async def run(case: ToolCase) -> None:
        results[case.tool] = await client.call_tool(case.tool, case.arguments(targets))

    async with anyio.create_task_group() as group:
        for case in cases:
            group.start_soon(run, case)
    return results


def fault_rounds(cases: list[ToolCase]) -> list[list[ToolCase]]:
    """Split `cases` so that no two cases in a round reach a common endpoint."""
    rounds: list[list[ToolCase]] = []
    for case in cases:
        for members in rounds:
            clash = any(
                case.endpoint == other.endpoint
                or case.endpoint in other.reads_first
                or other.endpoint in case.reads_first
                for other in members
            )
            if not clash:
                members.append(case)
                break
        else:
            rounds.append([case])
    return rounds


async def call_under_fault(
    client: Client,
    sandbox: SandboxServer,
    fault: Fault,
    cases: list[ToolCase],
    targets: Targets,
) -> tuple[dict[str, types.CallToolResult], dict[str, int]]:
    """Call every case with `fault` on its own endpoint only, round by round.

    Returns the results by tool, and by tool the requests its endpoint received.
    """
    results: dict[str, types.CallToolResult] = {}
    sent: dict[str, int] = {}
    for members in fault_rounds(cases):
        for case in members:
            add_fault(sandbox, fault, case.endpoint, None)
        before = sandbox.stats.counts()
        try:
            results.update(await call_all(client, members, targets))
        finally:
            sandbox.faults.clear()
        after = sandbox.stats.counts()
        for case in members:
            count = after.get(case.endpoint, 0) - before.get(case.endpoint, 0)
            sent[case.tool] = count
    return results, sent


def test_cases_cover_every_tool() -> None:
    # refresh_and_wait has its own tests below: it both writes and reads.
    covered = {case.tool for case in CASES} | set(LOCAL_TOOLS) | {"refresh_and_wait"}
    assert set(ALL_TOOLS) <= covered


@pytest.mark.parametrize("fault", FAULTS, ids=lambda fault: fault.name)
async def test_persistent_fault_every_tool(
    fault: Fault,
    client: Client,
    sandbox: SandboxServer,
    retry_waits: list[float],
) -> None:
    targets = await make_targets(client)
    results, sent_by_tool = await call_under_fault(
        client, sandbox, fault, CASES, targets
    )

    for case in CASES:
        result = results[case.tool]
        sent = sent_by_tool[case.tool]
        expected = fault.write_kind if case.writes else fault.read_kind
        assert result.is_error, f"{case.tool}: {text(result)}"
        assert error_kind(result) == expected, f"{case.tool}: {text(result)}"
        assert case.tool in text(result), text(result)
        if case.writes:
            assert sent == 1, f"{case.tool} sent {sent} times"
        else:
            assert sent == fault.read_attempts, f"{case.tool} sent {sent} times"
        if expected == "write_uncertain":
            check_uncertain(case, result)
    assert all(wait <= 10.0 for wait in retry_waits), retry_waits


def check_uncertain(case: ToolCase, result: types.CallToolResult) -> None:
    """Assert that an uncertain write warns against repeating it and gives a check."""
    error = structured(result)["error"]
    assert error.get("check"), f"{case.tool}: no check hint"
    assert "user_cluster_" in error["check"], f"{case.tool}: {error['check']}"
    assert "Do not repeat it blindly" in text(result), text(result)
    assert error["endpoint"] == case.endpoint, error


@pytest.mark.parametrize("fault", TRANSIENT, ids=lambda fault: fault.name)
async def test_reads_recover_from_one_fault(
    fault: Fault, client: Client, sandbox: SandboxServer
) -> None:
    targets = await make_targets(client)
    for case in READS:
        add_fault(sandbox, fault, case.endpoint, 1)
    assert len(fault_rounds(READS)) == 1
    before = sandbox.stats.counts()
    results = await call_all(client, READS, targets)
    after = sandbox.stats.counts()

    for case in READS:
        result = results[case.tool]
        sent = after.get(case.endpoint, 0) - before.get(case.endpoint, 0)
        assert not result.is_error, f"{case.tool}: {text(result)}"
        assert sent == 2, f"{case.tool} sent {sent} times"


async def test_long_retry_after_not_waited(
    client: Client, sandbox: SandboxServer, retry_waits: list[float]
) -> None:
    sandbox.faults.add("http_429", "user-cluster-list", retry_after=600)
    result = await client.call_tool("user_cluster_list", {"projectId": 102})
    error = structured(result)["error"]
    assert error["kind"] == "rate_limited"
    assert error["retryAfterSeconds"] == 600
    assert "after 600 seconds" in text(result)
    assert retry_waits == []


async def test_repeated_429_waits_bounded(
    client: Client, sandbox: SandboxServer, retry_waits: list[float]
) -> None:
    sandbox.faults.add("http_429", "user-cluster-list", retry_after=2)
    result = await client.call_tool("user_cluster_list", {"projectId": 102})
    assert error_kind(result) == "rate_limited"
    assert retry_waits == [2.0] * (READ_ATTEMPTS - 1)
    assert "after 2 seconds" in text(result)


async def test_429_then_success(
    client: Client, sandbox: SandboxServer, retry_waits: list[float]
) -> None:
    sandbox.faults.add("http_429", "user-cluster-list", count=2, retry_after=2)
    result = await client.call_tool("user_cluster_list", {"projectId": 102})
    assert not result.is_error, text(result)
    assert retry_waits == [2.0, 2.0]


@pytest.mark.parametrize("fault", FAULTS, ids=lambda fault: fault.name)
async def test_local_tools_unaffected(
    fault: Fault, client: Client, sandbox: SandboxServer
) -> None:
    add_fault(sandbox, fault, "*", None)
    before = sandbox.stats.total
    for tool, arguments in LOCAL_TOOLS.items():
        if tool not in ALL_TOOLS:
            continue
        result = await client.call_tool(tool, arguments)
        assert not result.is_error, f"{tool}: {text(result)}"
    assert sandbox.stats.total == before


async def test_refresh_and_wait_start_fault(
    client: Client, sandbox: SandboxServer
) -> None:
    targets = await make_targets(client)
    sandbox.faults.add("http_500", "user-cluster-refresh")
    before = sandbox.stats["user-cluster-refresh"]
    result = await client.call_tool(
        "refresh_and_wait", {"projectId": 102, "clusterId": targets.cluster_id}
    )
    assert error_kind(result) == "write_uncertain"
    assert "user_cluster_refresh_progress" in text(result)
    assert sandbox.stats["user-cluster-refresh"] == before + 1


@pytest.mark.parametrize("fault", TRANSIENT, ids=lambda fault: fault.name)
async def test_refresh_and_wait_poll_recovers(
    fault: Fault, client: Client, sandbox: SandboxServer
) -> None:
    targets = await make_targets(client)
    add_fault(sandbox, fault, "user-cluster-refresh-progress", 1)
    result = await client.call_tool(
        "refresh_and_wait", {"projectId": 102, "clusterId": targets.cluster_id}
    )
    assert not result.is_error, text(result)
    assert structured(result)["done"] is True


async def test_refresh_and_wait_slow_start(
    server_settings: Settings, sandbox: SandboxServer, retry_waits: list[float]
) -> None:
    # The budget ends while the request that starts the refresh is in flight.
    settings = with_settings(server_settings, timeout=10.0, wait_seconds=0.5)
    async with connect(settings, mode="legacy") as session:
        targets = await make_targets(session)
        sandbox.faults.add("latency", "user-cluster-refresh", count=1, seconds=2.0)
        result = await session.call_tool(
            "refresh_and_wait", {"projectId": 102, "clusterId": targets.cluster_id}
        )
    content = structured(result)
    assert content["done"] is False
    assert "may or may not have started" in content["next"]
    assert "still running" not in content["next"]
    assert "user_cluster_refresh_progress" in content["next"]


# Latency is left out here: it costs four timeouts, and reads under latency are
# tested above.
@pytest.mark.parametrize("fault", FAULTS[1:], ids=lambda fault: fault.name)
async def test_failed_first_read_sends_nothing(
    fault: Fault, client: Client, sandbox: SandboxServer
) -> None:
    targets = await make_targets(client)
    cases = [case for case in CASES if case.reads_first]
    for case in cases:
        for endpoint in case.reads_first:
            add_fault(sandbox, fault, endpoint, None)
    before = sandbox.stats.counts()
    results = await call_all(client, cases, targets)
    after = sandbox.stats.counts()

    for case in cases:
        result = results[case.tool]
        sent = after.get(case.endpoint, 0) - before.get(case.endpoint, 0)
        assert result.is_error, f"{case.tool}: {text(result)}"
        assert error_kind(result) == fault.read_kind, f"{case.tool}: {text(result)}"
        assert sent == 0, f"{case.tool} sent {sent} times after its read failed"


@pytest.mark.parametrize("fault", FAULTS, ids=lambda fault: fault.name)
async def test_elicited_delete_sent_once(
    fault: Fault,
    server_settings: Settings,
    sandbox: SandboxServer,
    retry_waits: list[float],
) -> None:
    async def accept(
        context: Any, params: types.ElicitRequestParams
    ) -> types.ElicitResult:
        return types.ElicitResult(action="accept", content={"confirm": True})

    settings = with_settings(server_settings, timeout=TIMEOUT)
    async with connect(settings, mode="legacy", elicitation_callback=accept) as session:
        delete_id, _ = await add_cluster(session)
        _, delete_name = await add_cluster(session)
        calls = [
            ("user_cluster_delete", {"projectId": 102, "clusterId": delete_id}),
            (
                "delete_user_cluster_by_name",
                {"projectId": 102, "clusterName": delete_name},
            ),
        ]
        endpoint = "user-cluster-delete"
        for tool, arguments in calls:
            add_fault(sandbox, fault, endpoint, None)
            before = sandbox.stats[endpoint]
            result = await session.call_tool(tool, arguments)
            sandbox.faults.clear()
            assert error_kind(result) == fault.write_kind, f"{tool}: {text(result)}"
            assert sandbox.stats[endpoint] == before + 1, tool
