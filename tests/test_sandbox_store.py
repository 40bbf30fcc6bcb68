"""The sandbox's store, upload parser, fault plan and refresh manager, without HTTP."""

import datetime
import shutil
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import duckdb
import pytest
from pydantic import ValidationError

from ta_cohort_mcp.models import ClusterCatalog, ClusterType
from ta_cohort_mcp.sandbox.faults import FaultKind, FaultPlan, RequestStats
from ta_cohort_mcp.sandbox.refresh import RefreshManager
from ta_cohort_mcp.sandbox.store import DuplicateNameError, NewCluster, Store
from ta_cohort_mcp.sandbox.upload import MAX_LINE_CHARS, UploadError, spool_upload

TODAY = datetime.date(2020, 1, 10)
LEVEL_3 = {
    "filts": [
        {
            "columnName": "user_level",
            "comparator": "equal",
            "ftv": ["3"],
            "tableType": "user",
        }
    ]
}


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database file with sample data, copied by each test that needs one."""
    path = tmp_path_factory.mktemp("template") / "sample.duckdb"
    store = Store(str(path))
    store.load_sample_data([102, 2], users=200, seed=7, today=TODAY)
    store.close()
    return path


@pytest.fixture
def db_path(template_db: Path, tmp_path: Path) -> str:
    path = tmp_path / "store.duckdb"
    shutil.copyfile(template_db, path)
    return str(path)


def open_store(path: str) -> Store:
    store = Store(path)
    store.load_sample_data([102, 2], users=200, seed=7, today=TODAY)
    return store


@pytest.fixture
def store(db_path: str) -> Iterator[Store]:
    store = open_store(db_path)
    yield store
    store.close()


def new_cluster(name: str, **changes: object) -> NewCluster:
    fields: dict[str, object] = {
        "project_id": 102,
        "cluster_name": name,
        "display_name": name,
        "catalog": ClusterCatalog.CLUSTER,
        "cluster_type": ClusterType.CLUSTER_BY_STATIC_CONDITION,
        "definition": LEVEL_3,
    }
    fields.update(changes)
    return NewCluster(**fields)  # type: ignore[arg-type]


def level_3_count(store: Store, project_id: int = 102) -> int:
    with store.cursor() as cursor:
        row = cursor.execute(
            "SELECT count(*) FROM ta_user WHERE project_id = ? AND user_level = 3",
            [project_id],
        ).fetchone()
    assert row is not None
    return int(row[0])


def write_rows(path: Path, rows: list[tuple[int, str, str]]) -> Path:
    path.write_text("".join(f"{n},{i},{v}\n" for n, i, v in rows), encoding="utf-8")
    return path


async def chunks_of(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


# Store


def test_create_and_get(store):
    record = store.create(new_cluster("one"))
    assert store.get(102, record.id) == record
    assert store.get_by_name(102, "one") == record
    assert store.get(2, record.id) is None
    assert record.definition == LEVEL_3
    assert record.progress == 0


def test_create_duplicate_name(store):
    first = store.create(new_cluster("twice"))
    with pytest.raises(DuplicateNameError) as caught:
        store.create(new_cluster("twice"))
    assert caught.value.existing_id == first.id
    assert store.create(new_cluster("twice", project_id=2)).id != first.id


def test_list_orders_and_pages(store):
    ids = [store.create(new_cluster(f"c{index}")).id for index in range(5)]
    store.create(
        new_cluster("dynamic", cluster_type=ClusterType.CLUSTER_BY_DYNAMIC_CONDITION)
    )
    static = [ClusterType.CLUSTER_BY_STATIC_CONDITION]
    total, page = store.list_clusters(
        102, ClusterCatalog.CLUSTER, static, page_num=1, page_size=2
    )
    _, last = store.list_clusters(
        102, ClusterCatalog.CLUSTER, static, page_num=3, page_size=2
    )
    _, ascending = store.list_clusters(
        102, ClusterCatalog.CLUSTER, static, page_num=1, page_size=10, descending=False
    )
    assert total == 5
    assert [record.id for record in page] == ids[:-3:-1]
    assert [record.id for record in last] == [ids[0]]
    assert [record.id for record in ascending] == ids


def test_replace_members_from_query(store):
    record = store.create(new_cluster("members"))
    with store.cursor() as cursor:
        count = store.replace_members_from_query(
            cursor,
            record.id,
            'SELECT "#user_id" FROM ta_user WHERE project_id = ? AND user_level = ?',
            [102, 3],
            is_tag=False,
        )
    updated = store.get(102, record.id)
    assert count == level_3_count(store)
    assert updated is not None
    assert updated.users_num == count
    assert updated.progress == 100
    assert updated.refresh_time is not None
    assert len(store.members(record.id)) == count


def test_failed_query_keeps_members(store):
    record = store.create(new_cluster("kept"))
    sql = 'SELECT "#user_id" FROM ta_user WHERE project_id = 102'
    with store.cursor() as cursor:
        store.replace_members_from_query(cursor, record.id, sql, [], is_tag=False)
        before = store.members(record.id)
        with pytest.raises(duckdb.Error):
            store.replace_members_from_query(
                cursor,
                record.id,
                "SELECT no_such_column FROM ta_user",
                [],
                is_tag=False,
            )
    assert store.members(record.id) == before


def test_replace_members_of_deleted_cluster(store):
    record = store.create(new_cluster("gone"))
    store.delete(record.id)
    with store.cursor() as cursor:
        count = store.replace_members_from_query(
            cursor, record.id, 'SELECT "#user_id" FROM ta_user', [], is_tag=False
        )
    assert count is None
    assert store.members(record.id) == []


def test_cancelled_replace_writes_nothing(store):
    record = store.create(new_cluster("cancelled"))
    with store.cursor() as cursor:
        count = store.replace_members_from_query(
            cursor,
            record.id,
            'SELECT "#user_id" FROM ta_user',
            [],
            is_tag=False,
            cancelled=lambda: True,
        )
    unchanged = store.get(102, record.id)
    assert count is None
    assert store.members(record.id) == []
    assert unchanged is not None
    assert unchanged.progress == record.progress


def test_cluster_lock_blocks_progress_write(store):
    record = store.create(new_cluster("locked"))
    written = threading.Event()

    def write_progress() -> None:
        store.set_progress(record.id, 40)
        written.set()

    with store.cluster_lock(record.id):
        writer = threading.Thread(target=write_progress)
        writer.start()
        assert not written.wait(0.2)
    writer.join(5.0)
    assert written.is_set()
    updated = store.get(102, record.id)
    assert updated is not None
    assert updated.progress == 40


def test_delete_removes_members(store):
    record = store.create(new_cluster("deleted"))
    with store.cursor() as cursor:
        store.replace_members_from_query(
            cursor, record.id, 'SELECT "#user_id" FROM ta_user', [], is_tag=False
        )
    store.delete(record.id)
    assert store.get(102, record.id) is None
    assert store.members(record.id) == []


def test_save_import_cluster(store, tmp_path):
    rows = write_rows(
        tmp_path / "rows.csv",
        [(1, "acc1", ""), (2, "acc2", ""), (3, "acc1", ""), (4, "nobody", "")],
    )
    new = new_cluster(
        "ids",
        cluster_type=ClusterType.CLUSTER_BY_IMPORT,
        definition=None,
        main_column_name="#account_id",
        progress=100,
    )
    record, counts = store.save_import(rows, new=new)
    assert counts.upload_num == 4
    assert counts.user_num == 2
    assert counts.unmatched_num == 1
    assert counts.tag_value_null_num == 0
    assert record.users_num == 2
    assert record.is_import


def test_save_import_tag_first_value_wins(store, tmp_path):
    rows = write_rows(
        tmp_path / "rows.csv",
        [(1, "acc1", ""), (2, "acc1", "b"), (3, "acc1", "c"), (4, "acc2", "a")],
    )
    new = new_cluster(
        "tag_ids",
        catalog=ClusterCatalog.TAG,
        cluster_type=ClusterType.TAG_BY_IMPORT,
        definition=None,
        main_column_name="#account_id",
        progress=100,
    )
    record, counts = store.save_import(rows, new=new)
    assert counts.tag_value_null_num == 1
    assert counts.user_num == 2
    assert sorted(value for _, value in store.members(record.id)) == ["a", "b"]


def test_save_import_duplicate_writes_nothing(store, tmp_path):
    store.create(new_cluster("taken"))
    rows = write_rows(tmp_path / "rows.csv", [(1, "acc1", "")])
    new = new_cluster(
        "taken",
        cluster_type=ClusterType.CLUSTER_BY_IMPORT,
        definition=None,
        main_column_name="#account_id",
    )
    with pytest.raises(DuplicateNameError):
        store.save_import(rows, new=new)
    assert len(store.all_clusters()) == 1


def test_store_survives_reopen(db_path):
    path = db_path
    store = open_store(path)
    record = store.create(new_cluster("durable"))
    with store.cursor() as cursor:
        store.replace_members_from_query(
            cursor,
            record.id,
            'SELECT "#user_id" FROM ta_user LIMIT 3',
            [],
            is_tag=False,
        )
    members = store.members(record.id)
    store.close()
    reopened = open_store(path)
    try:
        again = reopened.get(102, record.id)
        assert again is not None
        assert again.cluster_name == "durable"
        assert again.users_num == 3
        assert again.definition == LEVEL_3
        assert reopened.members(record.id) == members
        assert reopened.create(new_cluster("next")).id > record.id
    finally:
        reopened.close()


def test_user_columns(store):
    columns = store.user_columns()
    assert "#account_id" in columns
    assert "user_level" in columns
    assert "project_id" not in columns


# Upload parser


@pytest.mark.anyio
async def test_spool_cluster_lines():
    spooled = await spool_upload(
        chunks_of(b"\xef\xbb\xbfacc", b"1\r\nacc2\n\n  \n", b"acc3"), is_tag=False
    )
    try:
        lines = spooled.path.read_text(encoding="utf-8").splitlines()
    finally:
        spooled.path.unlink()
    assert spooled.rows == 3
    assert lines == ["1,acc1,", "2,acc2,", "3,acc3,"]


@pytest.mark.anyio
async def test_spool_tag_lines():
    spooled = await spool_upload(
        chunks_of(b'a,gold\nb,\n"c,d","x, y"\ne,f,g\n'), is_tag=True
    )
    try:
        text = spooled.path.read_text(encoding="utf-8")
    finally:
        spooled.path.unlink()
    assert spooled.rows == 4
    assert spooled.empty_values == 1
    assert text == '1,a,gold\n2,b,\n3,"c,d","x, y"\n4,e,"f,g"\n'


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("parts", "is_tag", "expected"),
    [
        ((b"",), False, "no ids"),
        ((b"a,b\n",), False, "line 1 has 2 columns"),
        ((b"a\n", b"b\n", b"c\n"), True, "line 1 has 1 columns"),
        ((b'"a","b","c"\n',), True, "line 1 has 3 columns"),
        ((b"\xff\n",), False, "not UTF-8"),
        ((b"a" * (MAX_LINE_CHARS + 1),), False, "longer than"),
    ],
    ids=["empty", "cluster-two", "tag-one", "tag-three", "not-utf8", "long-line"],
)
async def test_spool_rejects(parts, is_tag, expected):
    with pytest.raises(UploadError, match=expected):
        await spool_upload(chunks_of(*parts), is_tag=is_tag)


# Fault plan and counts


def test_fault_count_consumed():
    plan = FaultPlan()
    plan.add("http_500", "user-cluster-add", count=2)
    taken = [plan.take_request_faults("user-cluster-add") for _ in range(3)]
    assert [len(rules) for rules in taken] == [1, 1, 0]
    assert plan.rules() == []


def test_fault_first_response_rule_only():
    plan = FaultPlan()
    plan.add("latency", "*", count=1, seconds=0.1)
    plan.add("http_500", "*", count=1)
    plan.add("html", "*", count=1)
    first = plan.take_request_faults("user-cluster-list")
    second = plan.take_request_faults("user-cluster-list")
    assert [rule.kind for rule in first] == [FaultKind.LATENCY, FaultKind.HTTP_500]
    assert [rule.kind for rule in second] == [FaultKind.HTML]


def test_slow_refresh_ignored_by_requests():
    plan = FaultPlan()
    plan.add("slow_refresh", "user-cluster-refresh", count=1)
    assert plan.take_request_faults("user-cluster-refresh") == []
    assert plan.take_slow_refresh("user-cluster-add") is None
    assert plan.take_slow_refresh("user-cluster-refresh") is not None
    assert plan.take_slow_refresh("user-cluster-refresh") is None


def test_fault_rejects_unknown_names():
    plan = FaultPlan()
    with pytest.raises(ValidationError, match="user-cluster-ad"):
        plan.add("http_500", "user-cluster-ad")
    with pytest.raises(ValueError, match="http_501"):
        plan.add("http_501")


def test_request_stats():
    stats = RequestStats()
    stats.record("user-cluster-add")
    stats.record("user-cluster-add")
    stats.record("user-cluster-list")
    assert stats["user-cluster-add"] == 2
    assert stats.total == 3
    stats.reset()
    assert stats.counts() == {}


# Refresh manager


def test_refresh_computes_members(store):
    manager = RefreshManager(store, today=TODAY, faults=FaultPlan())
    record = store.create(new_cluster("refreshed"))
    manager.start(record, trigger="user-cluster-add")
    assert manager.wait(record.id, 20.0)
    updated = store.get(102, record.id)
    assert updated is not None
    assert updated.progress == 100
    assert updated.users_num == level_3_count(store)


def test_refresh_cancel_writes_nothing(store):
    faults = FaultPlan()
    faults.add("slow_refresh", "*", count=1, seconds=60.0)
    manager = RefreshManager(store, today=TODAY, faults=faults)
    record = store.create(new_cluster("cancelled"))
    manager.start(record, trigger="user-cluster-refresh")
    assert manager.is_running(record.id)
    manager.cancel(record.id)
    assert not manager.is_running(record.id)
    assert store.members(record.id) == []


def test_refresh_resumes_unfinished(db_path):
    path = db_path
    store = open_store(path)
    record = store.create(new_cluster("interrupted"))
    store.set_progress(record.id, 40)
    store.close()
    reopened = open_store(path)
    try:
        manager = RefreshManager(reopened, today=TODAY, faults=FaultPlan())
        manager.resume_unfinished()
        assert manager.wait(record.id, 20.0)
        updated = reopened.get(102, record.id)
        assert updated is not None
        assert updated.progress == 100
    finally:
        reopened.close()


def test_refresh_shutdown_stops_jobs(store):
    faults = FaultPlan()
    faults.add("slow_refresh", "*", seconds=60.0)
    manager = RefreshManager(store, today=TODAY, faults=faults)
    records = [store.create(new_cluster(f"slow{index}")) for index in range(3)]
    for record in records:
        manager.start(record, trigger="user-cluster-refresh")
    manager.shutdown(timeout=5.0)
    assert not any(manager.is_running(record.id) for record in records)
