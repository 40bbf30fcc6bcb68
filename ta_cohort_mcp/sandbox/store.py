"""Storage of the sandbox: sample data, clusters and their members, in one DuckDB.

The database is a file (clusters and members survive a restart) or `:memory:`.
Beside the sample tables of `data.py` (`ta_user`, `ta_event`) it has two tables:

- `clusters`: one row per cluster or tag, with its definition as JSON text and the
  state of its last refresh (`progress` 0..100 or -1, `users_num`, `refresh_time`,
  `error_message`).
- `members`: `(cluster_id, "#user_id", tag_value)`, one row per member; `tag_value`
  is NULL for clusters.

A DuckDB connection must not be used by two threads at once, so `Store`
serializes every method on one connection with a lock. A refresh worker runs its
long query on its own cursor from `cursor()`, so requests are not blocked while
it runs.

Writes to one cluster's row and members also hold that cluster's lock
(`cluster_lock`), so a refresh's member-replace transaction never overlaps another
write of the same cluster. Two DuckDB transactions that update or delete the same
rows fail with a TransactionException ("Conflict on update!").
"""

import contextlib
import datetime
import json
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from ta_cohort_mcp.models import ClusterCatalog, ClusterType
from ta_cohort_mcp.sandbox import catalog, data

logger = logging.getLogger(__name__)

CLUSTER_TABLE = "clusters"
MEMBER_TABLE = "members"

# Owner of every cluster, shown as userId and userName like TA's cluster owner.
SANDBOX_USER_ID = 1
SANDBOX_USER_NAME = "sandbox"

_SCHEMA = f"""
CREATE SEQUENCE IF NOT EXISTS cluster_id_seq START 1;
CREATE TABLE IF NOT EXISTS {CLUSTER_TABLE} (
    id BIGINT NOT NULL,
    project_id BIGINT NOT NULL,
    cluster_name VARCHAR NOT NULL,
    display_name VARCHAR NOT NULL,
    catalog VARCHAR NOT NULL,
    cluster_type VARCHAR NOT NULL,
    sub_condition_tab_type VARCHAR,
    definition VARCHAR,
    main_column_name VARCHAR NOT NULL DEFAULT '',
    remarks VARCHAR NOT NULL DEFAULT '',
    progress INTEGER NOT NULL DEFAULT 0,
    users_num BIGINT NOT NULL DEFAULT 0,
    refresh_time TIMESTAMP,
    error_message VARCHAR,
    created_time TIMESTAMP NOT NULL,
    updated_time TIMESTAMP NOT NULL,
    upload_file_name VARCHAR NOT NULL DEFAULT '',
    user_id BIGINT NOT NULL,
    user_name VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS {MEMBER_TABLE} (
    cluster_id BIGINT NOT NULL,
    "#user_id" BIGINT NOT NULL,
    tag_value VARCHAR
);
"""

_COLUMNS = (
    "id",
    "project_id",
    "cluster_name",
    "display_name",
    "catalog",
    "cluster_type",
    "sub_condition_tab_type",
    "definition",
    "main_column_name",
    "remarks",
    "progress",
    "users_num",
    "refresh_time",
    "error_message",
    "created_time",
    "updated_time",
    "upload_file_name",
    "user_id",
    "user_name",
)
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM {CLUSTER_TABLE}"


class DuplicateNameError(Exception):
    """A cluster with the same clusterName already exists in the project."""

    def __init__(self, project_id: int, cluster_name: str, existing_id: int) -> None:
        super().__init__(
            f"clusterName {cluster_name!r} already exists in project {project_id} "
            f"(cluster {existing_id}); choose another name or update that cluster"
        )
        self.project_id = project_id
        self.cluster_name = cluster_name
        self.existing_id = existing_id


@dataclass(frozen=True)
class ClusterRecord:
    """One row of the clusters table; `definition` is the stored qp or tagQp."""

    id: int
    project_id: int
    cluster_name: str
    display_name: str
    catalog: ClusterCatalog
    cluster_type: ClusterType
    sub_condition_tab_type: str | None
    definition: dict[str, Any] | None
    main_column_name: str
    remarks: str
    progress: int
    users_num: int
    refresh_time: datetime.datetime | None
    error_message: str | None
    created_time: datetime.datetime
    updated_time: datetime.datetime
    upload_file_name: str
    user_id: int
    user_name: str

    @property
    def is_import(self) -> bool:
        """Whether members come from an id upload rather than a definition."""
        return self.cluster_type in (
            ClusterType.CLUSTER_BY_IMPORT,
            ClusterType.TAG_BY_IMPORT,
        )

    @property
    def is_tag(self) -> bool:
        """Whether this is a tag (members carry a tag value)."""
        return self.catalog is ClusterCatalog.TAG


@dataclass(frozen=True)
class NewCluster:
    """The fields a caller sets when it creates a cluster."""

    project_id: int
    cluster_name: str
    display_name: str
    catalog: ClusterCatalog
    cluster_type: ClusterType
    sub_condition_tab_type: str | None = None
    definition: dict[str, Any] | None = None
    main_column_name: str = ""
    remarks: str = ""
    progress: int = 0
    upload_file_name: str = ""


@dataclass(frozen=True)
class ImportCounts:
    """Counts of an id upload, as import-id-cluster-add returns them."""

    upload_num: int
    user_num: int
    unmatched_num: int
    tag_value_null_num: int


def _record(row: Sequence[Any]) -> ClusterRecord:
    values = dict(zip(_COLUMNS, row, strict=True))
    text = values.pop("definition")
    catalog = ClusterCatalog(values.pop("catalog"))
    cluster_type = ClusterType(values.pop("cluster_type"))
    return ClusterRecord(
        **values,
        catalog=catalog,
        cluster_type=cluster_type,
        definition=json.loads(text) if text is not None else None,
    )


def _now() -> datetime.datetime:
    return datetime.datetime.now().replace(microsecond=0)


@contextmanager
def _transaction(connection: duckdb.DuckDBPyConnection) -> Iterator[None]:
    connection.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    try:
        connection.execute("COMMIT")
    except duckdb.Error:
        # A failed COMMIT may leave the transaction open on this connection.
        with contextlib.suppress(duckdb.Error):
            connection.execute("ROLLBACK")
        raise


class Store:
    """The sandbox database: sample data, clusters and members."""

    def __init__(self, db_path: str | None = None) -> None:
        """Open (or create) the database at `db_path`, or in memory when None."""
        self.db_path = db_path or ":memory:"
        self._lock = threading.RLock()
        self._cluster_locks: dict[int, threading.RLock] = {}
        self._connection = duckdb.connect(self.db_path)
        self._connection.execute(_SCHEMA)
        data.create_tables(self._connection)
        logger.info("sandbox store opened: %s", self.db_path)

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._connection.close()

    @contextmanager
    def cluster_lock(self, cluster_id: int) -> Iterator[None]:
        """Hold the write lock of one cluster; take it before the store lock."""
        with self._lock:
            lock = self._cluster_locks.setdefault(cluster_id, threading.RLock())
        with lock:
            yield

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """Return a new connection to the same database, for use in one other thread."""
        with self._lock:
            return self._connection.cursor()

    def load_sample_data(
        self,
        projects: Sequence[int],
        *,
        users: int,
        seed: int,
        today: datetime.date,
        events_per_user: float | None = None,
    ) -> None:
        """Generate the sample data of each project that has none yet."""
        with self._lock:
            for project_id in projects:
                data.generate(
                    self._connection,
                    project_id=project_id,
                    users=users,
                    today=today,
                    seed=seed,
                    events_per_user=events_per_user,
                )

    def user_columns(self) -> list[str]:
        """Return the column names of the user table, except project_id."""
        with self._lock:
            rows = self._connection.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = ? ORDER BY ordinal_position",
                [data.USER_TABLE],
            ).fetchall()
        return [name for (name,) in rows if name != "project_id"]

    def catalog(self, project_id: int) -> dict[str, Any]:
        """Return the event catalog of a project's sample data."""
        with self._lock:
            return catalog.sample_catalog(self._connection, project_id)

    # Clusters

    def create(self, new: NewCluster) -> ClusterRecord:
        """Insert a cluster and return it.

        Raises:
            DuplicateNameError: the project already has a cluster of that name.
        """
        with self._lock:
            self._check_name_free(new.project_id, new.cluster_name)
            cluster_id = self._next_id()
            self._insert(cluster_id, new)
            return self._get(cluster_id)

    def get(self, project_id: int, cluster_id: int) -> ClusterRecord | None:
        """Return the cluster `cluster_id` of the project, or None."""
        with self._lock:
            row = self._connection.execute(
                f"{_SELECT} WHERE project_id = ? AND id = ?", [project_id, cluster_id]
            ).fetchone()
        return _record(row) if row is not None else None

    def get_by_name(self, project_id: int, cluster_name: str) -> ClusterRecord | None:
        """Return the cluster named `cluster_name` in the project, or None."""
        with self._lock:
            row = self._connection.execute(
                f"{_SELECT} WHERE project_id = ? AND cluster_name = ?",
                [project_id, cluster_name],
            ).fetchone()
        return _record(row) if row is not None else None

    def list_clusters(
        self,
        project_id: int,
        catalog: ClusterCatalog,
        types: Sequence[ClusterType],
        *,
        page_num: int,
        page_size: int,
        descending: bool = True,
    ) -> tuple[int, list[ClusterRecord]]:
        """Return the total count and one page of the project's clusters.

        Clusters are ordered by id, newest first unless `descending` is False.
        """
        where = (
            "WHERE project_id = ? AND catalog = ? AND list_contains(?, cluster_type)"
        )
        params: list[object] = [project_id, catalog.value, [t.value for t in types]]
        order = "DESC" if descending else "ASC"
        with self._lock:
            count_row = self._connection.execute(
                f"SELECT count(*) FROM {CLUSTER_TABLE} {where}", params
            ).fetchone()
            rows = self._connection.execute(
                f"{_SELECT} {where} ORDER BY id {order} LIMIT ? OFFSET ?",
                [*params, page_size, (page_num - 1) * page_size],
            ).fetchall()
        total = int(count_row[0]) if count_row is not None else 0
        return total, [_record(row) for row in rows]

    def all_clusters(self) -> list[ClusterRecord]:
        """Return every cluster of every project, by id."""
        with self._lock:
            rows = self._connection.execute(f"{_SELECT} ORDER BY id").fetchall()
        return [_record(row) for row in rows]

    def update_definition(
        self,
        cluster_id: int,
        *,
        display_name: str,
        cluster_type: ClusterType,
        sub_condition_tab_type: str | None,
        definition: dict[str, Any],
    ) -> ClusterRecord:
        """Replace a conditional cluster's definition and reset its progress to 0."""
        with self.cluster_lock(cluster_id), self._lock:
            self._connection.execute(
                f"UPDATE {CLUSTER_TABLE} SET display_name = ?, cluster_type = ?, "
                "sub_condition_tab_type = ?, definition = ?, progress = 0, "
                "error_message = NULL, updated_time = ? WHERE id = ?",
                [
                    display_name,
                    cluster_type.value,
                    sub_condition_tab_type,
                    json.dumps(definition, ensure_ascii=False),
                    _now(),
                    cluster_id,
                ],
            )
            return self._get(cluster_id)

    def delete(self, cluster_id: int) -> None:
        """Delete a cluster and its members."""
        with (
            self.cluster_lock(cluster_id),
            self._lock,
            _transaction(self._connection),
        ):
            self._connection.execute(
                f"DELETE FROM {MEMBER_TABLE} WHERE cluster_id = ?", [cluster_id]
            )
            self._connection.execute(
                f"DELETE FROM {CLUSTER_TABLE} WHERE id = ?", [cluster_id]
            )

    def set_progress(
        self, cluster_id: int, progress: int, error_message: str | None = None
    ) -> None:
        """Store the progress of a running or failed refresh."""
        with self.cluster_lock(cluster_id), self._lock:
            self._connection.execute(
                f"UPDATE {CLUSTER_TABLE} SET progress = ?, error_message = ? "
                "WHERE id = ?",
                [progress, error_message, cluster_id],
            )

    # Members

    def replace_members_from_query(
        self,
        cursor: duckdb.DuckDBPyConnection,
        cluster_id: int,
        sql: str,
        params: Sequence[object],
        *,
        is_tag: bool,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> int | None:
        """Replace a cluster's members with the rows of a query, in one transaction.

        Runs on `cursor` (from `cursor()`, owned by the calling thread) under the
        cluster's lock but not the store lock. The query selects `"#user_id"`, and
        for a tag also the tag value. Marks the refresh finished (progress 100,
        usersNum, refreshTime) in the same transaction. Returns the member count, or
        None when the cluster was deleted meanwhile or `cancelled()` returns True
        once the lock is held (then nothing is written).
        """
        if is_tag:
            insert = (
                f"INSERT INTO {MEMBER_TABLE} SELECT {int(cluster_id)}, "
                f"q.user_id, CAST(q.tag_value AS VARCHAR) FROM ({sql}) "
                "AS q(user_id, tag_value)"
            )
        else:
            insert = (
                f"INSERT INTO {MEMBER_TABLE} SELECT DISTINCT {int(cluster_id)}, "
                f"q.user_id, NULL FROM ({sql}) AS q(user_id)"
            )
        with self.cluster_lock(cluster_id), _transaction(cursor):
            if cancelled():
                return None
            exists = cursor.execute(
                f"SELECT count(*) FROM {CLUSTER_TABLE} WHERE id = ?", [cluster_id]
            ).fetchone()
            if exists is None or exists[0] == 0:
                return None
            cursor.execute(
                f"DELETE FROM {MEMBER_TABLE} WHERE cluster_id = ?", [cluster_id]
            )
            cursor.execute(insert, list(params))
            count_row = cursor.execute(
                f"SELECT count(*) FROM {MEMBER_TABLE} WHERE cluster_id = ?",
                [cluster_id],
            ).fetchone()
            users_num = int(count_row[0]) if count_row is not None else 0
            cursor.execute(
                f"UPDATE {CLUSTER_TABLE} SET progress = 100, users_num = ?, "
                "refresh_time = ?, error_message = NULL WHERE id = ?",
                [users_num, _now(), cluster_id],
            )
        return users_num

    def members(self, cluster_id: int) -> list[tuple[int, str | None]]:
        """Return the `("#user_id", tag_value)` rows of a cluster, by user id."""
        with self._lock:
            rows = self._connection.execute(
                f'SELECT "#user_id", tag_value FROM {MEMBER_TABLE} '
                'WHERE cluster_id = ? ORDER BY "#user_id"',
                [cluster_id],
            ).fetchall()
        return [(int(user_id), tag_value) for user_id, tag_value in rows]

    def save_import(
        self,
        rows_path: Path,
        *,
        new: NewCluster | None = None,
        existing: ClusterRecord | None = None,
        display_name: str | None = None,
        main_column_name: str | None = None,
        remarks: str | None = None,
    ) -> tuple[ClusterRecord, ImportCounts]:
        """Create (`new`) or modify (`existing`) an id-upload cluster from a file.

        `rows_path` is a CSV file of `row_num,id,value` rows (value empty for a
        cluster or for a tag row without a value). Ids are matched against the
        cluster's main column for its project; the members are replaced, and the
        cluster row written, in one transaction.

        Raises:
            DuplicateNameError: `new` names a cluster that exists.
        """
        cluster_lock = (
            self.cluster_lock(existing.id)
            if existing is not None
            else contextlib.nullcontext()
        )
        with cluster_lock, self._lock, _transaction(self._connection):
            if new is not None:
                self._check_name_free(new.project_id, new.cluster_name)
                cluster_id = self._next_id()
                self._insert(cluster_id, new)
            elif existing is not None:
                cluster_id = existing.id
                self._update_import_fields(
                    cluster_id, display_name, main_column_name, remarks
                )
            else:
                raise ValueError("save_import needs new or existing")
            record = self._get(cluster_id)
            counts = self._import_rows(record, rows_path)
            self._connection.execute(
                f"UPDATE {CLUSTER_TABLE} SET progress = 100, users_num = ?, "
                "refresh_time = ?, error_message = NULL WHERE id = ?",
                [counts.user_num, _now(), cluster_id],
            )
            return self._get(cluster_id), counts

    # Helpers; callers hold the lock.

    def _next_id(self) -> int:
        row = self._connection.execute("SELECT nextval('cluster_id_seq')").fetchone()
        assert row is not None
        return int(row[0])

    def _check_name_free(self, project_id: int, cluster_name: str) -> None:
        row = self._connection.execute(
            f"SELECT id FROM {CLUSTER_TABLE} WHERE project_id = ? AND cluster_name = ?",
            [project_id, cluster_name],
        ).fetchone()
        if row is not None:
            raise DuplicateNameError(project_id, cluster_name, int(row[0]))

    def _insert(self, cluster_id: int, new: NewCluster) -> None:
        now = _now()
        definition = (
            json.dumps(new.definition, ensure_ascii=False)
            if new.definition is not None
            else None
        )
        self._connection.execute(
            f"INSERT INTO {CLUSTER_TABLE} ({', '.join(_COLUMNS)}) VALUES "
            f"({', '.join('?' for _ in _COLUMNS)})",
            [
                cluster_id,
                new.project_id,
                new.cluster_name,
                new.display_name,
                new.catalog.value,
                new.cluster_type.value,
                new.sub_condition_tab_type,
                definition,
                new.main_column_name,
                new.remarks,
                new.progress,
                0,
                None,
                None,
                now,
                now,
                new.upload_file_name,
                SANDBOX_USER_ID,
                SANDBOX_USER_NAME,
            ],
        )

    def _get(self, cluster_id: int) -> ClusterRecord:
        row = self._connection.execute(
            f"{_SELECT} WHERE id = ?", [cluster_id]
        ).fetchone()
        if row is None:
            raise LookupError(f"cluster {cluster_id} does not exist")
        return _record(row)

    def _update_import_fields(
        self,
        cluster_id: int,
        display_name: str | None,
        main_column_name: str | None,
        remarks: str | None,
    ) -> None:
        self._connection.execute(
            f"UPDATE {CLUSTER_TABLE} SET "
            "display_name = coalesce(?, display_name), "
            "main_column_name = coalesce(?, main_column_name), "
            "remarks = coalesce(?, remarks), updated_time = ? WHERE id = ?",
            [display_name, main_column_name, remarks, _now(), cluster_id],
        )

    def _import_rows(self, record: ClusterRecord, rows_path: Path) -> ImportCounts:
        connection = self._connection

        path_literal = "'" + str(rows_path).replace("'", "''") + "'"
        connection.execute(
            "CREATE OR REPLACE TEMP TABLE upload_rows AS SELECT * FROM read_csv("
            f"{path_literal}, header = false, delim = ',', quote = '\"', "
            "escape = '\"', columns = {'row_num': 'BIGINT', 'id': 'VARCHAR', "
            "'value': 'VARCHAR'})"
        )

        column = data.quote_identifier(record.main_column_name)
        connection.execute(
            "CREATE OR REPLACE TEMP TABLE upload_matches AS "
            'SELECT r.row_num, r.value, u."#user_id" AS user_id FROM upload_rows r '
            f"JOIN {data.USER_TABLE} u ON u.project_id = ? "
            f"AND CAST(u.{column} AS VARCHAR) = r.id",
            [record.project_id],
        )

        connection.execute(
            f"DELETE FROM {MEMBER_TABLE} WHERE cluster_id = ?", [record.id]
        )
        if record.is_tag:
            # A user named on several rows takes the value of the first row with one.
            connection.execute(
                f"INSERT INTO {MEMBER_TABLE} SELECT ?, user_id, "
                "arg_min(value, row_num) FROM upload_matches "
                "WHERE value IS NOT NULL GROUP BY user_id",
                [record.id],
            )
        else:
            connection.execute(
                f"INSERT INTO {MEMBER_TABLE} SELECT DISTINCT ?, user_id, NULL "
                "FROM upload_matches",
                [record.id],
            )

        counts = connection.execute(
            "SELECT (SELECT count(*) FROM upload_rows), "
            "(SELECT count(*) FROM upload_rows) - "
            "(SELECT count(DISTINCT row_num) FROM upload_matches), "
            "(SELECT count(*) FROM upload_rows WHERE value IS NULL), "
            f"(SELECT count(*) FROM {MEMBER_TABLE} WHERE cluster_id = ?)",
            [record.id],
        ).fetchone()
        assert counts is not None
        connection.execute("DROP TABLE upload_matches")
        connection.execute("DROP TABLE upload_rows")
        return ImportCounts(
            upload_num=int(counts[0]),
            user_num=int(counts[3]),
            unmatched_num=int(counts[1]),
            tag_value_null_num=int(counts[2]) if record.is_tag else 0,
        )
