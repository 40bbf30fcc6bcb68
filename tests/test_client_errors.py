"""The error each failure raises, with its attributes and what its message names."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from client_fixtures import FakeTA, Reply, envelope
from reference_examples import load_example

from ta_cohort_mcp.client import (
    IdSource,
    TAAPIError,
    TAClient,
    TAConnectionError,
    TAError,
    TAHTTPError,
    TAResponseFormatError,
    TATimeoutError,
    TAUsageError,
)
from ta_cohort_mcp.models import (
    ClusterAddRequest,
    ClusterUpdateRequest,
    ImportAddQuery,
    ImportModifyQuery,
)

pytestmark = pytest.mark.anyio

TOKEN = "errors-test-token"


@pytest.fixture
async def client(fake_ta: FakeTA) -> AsyncIterator[TAClient]:
    async with TAClient(
        fake_ta.base_url, TOKEN, read_retries=0, timeout=0.5, max_retry_wait=0.01
    ) as ta:
        yield ta


async def test_api_error_carries_code(client: TAClient, fake_ta: FakeTA) -> None:
    fake_ta.program("user-cluster-detail", Reply(body=load_example("error.response")))
    with pytest.raises(TAAPIError) as caught:
        await client.user_cluster_detail(102, cluster_id=970)
    error = caught.value
    assert error.return_code == -1008
    assert error.server_message == "The parameter (token) is empty"
    assert error.endpoint == "user-cluster-detail"
    assert "-1008" in str(error)
    assert "token" in str(error)


async def test_api_error_not_retried(fake_ta: FakeTA) -> None:
    fake_ta.program("user-cluster-detail", envelope(code=-1, message="no cluster"))
    async with TAClient(fake_ta.base_url, TOKEN, max_retry_wait=0.01) as client:
        with pytest.raises(TAAPIError):
            await client.user_cluster_detail(102, cluster_id=1)
    assert fake_ta.count("user-cluster-detail") == 1


async def test_refused_is_connection_error(refused_url: str) -> None:
    async with TAClient(refused_url, TOKEN, read_retries=0) as client:
        with pytest.raises(TAConnectionError) as caught:
            await client.user_cluster_detail(102, cluster_id=970)
    error = caught.value
    assert error.endpoint == "user-cluster-detail"
    assert refused_url in str(error)
    assert "base URL" in str(error)


async def test_hang_is_timeout_error(client: TAClient, fake_ta: FakeTA) -> None:
    fake_ta.program("user-cluster-detail", Reply(hang=True))
    with pytest.raises(TATimeoutError) as caught:
        await client.user_cluster_detail(102, cluster_id=970)
    assert caught.value.endpoint == "user-cluster-detail"
    assert "0.5 s" in str(caught.value)


async def test_dropped_is_connection_error(client: TAClient, fake_ta: FakeTA) -> None:
    fake_ta.program("user-cluster-detail", Reply(drop=True))
    with pytest.raises(TAConnectionError) as caught:
        await client.user_cluster_detail(102, cluster_id=970)
    assert "during the request" in str(caught.value)


@pytest.mark.parametrize(
    ("status", "hint"),
    [(401, "token"), (403, "token"), (404, "base URL"), (302, "redirects"), (400, "")],
)
async def test_status_is_http_error(
    client: TAClient, fake_ta: FakeTA, status: int, hint: str
) -> None:
    headers = {"Location": "https://ta.example/login?next=x"} if status == 302 else {}
    fake_ta.program(
        "user-cluster-detail", Reply(status=status, body="no", headers=headers)
    )
    with pytest.raises(TAHTTPError) as caught:
        await client.user_cluster_detail(102, cluster_id=970)
    error = caught.value
    assert error.status_code == status
    assert error.endpoint == "user-cluster-detail"
    assert f"HTTP {status}" in str(error)
    assert hint in str(error)


async def test_redirect_hides_query(client: TAClient, fake_ta: FakeTA) -> None:
    location = "https://ta.example/login?next=x"
    fake_ta.program(
        "user-cluster-detail", Reply(status=302, headers={"Location": location})
    )
    with pytest.raises(TAHTTPError) as caught:
        await client.user_cluster_detail(102, cluster_id=970)
    assert "next=x" not in str(caught.value)


async def test_server_error_includes_envelope(
    client: TAClient, fake_ta: FakeTA
) -> None:
    body = {"return_code": -2, "return_message": "database down"}
    fake_ta.program("user-cluster-detail", Reply(status=500, body=body))
    with pytest.raises(TAHTTPError) as caught:
        await client.user_cluster_detail(102, cluster_id=970)
    assert caught.value.status_code == 500
    assert "database down" in str(caught.value)
    assert "-2" in str(caught.value)


async def test_html_is_format_error(client: TAClient, fake_ta: FakeTA) -> None:
    page = Reply(
        body="<!doctype html><title>TA</title>", headers={"Content-Type": "text/html"}
    )
    fake_ta.program("user-cluster-detail", page)
    with pytest.raises(TAResponseFormatError) as caught:
        await client.user_cluster_detail(102, cluster_id=970)
    assert "HTML" in str(caught.value)
    assert "base URL" in str(caught.value)
    assert caught.value.endpoint == "user-cluster-detail"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("not json at all", "not JSON"),
        ([1, 2], "type list"),
        ({"data": 1}, "without return_code"),
        ({"return_code": "zero"}, "must be an integer"),
    ],
)
async def test_bad_envelope_is_format_error(
    client: TAClient, fake_ta: FakeTA, body: object, problem: str
) -> None:
    fake_ta.program("user-cluster-detail", Reply(body=body))
    with pytest.raises(TAResponseFormatError) as caught:
        await client.user_cluster_detail(102, cluster_id=970)
    assert problem in str(caught.value)


async def test_bad_data_is_format_error(client: TAClient, fake_ta: FakeTA) -> None:
    fake_ta.program("user-cluster-detail", envelope({"clusterName": "x"}))
    with pytest.raises(TAResponseFormatError) as caught:
        await client.user_cluster_detail(102, cluster_id=970)
    assert "ClusterDetail" in str(caught.value)
    assert "id: Field required" in str(caught.value)


async def test_bad_add_data_is_format_error(client: TAClient, fake_ta: FakeTA) -> None:
    fake_ta.program("user-cluster-add", envelope({"id": 1}))
    body = ClusterAddRequest.model_validate(load_example("add-cluster.request"))
    with pytest.raises(TAResponseFormatError) as caught:
        await client.user_cluster_add(body)
    assert "the cluster was created" in str(caught.value)
    assert "cluster_name='recent_7_days_consume'" in str(caught.value)


async def test_bad_upload_data_is_format_error(
    client: TAClient, fake_ta: FakeTA
) -> None:
    fake_ta.program("import-id-cluster-modify", envelope([1, 2]))
    query = ImportModifyQuery(projectId=1, clusterId=2)
    with pytest.raises(TAResponseFormatError) as caught:
        await client.import_id_cluster_modify(query, IdSource.from_ids(["a"]))
    assert "the upload was applied" in str(caught.value)


async def test_detail_needs_one_key(client: TAClient, fake_ta: FakeTA) -> None:
    with pytest.raises(TAUsageError):
        await client.user_cluster_detail(102)
    with pytest.raises(TAUsageError):
        await client.user_cluster_detail(102, cluster_id=1, cluster_name="a")
    assert fake_ta.received == []


@pytest.mark.parametrize("project_id", [-1, True, "102"])
async def test_bad_project_id_rejected(
    client: TAClient, fake_ta: FakeTA, project_id: object
) -> None:
    with pytest.raises(TAUsageError) as caught:
        await client.user_cluster_refresh(project_id, 970)  # type: ignore[arg-type]
    assert "project_id" in str(caught.value)
    assert fake_ta.received == []


async def test_empty_name_rejected(client: TAClient, fake_ta: FakeTA) -> None:
    with pytest.raises(TAUsageError):
        await client.delete_user_cluster_by_name(102, " ")
    assert fake_ta.received == []


async def test_update_project_mismatch(client: TAClient, fake_ta: FakeTA) -> None:
    body = ClusterUpdateRequest.model_validate(load_example("update.request"))
    with pytest.raises(TAUsageError) as caught:
        await client.user_cluster_update_by_name(7, "recent", body)
    assert "body.projectId 102" in str(caught.value)
    assert fake_ta.received == []


async def test_dict_body_rejected(client: TAClient) -> None:
    with pytest.raises(TAUsageError) as caught:
        await client.user_cluster_list({"projectId": 1})  # type: ignore[arg-type]
    assert "ClusterListRequest" in str(caught.value)


async def test_tag_upload_needs_values(client: TAClient, fake_ta: FakeTA) -> None:
    query = ImportAddQuery(
        projectId=1,
        displayName="t",
        mainColumnName="#account_id",
        clusterCatalog="catalog_tag",
    )
    with pytest.raises(TAUsageError) as caught:
        await client.import_id_cluster_add(query, IdSource.from_ids(["a"]))
    assert "from_pairs" in str(caught.value)
    assert fake_ta.received == []


async def test_cluster_upload_rejects_pairs(client: TAClient, fake_ta: FakeTA) -> None:
    query = ImportAddQuery(projectId=1, displayName="t", mainColumnName="#account_id")
    with pytest.raises(TAUsageError):
        await client.import_id_cluster_add(query, IdSource.from_pairs([("a", "b")]))
    assert fake_ta.received == []


@pytest.mark.parametrize(
    "base_url",
    ["127.0.0.1:8992", "ftp://host", "http://h:1/?token=x", "http://u:p@h:1", ""],
)
def test_bad_base_url_rejected(base_url: str) -> None:
    with pytest.raises(TAUsageError):
        TAClient(base_url, TOKEN)


def test_empty_token_rejected() -> None:
    with pytest.raises(TAUsageError) as caught:
        TAClient("http://127.0.0.1:1", "  ")
    assert "token is empty" in str(caught.value)


@pytest.mark.parametrize(
    "options",
    [{"timeout": 0}, {"read_retries": -1}, {"max_retry_wait": -0.5}],
)
def test_bad_option_rejected(options: dict[str, float]) -> None:
    with pytest.raises(TAUsageError):
        TAClient("http://127.0.0.1:1", TOKEN, **options)  # type: ignore[arg-type]


def test_usage_error_is_value_error() -> None:
    assert issubclass(TAUsageError, ValueError)
    assert issubclass(TAUsageError, TAError)


def test_missing_file_rejected(tmp_path: Path) -> None:
    with pytest.raises(TAUsageError) as caught:
        IdSource.from_file(tmp_path / "absent.csv")
    assert "does not exist" in str(caught.value)
