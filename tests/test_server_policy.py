"""Read-only mode, the tool and project allowlists, and the default project."""

import pytest
from server_fixtures import call, connect, error_kind, structured, text, with_settings

from ta_cohort_mcp.config import Settings, SettingsError
from ta_cohort_mcp.sandbox import SandboxServer
from ta_cohort_mcp.server.app import build_server, enabled_tool_names
from ta_cohort_mcp.server.tools import ALL_TOOLS, WRITE_TOOLS

pytestmark = pytest.mark.anyio

READ_TOOLS = {
    "user_cluster_detail",
    "user_cluster_list",
    "user_cluster_refresh_progress",
    "user_cluster_refresh_progress_by_name",
    "validate_definition",
    "event_catalog",
}


def test_write_tools_are_the_changing_ones() -> None:
    assert set(ALL_TOOLS) - WRITE_TOOLS == READ_TOOLS


async def test_read_only_lists_no_writes(server_settings: Settings) -> None:
    settings = with_settings(server_settings, read_only=True)
    async with connect(settings) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
    assert names == READ_TOOLS


async def test_read_only_beats_allowlist(
    server_settings: Settings, sandbox: SandboxServer
) -> None:
    settings = with_settings(
        server_settings,
        read_only=True,
        tools=frozenset({"user_cluster_delete", "user_cluster_detail"}),
    )
    before = sandbox.stats.total
    async with connect(settings) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        result = await call(
            client, "user_cluster_delete", {"projectId": 102, "clusterId": 1}
        )
    assert names == {"user_cluster_detail"}
    assert error_kind(result) == "tool_not_offered"
    assert "read-only" in text(result)
    assert sandbox.stats.total == before


async def test_allowlist_limits_calls(
    server_settings: Settings, sandbox: SandboxServer
) -> None:
    settings = with_settings(server_settings, tools=frozenset({"user_cluster_list"}))
    before = sandbox.stats.total
    async with connect(settings, mode="legacy") as client:
        names = [tool.name for tool in (await client.list_tools()).tools]
        result = await call(client, "user_cluster_add", {"projectId": 102})
    assert names == ["user_cluster_list"]
    assert error_kind(result) == "tool_not_offered"
    assert "TA_TOOLS" in text(result)
    assert sandbox.stats.total == before


def test_allowlist_unknown_name(server_settings: Settings) -> None:
    settings = with_settings(server_settings, tools=frozenset({"user_cluster_lst"}))
    with pytest.raises(SettingsError, match="did you mean user_cluster_list"):
        enabled_tool_names(settings)


async def test_unknown_tool_is_error(server_settings: Settings) -> None:
    async with connect(server_settings) as client:
        result = await call(client, "user_cluster_detial", {})
    assert error_kind(result) == "tool_not_offered"
    assert "did you mean 'user_cluster_detail'" in text(result)


async def test_project_allowlist_rejects(
    server_settings: Settings, sandbox: SandboxServer
) -> None:
    settings = with_settings(server_settings, projects=frozenset({2}))
    before = sandbox.stats.total
    async with connect(settings) as client:
        result = await call(
            client, "user_cluster_detail", {"projectId": 102, "clusterId": 1}
        )
        body = {
            "projectId": "102",
            "clusterName": "not_allowed",
            "displayName": "x",
            "qp": {
                "filts": [
                    {
                        "columnName": "user_level",
                        "comparator": "equal",
                        "ftv": ["3"],
                        "tableType": "user",
                    }
                ]
            },
        }
        repaired = await call(client, "user_cluster_add", body)
    assert error_kind(result) == "project_not_allowed"
    assert error_kind(repaired) == "project_not_allowed"
    assert "102" in text(result)
    assert sandbox.stats.total == before


async def test_project_allowlist_allows(server_settings: Settings) -> None:
    settings = with_settings(server_settings, projects=frozenset({102}))
    async with connect(settings) as client:
        result = await call(client, "user_cluster_list", {"projectId": 102})
    assert not result.is_error, text(result)


async def test_default_project_fills_in(server_settings: Settings) -> None:
    settings = with_settings(server_settings, project_id=102)
    async with connect(settings) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        result = await call(client, "user_cluster_list", {})
    schema = tools["user_cluster_list"].input_schema
    assert "projectId" not in schema.get("required", [])
    assert "Default 102" in schema["properties"]["projectId"]["description"]
    assert not result.is_error, text(result)
    assert "project 102" in text(result)


async def test_missing_project_names_setting(
    server_settings: Settings, sandbox: SandboxServer
) -> None:
    before = sandbox.stats.total
    async with connect(server_settings) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        result = await call(client, "user_cluster_list", {})
    assert "projectId" in tools["user_cluster_list"].input_schema["required"]
    assert error_kind(result) == "invalid_arguments"
    assert "projectId" in text(result)
    assert "TA_PROJECT_ID" in text(result)
    assert structured(result)["error"]["problems"][0]["path"] == ""
    assert sandbox.stats.total == before


def test_missing_base_url_fails_at_start() -> None:
    with pytest.raises(SettingsError, match="TA_BASE_URL"):
        build_server(Settings())
