"""A canary token never appears in an error, a chained error, a traceback or a log."""

import logging
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import pytest
from client_fixtures import FakeTA, Reply, envelope
from reference_examples import load_example

from ta_cohort_mcp.client import IdSource, TAClient, TAError, TAWriteUncertainError
from ta_cohort_mcp.models import ClusterAddRequest, ImportAddQuery

pytestmark = pytest.mark.anyio

CANARY = "CANARY+tok/en=7Q9x"
CANARY_FORMS = {CANARY, quote(CANARY), quote(CANARY, safe=""), quote_plus(CANARY)}

Call = Callable[[TAClient], Awaitable[Any]]


def add_body() -> ClusterAddRequest:
    return ClusterAddRequest.model_validate(load_example("add-cluster.request"))


async def detail(client: TAClient) -> Any:
    return await client.user_cluster_detail(102, cluster_id=970)


async def add(client: TAClient) -> Any:
    return await client.user_cluster_add(add_body())


async def upload(client: TAClient) -> Any:
    query = ImportAddQuery(projectId=102, displayName="d", mainColumnName="#account_id")
    return await client.import_id_cluster_add(query, IdSource.from_ids(["a"]))


def echo(text: str) -> str:
    return text.replace("TOKEN", CANARY)


# (case, endpoint to program, replies, call). Several replies echo the token back,
# as a misconfigured proxy or server might.
SERVER_CASES: list[tuple[str, str, list[Reply], Call]] = [
    (
        "http-401",
        "user-cluster-detail",
        [Reply(status=401, body=echo("bad TOKEN"))],
        detail,
    ),
    (
        "http-500-envelope",
        "user-cluster-detail",
        [Reply(status=500, body={"return_code": -1, "return_message": echo("TOKEN")})]
        * 2,
        detail,
    ),
    ("timeout-read", "user-cluster-detail", [Reply(hang=True)] * 2, detail),
    ("timeout-write", "user-cluster-add", [Reply(hang=True)], add),
    ("drop-write", "user-cluster-add", [Reply(drop=True)], add),
    ("write-500", "import-id-cluster-add", [Reply(status=500, body="x")], upload),
    ("malformed-json", "user-cluster-detail", [Reply(body=echo('{"TOKEN": '))], detail),
    (
        "html",
        "user-cluster-detail",
        [
            Reply(
                body=echo("<html>?token=TOKEN</html>"),
                headers={"Content-Type": "text/html"},
            )
        ],
        detail,
    ),
    (
        "api-error",
        "user-cluster-detail",
        [envelope(code=-1008, message=echo("token TOKEN is invalid"))],
        detail,
    ),
    ("bad-data", "user-cluster-detail", [envelope({"id": echo("TOKEN")})], detail),
    (
        "rate-limit",
        "user-cluster-detail",
        [Reply(status=429, body=echo("TOKEN"), headers={"Retry-After": "900"})],
        detail,
    ),
    (
        "redirect",
        "user-cluster-detail",
        [Reply(status=302, headers={"Location": echo("/login?token=TOKEN")})],
        detail,
    ),
]


def leaks(text: str) -> list[str]:
    return [form for form in CANARY_FORMS if form in text]


def exception_chain(error: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def assert_clean(error: BaseException, records: list[logging.LogRecord]) -> None:
    formatted = "".join(traceback.format_exception(error))
    assert leaks(formatted) == []
    for link in exception_chain(error):
        assert not isinstance(link, httpx.HTTPError)
        assert leaks(str(link)) == []
        assert leaks(repr(link)) == []
        assert leaks(repr(vars(link))) == []
    for record in records:
        assert leaks(record.getMessage()) == []
        assert leaks(record.exc_text or "") == []


@pytest.mark.parametrize(
    ("endpoint", "replies", "call"),
    [case[1:] for case in SERVER_CASES],
    ids=[case[0] for case in SERVER_CASES],
)
async def test_token_absent_from_errors(
    fake_ta: FakeTA,
    caplog: pytest.LogCaptureFixture,
    endpoint: str,
    replies: list[Reply],
    call: Call,
) -> None:
    caplog.set_level(logging.DEBUG)
    fake_ta.program(endpoint, *replies)
    async with TAClient(
        fake_ta.base_url, CANARY, timeout=0.3, read_retries=1, max_retry_wait=0.01
    ) as client:
        with pytest.raises(TAError) as caught:
            await call(client)
    assert fake_ta.last().param("token") == CANARY
    assert_clean(caught.value, caplog.records)
    assert len(caplog.records) >= 1


async def test_token_absent_when_refused(
    refused_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with TAClient(
        refused_url, CANARY, read_retries=1, max_retry_wait=0.01
    ) as client:
        for call in (detail, add, upload):
            with pytest.raises(TAError) as caught:
                await call(client)
            assert_clean(caught.value, caplog.records)


async def test_token_absent_from_usage_errors(
    fake_ta: FakeTA, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    empty = tmp_path / "empty.csv"
    empty.write_text("\n", "utf-8")
    query = ImportAddQuery(projectId=102, displayName="d", mainColumnName="#account_id")
    async with TAClient(fake_ta.base_url, CANARY) as client:
        with pytest.raises(TAError) as caught:
            await client.import_id_cluster_add(query, IdSource.from_file(empty))
        assert_clean(caught.value, caplog.records)
        with pytest.raises(TAError) as caught:
            await client.user_cluster_detail(102)
        assert_clean(caught.value, caplog.records)


async def test_token_absent_from_success_logs(
    fake_ta: FakeTA, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with TAClient(fake_ta.base_url, CANARY) as client:
        await detail(client)
        await add(client)
        await upload(client)
    assert len(caplog.records) >= 3
    for record in caplog.records:
        assert leaks(record.getMessage()) == []


async def test_uncertain_cause_is_sanitized(fake_ta: FakeTA) -> None:
    fake_ta.program("user-cluster-add", Reply(hang=True))
    async with TAClient(fake_ta.base_url, CANARY, timeout=0.3) as client:
        with pytest.raises(TAWriteUncertainError) as caught:
            await add(client)
    cause = caught.value.__cause__
    assert isinstance(cause, TAError)
    assert cause.__cause__ is None
    assert cause.__context__ is None
    assert caught.value.__context__ is None


def test_repr_hides_token() -> None:
    client = TAClient("http://127.0.0.1:8992", CANARY)
    assert leaks(repr(client)) == []
    assert leaks(str(client)) == []
    assert "127.0.0.1:8992" in repr(client)


def test_http_loggers_silenced() -> None:
    logging.getLogger("httpx").setLevel(logging.DEBUG)
    logging.getLogger("httpcore").setLevel(logging.NOTSET)
    TAClient("http://127.0.0.1:8992", CANARY)
    assert logging.getLogger("httpx").level == logging.WARNING
    assert logging.getLogger("httpcore").level == logging.WARNING
