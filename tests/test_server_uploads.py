"""Id uploads from files and the kind of the modified cluster.

Only regular files under the upload directory are opened, and the checked open
file is what gets streamed. The modify tools read a tag's file as id,value rows
and a cluster's file as one id per line, by the kind user_cluster_detail returns.
"""

import io
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.client import Client
from server_fixtures import call, connect, error_kind, structured, text, with_settings

from ta_cohort_mcp.client import IdSource, TAAPIError, TAClient
from ta_cohort_mcp.client.upload import (
    READ_SIZE_HINT,
    IdFileCutShortError,
    IdFileEncodingError,
    UploadStream,
)
from ta_cohort_mcp.config import Settings
from ta_cohort_mcp.models import ImportAddQuery
from ta_cohort_mcp.sandbox import SandboxServer
from ta_cohort_mcp.server.results import ToolFailure
from ta_cohort_mcp.server.tools.upload import file_errors, upload_file
from ta_cohort_mcp.server.uploads import open_upload_file, resolve_upload_path

pytestmark = pytest.mark.anyio


@pytest.fixture
def upload_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "uploads"
    directory.mkdir()
    (directory / "ids.txt").write_text("acc1\nacc2\r\n\nacc3\n", encoding="utf-8")
    (directory / "tag.csv").write_text("acc1,vip\nacc2,gold,extra\n", encoding="utf-8")
    return directory


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "id_rsa"
    path.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n", encoding="utf-8")
    return path


def add_arguments(path: str) -> dict[str, object]:
    return {
        "projectId": 102,
        "displayName": "from file",
        "mainColumnName": "#account_id",
        "path": path,
    }


async def test_file_upload_cluster(server_settings: Settings, upload_dir: Path) -> None:
    settings = with_settings(server_settings, upload_dir=upload_dir)
    async with connect(settings) as client:
        result = await call(client, "import_id_cluster_add", add_arguments("ids.txt"))
    assert not result.is_error, text(result)
    upload = structured(result)["upload"]
    assert upload["rows_sent"] == 3
    assert upload["result"]["userNum"] == 3


async def test_file_upload_tag(server_settings: Settings, upload_dir: Path) -> None:
    settings = with_settings(server_settings, upload_dir=upload_dir)
    arguments = {
        **add_arguments(str(upload_dir / "tag.csv")),
        "clusterCatalog": "catalog_tag",
    }
    async with connect(settings) as client:
        result = await call(client, "import_id_cluster_add", arguments)
    assert not result.is_error, text(result)
    assert structured(result)["upload"]["rows_sent"] == 2


async def test_no_upload_dir_means_inline(
    server_settings: Settings, upload_dir: Path, sandbox: SandboxServer
) -> None:
    before = sandbox.stats.total
    async with connect(server_settings) as client:
        result = await call(
            client, "import_id_cluster_add", add_arguments(str(upload_dir / "ids.txt"))
        )
    assert error_kind(result) == "path_rejected"
    assert "TA_UPLOAD_DIR" in text(result)
    assert sandbox.stats.total == before


def rejected(path: str, upload_dir: Path) -> str:
    with pytest.raises(ToolFailure) as caught:
        resolve_upload_path(path, upload_dir)
    assert caught.value.kind == "path_rejected"
    return caught.value.message


def test_outside_path_rejected(upload_dir: Path, secret_file: Path) -> None:
    assert "outside the upload directory" in rejected(str(secret_file), upload_dir)


def test_dotdot_rejected(upload_dir: Path, secret_file: Path) -> None:
    assert "outside the upload directory" in rejected("../id_rsa", upload_dir)


def test_home_ssh_key_rejected(upload_dir: Path) -> None:
    message = rejected(os.path.expanduser("~/.ssh/id_rsa"), upload_dir)
    assert "outside the upload directory" in message


def test_symlink_out_rejected(upload_dir: Path, secret_file: Path) -> None:
    (upload_dir / "link.txt").symlink_to(secret_file)
    assert "outside the upload directory" in rejected("link.txt", upload_dir)


def test_symlinked_dir_out_rejected(upload_dir: Path, secret_file: Path) -> None:
    (upload_dir / "sub").symlink_to(secret_file.parent)
    assert "outside the upload directory" in rejected("sub/id_rsa", upload_dir)


def test_symlink_inside_allowed(upload_dir: Path) -> None:
    (upload_dir / "alias.txt").symlink_to(upload_dir / "ids.txt")
    assert (
        resolve_upload_path("alias.txt", upload_dir)
        == (upload_dir / "ids.txt").resolve()
    )


def test_directory_rejected(upload_dir: Path) -> None:
    (upload_dir / "folder").mkdir()
    assert "a directory" in rejected("folder", upload_dir)


def test_fifo_rejected(upload_dir: Path) -> None:
    os.mkfifo(upload_dir / "pipe")
    assert "a FIFO" in rejected("pipe", upload_dir)


def test_device_rejected(upload_dir: Path) -> None:
    (upload_dir / "null").symlink_to("/dev/null")
    assert "outside the upload directory" in rejected("null", upload_dir)


def test_device_in_dir_rejected(tmp_path: Path) -> None:
    # /dev itself as the upload directory: its devices are inside, but not files.
    assert "a device" in rejected("null", Path("/dev"))


def test_missing_file_rejected(upload_dir: Path) -> None:
    assert "does not exist" in rejected("nope.txt", upload_dir)


def test_nul_rejected(upload_dir: Path) -> None:
    assert "NUL" in rejected("ids\x00.txt", upload_dir)


def test_open_checks_opened_file(upload_dir: Path) -> None:
    real = resolve_upload_path("ids.txt", upload_dir)
    real.unlink()
    os.mkfifo(real)
    with pytest.raises(ToolFailure, match="not a regular file"):
        open_upload_file(real)


def test_open_rejects_swapped_symlink(upload_dir: Path, secret_file: Path) -> None:
    real = resolve_upload_path("ids.txt", upload_dir)
    real.unlink()
    real.symlink_to(secret_file)
    with pytest.raises(ToolFailure, match="cannot open"):
        open_upload_file(real)


def test_open_rejects_swapped_file(upload_dir: Path) -> None:
    real = resolve_upload_path("ids.txt", upload_dir)
    original = os.lstat(real)
    replacement = upload_dir / "other.txt"
    replacement.write_text("other\n", encoding="utf-8")
    os.replace(replacement, real)
    assert os.lstat(real).st_ino != original.st_ino
    handle = open_upload_file(real)
    with handle:
        assert handle.read() == b"other\n"


def open_fds_of(path: Path) -> list[int]:
    """Return the descriptors of this process that are open on `path`."""
    fds = []
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue
        if target == str(path):
            fds.append(int(name))
    return fds


needs_proc = pytest.mark.skipif(
    not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd"
)


# Streaming from the checked file


async def read_body(source: IdSource) -> bytes:
    """Run one upload pass over `source` and return the body it would send."""
    stream = UploadStream(source)
    try:
        await stream.start()
        return b"".join([chunk async for chunk in stream.chunks()])
    finally:
        await stream.aclose()


async def test_open_file_source_reads_handle(upload_dir: Path) -> None:
    real = resolve_upload_path("ids.txt", upload_dir)
    handle = open_upload_file(real)
    with handle:
        # The path now names another file; the checked one is still open.
        replacement = upload_dir / "swap.txt"
        replacement.write_text("intruder\n", encoding="utf-8")
        os.replace(replacement, real)
        source = IdSource.from_open_file(handle, name="ids.txt")
        first = await read_body(source)
        second = await read_body(source)
    assert first == b"acc1\nacc2\nacc3\n"
    assert second == first


async def test_open_file_source_cleans_rows() -> None:
    data = b"\xef\xbb\xbfa1\r\n  a2  \r\n\r\n\ra3\ra1\n\t\n a4"
    source = IdSource.from_open_file(io.BytesIO(data), name="mem.csv")
    stream = UploadStream(source)
    await stream.start()
    body = b"".join([chunk async for chunk in stream.chunks()])
    assert body == b"a1\na2\na3\na4\n"
    assert stream.rows_read == 8
    assert stream.blank_dropped == 3
    assert stream.duplicates_dropped == 1


async def test_open_file_crlf_across_chunks() -> None:
    # A CR at the end of one read and its LF at the start of the next.
    first_id = "x" * (READ_SIZE_HINT - 1)
    data = f"{first_id}\r\nb\r\n".encode()
    body = await read_body(IdSource.from_open_file(io.BytesIO(data), name="m"))
    assert body == f"{first_id}\nb\n".encode()


async def test_open_file_tag_pairs() -> None:
    data = b"u1, gold \nu2\n ,silver\nu1,bronze\nu3,a,b\n"
    source = IdSource.from_open_file(io.BytesIO(data), with_values=True, name="t")
    body = await read_body(source)
    assert body == b"u1,gold\nu2,\nu3,a,b\n"


async def test_open_file_invalid_utf8_offset() -> None:
    data = b"ok1\nok2\ncaf\xe9\n"
    source = IdSource.from_open_file(io.BytesIO(data), name="latin1.txt")
    with pytest.raises(IdFileEncodingError) as caught:
        await read_body(source)
    assert caught.value.byte_offset == 11
    assert caught.value.line_number == 3
    assert "'latin1.txt'" in caught.value.message
    assert "byte offset 11" in caught.value.message


async def test_open_file_split_character_offset() -> None:
    # A valid 2-byte character split across reads, then a lone continuation byte.
    data = b"a" * (READ_SIZE_HINT - 1) + "é".encode() + b"\n\x80\n"
    source = IdSource.from_open_file(io.BytesIO(data), name="m")
    with pytest.raises(IdFileEncodingError) as caught:
        await read_body(source)
    assert caught.value.byte_offset == READ_SIZE_HINT + 2
    assert caught.value.line_number == 2


def test_open_file_rejects_text_handle(upload_dir: Path) -> None:
    path = upload_dir / "ids.txt"
    with (
        path.open(encoding="utf-8") as handle,
        pytest.raises(ValueError, match="binary mode"),
    ):
        IdSource.from_open_file(handle, name="ids.txt")  # type: ignore[arg-type]


class ChangesAfterCheck(io.BytesIO):
    """A file that turns invalid at `offset` once its UTF-8 check has read it."""

    def __init__(self, data: bytes, offset: int) -> None:
        super().__init__(data)
        self._offset = offset
        self._rewinds = 0

    def seek(self, position: int, whence: int = 0) -> int:
        self._rewinds += 1
        # The check seeks to 0 before and after reading the whole file.
        if self._rewinds == 2:
            self.getbuffer()[self._offset] = 0xFF
        return super().seek(position, whence)


async def test_changed_file_cuts_request_short(
    sandbox: SandboxServer, cluster_name: str
) -> None:
    ids = [f"late{i:06d}" for i in range(50_000)]
    data = "".join(f"{user_id}\n" for user_id in ids).encode()
    handle = ChangesAfterCheck(data, offset=len(data) - 3)
    source = IdSource.from_open_file(handle, name="changing.txt")
    query = ImportAddQuery(
        projectId=102,
        clusterName=cluster_name,
        displayName=cluster_name,
        mainColumnName="#account_id",
    )
    before = sandbox.stats["import-id-cluster-add"]
    async with TAClient(sandbox.base_url, sandbox.token) as client:
        with pytest.raises(IdFileCutShortError) as caught:
            await client.import_id_cluster_add(query, source)
        with pytest.raises(TAAPIError):
            await client.user_cluster_detail(102, cluster_name=cluster_name)
    assert caught.value.byte_offset == len(data) - 3
    assert caught.value.bytes_sent > 0
    assert sandbox.stats["import-id-cluster-add"] == before + 1


def test_cut_short_becomes_write_uncertain() -> None:
    cause = IdFileEncodingError("ids.txt", 70_000, 5_000)
    check = "call user_cluster_detail"
    with (
        pytest.raises(ToolFailure) as caught,
        file_errors("import_id_cluster_modify", check),
    ):
        raise IdFileCutShortError(cause, bytes_sent=65_536)
    assert caught.value.kind == "write_uncertain"
    assert "'ids.txt'" in caught.value.message
    assert "byte offset 70000" in caught.value.message
    assert "may or may not have been applied" in caught.value.message
    assert caught.value.details["byteOffset"] == 70_000


@needs_proc
async def test_upload_file_closed_on_cancel(upload_dir: Path) -> None:
    real = resolve_upload_path("ids.txt", upload_dir)
    with anyio.CancelScope() as scope:
        async with upload_file("ids.txt", upload_dir) as handle:
            assert handle is not None
            assert open_fds_of(real) == [handle.fileno()]
            scope.cancel()
            await anyio.sleep(5)
    assert scope.cancelled_caught
    assert handle.closed
    assert open_fds_of(real) == []


# Through an MCP session, against the sandbox


@pytest.fixture
async def upload_client(
    server_settings: Settings, upload_dir: Path
) -> AsyncIterator[Client]:
    settings = with_settings(server_settings, upload_dir=upload_dir)
    async with connect(settings) as client:
        yield client


async def test_file_upload_200k_ids(upload_client: Client, upload_dir: Path) -> None:
    path = upload_dir / "many.txt"
    with path.open("w", encoding="utf-8") as handle:
        for index in range(200_000):
            handle.write(f"acc{index:07d}\n")
    result = await call(
        upload_client, "import_id_cluster_add", add_arguments("many.txt")
    )
    assert not result.is_error, text(result)
    upload = structured(result)["upload"]
    assert upload["rows_sent"] == 200_000
    assert upload["bytes_sent"] == path.stat().st_size
    assert upload["result"]["uploadNum"] == 200_000


async def make_uploaded(client: Client, name: str, *, tag: bool) -> dict[str, Any]:
    """Create an id cluster (or tag) named `name` and return its structured result."""
    arguments: dict[str, Any] = {
        "projectId": 102,
        "clusterName": name,
        "displayName": name,
        "mainColumnName": "#account_id",
    }
    if tag:
        arguments.update(clusterCatalog="catalog_tag", rows=["acc1,vip"])
    else:
        arguments["ids"] = ["acc1"]
    result = await call(client, "import_id_cluster_add", arguments)
    assert not result.is_error, text(result)
    return structured(result)


async def test_modify_tag_file_as_rows(
    upload_client: Client, upload_dir: Path, cluster_name: str
) -> None:
    created = await make_uploaded(upload_client, cluster_name, tag=True)
    (upload_dir / "new_tags.txt").write_text(
        "acc1,gold\nacc1,silver\nacc2,vip,plus\n", encoding="utf-8"
    )
    arguments = {
        "projectId": 102,
        "clusterId": created["clusterId"],
        "path": "new_tags.txt",
    }
    result = await call(upload_client, "import_id_cluster_modify", arguments)
    assert not result.is_error, text(result)
    content = structured(result)
    assert content["clusterCatalog"] == "catalog_tag"
    # Rows are keyed by the id before the first comma, so acc1 repeats.
    assert content["upload"]["rows_sent"] == 2
    assert content["upload"]["duplicates_dropped"] == 1
    assert "tag" in text(result)


async def test_modify_tag_by_name_file(
    upload_client: Client, upload_dir: Path, cluster_name: str
) -> None:
    await make_uploaded(upload_client, cluster_name, tag=True)
    (upload_dir / "named_tags.txt").write_text("acc3,gold\n", encoding="utf-8")
    arguments = {
        "projectId": 102,
        "clusterName": cluster_name,
        "path": "named_tags.txt",
    }
    result = await call(upload_client, "import_id_cluster_modify_by_name", arguments)
    assert not result.is_error, text(result)
    assert structured(result)["clusterCatalog"] == "catalog_tag"
    assert structured(result)["upload"]["rows_sent"] == 1


async def test_modify_cluster_commas_as_ids(
    upload_client: Client, upload_dir: Path, cluster_name: str
) -> None:
    created = await make_uploaded(upload_client, cluster_name, tag=False)
    # CSV-quoted ids with a comma: read as id,value rows, both would key on '"x'.
    (upload_dir / "comma_ids.txt").write_text('"x,1"\n"x,2"\n', encoding="utf-8")
    arguments = {
        "projectId": 102,
        "clusterId": created["clusterId"],
        "path": "comma_ids.txt",
    }
    result = await call(upload_client, "import_id_cluster_modify", arguments)
    assert not result.is_error, text(result)
    content = structured(result)
    assert content["clusterCatalog"] == "catalog_cluster"
    assert content["upload"]["rows_sent"] == 2
    assert content["upload"]["duplicates_dropped"] == 0


async def test_modify_cluster_plain_commas_sent(
    upload_client: Client,
    upload_dir: Path,
    cluster_name: str,
    sandbox: SandboxServer,
) -> None:
    created = await make_uploaded(upload_client, cluster_name, tag=False)
    (upload_dir / "plain_commas.txt").write_text("a,b\n", encoding="utf-8")
    arguments = {
        "projectId": 102,
        "clusterId": created["clusterId"],
        "path": "plain_commas.txt",
    }
    before = sandbox.stats["import-id-cluster-modify"]
    result = await call(upload_client, "import_id_cluster_modify", arguments)
    # The sandbox, not the client, judges an id with a comma in a cluster.
    assert error_kind(result) == "api_error", text(result)
    assert "columns" in text(result)
    assert sandbox.stats["import-id-cluster-modify"] == before + 1


@pytest.mark.parametrize(
    ("tag", "source"),
    [(True, {"ids": ["acc1"]}), (False, {"rows": ["acc1,vip"]})],
    ids=["ids_for_tag", "rows_for_cluster"],
)
async def test_modify_mismatch_rejected_unsent(
    upload_client: Client,
    cluster_name: str,
    sandbox: SandboxServer,
    tag: bool,
    source: dict[str, Any],
) -> None:
    created = await make_uploaded(upload_client, cluster_name, tag=tag)
    by_id = {"projectId": 102, "clusterId": created["clusterId"], **source}
    by_name = {"projectId": 102, "clusterName": cluster_name, **source}
    calls = [
        ("import_id_cluster_modify", by_id, "import-id-cluster-modify"),
        (
            "import_id_cluster_modify_by_name",
            by_name,
            "import-id-cluster-modify-by-name",
        ),
    ]
    for tool, arguments, endpoint in calls:
        before = sandbox.stats[endpoint]
        result = await call(upload_client, tool, arguments)
        assert error_kind(result) == "source_mismatch", text(result)
        assert "nothing was sent" in text(result)
        assert sandbox.stats[endpoint] == before, tool


async def test_modify_missing_cluster_unsent(
    upload_client: Client, sandbox: SandboxServer
) -> None:
    before = sandbox.stats["import-id-cluster-modify"]
    arguments = {"projectId": 102, "clusterId": 987_654_321, "ids": ["acc1"]}
    result = await call(upload_client, "import_id_cluster_modify", arguments)
    assert error_kind(result) == "api_error", text(result)
    assert "Nothing was uploaded" in text(result)
    assert sandbox.stats["import-id-cluster-modify"] == before


@needs_proc
async def test_invalid_utf8_file_unsent(
    upload_client: Client,
    upload_dir: Path,
    cluster_name: str,
    sandbox: SandboxServer,
) -> None:
    created = await make_uploaded(upload_client, cluster_name, tag=False)
    path = upload_dir / "latin1.txt"
    path.write_bytes(b"acc1\ncaf\xe9\n")
    arguments = {
        "projectId": 102,
        "clusterId": created["clusterId"],
        "path": "latin1.txt",
    }
    before = sandbox.stats["import-id-cluster-modify"]
    result = await call(upload_client, "import_id_cluster_modify", arguments)
    assert error_kind(result) == "invalid_file", text(result)
    assert "'latin1.txt'" in text(result)
    assert "byte offset 8" in text(result)
    assert structured(result)["error"]["byteOffset"] == 8
    assert sandbox.stats["import-id-cluster-modify"] == before
    assert open_fds_of(path.resolve()) == []


@needs_proc
async def test_file_closed_after_calls(
    upload_client: Client, upload_dir: Path, cluster_name: str
) -> None:
    real = (upload_dir / "ids.txt").resolve()
    created = await make_uploaded(upload_client, cluster_name, tag=True)
    success = await call(
        upload_client, "import_id_cluster_add", add_arguments("ids.txt")
    )
    assert not success.is_error, text(success)
    assert open_fds_of(real) == []
    missing = {"projectId": 102, "clusterId": 987_654_321, "path": "ids.txt"}
    failed = await call(upload_client, "import_id_cluster_modify", missing)
    assert error_kind(failed) == "api_error", text(failed)
    assert open_fds_of(real) == []
    # ids.txt has no comma, so each row of the tag gets an empty value.
    tag = {"projectId": 102, "clusterId": created["clusterId"], "path": "ids.txt"}
    modified = await call(upload_client, "import_id_cluster_modify", tag)
    assert not modified.is_error, text(modified)
    assert open_fds_of(real) == []


async def test_inline_id_with_comma_unsent(
    server_settings: Settings, sandbox: SandboxServer
) -> None:
    before = sandbox.stats["import-id-cluster-add"]
    arguments = {
        "projectId": 102,
        "displayName": "commas",
        "mainColumnName": "#account_id",
        "ids": ["acc1", "acc2,acc3"],
    }
    async with connect(server_settings) as client:
        result = await call(client, "import_id_cluster_add", arguments)
    assert error_kind(result) == "invalid_id"
    assert "ids[1]" in text(result)
    assert "nothing was sent" in text(result)
    assert sandbox.stats["import-id-cluster-add"] == before


async def test_upload_text_agrees_in_number(server_settings: Settings) -> None:
    arguments = {
        "projectId": 102,
        "displayName": "one id",
        "mainColumnName": "#account_id",
        "ids": ["acc1"],
    }
    async with connect(server_settings) as client:
        result = await call(client, "import_id_cluster_add", arguments)
    assert not result.is_error, text(result)
    assert "sent 1 row (" in text(result)
    assert "matched 1 user," in text(result)
