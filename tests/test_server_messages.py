"""Messages of MCP tool results: the fix named in each error, and summary grammar."""

from typing import Any

import httpx
import pytest
from mcp.client import Client
from reference_examples import load_example
from server_fixtures import call, connect, error_kind, structured, text, with_settings

from ta_cohort_mcp.config import Settings
from ta_cohort_mcp.sandbox import SandboxServer

pytestmark = pytest.mark.anyio


def problem_messages(result: Any) -> list[str]:
    problems = structured(result)["error"]["problems"]
    return [problem["message"] for problem in problems]


async def test_missing_quota_says_value(mcp_client: Client, cluster_name: str) -> None:
    body = load_example("add-cluster.request")
    body["clusterName"] = cluster_name
    del body["qp"]["events"][0]["taPropQuota"]
    result = await call(mcp_client, "user_cluster_add", body)
    messages = problem_messages(result)
    assert error_kind(result) == "invalid_arguments"
    assert len(messages) == 1
    assert "'taPropQuota'" in messages[0]
    assert '{"analysis": "TIMES"}' in messages[0]
    assert '{"analysis": "TIMES"}' in text(result)


async def test_page_size_top_level_placed(mcp_client: Client) -> None:
    result = await call(
        mcp_client, "user_cluster_list", {"projectId": 102, "pageSize": 50}
    )
    messages = problem_messages(result)
    assert error_kind(result) == "invalid_arguments"
    assert len(messages) == 1
    assert "belongs inside pagerHeader" in messages[0]
    assert '{"pagerHeader": {"pageSize": 50}}' in messages[0]
    assert "did you mean" not in messages[0]


async def test_paging_keys_placed_together(mcp_client: Client) -> None:
    result = await call(
        mcp_client,
        "user_cluster_list",
        {"projectId": 102, "pageSize": 50, "pageNum": 1},
    )
    messages = problem_messages(result)
    example = '{"pagerHeader": {"pageNum": 1, "pageSize": 50}}'
    assert len(messages) == 2
    assert example in messages[0]
    assert example in messages[1]


async def test_unknown_key_typo_still_suggested(mcp_client: Client) -> None:
    result = await call(
        mcp_client, "user_cluster_list", {"projectId": 102, "pagerHeadr": {}}
    )
    messages = problem_messages(result)
    assert len(messages) == 1
    assert "did you mean 'pagerHeader'?" in messages[0]
    assert "belongs inside" not in messages[0]


async def test_validate_summary_agrees(mcp_client: Client) -> None:
    qp = load_example("add-cluster.request")["qp"]
    result = await call(mcp_client, "validate_definition", {"qp": qp})
    assert not result.is_error, text(result)
    summary = structured(result)["summary"]
    assert "who has" not in summary
    assert "have user property user_level" in summary


async def test_list_count_singular(
    mcp_client: Client, sandbox: SandboxServer, cluster_name: str
) -> None:
    body = load_example("add-cluster.request")
    body["clusterName"] = cluster_name
    body["projectId"] = 2
    await call(mcp_client, "user_cluster_add", body)
    result = await call(mcp_client, "user_cluster_list", {"projectId": 2})
    total = structured(result)["pagerResult"]["totalNum"]
    first_line = text(result).splitlines()[0]
    noun = "entry" if total == 1 else "entries"
    assert f"of {total} {noun} of catalog_cluster" in first_line


async def test_validate_deep_text_is_problem(mcp_client: Client) -> None:
    result = await call(
        mcp_client, "validate_definition", {"qp": "[" * 2000 + "]" * 2000}
    )
    messages = problem_messages(result)
    assert error_kind(result) == "invalid_arguments"
    assert len(messages) == 1
    assert "nested too deep" in messages[0]
    assert structured(result)["error"]["problems"][0]["path"] == "qp"


async def test_unknown_tool_hint_punctuation(mcp_client: Client) -> None:
    result = await call(mcp_client, "user_cluster_detial", {"projectId": 102})
    assert error_kind(result) == "tool_not_offered"
    assert "did you mean 'user_cluster_detail'? Tools offered:" in text(result)
    assert "?." not in text(result)


@pytest.mark.parametrize(
    ("server_message", "joined"),
    [
        (
            "unknown column 'user_lvl'; did you mean 'user_level'?",
            "'user_level'? Check",
        ),
        ("cluster not found.", "not found. Check"),
        ("cluster not found", "not found. Check"),
    ],
)
async def test_api_error_message_joined(
    mcp_client: Client, sandbox: SandboxServer, server_message: str, joined: str
) -> None:
    sandbox.faults.add(
        "return_code",
        "user-cluster-list",
        count=1,
        return_code=-2001,
        return_message=server_message,
    )
    result = await call(mcp_client, "user_cluster_list", {"projectId": 102})
    assert error_kind(result) == "api_error"
    assert joined in text(result)
    assert "?." not in text(result)
    assert ".." not in text(result)


async def test_resource_one_user_singular(
    server_settings: Settings, sandbox: SandboxServer, cluster_name: str
) -> None:
    with sandbox.store.cursor() as cursor:
        row = cursor.execute(
            'SELECT "#account_id" FROM ta_user WHERE project_id = 102 LIMIT 1'
        ).fetchone()
    assert row is not None
    async with httpx.AsyncClient(base_url=sandbox.base_url, timeout=10) as http:
        response = await http.post(
            "/open/import-id-cluster-add",
            params={
                "token": sandbox.token,
                "projectId": 102,
                "clusterName": cluster_name,
                "displayName": "one user",
                "mainColumnName": "#account_id",
            },
            content=f"{row[0]}\n".encode(),
            headers={"Content-Type": "text/csv"},
        )
    assert response.json()["return_code"] == 0, response.text
    descriptions = {}
    cursor_value = None
    async with connect(with_settings(server_settings, project_id=102)) as client:
        while True:
            page = await client.list_resources(cursor=cursor_value)
            descriptions.update({str(r.uri): r.description for r in page.resources})
            cursor_value = page.next_cursor
            if cursor_value is None:
                break
    description = descriptions[f"ta://projects/102/clusters/{cluster_name}"]
    assert description is not None
    assert "1 user," in description
    assert "1 users" not in description
