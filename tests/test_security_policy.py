"""Read-only mode, the tool allowlist and the project allowlist hold for every call.

The server enforces the policies whatever the caller sends. The tests send
tools that are not listed and names in another case or with spaces. They send
projectId as digits in a string, which the validator repairs into a number,
and definitions as JSON text. They also read resources and completions of
other projects. Each rejected call must leave the sandbox's request counter
unchanged.
"""

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from mcp import types
from mcp.client import Client
from mcp.shared.exceptions import MCPError
from server_fixtures import connect, error_kind, text, with_settings
from test_reliability_faults import CASES, QP

from ta_cohort_mcp.config import Settings, SettingsError, load_settings
from ta_cohort_mcp.sandbox import SandboxServer
from ta_cohort_mcp.server.tools import ALL_TOOLS, WRITE_TOOLS

pytestmark = pytest.mark.anyio

ALLOWED_PROJECT = 2
OTHER_PROJECT = 102


class _Targets:
    """Cluster references for calls that are rejected before they are sent."""

    cluster_id = 1
    cluster_name = "c1"
    import_id = 2
    import_name = "i2"
    delete_id = 3
    delete_id_token = "not-a-token"
    delete_name = "d3"
    delete_name_token = "not-a-token"


TARGETS: Any = _Targets()


def base_arguments() -> dict[str, dict[str, Any]]:
    """Return valid arguments of every tool, for project OTHER_PROJECT."""
    arguments = {case.tool: case.arguments(TARGETS) for case in CASES}
    arguments["refresh_and_wait"] = {"projectId": OTHER_PROJECT, "clusterId": 1}
    arguments["validate_definition"] = {"qp": QP}
    arguments["event_catalog"] = {"projectId": OTHER_PROJECT}
    return {name: arguments[name] for name in ALL_TOOLS}


def name_variants(name: str) -> list[str]:
    return [name, name.upper(), f" {name}", f"{name}\n", name.replace("_", "-")]


def project_variants() -> list[tuple[str, Any]]:
    """Return (label, projectId) forms of OTHER_PROJECT that a caller may send."""
    return [
        ("integer", OTHER_PROJECT),
        ("digit text", str(OTHER_PROJECT)),
        ("signed text", f"+{OTHER_PROJECT}"),
        ("zero padded", f"00{OTHER_PROJECT}"),
    ]


def json_text_variant(arguments: dict[str, Any]) -> dict[str, Any] | None:
    """Return `arguments` with the definition sent as JSON text, if it has one."""
    if "qp" not in arguments:
        return None
    return {**arguments, "qp": json.dumps(arguments["qp"])}


@pytest.fixture
async def read_only_client(server_settings: Settings) -> AsyncIterator[Client]:
    settings = with_settings(server_settings, read_only=True)
    async with connect(settings, mode="legacy") as client:
        yield client


async def rejected_unsent(
    client: Client,
    sandbox: SandboxServer,
    name: str,
    arguments: dict[str, Any],
    kinds: set[str],
) -> types.CallToolResult:
    before = sandbox.stats.total
    result = await client.call_tool(name, arguments)
    assert result.is_error, f"{name} {arguments}: {text(result)}"
    assert error_kind(result) in kinds, f"{name} {arguments}: {text(result)}"
    assert sandbox.stats.total == before, f"{name} {arguments} reached the sandbox"
    return result


async def test_read_only_rejects_every_write(
    read_only_client: Client, sandbox: SandboxServer
) -> None:
    arguments = base_arguments()
    listed = {tool.name for tool in (await read_only_client.list_tools()).tools}
    assert listed.isdisjoint(WRITE_TOOLS)
    for name in sorted(WRITE_TOOLS):
        for spelled in name_variants(name):
            await rejected_unsent(
                read_only_client,
                sandbox,
                spelled,
                arguments[name],
                {"tool_not_offered"},
            )


async def test_read_only_rejects_odd_arguments(
    read_only_client: Client, sandbox: SandboxServer
) -> None:
    odd: list[dict[str, Any]] = [{}, {"projectId": "102"}, {"confirm": "x"}]
    for name in sorted(WRITE_TOOLS):
        for arguments in odd:
            await rejected_unsent(
                read_only_client, sandbox, name, arguments, {"tool_not_offered"}
            )


async def test_read_only_beats_allowlist_for_all(
    server_settings: Settings, sandbox: SandboxServer
) -> None:
    settings = with_settings(
        server_settings, read_only=True, tools=frozenset(ALL_TOOLS)
    )
    arguments = base_arguments()
    async with connect(settings) as client:
        for name in sorted(WRITE_TOOLS):
            result = await rejected_unsent(
                client, sandbox, name, arguments[name], {"tool_not_offered"}
            )
            assert "read-only" in text(result)


async def test_read_only_keeps_reads(read_only_client: Client) -> None:
    result = await read_only_client.call_tool(
        "user_cluster_list", {"projectId": OTHER_PROJECT}
    )
    assert not result.is_error, text(result)


@pytest.mark.parametrize("allowed", sorted(ALL_TOOLS))
async def test_tool_allowlist_rejects_others(
    allowed: str, server_settings: Settings, sandbox: SandboxServer
) -> None:
    settings = with_settings(server_settings, tools=frozenset({allowed}))
    arguments = base_arguments()
    async with connect(settings) as client:
        listed = [tool.name for tool in (await client.list_tools()).tools]
        assert listed == [allowed]
        for name in sorted(set(ALL_TOOLS) - {allowed}):
            for spelled in name_variants(name):
                await rejected_unsent(
                    client, sandbox, spelled, arguments[name], {"tool_not_offered"}
                )


@pytest.fixture
async def project_client(server_settings: Settings) -> AsyncIterator[Client]:
    settings = with_settings(server_settings, projects=frozenset({ALLOWED_PROJECT}))
    async with connect(settings, mode="legacy") as client:
        yield client


async def test_project_allowlist_every_tool(
    project_client: Client, sandbox: SandboxServer
) -> None:
    for name, arguments in base_arguments().items():
        if "projectId" not in arguments:
            continue
        for label, project in project_variants():
            changed = {**arguments, "projectId": project}
            result = await rejected_unsent(
                project_client, sandbox, name, changed, {"project_not_allowed"}
            )
            assert str(OTHER_PROJECT) in text(result), label


async def test_project_allowlist_json_text(
    project_client: Client, sandbox: SandboxServer
) -> None:
    for name, arguments in base_arguments().items():
        changed = json_text_variant(arguments)
        if changed is None or "projectId" not in changed:
            continue
        await rejected_unsent(
            project_client, sandbox, name, changed, {"project_not_allowed"}
        )


async def test_project_allowlist_bad_forms(
    project_client: Client, sandbox: SandboxServer
) -> None:
    forms: list[Any] = [102.5, True, None, [102], {"id": 102}, "102abc", "1e2", ""]
    for name, arguments in base_arguments().items():
        if "projectId" not in arguments:
            continue
        for form in forms:
            changed = {**arguments, "projectId": form}
            await rejected_unsent(
                project_client, sandbox, name, changed, {"invalid_arguments"}
            )


async def test_project_allowlist_missing_project(
    project_client: Client, sandbox: SandboxServer
) -> None:
    for name, arguments in base_arguments().items():
        if "projectId" not in arguments:
            continue
        changed = {key: value for key, value in arguments.items() if key != "projectId"}
        await rejected_unsent(
            project_client, sandbox, name, changed, {"invalid_arguments"}
        )


async def test_validate_body_other_project(
    project_client: Client, sandbox: SandboxServer
) -> None:
    body = {
        "projectId": OTHER_PROJECT,
        "clusterName": "other_project",
        "displayName": "other project",
        "qp": QP,
    }
    before = sandbox.stats.total
    result = await project_client.call_tool("validate_definition", {"body": body})
    assert sandbox.stats.total == before
    assert error_kind(result) == "project_not_allowed", text(result)


def test_default_project_must_be_allowed() -> None:
    environ = {"TA_PROJECT_ID": str(OTHER_PROJECT), "TA_PROJECTS": "2"}
    with pytest.raises(SettingsError, match="TA_PROJECTS"):
        load_settings(environ=environ)


@pytest.mark.parametrize(
    "uri",
    [
        f"ta://projects/{OTHER_PROJECT}/clusters",
        f"ta://projects/{OTHER_PROJECT}/clusters/c1",
        f"ta://projects/{OTHER_PROJECT}/catalog",
        f"ta://projects/00{OTHER_PROJECT}/clusters",
        f"ta://projects/+{OTHER_PROJECT}/clusters",
    ],
)
async def test_project_allowlist_resources(
    uri: str, project_client: Client, sandbox: SandboxServer
) -> None:
    before = sandbox.stats.total
    with pytest.raises(MCPError):
        await project_client.read_resource(uri)
    assert sandbox.stats.total == before


async def test_resource_list_only_allowed(project_client: Client) -> None:
    listed = await project_client.list_resources()
    for resource in listed.resources:
        uri = str(resource.uri)
        assert f"/projects/{OTHER_PROJECT}/" not in uri, uri


async def test_completion_other_project(
    project_client: Client, sandbox: SandboxServer
) -> None:
    before = sandbox.stats.total
    reference = types.ResourceTemplateReference(
        type="ref/resource", uri="ta://projects/{projectId}/clusters/{clusterName}"
    )
    try:
        completed = await project_client.complete(
            reference,
            {"name": "clusterName", "value": ""},
            context_arguments={"projectId": str(OTHER_PROJECT)},
        )
    except MCPError:
        completed = None
    if completed is not None:
        assert completed.completion.values == []
    assert sandbox.stats.total == before
