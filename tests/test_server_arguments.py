"""Mistaken arguments: each kind is repaired and reported, or rejected before sending.

The sandbox's request counter shows that no invalid call reaches the API.
"""

from typing import Any

import pytest
from mcp.client import Client
from reference_examples import load_example
from server_fixtures import call, connect, error_kind, structured, text, with_settings

from ta_cohort_mcp.config import Settings
from ta_cohort_mcp.sandbox import SandboxServer

pytestmark = pytest.mark.anyio


def add_body(name: str) -> dict[str, Any]:
    body: dict[str, Any] = load_example("add-cluster.request")
    body["clusterName"] = name
    return body


async def rejected_unsent(
    client: Client, sandbox: SandboxServer, tool: str, arguments: dict[str, Any]
) -> str:
    """Call `tool`, check it is rejected with nothing sent, and return the message."""
    before = sandbox.stats.counts()
    result = await call(client, tool, arguments)
    after = sandbox.stats.counts()
    assert error_kind(result) == "invalid_arguments", text(result)
    assert after == before
    problems = structured(result)["error"]["problems"]
    assert problems
    return text(result)


async def test_wrong_type_rejected(mcp_client: Client, sandbox: SandboxServer) -> None:
    message = await rejected_unsent(
        mcp_client,
        sandbox,
        "user_cluster_detail",
        {"projectId": 102, "clusterId": True},
    )
    assert "clusterId" in message
    assert "boolean" in message


async def test_unknown_key_rejected(mcp_client: Client, sandbox: SandboxServer) -> None:
    message = await rejected_unsent(
        mcp_client, sandbox, "user_cluster_detail", {"projectId": 102, "clusterID": 970}
    )
    assert "did you mean 'clusterId'" in message


async def test_enum_typo_rejected(
    mcp_client: Client, sandbox: SandboxServer, cluster_name: str
) -> None:
    body = add_body(cluster_name)
    body["qp"]["filts"][0]["comparator"] = "equl"
    message = await rejected_unsent(mcp_client, sandbox, "user_cluster_add", body)
    assert "qp.filts[0].comparator" in message
    assert "did you mean 'equal'" in message


async def test_model_rule_rejected(
    mcp_client: Client, sandbox: SandboxServer, cluster_name: str
) -> None:
    body = add_body(cluster_name)
    body["qp"]["filts"][0]["comparator"] = "range"
    message = await rejected_unsent(mcp_client, sandbox, "user_cluster_add", body)
    assert "range" in message
    assert "two values" in message


async def test_several_problems_listed(
    mcp_client: Client, sandbox: SandboxServer
) -> None:
    message = await rejected_unsent(
        mcp_client,
        sandbox,
        "user_cluster_list",
        {
            "projectId": 102,
            "clusterCatalog": "catalog_clustr",
            "pagerHeader": {"pageNum": 0},
        },
    )
    assert "catalog_clustr" in message
    assert "pagerHeader.pageNum" in message


async def test_json_text_decoded(mcp_client: Client, cluster_name: str) -> None:
    import json

    body = add_body(cluster_name)
    body["qp"] = json.dumps(body["qp"])
    result = await call(mcp_client, "user_cluster_add", body)
    assert not result.is_error, text(result)
    repairs = [entry["message"] for entry in structured(result)["repairs"]]
    assert any("qp" in repair and "JSON" in repair for repair in repairs)


async def test_digits_become_number(mcp_client: Client, cluster_name: str) -> None:
    body = add_body(cluster_name)
    body["projectId"] = "102"
    result = await call(mcp_client, "user_cluster_add", body)
    assert not result.is_error, text(result)
    assert structured(result)["projectId"] == 102
    assert any("projectId" in e["message"] for e in structured(result)["repairs"])


async def test_lone_value_wrapped(mcp_client: Client, cluster_name: str) -> None:
    body = add_body(cluster_name)
    body["qp"]["filts"][0]["ftv"] = "3"
    result = await call(mcp_client, "user_cluster_add", body)
    assert not result.is_error, text(result)
    detail = await call(
        mcp_client,
        "user_cluster_detail",
        {"projectId": 102, "clusterName": cluster_name},
    )
    definition = structured(detail)["cluster"]["userClusterDef"]
    assert definition["filts"][0]["ftv"] == ["3"]
    assert any("ftv" in e["message"] for e in structured(result)["repairs"])


async def test_wrong_case_enum_repaired(mcp_client: Client, cluster_name: str) -> None:
    body = add_body(cluster_name)
    body["qp"]["events"][0]["comparator"] = "Greater"
    body["qp"]["events"][0]["taPropQuota"]["analysis"] = "times"
    result = await call(mcp_client, "user_cluster_add", body)
    assert not result.is_error, text(result)
    repairs = " ".join(e["message"] for e in structured(result)["repairs"])
    assert "Greater" in repairs
    assert "times" in repairs
    assert "Repaired arguments" in text(result)


async def test_bad_cluster_name_rejected(
    mcp_client: Client, sandbox: SandboxServer
) -> None:
    message = await rejected_unsent(
        mcp_client, sandbox, "user_cluster_add", add_body("has space and-dash")
    )
    assert "clusterName" in message


async def test_update_qp_json_text_decoded(
    mcp_client: Client, cluster_name: str
) -> None:
    import json

    created = await call(mcp_client, "user_cluster_add", add_body(cluster_name))
    update = load_example("update.request")
    update["clusterId"] = structured(created)["clusterId"]
    update["qp"] = json.dumps(update["qp"])
    result = await call(mcp_client, "user_cluster_update", update)
    assert not result.is_error, text(result)
    assert structured(result)["repairs"]


async def test_no_arguments_uses_default_project(server_settings: Settings) -> None:
    settings = with_settings(server_settings, project_id=102)
    async with connect(settings) as client:
        result = await client.call_tool("user_cluster_detail")
    problems = structured(result)["error"]["problems"]
    assert error_kind(result) == "invalid_arguments"
    assert "projectId" not in text(result)
    assert len(problems) == 1
    assert "exactly one of clusterId or clusterName" in problems[0]["message"]
