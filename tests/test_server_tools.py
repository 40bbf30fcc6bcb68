"""Every tool, called through an MCP client session against the sandbox over HTTP.

Each test runs in both protocol modes (2026-07-28 and 2025-11-25), through the
`mcp_client` fixture.
"""

from typing import Any

import pytest
from mcp.client import Client
from reference_examples import load_example
from server_fixtures import call, error_kind, structured, text

from ta_cohort_mcp.sandbox import SandboxServer

pytestmark = pytest.mark.anyio

TAG_EXAMPLES = [
    "add-tag-custom.request",
    "add-tag-firstlast.request",
    "add-tag-quota.request",
]


def named(example: str, name: str) -> dict[str, Any]:
    """Return a reference request example with a unique clusterName."""
    body: dict[str, Any] = load_example(example)
    body["clusterName"] = name
    return body


async def create_cluster(client: Client, name: str) -> int:
    result = await call(client, "user_cluster_add", named("add-cluster.request", name))
    assert not result.is_error, text(result)
    cluster_id: int = structured(result)["clusterId"]
    return cluster_id


async def test_add_reference_cluster(mcp_client: Client, cluster_name: str) -> None:
    result = await call(
        mcp_client, "user_cluster_add", named("add-cluster.request", cluster_name)
    )
    assert not result.is_error, text(result)
    data = structured(result)
    assert isinstance(data["clusterId"], int)
    assert data["clusterName"] == cluster_name
    assert data["projectId"] == 102
    assert str(data["clusterId"]) in text(result)


@pytest.mark.parametrize("example", TAG_EXAMPLES)
async def test_add_reference_tag(
    mcp_client: Client, cluster_name: str, example: str
) -> None:
    body = named(example, cluster_name)
    result = await call(mcp_client, "user_cluster_add", body)
    assert not result.is_error, text(result)
    data = structured(result)
    assert data["projectId"] == body["projectId"]
    assert "tag" in text(result)


async def test_add_custom_tag_repairs_typo(
    mcp_client: Client, cluster_name: str
) -> None:
    result = await call(
        mcp_client, "user_cluster_add", named("add-tag-custom.request", cluster_name)
    )
    repairs = structured(result).get("repairs", [])
    assert any("uceCalcuSymbol" in entry["message"] for entry in repairs)
    assert "Repaired arguments" in text(result)


async def test_detail_by_id_and_name(mcp_client: Client, cluster_name: str) -> None:
    cluster_id = await create_cluster(mcp_client, cluster_name)
    by_id = await call(
        mcp_client, "user_cluster_detail", {"projectId": 102, "clusterId": cluster_id}
    )
    by_name = await call(
        mcp_client,
        "user_cluster_detail",
        {"projectId": 102, "clusterName": cluster_name},
    )
    assert not by_id.is_error, text(by_id)
    assert not by_name.is_error, text(by_name)
    assert structured(by_id)["cluster"]["id"] == cluster_id
    assert structured(by_name)["cluster"]["id"] == cluster_id
    assert structured(by_id)["cluster"]["clusterName"] == cluster_name
    assert "qp: " in text(by_id)


async def test_detail_needs_one_key(mcp_client: Client) -> None:
    result = await call(mcp_client, "user_cluster_detail", {"projectId": 102})
    assert error_kind(result) == "invalid_arguments"
    assert "clusterId or clusterName" in text(result)


async def test_detail_unknown_cluster(mcp_client: Client) -> None:
    result = await call(
        mcp_client, "user_cluster_detail", {"projectId": 102, "clusterId": 987654}
    )
    assert error_kind(result) == "api_error"
    error = structured(result)["error"]
    assert error["returnCode"] != 0
    assert "TA returned error" in text(result)


async def test_update_reference_examples(mcp_client: Client, cluster_name: str) -> None:
    cluster_id = await create_cluster(mcp_client, cluster_name)
    by_id = {**load_example("update.request"), "clusterId": cluster_id}
    by_name = {**load_example("update-by-name.request"), "clusterName": cluster_name}
    first = await call(mcp_client, "user_cluster_update", by_id)
    second = await call(mcp_client, "user_cluster_update_by_name", by_name)
    assert not first.is_error, text(first)
    assert not second.is_error, text(second)
    assert structured(first) == {
        "updated": True,
        "projectId": 102,
        "clusterId": cluster_id,
    }
    assert structured(second)["clusterName"] == cluster_name


async def test_update_checks_typed_qp(
    mcp_client: Client, sandbox: SandboxServer
) -> None:
    arguments = {**load_example("update.request"), "clusterId": 1}
    arguments["qp"]["events"][0]["comparator"] = "greatr"
    before = sandbox.stats["user-cluster-update"]
    result = await call(mcp_client, "user_cluster_update", arguments)
    assert error_kind(result) == "invalid_arguments"
    assert "did you mean 'greater'" in text(result)
    assert "qp.events[0].comparator" in text(result)
    assert sandbox.stats["user-cluster-update"] == before


async def test_list_reference_example(mcp_client: Client, cluster_name: str) -> None:
    await create_cluster(mcp_client, cluster_name)
    result = await call(mcp_client, "user_cluster_list", load_example("list.request"))
    assert not result.is_error, text(result)
    data = structured(result)
    assert data["pagerResult"]["pageNum"] == 1
    assert data["pagerResult"]["totalNum"] >= 1
    assert isinstance(data["userClusters"], list)


async def test_list_defaults_to_every_type(
    mcp_client: Client, cluster_name: str
) -> None:
    await create_cluster(mcp_client, cluster_name)
    result = await call(
        mcp_client,
        "user_cluster_list",
        {"projectId": 102, "pagerHeader": {"pageNum": 1, "pageSize": 1000}},
    )
    names = [c["clusterName"] for c in structured(result)["userClusters"]]
    assert cluster_name in names


async def test_list_tags(mcp_client: Client, cluster_name: str) -> None:
    await call(
        mcp_client, "user_cluster_add", named("add-tag-custom.request", cluster_name)
    )
    result = await call(
        mcp_client,
        "user_cluster_list",
        {
            "projectId": 102,
            "clusterCatalog": "catalog_tag",
            "pagerHeader": {"pageSize": 1000},
        },
    )
    names = [c["clusterName"] for c in structured(result)["userClusters"]]
    assert cluster_name in names


async def test_refresh_and_progress_by_id(
    mcp_client: Client, cluster_name: str
) -> None:
    cluster_id = await create_cluster(mcp_client, cluster_name)
    key = {"projectId": 102, "clusterId": cluster_id}
    started = await call(mcp_client, "user_cluster_refresh", key)
    progress = await call(mcp_client, "user_cluster_refresh_progress", key)
    assert not started.is_error, text(started)
    assert structured(started)["started"] is True
    assert not progress.is_error, text(progress)
    assert 0 <= structured(progress)["progress"] <= 100


async def test_refresh_and_progress_by_name(
    mcp_client: Client, cluster_name: str
) -> None:
    await create_cluster(mcp_client, cluster_name)
    key = {"projectId": 102, "clusterName": cluster_name}
    started = await call(mcp_client, "user_cluster_refresh_by_name", key)
    progress = await call(mcp_client, "user_cluster_refresh_progress_by_name", key)
    assert not started.is_error, text(started)
    assert structured(started)["clusterName"] == cluster_name
    assert not progress.is_error, text(progress)
    assert 0 <= structured(progress)["progress"] <= 100


async def test_refresh_and_wait_counts_users(
    mcp_client: Client, cluster_name: str
) -> None:
    cluster_id = await create_cluster(mcp_client, cluster_name)
    result = await call(
        mcp_client, "refresh_and_wait", {"projectId": 102, "clusterId": cluster_id}
    )
    assert not result.is_error, text(result)
    data = structured(result)
    assert data["done"] is True
    assert data["progress"] == 100
    assert isinstance(data["usersNum"], int)
    assert f"usersNum {data['usersNum']}" in text(result)


async def test_refresh_and_wait_by_name(mcp_client: Client, cluster_name: str) -> None:
    await create_cluster(mcp_client, cluster_name)
    result = await call(
        mcp_client, "refresh_and_wait", {"projectId": 102, "clusterName": cluster_name}
    )
    assert structured(result)["done"] is True
    assert structured(result)["cluster"]["clusterName"] == cluster_name


async def test_delete_by_name_with_token(mcp_client: Client, cluster_name: str) -> None:
    await create_cluster(mcp_client, cluster_name)
    key = {"projectId": 102, "clusterName": cluster_name}
    preview = await call(mcp_client, "delete_user_cluster_by_name", key)
    token = structured(preview)["confirm"]
    deleted = await call(
        mcp_client, "delete_user_cluster_by_name", {**key, "confirm": token}
    )
    after = await call(mcp_client, "user_cluster_detail", key)
    assert structured(preview)["deleted"] is False
    assert structured(deleted)["deleted"] is True
    assert error_kind(after) == "api_error"


async def test_import_ids_inline(mcp_client: Client, sandbox: SandboxServer) -> None:
    user_ids = _sample_ids(sandbox, 102, 5)
    result = await call(
        mcp_client,
        "import_id_cluster_add",
        {
            "projectId": 102,
            "displayName": "inline ids",
            "mainColumnName": "#account_id",
            "ids": [*user_ids, user_ids[0], "no_such_user"],
        },
    )
    assert not result.is_error, text(result)
    upload = structured(result)["upload"]
    assert upload["rows_sent"] == 6
    assert upload["duplicates_dropped"] == 1
    assert upload["result"]["userNum"] == 5
    assert upload["result"]["unmatchedNum"] == 1
    assert isinstance(structured(result)["clusterId"], int)


async def test_import_tag_rows_and_modify(
    mcp_client: Client, sandbox: SandboxServer, cluster_name: str
) -> None:
    user_ids = _sample_ids(sandbox, 102, 3)
    created = await call(
        mcp_client,
        "import_id_cluster_add",
        {
            "projectId": 102,
            "displayName": "tag rows",
            "mainColumnName": "#account_id",
            "clusterCatalog": "catalog_tag",
            "clusterName": cluster_name,
            "rows": [f"{user_id},vip" for user_id in user_ids],
        },
    )
    assert not created.is_error, text(created)
    cluster_id = structured(created)["clusterId"]
    by_id = await call(
        mcp_client,
        "import_id_cluster_modify",
        {"projectId": 102, "clusterId": cluster_id, "rows": [f"{user_ids[0]},gold"]},
    )
    by_name = await call(
        mcp_client,
        "import_id_cluster_modify_by_name",
        {
            "projectId": 102,
            "clusterName": cluster_name,
            "rows": [f"{user_ids[1]},gold"],
        },
    )
    assert not by_id.is_error, text(by_id)
    assert not by_name.is_error, text(by_name)
    assert structured(by_id)["upload"]["rows_sent"] == 1
    assert structured(by_name)["clusterName"] == cluster_name


async def test_import_rows_need_tag_catalog(mcp_client: Client) -> None:
    result = await call(
        mcp_client,
        "import_id_cluster_add",
        {
            "projectId": 102,
            "displayName": "x",
            "mainColumnName": "#account_id",
            "rows": ["a,b"],
        },
    )
    assert error_kind(result) == "invalid_arguments"
    assert "catalog_tag" in text(result)


async def test_validate_definition_valid(
    mcp_client: Client, sandbox: SandboxServer
) -> None:
    before = sandbox.stats.total
    qp = load_example("add-cluster.request")["qp"]
    result = await call(mcp_client, "validate_definition", {"qp": qp})
    assert not result.is_error, text(result)
    assert structured(result)["valid"] is True
    assert "consume_item" in structured(result)["summary"]
    assert sandbox.stats.total - before <= 1  # at most the catalog lookup


@pytest.mark.parametrize("example", ["add-cluster.request", *TAG_EXAMPLES])
async def test_validate_definition_body(mcp_client: Client, example: str) -> None:
    result = await call(
        mcp_client, "validate_definition", {"body": load_example(example)}
    )
    assert structured(result)["valid"] is True, text(result)


async def test_validate_definition_problems(
    mcp_client: Client, sandbox: SandboxServer
) -> None:
    before = sandbox.stats.counts()
    qp = load_example("add-cluster.request")["qp"]
    qp["filts"][0]["comparator"] = "range"
    result = await call(mcp_client, "validate_definition", {"qp": qp, "tagQp": "{}"})
    assert error_kind(result) == "invalid_arguments"
    paths = [problem["path"] for problem in structured(result)["error"]["problems"]]
    assert any(path.startswith("qp.filts[0]") for path in paths)
    assert any(path.startswith("tagQp") for path in paths)
    assert sandbox.stats.counts() == before


async def test_validate_definition_json_text(mcp_client: Client) -> None:
    import json

    qp = load_example("add-cluster.request")["qp"]
    as_text = await call(mcp_client, "validate_definition", {"qp": json.dumps(qp)})
    as_object = await call(mcp_client, "validate_definition", {"qp": qp})
    assert structured(as_text)["valid"] is True
    assert "repairs" not in structured(as_text)
    assert structured(as_object)["valid"] is True
    repairs = [entry["message"] for entry in structured(as_object)["repairs"]]
    assert "qp: encoded the object as JSON text" in repairs


async def test_validate_definition_bad_json(mcp_client: Client) -> None:
    result = await call(mcp_client, "validate_definition", {"qp": "{events: []}"})
    assert error_kind(result) == "invalid_arguments"
    assert "qp is not valid JSON text" in text(result)


async def test_validate_definition_body_rules(mcp_client: Client) -> None:
    body = load_example("add-tag-custom.request")
    del body["subConditionTabType"]
    result = await call(mcp_client, "validate_definition", {"body": body})
    assert error_kind(result) == "invalid_arguments"
    assert "subConditionTabType" in text(result)


def _sample_ids(sandbox: SandboxServer, project_id: int, count: int) -> list[str]:
    """Return `count` account ids of sample users: the sandbox names them acc1, acc2..."""
    return [f"acc{number}" for number in range(1, count + 1)]
