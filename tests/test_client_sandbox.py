"""Every endpoint of TAClient against the sandbox, and its faults end to end."""

from collections.abc import AsyncIterator
from typing import Any

import pytest
from reference_examples import load_example

from ta_cohort_mcp.client import (
    IdSource,
    TAAPIError,
    TAClient,
    TAHTTPError,
    TARateLimitError,
    TAResponseFormatError,
    TAWriteUncertainError,
)
from ta_cohort_mcp.models import (
    ClusterAddRequest,
    ClusterListRequest,
    ClusterUpdateRequest,
    ImportAddQuery,
    ImportModifyByNameQuery,
    ImportModifyQuery,
)
from ta_cohort_mcp.sandbox import SandboxServer

pytestmark = pytest.mark.anyio

# return_code values of the sandbox (ta_cohort_mcp.sandbox.ErrorCode).
TOKEN_INVALID = -1001
CLUSTER_NOT_FOUND = -2001


@pytest.fixture
async def client(sandbox: SandboxServer) -> AsyncIterator[TAClient]:
    async with TAClient(
        sandbox.base_url, sandbox.token, timeout=10.0, max_retry_wait=0.05
    ) as ta:
        yield ta


def add_body(name: str) -> ClusterAddRequest:
    example: dict[str, Any] = load_example("add-cluster.request")
    example["clusterName"] = name
    return ClusterAddRequest.model_validate(example)


def update_body(display_name: str) -> ClusterUpdateRequest:
    example: dict[str, Any] = load_example("update.request")
    example["displayName"] = display_name
    return ClusterUpdateRequest.model_validate(example)


async def test_condition_cluster_lifecycle(client: TAClient, cluster_name: str) -> None:
    cluster_id = await client.user_cluster_add(add_body(cluster_name))

    by_id = await client.user_cluster_detail(102, cluster_id=cluster_id)
    by_name = await client.user_cluster_detail(102, cluster_name=cluster_name)
    assert by_id.id == cluster_id
    assert by_name.id == cluster_id
    assert by_id.clusterName == cluster_name

    await client.user_cluster_update(cluster_id, update_body("renamed once"))
    await client.user_cluster_update_by_name(
        102, cluster_name, update_body("renamed twice")
    )
    detail = await client.user_cluster_detail(102, cluster_id=cluster_id)
    assert detail.displayName == "renamed twice"

    await client.user_cluster_refresh(102, cluster_id)
    await client.user_cluster_refresh_by_name(102, cluster_name)
    progress = await client.user_cluster_refresh_progress(102, cluster_id)
    progress_by_name = await client.user_cluster_refresh_progress_by_name(
        102, cluster_name
    )
    assert -1 <= progress.progress <= 100
    assert -1 <= progress_by_name.progress <= 100

    page = await client.user_cluster_list(
        ClusterListRequest(
            projectId=102,
            clusterCatalog="catalog_cluster",
            clusterTypes=["cluster_by_static_condition"],
            pagerHeader={"pageNum": 1, "pageSize": 1000},
        )
    )
    assert cluster_id in [entry.id for entry in page.userClusters]

    await client.user_cluster_delete(102, cluster_id)
    with pytest.raises(TAAPIError) as caught:
        await client.user_cluster_detail(102, cluster_id=cluster_id)
    assert caught.value.return_code == CLUSTER_NOT_FOUND


async def test_delete_by_name(client: TAClient, cluster_name: str) -> None:
    await client.user_cluster_add(add_body(cluster_name))
    await client.delete_user_cluster_by_name(102, cluster_name)
    with pytest.raises(TAAPIError) as caught:
        await client.user_cluster_detail(102, cluster_name=cluster_name)
    assert caught.value.return_code == CLUSTER_NOT_FOUND


async def test_id_cluster_lifecycle(client: TAClient, cluster_name: str) -> None:
    query = ImportAddQuery(
        projectId=102,
        displayName="高价值用户 & co",
        mainColumnName="#account_id",
        clusterName=cluster_name,
    )
    ids = IdSource.from_ids(["acc1", " acc2 ", "acc3", "acc1", "", "nobody"])
    outcome = await client.import_id_cluster_add(query, ids)
    assert outcome.rows_sent == 4
    assert outcome.duplicates_dropped == 1
    assert outcome.blank_dropped == 1
    assert outcome.result is not None
    assert outcome.result.userNum == 3
    assert outcome.result.unmatchedNum == 1
    cluster_id = outcome.result.clusterId
    assert cluster_id is not None

    detail = await client.user_cluster_detail(102, cluster_name=cluster_name)
    assert detail.displayName == "高价值用户 & co"

    modify = ImportModifyQuery(projectId=102, clusterId=cluster_id)
    await client.import_id_cluster_modify(modify, IdSource.from_ids(["acc4"]))
    by_name = ImportModifyByNameQuery(
        projectId=102, clusterName=cluster_name, remarks="two users"
    )
    await client.import_id_cluster_modify_by_name(
        by_name, IdSource.from_ids(["acc5", "acc6"])
    )
    detail = await client.user_cluster_detail(102, cluster_id=cluster_id)
    assert detail.usersNum == 2

    await client.user_cluster_delete(102, cluster_id)


async def test_id_tag_from_pairs(client: TAClient, cluster_name: str) -> None:
    query = ImportAddQuery(
        projectId=102,
        displayName="tier",
        mainColumnName="#account_id",
        clusterCatalog="catalog_tag",
        clusterName=cluster_name,
    )
    pairs = IdSource.from_pairs([("acc1", "gold"), ("acc2", "silver"), ("acc1", "x")])
    outcome = await client.import_id_cluster_add(query, pairs)
    assert outcome.duplicates_dropped == 1
    assert outcome.result is not None
    assert outcome.result.userNum == 2
    await client.delete_user_cluster_by_name(102, cluster_name)


async def test_invalid_token_is_api_error(sandbox: SandboxServer) -> None:
    async with TAClient(sandbox.base_url, "not-a-sandbox-token") as client:
        with pytest.raises(TAAPIError) as caught:
            await client.user_cluster_refresh_progress(102, 1)
    assert caught.value.return_code == TOKEN_INVALID
    assert "not-a-sandbox-token" not in str(caught.value)


async def test_sandbox_500_retried(client: TAClient, sandbox: SandboxServer) -> None:
    page_request = ClusterListRequest(
        projectId=102,
        clusterCatalog="catalog_cluster",
        clusterTypes=["cluster_by_static_condition"],
    )
    sandbox.faults.add("http_500", "user-cluster-list", count=1)
    before = sandbox.stats["user-cluster-list"]
    await client.user_cluster_list(page_request)
    assert sandbox.stats["user-cluster-list"] - before == 2


async def test_sandbox_429_over_cap(client: TAClient, sandbox: SandboxServer) -> None:
    sandbox.faults.add("http_429", "user-cluster-detail", count=1, retry_after=30)
    with pytest.raises(TARateLimitError) as caught:
        await client.user_cluster_detail(102, cluster_id=1)
    assert caught.value.retry_after == 30.0


async def test_sandbox_500_on_add_uncertain(
    client: TAClient, sandbox: SandboxServer, cluster_name: str
) -> None:
    sandbox.faults.add("http_500", "user-cluster-add", count=1)
    before = sandbox.stats["user-cluster-add"]
    with pytest.raises(TAWriteUncertainError) as caught:
        await client.user_cluster_add(add_body(cluster_name))
    assert isinstance(caught.value.__cause__, TAHTTPError)
    assert sandbox.stats["user-cluster-add"] - before == 1


async def test_sandbox_drop_on_add_uncertain(
    client: TAClient, sandbox: SandboxServer, cluster_name: str
) -> None:
    sandbox.faults.add("drop", "user-cluster-add", count=1)
    with pytest.raises(TAWriteUncertainError):
        await client.user_cluster_add(add_body(cluster_name))


async def test_sandbox_malformed_format_error(
    client: TAClient, sandbox: SandboxServer
) -> None:
    sandbox.faults.add("malformed", "user-cluster-refresh-progress", count=1)
    with pytest.raises(TAResponseFormatError):
        await client.user_cluster_refresh_progress(102, 1)


async def test_sandbox_gateway_page_http_error(
    client: TAClient, sandbox: SandboxServer
) -> None:
    sandbox.faults.add("html", "user-cluster-refresh-progress")
    before = sandbox.stats["user-cluster-refresh-progress"]
    with pytest.raises(TAHTTPError) as caught:
        await client.user_cluster_refresh_progress(102, 1)
    assert caught.value.status_code == 502
    assert sandbox.stats["user-cluster-refresh-progress"] - before == 4
