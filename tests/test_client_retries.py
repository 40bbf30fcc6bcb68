"""Retry rules: reads retry, writes are never re-sent once they may have arrived."""

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from client_fixtures import FakeTA, Reply
from reference_examples import load_example

from ta_cohort_mcp.client import (
    IdSource,
    TAClient,
    TAConnectionError,
    TAHTTPError,
    TARateLimitError,
    TATimeoutError,
    TAWriteUncertainError,
)
from ta_cohort_mcp.client.retry import BACKOFF_BASE, backoff_wait, parse_retry_after
from ta_cohort_mcp.models import ClusterAddRequest, ClusterListRequest, ImportAddQuery

pytestmark = pytest.mark.anyio

TOKEN = "retry-test-token"


class RecordingClient(TAClient):
    """A TAClient whose waits before a retry are recorded, then skipped."""

    waits: list[float]

    async def _sleep(self, seconds: float) -> None:
        self.waits.append(seconds)


def recording_client(base_url: str, **options: float) -> RecordingClient:
    settings: dict[str, float] = {"timeout": 0.5, "max_retry_wait": 10.0, **options}
    client = RecordingClient(base_url, TOKEN, **settings)  # type: ignore[arg-type]
    client.waits = []
    return client


@pytest.fixture
async def client(fake_ta: FakeTA) -> AsyncIterator[RecordingClient]:
    async with recording_client(fake_ta.base_url) as ta:
        yield ta


def add_body() -> ClusterAddRequest:
    return ClusterAddRequest.model_validate(load_example("add-cluster.request"))


async def test_read_retried_after_500(client: RecordingClient, fake_ta: FakeTA) -> None:
    fake_ta.program("user-cluster-detail", Reply(status=500, body="boom"))
    detail = await client.user_cluster_detail(102, cluster_id=970)
    assert detail.id == 970
    assert fake_ta.count("user-cluster-detail") == 2
    assert len(client.waits) == 1
    assert 0 < client.waits[0] <= BACKOFF_BASE


async def test_read_retried_after_timeout(
    client: RecordingClient, fake_ta: FakeTA
) -> None:
    fake_ta.program("user-cluster-refresh-progress", Reply(hang=True))
    progress = await client.user_cluster_refresh_progress(102, 970)
    assert progress.progress == 80
    assert fake_ta.count("user-cluster-refresh-progress") == 2


async def test_list_retried_after_drop(
    client: RecordingClient, fake_ta: FakeTA
) -> None:
    fake_ta.program("user-cluster-list", Reply(drop=True))
    body = ClusterListRequest.model_validate(load_example("list.request"))
    page = await client.user_cluster_list(body)
    assert page.pagerResult.totalNum == 2
    assert fake_ta.count("user-cluster-list") == 2


async def test_read_gives_up_after_retries(fake_ta: FakeTA) -> None:
    fake_ta.program("user-cluster-detail", *[Reply(status=503, body="x")] * 3)
    async with recording_client(fake_ta.base_url, read_retries=2) as client:
        with pytest.raises(TAHTTPError) as caught:
            await client.user_cluster_detail(102, cluster_id=970)
    assert caught.value.status_code == 503
    assert "3 attempts failed" in str(caught.value)
    assert fake_ta.count("user-cluster-detail") == 3
    assert len(client.waits) == 2


async def test_backoff_doubles_up_to_cap(fake_ta: FakeTA) -> None:
    fake_ta.program("user-cluster-detail", *[Reply(status=500, body="x")] * 4)
    async with recording_client(
        fake_ta.base_url, read_retries=4, max_retry_wait=1.5
    ) as client:
        await client.user_cluster_detail(102, cluster_id=970)
    caps = [0.5, 1.0, 1.5, 1.5]
    assert len(client.waits) == 4
    for wait, cap in zip(client.waits, caps, strict=True):
        assert cap / 2 <= wait <= cap


async def test_retry_after_seconds_honoured(
    client: RecordingClient, fake_ta: FakeTA
) -> None:
    limited = Reply(status=429, body="slow down", headers={"Retry-After": "3"})
    fake_ta.program("user-cluster-detail", limited)
    await client.user_cluster_detail(102, cluster_id=970)
    assert client.waits == [3.0]
    assert fake_ta.count("user-cluster-detail") == 2


async def test_retry_after_date_honoured(
    client: RecordingClient, fake_ta: FakeTA
) -> None:
    moment = datetime.now(UTC) + timedelta(seconds=5)
    limited = Reply(
        status=503,
        body="busy",
        headers={"Retry-After": format_datetime(moment, usegmt=True)},
    )
    fake_ta.program("user-cluster-detail", limited)
    await client.user_cluster_detail(102, cluster_id=970)
    assert len(client.waits) == 1
    assert 3.0 <= client.waits[0] <= 5.0


async def test_retry_after_over_cap_raises(
    client: RecordingClient, fake_ta: FakeTA
) -> None:
    limited = Reply(status=429, body="later", headers={"Retry-After": "600"})
    fake_ta.program("user-cluster-detail", limited)
    with pytest.raises(TARateLimitError) as caught:
        await client.user_cluster_detail(102, cluster_id=970)
    error = caught.value
    assert error.retry_after == 600.0
    assert error.status_code == 429
    assert "600 s" in str(error)
    assert "max_retry_wait" in str(error)
    assert client.waits == []
    assert fake_ta.count("user-cluster-detail") == 1


async def test_rate_limit_twice_then_ok(
    client: RecordingClient, fake_ta: FakeTA
) -> None:
    limited = Reply(status=429, body="x", headers={"Retry-After": "2"})
    fake_ta.program("user-cluster-detail", limited, limited)
    await client.user_cluster_detail(102, cluster_id=970)
    assert client.waits == [2.0, 2.0]
    assert fake_ta.count("user-cluster-detail") == 3


async def test_timed_out_add_sent_once(
    client: RecordingClient, fake_ta: FakeTA
) -> None:
    fake_ta.program("user-cluster-add", Reply(hang=True))
    with pytest.raises(TAWriteUncertainError) as caught:
        await client.user_cluster_add(add_body())
    error = caught.value
    assert fake_ta.count("user-cluster-add") == 1
    assert client.waits == []
    assert error.endpoint == "user-cluster-add"
    assert isinstance(error.__cause__, TATimeoutError)
    assert "may or may not" in str(error)
    assert "user_cluster_detail(102, cluster_name='recent_7_days_consume')" in str(
        error
    )
    assert error.check_hint in str(error)


async def test_write_500_is_uncertain(client: RecordingClient, fake_ta: FakeTA) -> None:
    fake_ta.program("user-cluster-delete", Reply(status=500, body="x"))
    with pytest.raises(TAWriteUncertainError) as caught:
        await client.user_cluster_delete(102, 970)
    assert isinstance(caught.value.__cause__, TAHTTPError)
    assert "does not exist means it was deleted" in caught.value.check_hint
    assert fake_ta.count("user-cluster-delete") == 1


async def test_write_drop_is_uncertain(
    client: RecordingClient, fake_ta: FakeTA
) -> None:
    fake_ta.program("user-cluster-refresh", Reply(drop=True))
    with pytest.raises(TAWriteUncertainError) as caught:
        await client.user_cluster_refresh(102, 970)
    assert isinstance(caught.value.__cause__, TAConnectionError)
    assert "user_cluster_refresh_progress(102, 970)" in caught.value.check_hint
    assert fake_ta.count("user-cluster-refresh") == 1


async def test_write_429_not_resent(client: RecordingClient, fake_ta: FakeTA) -> None:
    limited = Reply(status=429, body="x", headers={"Retry-After": "1"})
    fake_ta.program("user-cluster-add", limited)
    with pytest.raises(TARateLimitError) as caught:
        await client.user_cluster_add(add_body())
    assert caught.value.retry_after == 1.0
    assert "not applied" in str(caught.value)
    assert client.waits == []
    assert fake_ta.count("user-cluster-add") == 1


async def test_upload_timeout_is_uncertain(
    client: RecordingClient, fake_ta: FakeTA
) -> None:
    fake_ta.program("import-id-cluster-add", Reply(hang=True))
    query = ImportAddQuery(projectId=102, displayName="d", mainColumnName="#account_id")
    with pytest.raises(TAWriteUncertainError) as caught:
        await client.import_id_cluster_add(query, IdSource.from_ids(["a", "b"]))
    assert "user_cluster_list" in caught.value.check_hint
    assert fake_ta.count("import-id-cluster-add") == 1


async def test_write_retried_after_refused(refused_url: str) -> None:
    """A refused connection sent nothing, so the add is sent once the port listens."""
    port = int(refused_url.rsplit(":", 1)[1])
    server = FakeTA()

    class StartServerOnWait(RecordingClient):
        async def _sleep(self, seconds: float) -> None:
            self.waits.append(seconds)
            if server.base_url == "":
                await server.start(port)

    client = StartServerOnWait(refused_url, TOKEN, max_retry_wait=0.01)
    client.waits = []
    try:
        async with client:
            cluster_id = await client.user_cluster_add(add_body())
    finally:
        if server.base_url:
            await server.stop()
    assert cluster_id == 970
    assert len(client.waits) == 1
    assert server.count("user-cluster-add") == 1


async def test_upload_retried_after_refused(refused_url: str) -> None:
    port = int(refused_url.rsplit(":", 1)[1])
    server = FakeTA()

    class StartServerOnWait(RecordingClient):
        async def _sleep(self, seconds: float) -> None:
            self.waits.append(seconds)
            if server.base_url == "":
                await server.start(port)

    client = StartServerOnWait(refused_url, TOKEN, max_retry_wait=0.01)
    client.waits = []
    query = ImportAddQuery(projectId=102, displayName="d", mainColumnName="#account_id")
    try:
        async with client:
            outcome = await client.import_id_cluster_add(
                query, IdSource.from_ids(["a", "a", "b"])
            )
    finally:
        if server.base_url:
            await server.stop()
    assert server.last().body == b"a\nb\n"
    assert outcome.rows_sent == 2
    assert outcome.duplicates_dropped == 1


async def test_refused_write_gives_up(refused_url: str) -> None:
    async with recording_client(refused_url, read_retries=2) as client:
        with pytest.raises(TAConnectionError) as caught:
            await client.user_cluster_refresh(102, 970)
    assert "3 attempts failed" in str(caught.value)
    assert len(client.waits) == 2


async def test_retry_logged_as_warning(
    client: RecordingClient, fake_ta: FakeTA, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    fake_ta.program("user-cluster-detail", Reply(status=502, body="x"))
    await client.user_cluster_detail(102, cluster_id=970)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "user-cluster-detail projectId=102 clusterId=970: TAHTTPError" in warnings[0]
    assert "retry 1 of 3" in warnings[0]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        ("1.5", 1.5),
        ("-3", None),
        ("inf", None),
        ("soon", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
        ("Fri, 04 Dec 2026 10:00:30 GMT", 30.0),
    ],
)
def test_parse_retry_after(header: str, expected: float | None) -> None:
    now = datetime(2026, 12, 4, 10, 0, 0, tzinfo=UTC)
    assert parse_retry_after(header, now) == expected


def test_parse_retry_after_absent() -> None:
    assert parse_retry_after(None) is None


def test_backoff_wait_within_cap() -> None:
    for retry_index in range(8):
        wait = backoff_wait(retry_index, 2.0)
        cap = min(2.0, BACKOFF_BASE * 2**retry_index)
        assert cap / 2 <= wait <= cap
