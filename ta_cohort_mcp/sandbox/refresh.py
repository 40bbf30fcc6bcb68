"""Background refreshes: compute a conditional cluster's members over the sample data.

A refresh runs in its own daemon thread on its own DuckDB cursor. It sets progress
0 when it starts, steps progress when a `slow_refresh` fault applies, then runs the
compiled query and replaces the members, progress 100, usersNum and refreshTime in
one transaction. On failure it stores progress -1 and the error message.

Starting a refresh of a cluster whose refresh is still running cancels the running
one (its query is interrupted and nothing it computed is written) and starts again
from progress 0. Start and cancel of one cluster hold that cluster's lock, so
parallel requests for one cluster run one after another and the last one wins.
"""

import datetime
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import duckdb
from pydantic import ValidationError

from ta_cohort_mcp.models import ClusterCatalog, ClusterDefinition, TagDefinition
from ta_cohort_mcp.sandbox import compiler
from ta_cohort_mcp.sandbox.faults import FaultPlan
from ta_cohort_mcp.sandbox.store import ClusterRecord, Store

logger = logging.getLogger(__name__)

# Number of progress steps of a slow_refresh fault: progress 0, 10, ... 90.
SLOW_REFRESH_STEPS = 10
# How long cancel() waits for a worker thread to end, in seconds.
CANCEL_TIMEOUT = 5.0
# Attempts of the member-replace transaction when DuckDB reports a conflict.
REPLACE_ATTEMPTS = 3


def compile_definition(
    catalog: ClusterCatalog,
    definition: dict[str, Any],
    *,
    project_id: int,
    today: datetime.date,
) -> compiler.CompiledQuery:
    """Compile a stored qp (cluster) or tagQp (tag) into its member query.

    Raises:
        compiler.DefinitionError: the definition cannot be evaluated.
        pydantic.ValidationError: the stored definition no longer fits the models.
    """
    if catalog is ClusterCatalog.TAG:
        tag_qp = TagDefinition.model_validate(definition)
        return compiler.compile_tag(tag_qp, project_id=project_id, today=today)
    qp = ClusterDefinition.model_validate(definition)
    return compiler.compile_cluster(qp, project_id=project_id, today=today)


@dataclass
class _Job:
    cluster: ClusterRecord
    slow_seconds: float
    cancelled: threading.Event
    thread: threading.Thread | None = None
    cursor: duckdb.DuckDBPyConnection | None = None


class RefreshManager:
    """Runs at most one refresh per cluster, each in a background thread."""

    def __init__(self, store: Store, *, today: datetime.date, faults: FaultPlan):
        self._store = store
        self._today = today
        self._faults = faults
        # Guards `_jobs` and `_cluster_locks`; never held while a thread is joined.
        self._lock = threading.Lock()
        self._jobs: dict[int, _Job] = {}
        self._cluster_locks: dict[int, threading.Lock] = {}

    def _cluster_lock(self, cluster_id: int) -> threading.Lock:
        with self._lock:
            return self._cluster_locks.setdefault(cluster_id, threading.Lock())

    def start(self, cluster: ClusterRecord, *, trigger: str) -> None:
        """Start refreshing `cluster`, cancelling a refresh of it that still runs.

        `trigger` is the endpoint that asked for the refresh; a `slow_refresh`
        fault rule matching it makes the refresh step its progress over time.
        """
        with self._cluster_lock(cluster.id):
            self._cancel_locked(cluster.id, CANCEL_TIMEOUT)
            self._store.set_progress(cluster.id, 0)
            slow = self._faults.take_slow_refresh(trigger)
            job = _Job(
                cluster=cluster,
                slow_seconds=slow.seconds if slow is not None else 0.0,
                cancelled=threading.Event(),
            )
            job.thread = threading.Thread(
                target=self._run,
                args=(job,),
                name=f"sandbox-refresh-{cluster.id}",
                daemon=True,
            )
            logger.info(
                "refresh started: cluster %s (project %s) by %s",
                cluster.id,
                cluster.project_id,
                trigger,
            )
            # Started under the lock, so every job in `_jobs` has a started thread,
            # and the worker's own removal from `_jobs` waits until it is added.
            with self._lock:
                job.thread.start()
                self._jobs[cluster.id] = job

    def cancel(self, cluster_id: int, timeout: float = CANCEL_TIMEOUT) -> None:
        """Stop a running refresh of the cluster and wait for its thread to end."""
        with self._cluster_lock(cluster_id):
            self._cancel_locked(cluster_id, timeout)

    def _cancel_locked(self, cluster_id: int, timeout: float) -> None:
        with self._lock:
            job = self._jobs.pop(cluster_id, None)
        if job is None:
            return
        _stop(job)
        if job.thread is not None:
            job.thread.join(timeout)
            if job.thread.is_alive():
                logger.warning(
                    "refresh of cluster %s did not stop within %.1f s",
                    cluster_id,
                    timeout,
                )

    def is_running(self, cluster_id: int) -> bool:
        """Return whether a refresh of the cluster is running."""
        with self._lock:
            job = self._jobs.get(cluster_id)
        return job is not None and job.thread is not None and job.thread.is_alive()

    def wait(self, cluster_id: int, timeout: float) -> bool:
        """Wait until the cluster's refresh ends; return False on timeout."""
        with self._lock:
            job = self._jobs.get(cluster_id)
        if job is None or job.thread is None:
            return True
        job.thread.join(timeout)
        return not job.thread.is_alive()

    def resume_unfinished(self) -> None:
        """Restart the refreshes that a previous run left at progress 0..99."""
        for cluster in self._store.all_clusters():
            if cluster.is_import or not 0 <= cluster.progress < 100:
                continue
            self.start(cluster, trigger="restart")

    def shutdown(self, timeout: float = 1.0) -> None:
        """Cancel every running refresh and wait up to `timeout` seconds in all."""
        with self._lock:
            jobs = list(self._jobs.values())
            self._jobs.clear()
        for job in jobs:
            _stop(job)
        deadline = time.monotonic() + timeout
        for job in jobs:
            if job.thread is not None:
                job.thread.join(max(deadline - time.monotonic(), 0.0))

    def _run(self, job: _Job) -> None:
        cluster = job.cluster
        cursor = self._store.cursor()
        job.cursor = cursor
        try:
            if job.slow_seconds > 0 and not self._step_slowly(job):
                return
            query = compile_definition(
                cluster.catalog,
                cluster.definition or {},
                project_id=cluster.project_id,
                today=self._today,
            )
            if job.cancelled.is_set():
                return
            users_num = self._replace_members(job, cursor, query)
        except compiler.DefinitionError as error:
            self._fail(job, f"invalid definition: {error}")
        except ValidationError as error:
            self._fail(job, f"stored definition is invalid: {error}")
        except duckdb.Error as error:
            if not job.cancelled.is_set():
                self._fail(job, f"query failed: {error}")
        else:
            if users_num is None:
                logger.info(
                    "refresh of cluster %s ended: cancelled or deleted meanwhile",
                    cluster.id,
                )
            elif not job.cancelled.is_set():
                logger.info(
                    "refresh finished: cluster %s, %s users", cluster.id, users_num
                )
        finally:
            job.cursor = None
            cursor.close()
            with self._lock:
                if self._jobs.get(cluster.id) is job:
                    del self._jobs[cluster.id]

    def _replace_members(
        self,
        job: _Job,
        cursor: duckdb.DuckDBPyConnection,
        query: compiler.CompiledQuery,
    ) -> int | None:
        """Write the members, retrying when another transaction wrote the same rows.

        Returns None, and writes nothing, when the cluster was deleted or the job
        was cancelled.

        Raises:
            duckdb.Error: the query failed, or the last attempt still conflicted.
        """
        cluster = job.cluster
        for attempt in range(1, REPLACE_ATTEMPTS + 1):
            try:
                return self._store.replace_members_from_query(
                    cursor,
                    cluster.id,
                    query.sql,
                    query.params,
                    is_tag=cluster.is_tag,
                    cancelled=job.cancelled.is_set,
                )
            except duckdb.TransactionException as error:
                if attempt == REPLACE_ATTEMPTS or job.cancelled.is_set():
                    raise
                logger.warning(
                    "refresh of cluster %s: transaction conflict (%s); attempt %d of %d",
                    cluster.id,
                    error,
                    attempt + 1,
                    REPLACE_ATTEMPTS,
                )
        return None

    def _step_slowly(self, job: _Job) -> bool:
        step_seconds = job.slow_seconds / SLOW_REFRESH_STEPS
        for step in range(SLOW_REFRESH_STEPS):
            if step > 0:
                self._store.set_progress(
                    job.cluster.id, step * 100 // SLOW_REFRESH_STEPS
                )
            if job.cancelled.wait(step_seconds):
                return False
        return True

    def _fail(self, job: _Job, message: str) -> None:
        if job.cancelled.is_set():
            return
        logger.warning("refresh failed: cluster %s: %s", job.cluster.id, message)
        self._store.set_progress(job.cluster.id, -1, message)


def _stop(job: _Job) -> None:
    job.cancelled.set()
    cursor = job.cursor
    if cursor is not None:
        try:
            cursor.interrupt()
        except duckdb.Error:
            logger.debug("interrupt of refresh of cluster %s failed", job.cluster.id)
