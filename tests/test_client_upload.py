"""Id upload cleaning and streaming: BOM, line ends, blanks, repeats, files, pairs."""

import gc
import logging
import warnings
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from client_fixtures import FakeTA

from ta_cohort_mcp.client import IdSource, TAClient, TAUsageError, UploadOutcome
from ta_cohort_mcp.client.upload import CHUNK_SIZE, UploadStream
from ta_cohort_mcp.models import ImportAddQuery, ImportModifyQuery

pytestmark = pytest.mark.anyio

TOKEN = "upload-test-token"
CLUSTER_QUERY = ImportAddQuery(
    projectId=102, displayName="d", mainColumnName="#account_id"
)
TAG_QUERY = ImportAddQuery(
    projectId=102,
    displayName="t",
    mainColumnName="#account_id",
    clusterCatalog="catalog_tag",
)


@pytest.fixture
async def client(fake_ta: FakeTA) -> AsyncIterator[TAClient]:
    async with TAClient(fake_ta.base_url, TOKEN) as ta:
        yield ta


async def upload_file(
    client: TAClient, path: Path, *, with_values: bool = False
) -> UploadOutcome:
    query = TAG_QUERY if with_values else CLUSTER_QUERY
    source = IdSource.from_file(path, with_values=with_values)
    return await client.import_id_cluster_add(query, source)


async def test_file_cleaned_before_sending(
    client: TAClient, fake_ta: FakeTA, tmp_path: Path
) -> None:
    path = tmp_path / "ids.csv"
    path.write_bytes(b"\xef\xbb\xbfa1\r\n  a2  \r\n\r\n\ra3\ra1\n\t\n a4")
    outcome = await upload_file(client, path)
    assert fake_ta.last().body == b"a1\na2\na3\na4\n"
    assert outcome.rows_read == 8
    assert outcome.rows_sent == 4
    assert outcome.blank_dropped == 3
    assert outcome.duplicates_dropped == 1
    assert outcome.bytes_sent == 12


async def test_bom_only_at_start_removed(
    client: TAClient, fake_ta: FakeTA, tmp_path: Path
) -> None:
    path = tmp_path / "ids.csv"
    path.write_text("\ufeffa\nb\n", encoding="utf-8")
    await upload_file(client, path)
    assert fake_ta.last().body == b"a\nb\n"


async def test_ids_list_cleaned(client: TAClient, fake_ta: FakeTA) -> None:
    source = IdSource.from_ids(["\ufeffx", " y ", "", "x", "z\r\n"])
    outcome = await client.import_id_cluster_add(CLUSTER_QUERY, source)
    assert fake_ta.last().body == b"x\ny\nz\n"
    assert outcome.blank_dropped == 1
    assert outcome.duplicates_dropped == 1


async def test_tag_file_pairs(
    client: TAClient, fake_ta: FakeTA, tmp_path: Path
) -> None:
    path = tmp_path / "tags.csv"
    path.write_text("u1, gold \r\nu2\r\n ,silver\r\nu1,bronze\r\nu3,a,b\r\n", "utf-8")
    outcome = await upload_file(client, path, with_values=True)
    assert fake_ta.last().body == b"u1,gold\nu2,\nu3,a,b\n"
    assert outcome.missing_id_dropped == 1
    assert outcome.duplicates_dropped == 1
    assert outcome.rows_sent == 3


async def test_pairs_dedupe_by_id(client: TAClient, fake_ta: FakeTA) -> None:
    source = IdSource.from_pairs([("u1", "gold"), (" u1 ", "silver"), ("u2", "gold")])
    outcome = await client.import_id_cluster_add(TAG_QUERY, source)
    assert fake_ta.last().body == b"u1,gold\nu2,gold\n"
    assert outcome.duplicates_dropped == 1


async def test_empty_file_rejected_before_request(
    client: TAClient, fake_ta: FakeTA, tmp_path: Path
) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"\xef\xbb\xbf\r\n  \r\n\n")
    with pytest.raises(TAUsageError) as caught:
        await upload_file(client, path)
    assert "no ids to upload" in str(caught.value)
    assert "'empty.csv'" in str(caught.value)
    assert fake_ta.received == []
    assert fake_ta.incomplete == 0


async def test_zero_byte_file_rejected(
    client: TAClient, fake_ta: FakeTA, tmp_path: Path
) -> None:
    path = tmp_path / "zero.csv"
    path.write_bytes(b"")
    with pytest.raises(TAUsageError):
        await upload_file(client, path)
    assert fake_ta.received == []


async def test_empty_list_rejected(client: TAClient, fake_ta: FakeTA) -> None:
    query = ImportModifyQuery(projectId=102, clusterId=1)
    with pytest.raises(TAUsageError):
        await client.import_id_cluster_modify(query, IdSource.from_ids([" ", ""]))
    assert fake_ta.received == []


async def test_invalid_utf8_rejected_before_request(
    client: TAClient, fake_ta: FakeTA, tmp_path: Path
) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"a\nb\nc\xe9\nd\n")
    with pytest.raises(TAUsageError) as caught:
        await upload_file(client, path)
    assert "not valid UTF-8 near line 3" in str(caught.value)
    assert fake_ta.received == []


async def test_file_removed_after_source_built(
    client: TAClient, fake_ta: FakeTA, tmp_path: Path
) -> None:
    path = tmp_path / "gone.csv"
    path.write_text("a\n", "utf-8")
    source = IdSource.from_file(path)
    path.unlink()
    with pytest.raises(TAUsageError) as caught:
        await client.import_id_cluster_add(CLUSTER_QUERY, source)
    assert "cannot read id file" in str(caught.value)
    assert fake_ta.received == []


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(TAUsageError) as caught:
        IdSource.from_file(tmp_path)
    assert "is not a file" in str(caught.value)


async def test_large_file_streamed_in_chunks(
    client: TAClient, fake_ta: FakeTA, tmp_path: Path
) -> None:
    path = tmp_path / "big.csv"
    count = 60_000
    with path.open("w", encoding="utf-8", newline="") as handle:
        for number in range(count):
            handle.write(f"user{number:06d}\r\n")
    outcome = await upload_file(client, path)
    request = fake_ta.last()
    assert request.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in request.headers
    assert outcome.rows_sent == count
    assert outcome.bytes_sent == count * 11
    assert len(request.body) == count * 11
    assert request.body.startswith(b"user000000\nuser000001\n")
    assert outcome.bytes_sent > 3 * CHUNK_SIZE


async def test_stream_chunks_bounded() -> None:
    source = IdSource.from_ids([f"id{number:07d}" for number in range(30_000)])
    stream = UploadStream(source)
    await stream.start()
    sizes = [len(chunk) async for chunk in stream.chunks()]
    assert len(sizes) > 1
    assert max(sizes) < CHUNK_SIZE + 100
    assert stream.rows_sent == 30_000


async def test_chunks_before_start_fails() -> None:
    stream = UploadStream(IdSource.from_ids(["a"]))
    with pytest.raises(RuntimeError):
        async for _chunk in stream.chunks():
            pass


@pytest.mark.parametrize("ids", ["abc", b"abc"])
def test_single_string_rejected(ids: str) -> None:
    with pytest.raises(TAUsageError) as caught:
        IdSource.from_ids(ids)
    assert "from_file" in str(caught.value)


@pytest.mark.parametrize(
    ("pairs", "problem"),
    [
        ([("a,b", "v")], "comma"),
        ([("a\nb", "v")], "line break"),
        ([("a", "v\r1")], "line break"),
        ([(1, "v")], "must be a string"),
    ],
)
def test_bad_pairs_rejected(pairs: list[tuple[str, str]], problem: str) -> None:
    with pytest.raises(TAUsageError) as caught:
        IdSource.from_pairs(pairs)
    assert problem in str(caught.value)


def test_id_with_line_break_rejected() -> None:
    with pytest.raises(TAUsageError) as caught:
        IdSource.from_ids(["a", "b\nc"])
    assert "ids[1]" in str(caught.value)


def test_source_repr_names_kind(tmp_path: Path) -> None:
    path = tmp_path / "ids.csv"
    path.write_text("a\n", "utf-8")
    assert (
        repr(IdSource.from_file(path)) == "IdSource(file 'ids.csv', with_values=False)"
    )
    assert repr(IdSource.from_ids(["a", "b"])) == "IdSource(2 ids, with_values=False)"


async def test_cancelled_upload_closes_file(
    client: TAClient, fake_ta: FakeTA, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A call cancelled while the body is sent closes the id file and logs it."""
    caplog.set_level(logging.INFO, logger="ta_cohort_mcp")
    path = tmp_path / "ids.csv"
    path.write_bytes(b"".join(b"id%08d\n" % number for number in range(800_000)))
    fake_ta.stall_bodies.add("import-id-cluster-add")
    with anyio.move_on_after(0.5) as scope:
        await upload_file(client, path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    assert scope.cancelled_caught
    assert fake_ta.stalled == 1
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
    assert "interrupted" in caplog.records[-1].getMessage()
    detail = await client.user_cluster_detail(102, cluster_id=970)
    assert detail.id == 970
