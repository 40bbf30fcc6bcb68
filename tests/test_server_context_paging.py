"""resources/list paging through a project with 2,000 clusters and some tags.

The clusters are inserted into a sandbox of this module's own (projects 7 and 8)
through its store, so other test files see no change in the shared sandbox.
"""

import datetime
from collections.abc import AsyncIterator, Iterator

import pytest
from mcp import types
from mcp.client import Client
from pydantic import SecretStr

from ta_cohort_mcp.config import Settings
from ta_cohort_mcp.models import ClusterCatalog, ClusterType
from ta_cohort_mcp.sandbox import SandboxConfig, SandboxServer
from ta_cohort_mcp.sandbox.store import (
    CLUSTER_TABLE,
    SANDBOX_USER_ID,
    SANDBOX_USER_NAME,
)
from ta_cohort_mcp.server.app import build_server
from ta_cohort_mcp.server.resources import LIST_PAGE_SIZE

pytestmark = pytest.mark.anyio

CLUSTERS = 2000
TAGS = 30
SMALL_PROJECT_CLUSTERS = 3
TOKEN = "paging-token"


@pytest.fixture(scope="module")
def big_sandbox() -> Iterator[SandboxServer]:
    config = SandboxConfig(
        today=datetime.date(2020, 1, 10),
        users=20,
        projects=(7, 8),
        tokens={TOKEN: None},
    )
    with SandboxServer(config) as server:
        insert_clusters(server, 7, "c", ClusterCatalog.CLUSTER, CLUSTERS)
        insert_clusters(server, 7, "t", ClusterCatalog.TAG, TAGS)
        insert_clusters(server, 8, "s", ClusterCatalog.CLUSTER, SMALL_PROJECT_CLUSTERS)
        yield server


def insert_clusters(
    server: SandboxServer,
    project_id: int,
    prefix: str,
    catalog: ClusterCatalog,
    count: int,
) -> None:
    """Insert id clusters named prefix0000, prefix0001, ... in one statement.

    One INSERT takes milliseconds where `Store.create` takes about 7 ms a
    cluster, so this writes the sandbox's clusters table directly.
    """
    kind = (
        ClusterType.TAG_BY_IMPORT
        if catalog is ClusterCatalog.TAG
        else ClusterType.CLUSTER_BY_IMPORT
    )
    connection = server.store.cursor()
    try:
        connection.execute(
            f"INSERT INTO {CLUSTER_TABLE} (id, project_id, cluster_name, "
            "display_name, catalog, cluster_type, main_column_name, progress, "
            "created_time, updated_time, user_id, user_name) "
            "SELECT nextval('cluster_id_seq'), ?, printf(? || '%04d', i), "
            "printf(? || '%04d', i), ?, ?, '#account_id', 100, "
            "now()::TIMESTAMP, now()::TIMESTAMP, ?, ? FROM range(?) AS t(i)",
            [
                project_id,
                prefix,
                prefix,
                catalog.value,
                kind.value,
                SANDBOX_USER_ID,
                SANDBOX_USER_NAME,
                count,
            ],
        )
    finally:
        connection.close()


@pytest.fixture(params=["auto", "legacy"])
async def client(
    big_sandbox: SandboxServer, request: pytest.FixtureRequest
) -> AsyncIterator[Client]:
    settings = Settings(
        base_url=big_sandbox.base_url,
        token=SecretStr(TOKEN),
        project_id=7,
        projects=frozenset({7, 8}),
    )
    async with Client(build_server(settings), mode=request.param) as session:
        yield session


async def list_all(client: Client) -> list[list[types.Resource]]:
    pages: list[list[types.Resource]] = []
    cursor: str | None = None
    while True:
        page = await client.list_resources(cursor=cursor, cache_mode="bypass")
        pages.append(page.resources)
        cursor = page.next_cursor
        if cursor is None:
            return pages
        assert len(pages) < 100, "paging does not end"


async def test_paging_lists_every_cluster(client: Client) -> None:
    pages = await list_all(client)
    uris = [resource.uri for page in pages for resource in page]
    clusters = [uri for uri in uris if uri.startswith("ta://projects/7/clusters/c")]
    tags = [uri for uri in uris if uri.startswith("ta://projects/7/clusters/t")]
    small = [uri for uri in uris if uri.startswith("ta://projects/8/clusters/")]
    assert len(clusters) == CLUSTERS
    assert len(set(clusters)) == CLUSTERS
    assert len(tags) == TAGS
    assert len(small) == SMALL_PROJECT_CLUSTERS
    assert len(uris) == len(set(uris))
    assert "ta://projects/8/clusters" in uris
    sizes = [len(page) for page in pages]
    assert max(sizes) <= LIST_PAGE_SIZE + 5
    assert len(pages) >= CLUSTERS // LIST_PAGE_SIZE
    # Only the last page may be empty: when the catalogs after a full page
    # turn out to contain nothing.
    assert all(size > 0 for size in sizes[:-1])


async def test_paging_one_list_request_per_page(
    big_sandbox: SandboxServer, client: Client
) -> None:
    first = await client.list_resources(cache_mode="bypass")
    assert first.next_cursor is not None
    stats = big_sandbox.stats
    before = stats["user-cluster-list"]
    await client.list_resources(cursor=first.next_cursor, cache_mode="bypass")
    assert stats["user-cluster-list"] - before == 1


async def test_cluster_resource_describes_state(client: Client) -> None:
    first = await client.list_resources(cache_mode="bypass")
    entry = next(
        r for r in first.resources if r.uri.startswith("ta://projects/7/clusters/c")
    )
    assert entry.mime_type == "application/json"
    assert entry.description is not None
    assert "progress 100" in entry.description
    assert "cluster_by_import" in entry.description


async def test_complete_cluster_names_has_more(client: Client) -> None:
    ref = types.PromptReference(name="refresh_and_report")
    result = await client.complete(ref, {"name": "clusterName", "value": "C"})
    assert len(result.completion.values) == 100
    assert result.completion.has_more is True
    assert result.completion.total == CLUSTERS


async def test_complete_cluster_names_narrow(client: Client) -> None:
    ref = types.PromptReference(name="refresh_and_report")
    result = await client.complete(ref, {"name": "clusterName", "value": "c199"})
    assert result.completion.values == [f"c199{digit}" for digit in range(10)]
    assert result.completion.has_more is False
