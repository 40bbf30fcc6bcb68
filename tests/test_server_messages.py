"""Messages of MCP tool results: the fix named in each error, and summary grammar."""

from typing import Any

import pytest
from mcp.client import Client
from reference_examples import load_example
from server_fixtures import call, error_kind, structured, text

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
