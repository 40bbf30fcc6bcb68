"""A plain-Python evaluator of cluster and tag definitions, to check the compiler.

It fetches a project's rows once and evaluates definitions with loops over them.
It shares no logic with `ta_cohort_mcp.sandbox.compiler`: windows are computed
from day differences, values are cast and compared with Python operators, and
measures are computed from lists. Only the column types come from the sandbox's
table definitions.
"""

import datetime
import math
import re
import statistics
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import duckdb

from ta_cohort_mcp.models import (
    Analysis,
    ClusterDefinition,
    Comparator,
    EventCondition,
    Filter,
    FirstLastEvent,
    MeasureComparator,
    QuotaEvent,
    Relation,
    TagDefinition,
)
from ta_cohort_mcp.sandbox.data import EVENT_COLUMNS, USER_COLUMNS

Row = dict[str, Any]


def _fetch(
    connection: duckdb.DuckDBPyConnection, table: str, project_id: int
) -> list[Row]:
    result = connection.execute(
        f"SELECT * FROM {table} WHERE project_id = ?", [project_id]
    )
    names = [column[0] for column in result.description]
    return [dict(zip(names, row, strict=True)) for row in result.fetchall()]


def _kind(duckdb_type: str) -> str:
    if duckdb_type == "VARCHAR":
        return "string"
    if duckdb_type == "BOOLEAN":
        return "boolean"
    if duckdb_type == "TIMESTAMP":
        return "datetime"
    return "number"


def _column(name: str) -> str:
    return name.removeprefix("#vp@")


def _cast(text: str, kind: str) -> Any:
    if kind == "number":
        return float(text)
    if kind == "boolean":
        return text.strip().lower() in ("true", "1")
    if kind == "datetime":
        return datetime.datetime.fromisoformat(text)
    return text


def filter_matches(value: Any, item: Filter, kind: str) -> bool:
    """Whether one property value passes one filter."""
    op = item.comparator
    if op is Comparator.IS_NULL:
        return value is None
    if op is Comparator.NOT_NULL:
        return value is not None
    if value is None:
        return False
    if op is Comparator.IS_TRUE:
        return value is True
    if op is Comparator.IS_FALSE:
        return value is False
    wanted = [_cast(text, kind) for text in item.ftv or []]
    if op is Comparator.EQUAL:
        return any(value == candidate for candidate in wanted)
    if op is Comparator.NOT_EQUAL:
        return all(value != candidate for candidate in wanted)
    if op is Comparator.GREATER:
        return bool(value > wanted[0])
    if op is Comparator.LESS:
        return bool(value < wanted[0])
    if op is Comparator.RANGE:
        return bool(wanted[0] <= value <= wanted[1])
    if op is Comparator.INCLUDE:
        return any(candidate in value for candidate in wanted)
    if op is Comparator.NOT_INCLUDE:
        return not any(candidate in value for candidate in wanted)
    found = any(re.search(pattern, value) for pattern in wanted)
    if op is Comparator.REGEX_MATCH:
        return found
    return not found


def _all_or_any(results: Iterable[bool], relation: Relation | None) -> bool:
    if relation is Relation.OR:
        return any(results)
    return all(results)


def _measure_matches(
    measure: float | None, comparator: MeasureComparator, num: str
) -> bool:
    if measure is None:
        return False
    if comparator is MeasureComparator.RANGE:
        low, high = (float(part) for part in num.split(","))
        return low <= measure <= high
    target = float(num)
    if comparator is MeasureComparator.EQUAL:
        return measure == target
    if comparator is MeasureComparator.NOT_EQUAL:
        return measure != target
    if comparator is MeasureComparator.GREATER:
        return measure > target
    return measure < target


def format_value(value: Any) -> str:
    """Write a value as DuckDB's CAST(... AS VARCHAR) writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


class ReferenceEvaluator:
    """Evaluate definitions over one project's rows, fetched at construction."""

    def __init__(
        self,
        connection: duckdb.DuckDBPyConnection,
        project_id: int,
        today: datetime.date,
    ) -> None:
        self.today = today
        self.users = _fetch(connection, "ta_user", project_id)
        self.events_by_user: dict[int, list[Row]] = defaultdict(list)
        user_ids = {user["#user_id"] for user in self.users}
        for event in _fetch(connection, "ta_event", project_id):
            if event["#user_id"] in user_ids:
                self.events_by_user[event["#user_id"]].append(event)

    # Windows

    def in_window(
        self,
        moment: datetime.datetime,
        recent_day: str | None,
        start_time: str | None,
        end_time: str | None,
    ) -> bool:
        if recent_day is not None:
            nearest, farthest = (int(day) for day in recent_day.split("-"))
            days_ago = (self.today - moment.date()).days
            return nearest <= days_ago <= farthest
        assert start_time is not None and end_time is not None
        start = datetime.datetime.fromisoformat(start_time)
        end = datetime.datetime.fromisoformat(end_time)
        if moment < start:
            return False
        if end.time() == datetime.time(0, 0, 0):
            return moment.date() <= end.date()
        return moment <= end

    # Events

    def matching_events(
        self,
        user_id: int,
        event: EventCondition | FirstLastEvent | QuotaEvent,
    ) -> list[Row]:
        rows = []
        for row in self.events_by_user.get(user_id, []):
            if row["#event_name"] != event.eventName:
                continue
            if not self.in_window(
                row["#event_time"], event.recentDay, event.startTime, event.endTime
            ):
                continue
            checks = (
                filter_matches(
                    row[_column(item.columnName)],
                    item,
                    _kind(EVENT_COLUMNS[_column(item.columnName)]),
                )
                for item in event.filts or []
            )
            if not event.filts or _all_or_any(list(checks), event.relation):
                rows.append(row)
        return rows

    @staticmethod
    def measure(rows: list[Row], analysis: Analysis, quota: str | None) -> float | None:
        """The measure of a user's matching events; None when it has no value."""
        if analysis is Analysis.TIMES:
            return len(rows)
        assert quota is not None
        values = [
            row[_column(quota)] for row in rows if row[_column(quota)] is not None
        ]
        if analysis is Analysis.DISTINCT:
            return len(set(values))
        if not values:
            return None
        if analysis is Analysis.SUM:
            if all(isinstance(value, int) for value in values):
                return sum(values)
            return math.fsum(values)
        if analysis is Analysis.AVG:
            return statistics.fmean(values)
        if analysis is Analysis.MAX:
            return max(values)
        return min(values)

    # Clusters

    def user_matches(self, user: Row, qp: ClusterDefinition) -> bool:
        parts: list[bool] = []
        if qp.events:
            results = []
            for condition in qp.events:
                rows = self.matching_events(user["#user_id"], condition)
                quota = condition.taPropQuota
                value = self.measure(rows, quota.analysis, quota.quota)
                assert condition.num is not None
                results.append(
                    _measure_matches(value, condition.comparator, condition.num)
                )
            parts.append(_all_or_any(results, qp.event_relation))
        if qp.filts:
            results = [
                filter_matches(
                    user[_column(item.columnName)],
                    item,
                    _kind(USER_COLUMNS[_column(item.columnName)]),
                )
                for item in qp.filts
            ]
            parts.append(_all_or_any(results, qp.relation))
        return _all_or_any(parts, qp.event_user_relation)

    def cluster(self, qp: ClusterDefinition) -> set[int]:
        """The `#user_id` of every user the definition matches."""
        return {user["#user_id"] for user in self.users if self.user_matches(user, qp)}

    # Tags

    def tag(self, tag_qp: TagDefinition) -> dict[int, str]:
        """The tag value of every tagged user, by `#user_id`."""
        if tag_qp.userTagConFirstLastEventDef is not None:
            return self._first_last(
                tag_qp.userTagConFirstLastEventDef.userTagConFirstLastEvent
            )
        if tag_qp.userTagConQuotaDef is not None:
            return self._quota(tag_qp.userTagConQuotaDef.userTagConQuotaEvent)
        tags = {}
        for user in self.users:
            for value in tag_qp.userTagValueDefs or []:
                if self.user_matches(user, value.userClusterDef):
                    tags[user["#user_id"]] = value.tagValue
                    break
        return tags

    def _first_last(self, event: FirstLastEvent) -> dict[int, str]:
        column = _column(event.calcPropVo.property.columnName)
        tags = {}
        for user in self.users:
            rows = self.matching_events(user["#user_id"], event)
            if not rows:
                continue
            times = [row["#event_time"] for row in rows]
            moment = min(times) if event.isFirstEvent else max(times)
            values = [
                row[column]
                for row in rows
                if row["#event_time"] == moment and row[column] is not None
            ]
            if not values:
                continue
            chosen = min(values) if event.isFirstEvent else max(values)
            tags[user["#user_id"]] = format_value(chosen)
        return tags

    def _quota(self, event: QuotaEvent) -> dict[int, str]:
        tags = {}
        for user in self.users:
            rows = self.matching_events(user["#user_id"], event)
            if not rows:
                continue
            value = self.measure(rows, event.analysis, event.quota)
            if value is not None:
                tags[user["#user_id"]] = format_value(value)
        return tags
