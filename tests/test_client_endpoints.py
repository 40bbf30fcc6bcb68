"""Each endpoint of TAClient against the test server: method, path, query, body."""

import logging
from collections.abc import AsyncIterator

import httpx
import pytest
from client_fixtures import FakeTA, envelope
from reference_examples import load_example

from ta_cohort_mcp.client import IdSource, TAClient, UploadOutcome
from ta_cohort_mcp.models import (
    ClusterAddRequest,
    ClusterDetail,
    ClusterList,
    ClusterListRequest,
    ClusterUpdateRequest,
    ImportAddQuery,
    ImportModifyByNameQuery,
    ImportModifyQuery,
    RefreshProgress,
)

pytestmark = pytest.mark.anyio

TOKEN = "endpoint-test-token"


@pytest.fixture
async def client(fake_ta: FakeTA) -> AsyncIterator[TAClient]:
    async with TAClient(fake_ta.base_url, TOKEN, max_retry_wait=0.01) as ta:
        yield ta


def add_body() -> ClusterAddRequest:
    return ClusterAddRequest.model_validate(load_example("add-cluster.request"))


def update_body() -> ClusterUpdateRequest:
    return ClusterUpdateRequest.model_validate(load_example("update.request"))


async def test_add_returns_cluster_id(client: TAClient, fake_ta: FakeTA) -> None:
    cluster_id = await client.user_cluster_add(add_body())
    request = fake_ta.last()
    assert cluster_id == 970
    assert request.method == "POST"
    assert request.path == "/open/user-cluster-add"
    assert request.param("token") == TOKEN
    assert set(request.query) == {"token"}
    assert request.headers["content-type"] == "application/json"
    assert request.json() == add_body().model_dump(
        mode="json", by_alias=True, exclude_none=True
    )


async def test_add_sends_no_null(client: TAClient, fake_ta: FakeTA) -> None:
    await client.user_cluster_add(add_body())
    assert b"null" not in fake_ta.last().body


async def test_add_accepts_id_as_digits(client: TAClient, fake_ta: FakeTA) -> None:
    fake_ta.program("user-cluster-add", envelope("971"))
    assert await client.user_cluster_add(add_body()) == 971


async def test_detail_by_id(client: TAClient, fake_ta: FakeTA) -> None:
    detail = await client.user_cluster_detail(102, cluster_id=970)
    request = fake_ta.last()
    assert isinstance(detail, ClusterDetail)
    assert detail.id == 970
    assert detail.usersNum == 0
    assert request.method == "GET"
    assert request.path == "/open/user-cluster-detail"
    assert request.param("projectId") == "102"
    assert request.param("clusterId") == "970"
    assert "clusterName" not in request.query
    assert request.body == b""


async def test_detail_by_name(client: TAClient, fake_ta: FakeTA) -> None:
    await client.user_cluster_detail(102, cluster_name="recent_7_days_consume")
    request = fake_ta.last()
    assert request.param("clusterName") == "recent_7_days_consume"
    assert "clusterId" not in request.query


async def test_update_by_id(client: TAClient, fake_ta: FakeTA) -> None:
    await client.user_cluster_update(970, update_body())
    request = fake_ta.last()
    assert request.method == "POST"
    assert request.path == "/open/user-cluster-update"
    assert request.param("clusterId") == "970"
    assert request.json()["projectId"] == 102
    assert request.json()["qp"]["events"][0]["eventName"] == "consume_item"


async def test_update_by_name(client: TAClient, fake_ta: FakeTA) -> None:
    await client.user_cluster_update_by_name(
        102, "recent_7_days_consume", update_body()
    )
    request = fake_ta.last()
    assert request.path == "/open/user-cluster-update-by-name"
    assert request.param("projectId") == "102"
    assert request.param("clusterName") == "recent_7_days_consume"
    assert request.json()["projectId"] == 102


async def test_delete_by_id(client: TAClient, fake_ta: FakeTA) -> None:
    await client.user_cluster_delete(102, 970)
    request = fake_ta.last()
    assert request.method == "POST"
    assert request.path == "/open/user-cluster-delete"
    assert request.param("projectId") == "102"
    assert request.param("clusterId") == "970"


async def test_delete_by_name(client: TAClient, fake_ta: FakeTA) -> None:
    await client.delete_user_cluster_by_name(102, "recent_7_days_consume")
    request = fake_ta.last()
    assert request.method == "POST"
    assert request.path == "/open/delete-user-cluster-by-name"
    assert request.param("clusterName") == "recent_7_days_consume"


async def test_list_returns_page(client: TAClient, fake_ta: FakeTA) -> None:
    body = ClusterListRequest.model_validate(load_example("list.request"))
    page = await client.user_cluster_list(body)
    request = fake_ta.last()
    assert isinstance(page, ClusterList)
    assert page.pagerResult.totalNum == 2
    assert [entry.id for entry in page.userClusters] == [905, 183]
    assert request.method == "POST"
    assert request.path == "/open/user-cluster-list"
    assert request.json() == load_example("list.request")


async def test_refresh_by_id(client: TAClient, fake_ta: FakeTA) -> None:
    await client.user_cluster_refresh(102, 970)
    request = fake_ta.last()
    assert request.method == "POST"
    assert request.path == "/open/user-cluster-refresh"
    assert request.param("clusterId") == "970"


async def test_refresh_by_name(client: TAClient, fake_ta: FakeTA) -> None:
    await client.user_cluster_refresh_by_name(102, "recent_7_days_consume")
    request = fake_ta.last()
    assert request.method == "POST"
    assert request.path == "/open/user-cluster-refresh-by-name"
    assert request.param("clusterName") == "recent_7_days_consume"


async def test_progress_by_id(client: TAClient, fake_ta: FakeTA) -> None:
    progress = await client.user_cluster_refresh_progress(102, 970)
    request = fake_ta.last()
    assert isinstance(progress, RefreshProgress)
    assert progress.progress == 80
    assert request.method == "GET"
    assert request.path == "/open/user-cluster-refresh-progress"
    assert request.param("clusterId") == "970"


async def test_progress_by_name(client: TAClient, fake_ta: FakeTA) -> None:
    progress = await client.user_cluster_refresh_progress_by_name(102, "a_b")
    request = fake_ta.last()
    assert progress.progress == 80
    assert request.method == "GET"
    assert request.path == "/open/user-cluster-refresh-progress-by-name"
    assert request.param("clusterName") == "a_b"


async def test_import_add_uploads_csv(client: TAClient, fake_ta: FakeTA) -> None:
    query = ImportAddQuery(
        projectId=102, displayName="buyers", mainColumnName="#account_id"
    )
    ids = ["j77639", "h84497", "g119426", "e154284", "f175355"]
    outcome = await client.import_id_cluster_add(query, IdSource.from_ids(ids))
    request = fake_ta.last()
    assert isinstance(outcome, UploadOutcome)
    assert outcome.result is not None
    assert outcome.result.clusterId == 1889
    assert outcome.result.userNum == 5
    assert outcome.rows_sent == 5
    assert outcome.bytes_sent == len(request.body)
    assert request.method == "POST"
    assert request.path == "/open/import-id-cluster-add"
    assert request.headers["content-type"] == "text/csv"
    assert request.body == b"j77639\nh84497\ng119426\ne154284\nf175355\n"
    assert request.param("projectId") == "102"
    assert request.param("displayName") == "buyers"
    assert request.param("mainColumnName") == "#account_id"
    assert "clusterName" not in request.query


async def test_import_add_tag_pairs(client: TAClient, fake_ta: FakeTA) -> None:
    query = ImportAddQuery(
        projectId=102,
        displayName="tier",
        mainColumnName="#account_id",
        clusterCatalog="catalog_tag",
        clusterName="tier_tag",
    )
    ids = IdSource.from_pairs([("a1", "gold"), ("a2", None)])
    await client.import_id_cluster_add(query, ids)
    request = fake_ta.last()
    assert request.body == b"a1,gold\na2,\n"
    assert request.param("clusterCatalog") == "catalog_tag"
    assert request.param("clusterName") == "tier_tag"


async def test_import_modify_empty_data(client: TAClient, fake_ta: FakeTA) -> None:
    query = ImportModifyQuery(projectId=102, clusterId=1889, remarks="weekly")
    outcome = await client.import_id_cluster_modify(query, IdSource.from_ids(["x"]))
    request = fake_ta.last()
    assert outcome.result is None
    assert outcome.rows_sent == 1
    assert request.path == "/open/import-id-cluster-modify"
    assert request.param("clusterId") == "1889"
    assert request.param("remarks") == "weekly"
    assert "displayName" not in request.query


async def test_import_modify_returns_counts(client: TAClient, fake_ta: FakeTA) -> None:
    fake_ta.program(
        "import-id-cluster-modify",
        envelope({"clusterId": 1889, "uploadNum": 1, "userNum": 1}),
    )
    query = ImportModifyQuery(projectId=102, clusterId=1889)
    outcome = await client.import_id_cluster_modify(query, IdSource.from_ids(["x"]))
    assert outcome.result is not None
    assert outcome.result.uploadNum == 1


async def test_import_modify_by_name(client: TAClient, fake_ta: FakeTA) -> None:
    query = ImportModifyByNameQuery(
        projectId=102, clusterName="buyers", mainColumnName="#distinct_id"
    )
    await client.import_id_cluster_modify_by_name(query, IdSource.from_ids(["x"]))
    request = fake_ta.last()
    assert request.path == "/open/import-id-cluster-modify-by-name"
    assert request.param("clusterName") == "buyers"
    assert request.param("mainColumnName") == "#distinct_id"


async def test_user_agent_names_package(client: TAClient, fake_ta: FakeTA) -> None:
    await client.user_cluster_refresh(102, 970)
    assert fake_ta.last().headers["user-agent"].startswith("ta-cohort-mcp/")


async def test_call_logs_one_info_line(
    client: TAClient, fake_ta: FakeTA, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await client.user_cluster_detail(102, cluster_id=970)
    records = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert len(records) == 1
    assert records[0].name == "ta_cohort_mcp.client"
    message = records[0].getMessage()
    assert message.startswith("user-cluster-detail projectId=102 clusterId=970")
    assert "return_code=0" in message
    assert message.endswith(" ms")


async def test_debug_logs_body_sizes(
    client: TAClient, fake_ta: FakeTA, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="ta_cohort_mcp")
    await client.user_cluster_add(add_body())
    sent = len(fake_ta.last().body)
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert f"user-cluster-add: sending {sent} bytes" in debug
    assert any(line.startswith("user-cluster-add: HTTP 200, ") for line in debug)


async def test_base_url_path_prefix(fake_ta: FakeTA) -> None:
    async with TAClient(f"{fake_ta.base_url}/ta/", TOKEN) as client:
        await client.user_cluster_refresh(102, 970)
    assert fake_ta.last().path == "/ta/open/user-cluster-refresh"


async def test_custom_transport_used() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"return_code": 0, "data": {"progress": 100}})

    transport = httpx.MockTransport(handle)
    async with TAClient("http://ta.invalid:8992", TOKEN, transport=transport) as client:
        progress = await client.user_cluster_refresh_progress(102, 970)
    assert progress.progress == 100
    assert len(seen) == 1
    assert seen[0].url.host == "ta.invalid"
    assert seen[0].url.params["clusterId"] == "970"
