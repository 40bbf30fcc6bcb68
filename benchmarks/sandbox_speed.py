"""Sandbox: refresh time of the reference's cohort and of each tag kind, on 1M and
10M events, against a hand-written DuckDB query for the same answer.

The sandbox computes a refresh with one compiled query and writes the members in a
transaction. The limit is a query written by hand for each definition (a
different formulation from the compiler's), run on the same database and written
into a table, which is the floor for this engine on this machine. Each refresh's
members must equal the hand-written query's rows. Growth from 1M to 10M events
is compared with the 10× growth of the data.
"""

import datetime
import json
import logging
import shutil
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import httpx

from benchmarks import definitions
from benchmarks.report import Section, describe
from benchmarks.runner import RunContext

logger = logging.getLogger(__name__)

TITLE = "Sandbox refresh speed"

# Fixed, so cached databases stay valid from day to day.
TODAY = datetime.date(2026, 12, 1)
SEED = 7
# The generator writes about 30 events per user at its default rate.
EVENTS_PER_USER = 30
POLL_SECONDS = 0.005
REFRESH_TIMEOUT = 900.0


@dataclass(frozen=True)
class Dataset:
    """A cached sample database and what making it cost."""

    label: str
    path: Path
    users: int
    events: int
    generate_seconds: float


def _day(days_ago: int) -> datetime.datetime:
    return datetime.datetime.combine(TODAY, datetime.time()) - datetime.timedelta(
        days=days_ago
    )


def _window(nearest: int, farthest: int) -> list[datetime.datetime]:
    """Bounds [start, end) of recentDay "nearest-farthest"."""
    return [_day(farthest), _day(nearest - 1)]


# Definition label -> (hand-written SQL, parameters). Each returns
# ("#user_id", tag_value) with tag_value NULL for the cluster.
HAND_WRITTEN: dict[str, tuple[str, list[Any]]] = {
    "cohort recent_7_days_consume": (
        """
        SELECT u."#user_id", CAST(NULL AS VARCHAR) AS tag_value
        FROM ta_user AS u
        JOIN (
            SELECT "#user_id" FROM ta_event
            WHERE project_id = $project AND "#event_name" = 'consume_item'
              AND "#event_time" >= $start AND "#event_time" < $end
            GROUP BY "#user_id" HAVING count(*) > 4
        ) AS e USING ("#user_id")
        WHERE u.project_id = $project AND u.user_level = 3
        """,
        _window(1, 7),
    ),
    "tag custom condition": (
        """
        WITH counts AS (
            SELECT "#user_id",
                   count(*) FILTER (WHERE "#event_name" = 'player_register') AS reg,
                   count(*) FILTER (WHERE "#event_name" = 'fight_success') AS fight
            FROM ta_event
            WHERE project_id = $project
              AND "#event_name" IN ('player_register', 'fight_success')
              AND "#event_time" >= $start AND "#event_time" < $end
            GROUP BY "#user_id"
        )
        SELECT u."#user_id",
               CASE WHEN reg > 4 THEN 'tag value 1' ELSE 'tag vaule 2' END
        FROM counts JOIN ta_user AS u USING ("#user_id")
        WHERE u.project_id = $project AND (reg > 4 OR fight > 0)
        """,
        _window(1, 30),
    ),
    "tag first/last event": (
        """
        WITH firsts AS (
            SELECT "#user_id",
                   first(test_num ORDER BY "#event_time", test_num NULLS LAST) AS v
            FROM ta_event
            WHERE project_id = $project AND "#event_name" = 'pay'
              AND "#os" = 'android'
              AND "#event_time" >= $start AND "#event_time" < $end
            GROUP BY "#user_id"
        )
        SELECT u."#user_id", CAST(v AS VARCHAR)
        FROM firsts JOIN ta_user AS u USING ("#user_id")
        WHERE u.project_id = $project AND v IS NOT NULL
        """,
        _window(0, 1),
    ),
    "tag indicator value": (
        """
        WITH quota AS (
            SELECT "#user_id", count(DISTINCT activity_reward) AS v
            FROM ta_event
            WHERE project_id = $project AND "#event_name" = 'activity_attend'
              AND "#os" = 'android'
              AND "#event_time" >= $start AND "#event_time" < $end
            GROUP BY "#user_id"
        )
        SELECT u."#user_id", CAST(v AS VARCHAR)
        FROM quota JOIN ta_user AS u USING ("#user_id")
        WHERE u.project_id = $project
        """,
        _window(0, 1),
    ),
}

# Definition label -> add body.
BODIES: dict[str, dict[str, Any]] = {
    "cohort recent_7_days_consume": definitions.REFERENCE_CLUSTER,
    "tag custom condition": definitions.REFERENCE_TAGS["custom condition"],
    "tag first/last event": definitions.REFERENCE_TAGS["first/last event"],
    "tag indicator value": definitions.REFERENCE_TAGS["indicator value"],
}


def event_label(events: int) -> str:
    if events >= 1_000_000 and events % 1_000_000 == 0:
        return f"{events // 1_000_000}M"
    return f"{events // 1000}k"


def dataset(context: RunContext, events: int) -> Dataset:
    """Return the cached sample database of about `events` events, making it if absent."""
    label = event_label(events)
    users = max(1, events // EVENTS_PER_USER)
    stem = f"events-{label}-seed{SEED}-{TODAY.isoformat()}"
    path = context.data_dir / f"{stem}.duckdb"
    meta_path = context.data_dir / f"{stem}.json"
    if path.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        return Dataset(label, path, meta["users"], meta["events"], meta["seconds"])

    from ta_cohort_mcp.sandbox import data

    context.data_dir.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    logger.info("generating %s events (%s users) into %s", label, users, path)
    connection = duckdb.connect(str(path))
    try:
        started = time.perf_counter()
        data.generate(
            connection,
            project_id=definitions.PROJECT_ID,
            users=users,
            today=TODAY,
            seed=SEED,
        )
        connection.execute("CHECKPOINT")
        seconds = time.perf_counter() - started
        row = connection.execute("SELECT count(*) FROM ta_event").fetchone()
        event_count = int(row[0]) if row else 0
    finally:
        connection.close()
    meta = {"users": users, "events": event_count, "seconds": seconds}
    meta_path.write_text(json.dumps(meta) + "\n")
    return Dataset(label, path, users, event_count, seconds)


def time_hand_written(
    cursor: duckdb.DuckDBPyConnection, label: str
) -> tuple[float, set[Any]]:
    """Run a hand-written query into a temporary table; return seconds and its rows."""
    sql, (start, end) = HAND_WRITTEN[label]
    params = {"project": definitions.PROJECT_ID, "start": start, "end": end}
    started = time.perf_counter()
    cursor.execute(f"CREATE OR REPLACE TEMP TABLE bench_answer AS {sql}", params)
    seconds = time.perf_counter() - started
    rows = set(cursor.execute("SELECT * FROM bench_answer").fetchall())
    cursor.execute("DROP TABLE bench_answer")
    return seconds, rows


def refresh_and_wait(http: httpx.Client, token: str, cluster_id: int) -> float:
    """Refresh a cluster over the API; return seconds until its progress is 100."""
    query = {"projectId": definitions.PROJECT_ID, "clusterId": cluster_id}
    started = time.perf_counter()
    definitions.call(http, "/open/user-cluster-refresh", token, body={}, **query)
    deadline = started + REFRESH_TIMEOUT
    while True:
        data = definitions.call(
            http, "/open/user-cluster-refresh-progress", token, **query
        )
        progress = data.get("progress") if isinstance(data, dict) else data
        if progress == 100:
            return time.perf_counter() - started
        if progress == -1:
            detail = definitions.call(http, "/open/user-cluster-detail", token, **query)
            raise RuntimeError(f"refresh of cluster {cluster_id} failed: {detail}")
        if time.perf_counter() > deadline:
            raise TimeoutError(f"refresh of cluster {cluster_id} not done in time")
        time.sleep(POLL_SECONDS)


def time_compiled(cursor: duckdb.DuckDBPyConnection, body: dict[str, Any]) -> float:
    """Run the compiler's query of a definition into a temporary table; return seconds."""
    from ta_cohort_mcp.models import ClusterCatalog
    from ta_cohort_mcp.sandbox import refresh

    catalog = ClusterCatalog.TAG if "tagQp" in body else ClusterCatalog.CLUSTER
    compiled = refresh.compile_definition(
        catalog,
        body.get("tagQp") or body["qp"],
        project_id=definitions.PROJECT_ID,
        today=TODAY,
    )
    started = time.perf_counter()
    cursor.execute(
        f"CREATE OR REPLACE TEMP TABLE bench_compiled AS {compiled.sql}",
        compiled.params,
    )
    seconds = time.perf_counter() - started
    cursor.execute("DROP TABLE bench_compiled")
    return seconds


def measure_definition(
    server: Any,
    http: httpx.Client,
    cursor: duckdb.DuckDBPyConnection,
    label: str,
    repeats: int,
) -> dict[str, Any]:
    """Time one definition three ways and compare the members with the hand query."""
    body = BODIES[label]
    cluster_id = definitions.add_cluster(http, server.token, body)
    # Adding starts a refresh; wait for it so the timed ones start clean.
    refresh_and_wait(http, server.token, cluster_id)
    api = statistics.median(
        refresh_and_wait(http, server.token, cluster_id) for _ in range(repeats)
    )
    members = set(server.store.members(cluster_id))
    compiled = statistics.median(time_compiled(cursor, body) for _ in range(repeats))
    hand_times = []
    hand_rows: set[Any] = set()
    for _ in range(repeats):
        seconds, hand_rows = time_hand_written(cursor, label)
        hand_times.append(seconds)
    return {
        "api": api,
        "compiled": compiled,
        "hand": statistics.median(hand_times),
        "members": len(members),
        "equal": members == hand_rows,
    }


def measure_dataset(
    context: RunContext, data_set: Dataset, repeats: int
) -> dict[str, dict[str, Any]]:
    """Refresh every definition on one dataset; return times and answer checks."""
    from ta_cohort_mcp.sandbox.app import SandboxConfig
    from ta_cohort_mcp.sandbox.runner import SandboxServer

    work_path = context.scratch_dir / f"sandbox-{data_set.label}.duckdb"
    work_path.unlink(missing_ok=True)
    shutil.copyfile(data_set.path, work_path)
    config = SandboxConfig(
        db_path=str(work_path),
        today=TODAY,
        users=data_set.users,
        seed=SEED,
        projects=(definitions.PROJECT_ID,),
    )
    results: dict[str, dict[str, Any]] = {}
    with (
        SandboxServer(config) as server,
        httpx.Client(base_url=server.base_url, timeout=120) as http,
    ):
        cursor = server.store.cursor()
        try:
            for label in BODIES:
                results[label] = measure_definition(
                    server, http, cursor, label, repeats
                )
        finally:
            cursor.close()
    work_path.unlink(missing_ok=True)
    return results


def run(context: RunContext) -> Section:
    section = Section(name="sandbox", title=TITLE, description=describe(__doc__))
    sizes = context.pick(
        (10_000, 30_000), (100_000, 1_000_000), (1_000_000, 10_000_000)
    )
    repeats = context.pick(1, 3, 5)
    measured: dict[str, dict[str, dict[str, Any]]] = {}
    data_sets = [dataset(context, events) for events in sizes]
    for data_set in data_sets:
        section.add(
            f"generate {data_set.label} events ({data_set.events:,} events, "
            f"{data_set.users:,} users)",
            data_set.generate_seconds,
            "s",
        )
    for data_set in data_sets:
        logger.info("measuring refreshes on %s events", data_set.label)
        measured[data_set.label] = measure_dataset(context, data_set, repeats)
        for label, result in measured[data_set.label].items():
            section.add(
                f"{data_set.label}: refresh {label} via API ({result['members']:,} members)",
                result["api"],
                "s",
                result["hand"],
                "hand-written query",
            )
            section.add(
                f"{data_set.label}: compiled query of {label} alone",
                result["compiled"],
                "s",
                result["hand"],
                "hand-written query",
            )
            section.checks[f"{data_set.label} {label} equals hand-written"] = result[
                "equal"
            ]
    small, large = data_sets
    growth_data = large.events / small.events
    for label in BODIES:
        for kind, name in (("api", "refresh via API"), ("hand", "hand-written query")):
            before = measured[small.label][label][kind]
            after = measured[large.label][label][kind]
            section.add(
                f"growth {small.label} → {large.label}: {label}, {name}",
                after / before,
                "×",
                growth_data,
                "growth of the events",
            )
    section.notes.append(
        "Refresh via API is from the refresh request to the first progress poll "
        f"that reads 100 (polled every {POLL_SECONDS * 1000:.0f} ms), so it includes "
        "the HTTP calls, compiling, the transaction that replaces the members and up "
        "to one poll interval. Generation times were measured when each cached "
        "database was made (benchmarks/.data/)."
    )
    section.parameters = {
        "today": TODAY.isoformat(),
        "seed": SEED,
        "repeats (median)": repeats,
    }
    return section
