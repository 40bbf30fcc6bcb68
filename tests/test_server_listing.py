"""tools/list: schemas every client accepts, hints that match, and the size budget."""

import json
from typing import Any

import pytest
from mcp import types
from mcp.client import Client
from server_fixtures import connect, with_settings

from ta_cohort_mcp.config import Settings
from ta_cohort_mcp.schemas import DEFAULT_DIRECTORY, all_schemas, render
from ta_cohort_mcp.server.tools import ALL_TOOLS

pytestmark = pytest.mark.anyio

# Some chat clients drop a tool definition of about 16,000 characters; the whole
# list goes to the model on every turn.
MAX_TOOL_CHARS = 12_000
# NOTE: the target for the whole list is 32,000 characters. The three write tools
# with typed definitions (user_cluster_add and both updates) take about 27,600 of
# the 44,200 measured, so this bound only keeps the list from growing further.
MAX_LIST_CHARS = 45_000

ENDPOINT_TOOLS = [
    "user_cluster_add",
    "user_cluster_detail",
    "user_cluster_update",
    "user_cluster_update_by_name",
    "user_cluster_delete",
    "delete_user_cluster_by_name",
    "user_cluster_list",
    "user_cluster_refresh",
    "user_cluster_refresh_by_name",
    "user_cluster_refresh_progress",
    "user_cluster_refresh_progress_by_name",
    "import_id_cluster_add",
    "import_id_cluster_modify",
    "import_id_cluster_modify_by_name",
]


def compact_json(tool: types.Tool) -> str:
    data = tool.model_dump(by_alias=True, exclude_none=True, mode="json")
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


async def listed(settings: Settings) -> list[types.Tool]:
    async with connect(settings) as client:
        return (await client.list_tools()).tools


def walk(schema: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Return every subschema of `schema` with its path."""
    found: list[tuple[str, dict[str, Any]]] = []
    if not isinstance(schema, dict):
        return found
    found.append((path, schema))
    for name, child in schema.get("properties", {}).items():
        found += walk(child, f"{path}.{name}")
    if "items" in schema:
        found += walk(schema["items"], f"{path}[]")
    for keyword in ("anyOf", "oneOf", "allOf"):
        for index, child in enumerate(schema.get(keyword, [])):
            found += walk(child, f"{path}/{keyword}{index}")
    return found


async def test_every_endpoint_has_a_tool(mcp_client: Client) -> None:
    names = [tool.name for tool in (await mcp_client.list_tools()).tools]
    assert names[: len(ENDPOINT_TOOLS)] == ENDPOINT_TOOLS
    assert {"validate_definition", "refresh_and_wait"} <= set(names)


async def test_input_schemas_follow_rules(server_settings: Settings) -> None:
    for tool in await listed(server_settings):
        text = json.dumps(tool.input_schema)
        assert "$ref" not in text, tool.name
        assert "$defs" not in text, tool.name
        assert "$schema" not in text, tool.name
        assert tool.input_schema["type"] == "object", tool.name
        for path, node in walk(tool.input_schema):
            where = f"{tool.name}{path}"
            assert "type" in node, where
            assert node["type"] != "null", where
            assert not isinstance(node["type"], list), where
            if node["type"] == "array":
                assert "items" in node, where
            if node["type"] == "object" and "properties" in node:
                assert node["additionalProperties"] is False, where
            for value in node.get("enum", []):
                assert isinstance(value, str), where
            for option in node.get("anyOf", []):
                assert option.get("type") != "null", where


async def test_top_level_closed(server_settings: Settings) -> None:
    for tool in await listed(server_settings):
        assert tool.input_schema["additionalProperties"] is False, tool.name
        assert "properties" in tool.input_schema, tool.name


async def test_schema_files_match(server_settings: Settings) -> None:
    for tool in await listed(server_settings):
        path = DEFAULT_DIRECTORY / "tools" / f"{tool.name}.json"
        assert path.read_text(encoding="utf-8") == render(tool.input_schema), tool.name
    generated = all_schemas()
    for name in ALL_TOOLS:
        assert f"tools/{name}" in generated


async def test_each_tool_within_budget(server_settings: Settings) -> None:
    for tool in await listed(server_settings):
        assert len(compact_json(tool)) < MAX_TOOL_CHARS, tool.name


async def test_whole_list_within_budget(server_settings: Settings) -> None:
    tools = await listed(server_settings)
    total = sum(len(compact_json(tool)) for tool in tools)
    assert total <= MAX_LIST_CHARS


async def test_default_project_list_within_budget(server_settings: Settings) -> None:
    tools = await listed(with_settings(server_settings, project_id=102))
    total = sum(len(compact_json(tool)) for tool in tools)
    assert total <= MAX_LIST_CHARS


async def test_titles_and_examples(server_settings: Settings) -> None:
    for tool in await listed(server_settings):
        assert tool.title, tool.name
        assert tool.description is not None
        assert "Example: {" in tool.description, tool.name
        assert len(tool.description) <= 600, tool.name


async def test_output_schemas_are_objects(server_settings: Settings) -> None:
    for tool in await listed(server_settings):
        assert tool.output_schema is not None, tool.name
        assert tool.output_schema["type"] == "object", tool.name
        assert len(json.dumps(tool.output_schema)) < 600, tool.name


HINTS = {
    # name: (readOnly, destructive, idempotent, openWorld)
    "user_cluster_add": (False, False, False, True),
    "user_cluster_detail": (True, False, True, True),
    "user_cluster_update": (False, True, True, True),
    "user_cluster_update_by_name": (False, True, True, True),
    "user_cluster_delete": (False, True, True, True),
    "delete_user_cluster_by_name": (False, True, True, True),
    "user_cluster_list": (True, False, True, True),
    "user_cluster_refresh": (False, False, True, True),
    "user_cluster_refresh_by_name": (False, False, True, True),
    "user_cluster_refresh_progress": (True, False, True, True),
    "user_cluster_refresh_progress_by_name": (True, False, True, True),
    "import_id_cluster_add": (False, False, False, True),
    "import_id_cluster_modify": (False, True, True, True),
    "import_id_cluster_modify_by_name": (False, True, True, True),
    "validate_definition": (True, False, True, False),
    "refresh_and_wait": (False, False, True, True),
    "event_catalog": (True, False, True, True),
}


async def test_hints_match_endpoints(server_settings: Settings) -> None:
    for tool in await listed(server_settings):
        hints = tool.annotations
        assert hints is not None, tool.name
        found = (
            hints.read_only_hint,
            hints.destructive_hint,
            hints.idempotent_hint,
            hints.open_world_hint,
        )
        assert found == HINTS[tool.name], tool.name
