"""Resources, prompts, completions and catalog checks through a real MCP session.

The server runs in-process (`Client(server)`) against the shared sandbox over
loopback HTTP, in both protocol eras: "auto" (2026-07-28) and "legacy"
(2025-11-25).
"""

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from client_fixtures import FakeTA, Reply
from mcp import types
from mcp.client import Client
from mcp.shared.exceptions import MCPError
from pydantic import SecretStr
from sandbox_fixtures import PROJECT_2_TOKEN

from ta_cohort_mcp.config import Settings
from ta_cohort_mcp.sandbox import SandboxServer
from ta_cohort_mcp.schemas import load_schema
from ta_cohort_mcp.server.app import build_server
from ta_cohort_mcp.server.prompts import load_prompts
from ta_cohort_mcp.server.resources import listed_projects

pytestmark = pytest.mark.anyio

MODES = ["auto", "legacy"]
STATIC_URIS = {"ta://schemas/qp", "ta://schemas/tagQp", "ta://reference/definitions"}
TEMPLATES = {
    "ta://projects/{projectId}/clusters",
    "ta://projects/{projectId}/clusters/{clusterName}",
    "ta://projects/{projectId}/catalog",
}

# The qp of the reference's add example, which the sandbox's catalog fits.
REFERENCE_QP: dict[str, Any] = {
    "events": [
        {
            "comparator": "greater",
            "eventName": "consume_item",
            "num": "4",
            "recentDay": "1-7",
            "taPropQuota": {"analysis": "TIMES"},
        }
    ],
    "event_relation": "and",
    "filts": [
        {
            "columnName": "user_level",
            "comparator": "equal",
            "ftv": ["3"],
            "tableType": "user",
        }
    ],
    "relation": "and",
    "event_user_relation": "and",
}


def sandbox_settings(sandbox: SandboxServer, **changes: Any) -> Settings:
    values: dict[str, Any] = {
        "base_url": sandbox.base_url,
        "token": SecretStr(sandbox.token),
        "project_id": 102,
        "projects": frozenset({102, 2}),
    }
    values.update(changes)
    return Settings(**values)


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def client(sandbox: SandboxServer, mode: str) -> AsyncIterator[Client]:
    """A session in each protocol era, for the main behaviours."""
    server = build_server(sandbox_settings(sandbox))
    async with Client(server, mode=mode) as session:  # type: ignore[arg-type]
        yield session


@pytest.fixture
async def auto_client(sandbox: SandboxServer) -> AsyncIterator[Client]:
    """A session in the default era only, for error paths and variants."""
    async with Client(build_server(sandbox_settings(sandbox))) as session:
        yield session


def add_arguments(name: str, qp: dict[str, Any]) -> dict[str, Any]:
    return {
        "projectId": 102,
        "clusterName": name,
        "displayName": name,
        "clusterType": "cluster_by_static_condition",
        "qp": qp,
    }


def with_event(name: str) -> dict[str, Any]:
    qp = json.loads(json.dumps(REFERENCE_QP))
    qp["events"][0]["eventName"] = name
    return qp


def with_user_filter(
    column: str, comparator: str, ftv: list[str] | None
) -> dict[str, Any]:
    qp = json.loads(json.dumps(REFERENCE_QP))
    item: dict[str, Any] = {
        "columnName": column,
        "comparator": comparator,
        "tableType": "user",
    }
    if ftv is not None:
        item["ftv"] = ftv
    qp["filts"] = [item]
    return qp


def problems_of(result: types.CallToolResult) -> list[dict[str, Any]]:
    structured = result.structured_content or {}
    if "problems" in structured:
        return list(structured["problems"])
    return list(structured.get("error", {}).get("problems", []))


def text_of(result: types.ReadResourceResult) -> str:
    content = result.contents[0]
    assert isinstance(content, types.TextResourceContents)
    return content.text


# Resources


async def test_list_static_and_project_resources(client: Client) -> None:
    listed = await client.list_resources()
    uris = {resource.uri for resource in listed.resources}
    assert uris >= STATIC_URIS
    assert "ta://projects/102/clusters" in uris
    assert "ta://projects/102/catalog" in uris


@pytest.mark.parametrize(
    ("default", "allowed", "expected"),
    [
        (102, {2, 102, 5}, [102, 2, 5]),
        (None, {7, 3}, [3, 7]),
        (9, None, [9]),
        (None, None, []),
        (9, {1}, [1]),
    ],
)
def test_listed_projects_default_first(
    default: int | None, allowed: set[int] | None, expected: list[int]
) -> None:
    projects = frozenset(allowed) if allowed is not None else None
    assert listed_projects(Settings(project_id=default, projects=projects)) == expected


async def test_list_templates(client: Client) -> None:
    listed = await client.list_resource_templates()
    assert {
        template.uri_template for template in listed.resource_templates
    } == TEMPLATES


@pytest.mark.parametrize("stem", ["qp", "tagQp"])
async def test_read_schema(client: Client, stem: str) -> None:
    result = await client.read_resource(f"ta://schemas/{stem}")
    assert result.contents[0].mime_type == "application/json"
    assert json.loads(text_of(result)) == load_schema(stem)


async def test_read_reference_definitions(client: Client) -> None:
    result = await client.read_resource("ta://reference/definitions")
    text = text_of(result)
    assert result.contents[0].mime_type == "text/markdown"
    assert "recentDay" in text
    assert "regexMatch" in text
    assert "DISTINCT" in text
    assert len(text) < 4000


async def test_read_cluster_detail(client: Client, cluster_name: str) -> None:
    added = await client.call_tool(
        "user_cluster_add", add_arguments(cluster_name, REFERENCE_QP)
    )
    assert not added.is_error, added.content
    result = await client.read_resource(f"ta://projects/102/clusters/{cluster_name}")
    detail = json.loads(text_of(result))
    assert detail["clusterName"] == cluster_name
    assert detail["userClusterDef"]["events"][0]["eventName"] == "consume_item"
    assert "progress" in detail
    assert "usersNum" in detail


async def test_list_includes_new_cluster(
    auto_client: Client, cluster_name: str
) -> None:
    added = await auto_client.call_tool(
        "user_cluster_add", add_arguments(cluster_name, REFERENCE_QP)
    )
    assert not added.is_error, added.content
    uris: set[str] = set()
    cursor = None
    while True:
        page = await auto_client.list_resources(cursor=cursor)
        uris.update(resource.uri for resource in page.resources)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert f"ta://projects/102/clusters/{cluster_name}" in uris
    assert "ta://projects/2/clusters" in uris


async def test_read_project_clusters(auto_client: Client, cluster_name: str) -> None:
    added = await auto_client.call_tool(
        "user_cluster_add", add_arguments(cluster_name, REFERENCE_QP)
    )
    assert not added.is_error, added.content
    data = json.loads(
        text_of(await auto_client.read_resource("ta://projects/102/clusters"))
    )
    names = {item["clusterName"] for item in data["clusters"]["items"]}
    assert data["projectId"] == 102
    assert cluster_name in names
    assert data["clusters"]["totalNum"] >= 1
    assert "totalNum" in data["tags"]


async def test_read_project_catalog(client: Client) -> None:
    data = json.loads(text_of(await client.read_resource("ta://projects/102/catalog")))
    events = {event["name"] for event in data["events"]}
    assert data["projectId"] == 102
    assert "consume_item" in events
    assert {"name": "user_level", "type": "number"} in data["userProperties"]


@pytest.mark.parametrize(
    ("uri", "fragment"),
    [
        ("ta://projects/5/clusters", "not in the project allowlist"),
        ("ta://projects/abc/clusters", "invalid projectId"),
        ("ta://projects/102/clusters/no_such_cluster_x", "no_such_cluster_x"),
        ("ta://projects/102/clusters/bad-name!", "invalid clusterName"),
        ("ta://projects/102/unknown", "unknown resource"),
        ("ta://other", "unknown resource"),
    ],
)
async def test_read_invalid_uri(auto_client: Client, uri: str, fragment: str) -> None:
    with pytest.raises(MCPError) as caught:
        await auto_client.read_resource(uri)
    assert caught.value.code == types.INVALID_PARAMS
    assert fragment in caught.value.message


async def test_list_invalid_cursor(auto_client: Client) -> None:
    with pytest.raises(MCPError) as caught:
        await auto_client.list_resources(cursor="not-a-cursor")
    assert caught.value.code == types.INVALID_PARAMS
    assert "invalid cursor" in caught.value.message


# Prompts


async def test_list_prompts_with_arguments(client: Client) -> None:
    listed = await client.list_prompts()
    specs = load_prompts()
    assert {prompt.name for prompt in listed.prompts} == set(specs)
    for prompt in listed.prompts:
        names = [argument.name for argument in prompt.arguments or []]
        assert names == specs[prompt.name].argument_names(), prompt.name
        assert prompt.description


async def test_project_argument_optional_with_default(auto_client: Client) -> None:
    listed = await auto_client.list_prompts()
    for prompt in listed.prompts:
        project = next(a for a in prompt.arguments or [] if a.name == "projectId")
        assert project.required is False, prompt.name


@pytest.mark.parametrize(
    ("name", "arguments", "expected"),
    [
        ("build_cohort", {"description": "payers"}, "payers"),
        ("build_tag", {"projectId": "2", "description": "tiers"}, "project 2"),
        (
            "refresh_and_report",
            {"clusterName": "abc"},
            "ta://projects/102/clusters/abc",
        ),
        ("review_cohorts", {"staleDays": "30"}, "30 days"),
        ("import_ids", {"path": "/tmp/ids.csv"}, "#account_id"),
    ],
)
async def test_get_prompt(
    client: Client, name: str, arguments: dict[str, str], expected: str
) -> None:
    result = await client.get_prompt(name, arguments)
    embed = load_prompts()[name].embed
    assert len(result.messages) == 1 + len(embed)
    message = result.messages[0]
    assert message.role == "user"
    assert isinstance(message.content, types.TextContent)
    assert expected in message.content.text
    assert "{{" not in message.content.text
    for uri, attached in zip(embed, result.messages[1:], strict=True):
        assert attached.role == "user"
        assert isinstance(attached.content, types.EmbeddedResource)
        assert attached.content.resource.uri == uri


async def test_cohort_prompt_embeds_reference(client: Client) -> None:
    result = await client.get_prompt("build_cohort", {"description": "payers"})
    attached = result.messages[1].content
    assert isinstance(attached, types.EmbeddedResource)
    assert isinstance(attached.resource, types.TextResourceContents)
    assert attached.resource.mime_type == "text/markdown"
    assert "recentDay" in attached.resource.text


async def test_get_prompt_missing_argument(auto_client: Client) -> None:
    with pytest.raises(MCPError) as caught:
        await auto_client.get_prompt("refresh_and_report", {})
    assert caught.value.code == types.INVALID_PARAMS
    assert "clusterName" in caught.value.message


# Completions


async def test_complete_project_id(client: Client) -> None:
    ref = types.ResourceTemplateReference(uri="ta://projects/{projectId}/catalog")
    result = await client.complete(ref, {"name": "projectId", "value": "10"})
    assert result.completion.values == ["102"]
    assert result.completion.has_more is False


async def test_complete_cluster_name(client: Client, cluster_name: str) -> None:
    added = await client.call_tool(
        "user_cluster_add", add_arguments(cluster_name, REFERENCE_QP)
    )
    assert not added.is_error, added.content
    ref = types.PromptReference(name="refresh_and_report")
    prefix = cluster_name[:-2].upper()
    result = await client.complete(
        ref,
        {"name": "clusterName", "value": prefix},
        context_arguments={"projectId": "102"},
    )
    assert cluster_name in result.completion.values
    assert all(
        value.lower().startswith(prefix.lower()) for value in result.completion.values
    )


async def test_complete_cluster_name_template(
    auto_client: Client, cluster_name: str
) -> None:
    added = await auto_client.call_tool(
        "user_cluster_add", add_arguments(cluster_name, REFERENCE_QP)
    )
    assert not added.is_error, added.content
    ref = types.ResourceTemplateReference(
        uri="ta://projects/{projectId}/clusters/{clusterName}"
    )
    result = await auto_client.complete(
        ref, {"name": "clusterName", "value": cluster_name}
    )
    assert result.completion.values == [cluster_name]


async def test_complete_event_name(client: Client) -> None:
    ref = types.PromptReference(name="build_cohort")
    result = await client.complete(ref, {"name": "eventName", "value": "CON"})
    assert result.completion.values == ["consume_item"]
    assert result.completion.total == 1


async def test_complete_column_name(client: Client) -> None:
    ref = types.PromptReference(name="import_ids")
    result = await client.complete(ref, {"name": "columnName", "value": "#acc"})
    assert result.completion.values == ["#account_id"]


async def test_complete_column_name_of_event(auto_client: Client) -> None:
    ref = types.PromptReference(name="import_ids")
    result = await auto_client.complete(
        ref,
        {"name": "columnName", "value": "pay_"},
        context_arguments={"eventName": "pay"},
    )
    assert result.completion.values == ["pay_amount"]


async def test_complete_unknown_argument_empty(auto_client: Client) -> None:
    ref = types.PromptReference(name="build_cohort")
    result = await auto_client.complete(ref, {"name": "nothing", "value": ""})
    assert result.completion.values == []


# Catalog checks of definitions


async def test_add_misspelt_event_rejected(client: Client, cluster_name: str) -> None:
    result = await client.call_tool(
        "user_cluster_add", add_arguments(cluster_name, with_event("consume_iten"))
    )
    assert result.is_error
    problems = problems_of(result)
    assert problems[0]["path"] == "qp.events[0].eventName"
    assert problems[0]["closest"] == "consume_item"


async def test_add_comparator_not_fitting_rejected(
    client: Client, cluster_name: str
) -> None:
    result = await client.call_tool(
        "user_cluster_add",
        add_arguments(cluster_name, with_user_filter("user_level", "include", ["3"])),
    )
    assert result.is_error
    problems = problems_of(result)
    assert problems[0]["path"] == "qp.filts[0].comparator"
    assert "include" not in problems[0]["allowed"]


async def test_add_rejected_sends_nothing(
    sandbox: SandboxServer, auto_client: Client, cluster_name: str
) -> None:
    await auto_client.call_tool(
        "user_cluster_add", add_arguments(cluster_name, with_event("consume_iten"))
    )
    assert sandbox.store.get_by_name(102, cluster_name) is None


@pytest.mark.parametrize(
    ("column", "comparator", "ftv"),
    [("channel", "isTrue", None), ("vip", "greater", ["1"])],
)
async def test_validate_comparator_not_fitting(
    client: Client, column: str, comparator: str, ftv: list[str] | None
) -> None:
    result = await client.call_tool(
        "validate_definition", {"qp": with_user_filter(column, comparator, ftv)}
    )
    problems = problems_of(result)
    assert len(problems) == 1
    assert problems[0]["path"] == "qp.filts[0].comparator"


async def test_validate_misspelt_event(client: Client) -> None:
    result = await client.call_tool(
        "validate_definition", {"qp": with_event("consume_iten")}
    )
    problems = problems_of(result)
    assert problems[0]["path"] == "qp.events[0].eventName"
    assert problems[0]["closest"] == "consume_item"


async def test_validate_reference_example_valid(auto_client: Client) -> None:
    result = await auto_client.call_tool("validate_definition", {"qp": REFERENCE_QP})
    assert problems_of(result) == []
    assert not result.is_error


# Catalog sources


async def test_catalog_file_overrides_sandbox(
    sandbox: SandboxServer, tmp_path: Path, mode: str
) -> None:
    path = tmp_path / "catalog.json"
    catalog = {
        "events": [{"name": "consume_iten"}],
        "userProperties": [{"name": "user_level", "type": "number"}],
    }
    path.write_text(json.dumps(catalog), encoding="utf-8")
    server = build_server(sandbox_settings(sandbox, catalog_file=path))
    async with Client(server, mode=mode) as session:  # type: ignore[arg-type]
        data = json.loads(
            text_of(await session.read_resource("ta://projects/102/catalog"))
        )
        misspelt = await session.call_tool(
            "validate_definition", {"qp": with_event("consume_iten")}
        )
        reference = await session.call_tool("validate_definition", {"qp": REFERENCE_QP})
    assert [event["name"] for event in data["events"]] == ["consume_iten"]
    assert problems_of(misspelt) == []
    assert problems_of(reference)[0]["closest"] == "consume_iten"


async def test_invalid_catalog_file_fails_at_build(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    path = tmp_path / "catalog.json"
    path.write_text('{"events": [{"nme": "x"}]}', encoding="utf-8")
    with pytest.raises(ValueError, match="nme"):
        build_server(sandbox_settings(sandbox, catalog_file=path))


@pytest.mark.parametrize("reply", [Reply(status=404, body="not found"), None])
async def test_no_catalog_when_ta_lacks_endpoint(
    fake_ta: FakeTA, mode: str, reply: Reply | None
) -> None:
    if reply is not None:
        fake_ta.program("/_sandbox/catalog", reply)
    settings = Settings(
        base_url=fake_ta.base_url, token=SecretStr("secret-token"), project_id=102
    )
    async with Client(build_server(settings), mode=mode) as session:  # type: ignore[arg-type]
        listed = await session.list_resources()
        result = await session.call_tool(
            "validate_definition", {"qp": with_event("consume_iten")}
        )
        with pytest.raises(MCPError) as caught:
            await session.read_resource("ta://projects/102/catalog")
    uris = {resource.uri for resource in listed.resources}
    assert "ta://projects/102/catalog" not in uris
    assert "ta://projects/102/clusters" in uris
    assert problems_of(result) == []
    assert caught.value.code == types.INVALID_PARAMS
    assert "no event catalog" in caught.value.message
    assert "secret-token" not in caught.value.message


# The event_catalog tool


async def test_event_catalog_tool_lists_catalog(client: Client) -> None:
    result = await client.call_tool("event_catalog", {})
    assert not result.is_error, result.content
    structured = result.structured_content or {}
    events = {event["name"] for event in structured["events"]}
    assert structured["projectId"] == 102
    assert "consume_item" in events
    text = result.content[0]
    assert isinstance(text, types.TextContent)
    assert "user_level (number)" in text.text


async def test_event_catalog_tool_one_event(auto_client: Client) -> None:
    result = await auto_client.call_tool(
        "event_catalog", {"projectId": 102, "eventName": "pay"}
    )
    structured = result.structured_content or {}
    names = [prop["name"] for prop in structured["eventProperties"]]
    assert [event["name"] for event in structured["events"]] == ["pay"]
    assert "pay_amount" in names
    assert "stage" not in names


async def test_event_catalog_tool_unknown_event(auto_client: Client) -> None:
    result = await auto_client.call_tool("event_catalog", {"eventName": "consume_iten"})
    assert result.is_error
    error = (result.structured_content or {})["error"]
    assert error["kind"] == "unknown_event"
    assert "did you mean 'consume_item'?" in error["message"]


async def test_event_catalog_tool_is_read_only(auto_client: Client) -> None:
    tools = {tool.name: tool for tool in (await auto_client.list_tools()).tools}
    annotations = tools["event_catalog"].annotations
    assert annotations is not None
    assert annotations.read_only_hint is True


async def test_event_catalog_tool_without_catalog(fake_ta: FakeTA) -> None:
    fake_ta.program("/_sandbox/catalog", Reply(status=404, body="not found"))
    settings = Settings(
        base_url=fake_ta.base_url, token=SecretStr("t0ken"), project_id=102
    )
    async with Client(build_server(settings)) as session:
        result = await session.call_tool("event_catalog", {})
    assert result.is_error
    assert (result.structured_content or {})["error"]["kind"] == "catalog_unavailable"


async def test_validate_body_misspelt_event(
    auto_client: Client, cluster_name: str
) -> None:
    body = add_arguments(cluster_name, with_event("consume_iten"))
    result = await auto_client.call_tool("validate_definition", {"body": body})
    problems = problems_of(result)
    assert problems[0]["path"] == "body.qp.events[0].eventName"
    assert problems[0]["closest"] == "consume_item"


async def test_update_comparator_not_fitting_rejected(
    auto_client: Client, cluster_name: str
) -> None:
    added = await auto_client.call_tool(
        "user_cluster_add", add_arguments(cluster_name, REFERENCE_QP)
    )
    assert not added.is_error, added.content
    arguments = add_arguments(cluster_name, with_user_filter("vip", "greater", ["1"]))
    result = await auto_client.call_tool("user_cluster_update_by_name", arguments)
    assert result.is_error
    problems = problems_of(result)
    assert problems[0]["path"] == "qp.filts[0].comparator"


async def test_add_tag_misspelt_event_rejected(
    auto_client: Client, cluster_name: str
) -> None:
    arguments = {
        "projectId": 102,
        "clusterName": cluster_name,
        "displayName": cluster_name,
        "clusterCatalog": "catalog_tag",
        "clusterType": "tag_by_static_condition",
        "subConditionTabType": "tag_condition_default",
        "tagQp": {
            "userTagValueDefs": [
                {"tagValue": "buyer", "userClusterDef": with_event("consume_iten")}
            ]
        },
    }
    result = await auto_client.call_tool("user_cluster_add", arguments)
    assert result.is_error
    problems = problems_of(result)
    path = "tagQp.userTagValueDefs[0].userClusterDef.events[0].eventName"
    assert problems[0]["path"] == path
    assert problems[0]["closest"] == "consume_item"


CANARY = "canary-token-5f3a9c"


@pytest.mark.parametrize(
    "reply",
    [
        Reply(status=500, body=f"error for {CANARY}"),
        Reply(body="not json"),
        Reply(body={"return_code": -1008, "return_message": "bad token"}),
        Reply(body={"return_code": 0, "data": {"events": [{"nme": "x"}]}}),
    ],
)
async def test_catalog_fetch_failure_logs_no_token(
    fake_ta: FakeTA, reply: Reply, caplog: pytest.LogCaptureFixture
) -> None:
    fake_ta.program("/_sandbox/catalog", reply)
    settings = Settings(
        base_url=fake_ta.base_url, token=SecretStr(CANARY), project_id=102
    )
    caplog.set_level("DEBUG")
    async with Client(build_server(settings)) as session:
        result = await session.call_tool("event_catalog", {})
    assert result.is_error
    assert fake_ta.count("/_sandbox/catalog") == 1
    assert "no event catalog for project 102" in caplog.text
    assert CANARY not in caplog.text
    assert CANARY not in str(result.content)


async def test_catalog_fetch_refused_logs_no_token(
    refused_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(base_url=refused_url, token=SecretStr(CANARY), project_id=102)
    caplog.set_level("DEBUG")
    async with Client(build_server(settings)) as session:
        result = await session.call_tool("event_catalog", {})
    assert result.is_error
    assert "ConnectError" in caplog.text
    assert CANARY not in caplog.text


async def test_list_skips_project_token_cannot_read(sandbox: SandboxServer) -> None:
    settings = sandbox_settings(sandbox, token=SecretStr(PROJECT_2_TOKEN), project_id=2)
    async with Client(build_server(settings)) as session:
        uris: list[str] = []
        cursor = None
        while True:
            page = await session.list_resources(cursor=cursor)
            uris.extend(resource.uri for resource in page.resources)
            cursor = page.next_cursor
            if cursor is None:
                break
    assert "ta://projects/2/clusters" in uris
    assert "ta://projects/102/clusters" in uris
    assert not [uri for uri in uris if uri.startswith("ta://projects/102/clusters/")]


async def test_list_ends_when_ta_unreachable(refused_url: str) -> None:
    settings = Settings(base_url=refused_url, token=SecretStr("t0ken"), project_id=102)
    async with Client(build_server(settings)) as session:
        page = await session.list_resources()
    uris = {resource.uri for resource in page.resources}
    assert uris >= STATIC_URIS
    assert "ta://projects/102/clusters" in uris
    assert page.next_cursor is None


HOSTILE = "canary-Q9 +/=&%?#ñ~tok"
HOSTILE_WIRE = str(httpx.QueryParams({"token": HOSTILE})).removeprefix("token=")
HOSTILE_FORMS = {
    HOSTILE.lower(),
    HOSTILE_WIRE.lower(),
    quote(HOSTILE, safe="").lower(),
}


def hostile_leaks(text: str) -> list[str]:
    lowered = text.lower()
    return [form for form in HOSTILE_FORMS if form in lowered]


@pytest.mark.parametrize(
    "reply",
    [
        Reply(body={"return_code": -1, "return_message": "at TARGET"}),
        Reply(status=500, body={"return_code": -1, "return_message": "at TARGET"}),
        Reply(body="not json: TARGET"),
    ],
    ids=["return-message", "http-500", "non-json"],
)
async def test_resource_error_hides_hostile_token(
    fake_ta: FakeTA, reply: Reply, caplog: pytest.LogCaptureFixture
) -> None:
    target = f"/open/user-cluster-detail?token={HOSTILE_WIRE}&projectId=102"
    settings = Settings(
        base_url=fake_ta.base_url, token=SecretStr(HOSTILE), project_id=102
    )
    server = build_server(settings, client_options={"read_retries": 0})
    caplog.set_level("DEBUG")
    messages = []
    async with Client(server) as session:
        lowered = re.sub(r"%[0-9A-F]{2}", lambda match: match.group().lower(), target)
        for echo in (target, lowered):
            fake_ta.program(
                "user-cluster-detail", Reply(reply.status, _echoed(reply.body, echo))
            )
            with pytest.raises(MCPError) as caught:
                await session.read_resource("ta://projects/102/clusters/c1")
            messages.append(caught.value.message)
    assert fake_ta.last().param("token") == HOSTILE
    for message in messages:
        assert "***" in message
        assert hostile_leaks(message) == []
    assert hostile_leaks(caplog.text) == []


def _echoed(body: Any, echo: str) -> Any:
    if isinstance(body, str):
        return body.replace("TARGET", echo)
    return json.loads(json.dumps(body).replace("TARGET", echo))
