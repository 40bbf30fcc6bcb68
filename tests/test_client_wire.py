"""Query values on the wire: the exact request line bytes the server receives."""

from collections.abc import AsyncIterator
from urllib.parse import unquote_plus

import pytest
from client_fixtures import FakeTA

from ta_cohort_mcp.client import IdSource, TAClient
from ta_cohort_mcp.models import ImportAddQuery

pytestmark = pytest.mark.anyio

TOKEN = "wire&token=1#x"


@pytest.fixture
async def client(fake_ta: FakeTA) -> AsyncIterator[TAClient]:
    async with TAClient(fake_ta.base_url, TOKEN) as ta:
        yield ta


async def test_hash_column_percent_encoded(client: TAClient, fake_ta: FakeTA) -> None:
    query = ImportAddQuery(
        projectId=102, displayName="高价值用户 & co", mainColumnName="#account_id"
    )
    await client.import_id_cluster_add(query, IdSource.from_ids(["j77639"]))
    line = fake_ta.last().request_line
    assert line.startswith(b"POST /open/import-id-cluster-add?")
    assert line.endswith(b" HTTP/1.1")
    assert b"&mainColumnName=%23account_id" in line
    assert b"&projectId=102&" in line
    display = "高价值用户 & co".encode()
    assert b"displayName=" + _form_encoded(display) in line
    assert b"#" not in line
    assert b" & " not in line


async def test_token_percent_encoded(client: TAClient, fake_ta: FakeTA) -> None:
    await client.user_cluster_refresh(102, 970)
    line = fake_ta.last().request_line
    assert b"?token=wire%26token%3D1%23x&projectId=102&clusterId=970 " in line
    assert fake_ta.last().param("token") == TOKEN


async def test_name_values_arrive_intact(client: TAClient, fake_ta: FakeTA) -> None:
    name = "高价值用户 #1 & a+b=c"
    await client.user_cluster_detail(102, cluster_name=name)
    request = fake_ta.last()
    assert request.param("clusterName") == name
    assert request.param("projectId") == "102"
    assert set(request.query) == {"token", "projectId", "clusterName"}
    raw_value = request.target.split(b"clusterName=")[1]
    assert unquote_plus(raw_value.decode("ascii")) == name


async def test_path_has_no_query_text(client: TAClient, fake_ta: FakeTA) -> None:
    await client.delete_user_cluster_by_name(102, "a/../b?c")
    request = fake_ta.last()
    assert request.path == "/open/delete-user-cluster-by-name"
    assert request.param("clusterName") == "a/../b?c"


def _form_encoded(value: bytes) -> bytes:
    """Encode like application/x-www-form-urlencoded: space as +, the rest %XX."""
    safe = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~"
    out = bytearray()
    for byte in value:
        if byte in safe:
            out.append(byte)
        elif byte == 0x20:
            out += b"+"
        else:
            out += b"%%%02X" % byte
    return bytes(out)
