"""Compile cluster definitions (`qp`) and tag definitions (`tagQp`) into DuckDB SQL.

Each definition becomes one query over `ta_user` and `ta_event` (see
`ta_cohort_mcp.sandbox.data`) with `?` placeholders and a list of bound values.
No value of a definition is written into the SQL text. Every column name is
checked against the table's columns before it is quoted into the SQL.
A definition that cannot be evaluated raises `DefinitionError` naming the JSON
path of the part at fault, before any SQL runs.

The query reads `ta_event` once. Every event condition of a definition (all the
values of a custom condition tag included) becomes one aggregate with a
`FILTER (WHERE ...)` clause in a single `GROUP BY "#user_id"`, and the user table
is joined to that.

Semantics (docs/sandbox-semantics.md has each rule with its source):

- Users are the rows of `ta_user` in the project. Events of ids without a user row
  are never counted.
- Windows: `recentDay` "A-B" covers whole calendar days from B days before
  `today` to A days before it, both included, 0 being `today`. `startTime` and
  `endTime` are inclusive bounds, and an `endTime` at exactly 00:00:00 covers that
  whole day. `recentDay` wins when both forms are present.
- An event condition compares a measure of the user's events of `eventName` in the
  window, after the event's own `filts`, with `num`: TIMES counts them, SUM, AVG,
  MAX and MIN aggregate the number property `quota`, DISTINCT counts the distinct
  non-NULL values of `quota`. A user without such events has TIMES and DISTINCT 0,
  so "equal 0" and "less 1" match users who never did it. SUM, AVG, MAX and MIN have
  no value for such a user, so no comparison matches.
- Filters never match a NULL value, except isNull: notEqual, notInclude and
  notRegexMatch skip NULL as SQL does.
- Relations: events combine by `event_relation`, user filters by `relation`, the
  two parts by `event_user_relation`, an event's filters by its `relation`; each
  defaults to "and", and an empty part is left out.
"""

import datetime
import functools
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

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
    TableType,
    TagDefinition,
    closest_names,
)
from ta_cohort_mcp.models.definitions import TIME_FORMAT
from ta_cohort_mcp.sandbox.catalog import property_type
from ta_cohort_mcp.sandbox.data import (
    EVENT_COLUMNS,
    EVENT_TABLE,
    USER_COLUMNS,
    USER_TABLE,
    quote_identifier,
)

logger = logging.getLogger(__name__)

# The prefix of TA's virtual properties: `#vp@name` is the column `name` here.
VIRTUAL_PREFIX = "#vp@"
# Columns that belong to the sandbox, not to TA: no definition may name them.
_INTERNAL_COLUMNS = frozenset({"project_id"})

_USER_ALIAS = "u"
_MEASURES_ALIAS = "m"

# Comparators that each property type accepts.
_COMPARATORS: dict[str, frozenset[Comparator]] = {
    "string": frozenset(
        {
            Comparator.EQUAL,
            Comparator.NOT_EQUAL,
            Comparator.INCLUDE,
            Comparator.NOT_INCLUDE,
            Comparator.REGEX_MATCH,
            Comparator.NOT_REGEX_MATCH,
            Comparator.IS_NULL,
            Comparator.NOT_NULL,
        }
    ),
    "number": frozenset(
        {
            Comparator.EQUAL,
            Comparator.NOT_EQUAL,
            Comparator.GREATER,
            Comparator.LESS,
            Comparator.RANGE,
            Comparator.IS_NULL,
            Comparator.NOT_NULL,
        }
    ),
    "boolean": frozenset(
        {
            Comparator.EQUAL,
            Comparator.NOT_EQUAL,
            Comparator.IS_TRUE,
            Comparator.IS_FALSE,
            Comparator.IS_NULL,
            Comparator.NOT_NULL,
        }
    ),
    "datetime": frozenset(
        {
            Comparator.EQUAL,
            Comparator.NOT_EQUAL,
            Comparator.GREATER,
            Comparator.LESS,
            Comparator.RANGE,
            Comparator.IS_NULL,
            Comparator.NOT_NULL,
        }
    ),
}
_BOOLEAN_TEXT = {"true": True, "1": True, "false": False, "0": False}
_INTEGER_TEXT = re.compile(r"^[+-]?\d+$")


class DefinitionError(Exception):
    """A definition that the sandbox cannot evaluate.

    `part` is the JSON path of the part at fault, such as
    `qp.events[0].taPropQuota.quota`, and `message` states what is wrong with it.
    """

    def __init__(self, part: str, message: str) -> None:
        super().__init__(f"{part}: {message}")
        self.part = part
        self.message = message


@dataclass(frozen=True)
class CompiledQuery:
    """One SQL query with `?` placeholders and the values bound to them, in order."""

    sql: str
    params: list[object]


@dataclass(frozen=True)
class _Sql:
    """A piece of SQL and the values of its placeholders, in text order."""

    text: str
    params: tuple[object, ...] = ()


def _join(pieces: Sequence[_Sql], separator: str) -> _Sql:
    params: list[object] = []
    for piece in pieces:
        params.extend(piece.params)
    return _Sql(separator.join(piece.text for piece in pieces), tuple(params))


def _combine(pieces: Sequence[_Sql], relation: Relation | None) -> _Sql | None:
    """Combine conditions by a relation ("and" when None); None when there are none."""
    if not pieces:
        return None
    if len(pieces) == 1:
        return pieces[0]
    operator = " OR " if relation is Relation.OR else " AND "
    joined = _join(pieces, operator)
    return _Sql(f"({joined.text})", joined.params)


@dataclass(frozen=True)
class _Column:
    """A checked column: its quoted SQL name and its property type."""

    sql: str
    type: str
    name: str


@dataclass(frozen=True)
class _Window:
    """A time range of events: `start <= time` and `time < end` (or `<=` if inclusive)."""

    start: datetime.datetime
    end: datetime.datetime
    end_inclusive: bool

    def condition(self, column_sql: str) -> _Sql:
        operator = "<=" if self.end_inclusive else "<"
        return _Sql(
            f"{column_sql} >= ? AND {column_sql} {operator} ?", (self.start, self.end)
        )


@dataclass
class _Schema:
    """The columns of the user and event tables, name -> DuckDB type."""

    user_columns: Mapping[str, str]
    event_columns: Mapping[str, str]

    def column(self, name: str, table: TableType, part: str) -> _Column:
        """Return the column a property name refers to, `#vp@x` being `x`.

        Raises:
            DefinitionError: no such column in the table.
        """
        columns = self.user_columns if table is TableType.USER else self.event_columns
        column_name = name.removeprefix(VIRTUAL_PREFIX)
        if column_name in _INTERNAL_COLUMNS or column_name not in columns:
            known = [key for key in columns if key not in _INTERNAL_COLUMNS]
            kind = "user" if table is TableType.USER else "event"
            message = f"unknown {kind} property {name!r}"
            other = self.event_columns if table is TableType.USER else self.user_columns
            hint = closest_names(column_name, known)
            if column_name in other and column_name not in _INTERNAL_COLUMNS:
                other_kind = "event" if table is TableType.USER else "user"
                article = "an" if other_kind == "event" else "a"
                message += (
                    f"; {column_name!r} is {article} {other_kind} property, which a "
                    f"{kind} filter cannot use"
                )
            elif hint:
                message += f"; did you mean {hint[0]!r}?"
            else:
                message += f"; known {kind} properties: {', '.join(known)}"
            raise DefinitionError(part, message)
        return _Column(
            quote_identifier(column_name),
            property_type(columns[column_name]),
            column_name,
        )


@dataclass
class _Measures:
    """The per-user event aggregates of one query, computed in one scan of ta_event."""

    project_id: int
    aggregates: list[_Sql] = field(default_factory=list)
    row_conditions: list[_Sql] = field(default_factory=list)

    def add(self, aggregate: str, row_condition: _Sql) -> str:
        """Add `aggregate` over the rows matching `row_condition`; return its column.

        `aggregate` is an aggregate call without placeholders or a FILTER clause.
        """
        alias = f"measure_{len(self.aggregates)}"
        self.aggregates.append(
            _Sql(
                f"{aggregate} FILTER (WHERE {row_condition.text}) AS {alias}",
                row_condition.params,
            )
        )
        self.row_conditions.append(row_condition)
        return f"{_MEASURES_ALIAS}.{alias}"

    def cte(self) -> _Sql | None:
        """Return the `measures AS (...)` common table expression, or None if empty."""
        if not self.aggregates:
            return None
        columns = _join(self.aggregates, ",\n        ")
        scanned = _combine(self.row_conditions, Relation.OR)
        assert scanned is not None
        return _Sql(
            "measures AS (\n"
            f'    SELECT "#user_id" AS uid,\n        {columns.text}\n'
            f"    FROM {EVENT_TABLE}\n"
            f"    WHERE project_id = ? AND {scanned.text}\n"
            '    GROUP BY "#user_id"\n)',
            (*columns.params, self.project_id, *scanned.params),
        )


class _Compiler:
    """State of one compilation: the project, `today`, the schema and the measures."""

    def __init__(
        self,
        project_id: int,
        today: datetime.date,
        schema: _Schema,
    ) -> None:
        self.project_id = project_id
        # A datetime is also a date: keep only its date, so windows start at midnight.
        self.today = datetime.date(today.year, today.month, today.day)
        self.schema = schema
        self.measures = _Measures(project_id)

    # Windows

    def window(
        self,
        recent_day: str | None,
        start_time: str | None,
        end_time: str | None,
        part: str,
    ) -> _Window:
        """Turn recentDay, or startTime and endTime, into a time range.

        recentDay "A-B" runs from 00:00:00 B days before `today` to the end of the
        day A days before it. Absolute bounds are inclusive, and an endTime of
        00:00:00 means the end of that day. recentDay wins over absolute bounds.
        """
        if recent_day is not None:
            nearest, farthest = (int(day) for day in recent_day.split("-"))
            if nearest > farthest:
                raise DefinitionError(
                    f"{part}.recentDay",
                    f"recentDay {recent_day!r} has A > B; write {farthest}-{nearest}",
                )
            midnight = datetime.datetime.combine(self.today, datetime.time())
            return _Window(
                midnight - datetime.timedelta(days=farthest),
                midnight - datetime.timedelta(days=nearest - 1),
                end_inclusive=False,
            )
        if start_time is None or end_time is None:
            raise DefinitionError(
                part,
                'a time window is missing: give recentDay, such as "1-7", or '
                "both startTime and endTime",
            )
        start = _parse_time(start_time, f"{part}.startTime")
        end = _parse_time(end_time, f"{part}.endTime")
        if end.time() == datetime.time():
            window = _Window(
                start, end + datetime.timedelta(days=1), end_inclusive=False
            )
        else:
            window = _Window(start, end, end_inclusive=True)
        if window.start > window.end:
            raise DefinitionError(
                f"{part}.startTime",
                f"startTime {start_time} is after endTime {end_time}",
            )
        return window

    # Filters

    def filters(
        self,
        filts: list[Filter] | None,
        relation: Relation | None,
        table: TableType,
        part: str,
        prefix: str = "",
    ) -> _Sql | None:
        """Compile a list of filters on one table, combined by `relation`."""
        pieces = []
        for index, item in enumerate(filts or []):
            item_part = f"{part}[{index}]"
            if item.tableType is not table:
                raise DefinitionError(
                    f"{item_part}.tableType",
                    f"tableType must be {table.value} here, because "
                    + (
                        "user filters apply to user properties"
                        if table is TableType.USER
                        else "filters of an event apply to event properties"
                    )
                    + f"; got {item.tableType.value}",
                )
            column = self.schema.column(
                item.columnName, table, f"{item_part}.columnName"
            )
            column_sql = f"{prefix}{column.sql}"
            pieces.append(_filter(item, column, column_sql, item_part))
        return _combine(pieces, relation)

    # Event conditions

    def event_rows(
        self,
        event_name: str,
        window: _Window,
        filts: list[Filter] | None,
        relation: Relation | None,
        part: str,
    ) -> _Sql:
        """Compile the condition on ta_event rows: the event, its window and filters."""
        pieces = [
            _Sql('"#event_name" = ?', (event_name,)),
            window.condition('"#event_time"'),
        ]
        filters = self.filters(filts, relation, TableType.EVENT, f"{part}.filts")
        if filters is not None:
            pieces.append(filters)
        joined = _join(pieces, " AND ")
        return _Sql(f"({joined.text})", joined.params)

    def aggregate(self, analysis: Analysis, quota: str | None, part: str) -> str:
        """Return the SQL aggregate of a measure, without its FILTER clause.

        SUM and AVG of DOUBLE columns use DuckDB's compensated fsum and favg, so a
        result does not depend on the order DuckDB reads rows in.
        """
        if analysis is Analysis.TIMES:
            return "count(*)"
        if quota is None:
            raise DefinitionError(
                f"{part}.quota",
                f"analysis {analysis.value} needs quota, an event property",
            )
        column = self.schema.column(quota, TableType.EVENT, f"{part}.quota")
        if analysis is Analysis.DISTINCT:
            return f"count(DISTINCT {column.sql})"
        if column.type != "number":
            raise DefinitionError(
                f"{part}.quota",
                f"analysis {analysis.value} needs a number property; "
                f"{quota!r} is a {column.type}",
            )
        floating = self.schema.event_columns[column.name].upper() in ("DOUBLE", "FLOAT")
        function = {
            Analysis.SUM: "fsum" if floating else "sum",
            Analysis.AVG: "favg" if floating else "avg",
            Analysis.MAX: "max",
            Analysis.MIN: "min",
        }[analysis]
        return f"{function}({column.sql})"

    def event_condition(self, condition: EventCondition, part: str) -> _Sql:
        """Compile an event condition into a comparison of its measure with num."""
        window = self.window(
            condition.recentDay, condition.startTime, condition.endTime, part
        )
        rows = self.event_rows(
            condition.eventName, window, condition.filts, condition.relation, part
        )
        quota = condition.taPropQuota
        analysis = quota.analysis
        aggregate = self.aggregate(analysis, quota.quota, f"{part}.taPropQuota")
        measure = self.measures.add(aggregate, rows)
        if analysis in (Analysis.TIMES, Analysis.DISTINCT):
            measure = f"coalesce({measure}, 0)"
        return _measure_comparison(measure, condition.comparator, condition.num, part)

    def definition(self, qp: ClusterDefinition, part: str) -> _Sql:
        """Compile a cluster definition into a condition on a user row."""
        events = [
            self.event_condition(condition, f"{part}.events[{index}]")
            for index, condition in enumerate(qp.events or [])
        ]
        events_part = _combine(events, qp.event_relation)
        filts_part = self.filters(
            qp.filts, qp.relation, TableType.USER, f"{part}.filts", f"{_USER_ALIAS}."
        )
        parts = [piece for piece in (events_part, filts_part) if piece is not None]
        combined = _combine(parts, qp.event_user_relation)
        if combined is None:
            raise DefinitionError(
                part, "the definition has no condition: add one to events or filts"
            )
        return combined

    # Queries

    def users_query(self, select: _Sql, where: _Sql | None) -> _Sql:
        """Build the query over the project's users joined to their measures."""
        cte = self.measures.cte()
        pieces = []
        if cte is not None:
            pieces.append(_Sql(f"WITH {cte.text}\n", cte.params))
        pieces.append(select)
        pieces.append(_Sql(f"\nFROM {USER_TABLE} AS {_USER_ALIAS}"))
        if cte is not None:
            pieces.append(
                _Sql(
                    f"\nLEFT JOIN measures AS {_MEASURES_ALIAS} "
                    f'ON {_MEASURES_ALIAS}.uid = {_USER_ALIAS}."#user_id"'
                )
            )
        pieces.append(_Sql(f"\nWHERE {_USER_ALIAS}.project_id = ?", (self.project_id,)))
        if where is not None:
            pieces.append(_Sql(f" AND {where.text}", where.params))
        return _join(pieces, "")


def _parse_time(text: str, part: str) -> datetime.datetime:
    try:
        return datetime.datetime.strptime(text, TIME_FORMAT)
    except ValueError:
        raise DefinitionError(
            part,
            f"time must be yyyy-MM-dd HH:mm:ss, such as 2020-01-03 00:00:00; got {text!r}",
        ) from None


def _cast_value(text: str, column: _Column, part: str) -> object:
    """Cast one ftv text to the Python value of the column's type.

    Numbers take integer or decimal text, booleans true/false/1/0 in any case, and
    times yyyy-MM-dd HH:mm:ss or yyyy-MM-dd (midnight).

    Raises:
        DefinitionError: the text does not cast.
    """
    kind = column.type
    if kind == "string":
        return text
    if kind == "number":
        stripped = text.strip()
        if _INTEGER_TEXT.match(stripped):
            return int(stripped)
        try:
            number = float(stripped)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise DefinitionError(
                part, f"{column.name} is a number property; {text!r} is not a number"
            )
        return number
    if kind == "boolean":
        value = _BOOLEAN_TEXT.get(text.strip().lower())
        if value is None:
            raise DefinitionError(
                part,
                f"{column.name} is a boolean property; write true or false, not {text!r}",
            )
        return value
    try:
        moment = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is not None:
        raise DefinitionError(
            part,
            f"{column.name} is a datetime property; write yyyy-MM-dd HH:mm:ss without "
            f"a time zone, such as 2020-01-03 00:00:00; got {text!r}",
        )
    return moment


@functools.lru_cache(maxsize=256)
def _regex_error(pattern: str) -> str | None:
    """Return DuckDB's error for a regular expression (RE2 syntax), or None if valid."""
    with duckdb.connect() as probe:
        try:
            probe.execute("SELECT regexp_matches('', ?)", [pattern]).fetchall()
        except duckdb.Error as error:
            return str(error).removeprefix("Invalid Input Error: ")
    return None


def _filter(item: Filter, column: _Column, column_sql: str, part: str) -> _Sql:
    """Compile one filter on a checked column.

    equal and notEqual with several values are IN and NOT IN. range is inclusive.
    include, notInclude, regexMatch and notRegexMatch with several values match
    when any value matches (the "not" forms when none does). No comparator but
    isNull matches NULL.
    """
    op = item.comparator
    if op not in _COMPARATORS[column.type]:
        allowed = sorted(comparator.value for comparator in _COMPARATORS[column.type])
        raise DefinitionError(
            f"{part}.comparator",
            f"comparator {op.value} does not apply to {column.name}, a {column.type} "
            f"property; use one of {', '.join(allowed)}",
        )
    texts = item.ftv or []
    values = [
        _cast_value(text, column, f"{part}.ftv[{index}]")
        for index, text in enumerate(texts)
    ]
    placeholders = ", ".join("?" for _ in values)
    if op is Comparator.IS_NULL:
        return _Sql(f"{column_sql} IS NULL")
    if op is Comparator.NOT_NULL:
        return _Sql(f"{column_sql} IS NOT NULL")
    if op is Comparator.IS_TRUE:
        return _Sql(f"{column_sql} IS TRUE")
    if op is Comparator.IS_FALSE:
        return _Sql(f"{column_sql} IS FALSE")
    if op is Comparator.EQUAL:
        if len(values) == 1:
            return _Sql(f"{column_sql} = ?", tuple(values))
        return _Sql(f"{column_sql} IN ({placeholders})", tuple(values))
    if op is Comparator.NOT_EQUAL:
        if len(values) == 1:
            return _Sql(f"{column_sql} <> ?", tuple(values))
        return _Sql(f"{column_sql} NOT IN ({placeholders})", tuple(values))
    if op is Comparator.GREATER:
        return _Sql(f"{column_sql} > ?", tuple(values))
    if op is Comparator.LESS:
        return _Sql(f"{column_sql} < ?", tuple(values))
    if op is Comparator.RANGE:
        low, high = values
        if low > high:  # type: ignore[operator]
            raise DefinitionError(
                f"{part}.ftv", f"range low {texts[0]!r} is above high {texts[1]!r}"
            )
        return _Sql(f"{column_sql} BETWEEN ? AND ?", (low, high))
    if op in (Comparator.REGEX_MATCH, Comparator.NOT_REGEX_MATCH):
        for index, pattern in enumerate(texts):
            error = _regex_error(pattern)
            if error is not None:
                raise DefinitionError(
                    f"{part}.ftv[{index}]",
                    f"invalid regular expression {pattern!r} (RE2 syntax): {error}",
                )
        template = f"regexp_matches({column_sql}, ?)"
    else:
        template = f"contains({column_sql}, ?)"
    matches = _combine([_Sql(template, (value,)) for value in values], Relation.OR)
    assert matches is not None
    if op in (Comparator.NOT_INCLUDE, Comparator.NOT_REGEX_MATCH):
        return _Sql(f"NOT {matches.text}", matches.params)
    return matches


def _measure_comparison(
    measure: str, comparator: MeasureComparator, num: str | None, part: str
) -> _Sql:
    """Compare a measure with num: a number, or "low,high" (inclusive) for range."""
    if num is None:
        raise DefinitionError(
            f"{part}.num", "num is missing: give the number to compare with"
        )
    texts = num.split(",") if comparator is MeasureComparator.RANGE else [num]
    if len(texts) != (2 if comparator is MeasureComparator.RANGE else 1):
        raise DefinitionError(f"{part}.num", f'range needs num "low,high"; got {num!r}')
    numbers = []
    for text in texts:
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise DefinitionError(
                f"{part}.num", f"num must be a number as text; got {num!r}"
            )
        numbers.append(number)
    if comparator is MeasureComparator.RANGE:
        if numbers[0] > numbers[1]:
            raise DefinitionError(
                f"{part}.num", f"range low {texts[0]} is above high {texts[1]}"
            )
        return _Sql(f"({measure} BETWEEN ? AND ?)", tuple(numbers))
    operator = {
        MeasureComparator.EQUAL: "=",
        MeasureComparator.NOT_EQUAL: "<>",
        MeasureComparator.GREATER: ">",
        MeasureComparator.LESS: "<",
    }[comparator]
    return _Sql(f"{measure} {operator} ?", tuple(numbers))


def _schema(
    user_columns: Mapping[str, str] | None, event_columns: Mapping[str, str] | None
) -> _Schema:
    return _Schema(
        USER_COLUMNS if user_columns is None else user_columns,
        EVENT_COLUMNS if event_columns is None else event_columns,
    )


def _finish(query: _Sql) -> CompiledQuery:
    logger.debug("compiled query with %d parameters", len(query.params))
    return CompiledQuery(query.text, list(query.params))


def compile_cluster(
    qp: ClusterDefinition,
    *,
    project_id: int,
    today: datetime.date,
    user_columns: Mapping[str, str] | None = None,
    event_columns: Mapping[str, str] | None = None,
) -> CompiledQuery:
    """Compile a cluster definition into a query of its users' `"#user_id"`.

    The query returns one column, `"#user_id"`, one row per matching user of
    `project_id`. Windows count days back from `today`. The column maps default to
    the tables of `ta_cohort_mcp.sandbox.data`.

    Raises:
        DefinitionError: a part of `qp` cannot be evaluated.
    """
    compiler = _Compiler(project_id, today, _schema(user_columns, event_columns))
    condition = compiler.definition(qp, "qp")
    select = _Sql(f'SELECT {_USER_ALIAS}."#user_id"')
    return _finish(compiler.users_query(select, condition))


def compile_tag(
    tag_qp: TagDefinition,
    *,
    project_id: int,
    today: datetime.date,
    user_columns: Mapping[str, str] | None = None,
    event_columns: Mapping[str, str] | None = None,
) -> CompiledQuery:
    """Compile a tag definition into a query of `("#user_id", tag_value)`.

    The query returns one row per tagged user of `project_id`, with `tag_value`
    VARCHAR. The kind of tag follows the field of `tag_qp` in use:

    - userTagValueDefs (custom condition): the values are tried in order, and a user
      takes the first value whose userClusterDef matches.
    - userTagConFirstLastEventDef: the value of the property on the user's first
      (isFirstEvent true) or last event of eventName in the window that matches the
      filters. Among events at the same second, "first" takes the smallest value
      and "last" the largest, NULL only when none of them has a value. A NULL value
      gives no tag.
    - userTagConQuotaDef (indicator value): the measure of the user's events of
      eventName in the window. Users without such events, or whose measure is NULL,
      get no tag.

    Values are DuckDB's text of the value (CAST AS VARCHAR): "12.5", "3", "true",
    "2020-01-03 10:00:00".

    Raises:
        DefinitionError: a part of `tag_qp` cannot be evaluated.
    """
    compiler = _Compiler(project_id, today, _schema(user_columns, event_columns))
    if tag_qp.userTagConFirstLastEventDef is not None:
        event = tag_qp.userTagConFirstLastEventDef.userTagConFirstLastEvent
        part = "tagQp.userTagConFirstLastEventDef.userTagConFirstLastEvent"
        return _finish(_first_last_query(compiler, event, part))
    if tag_qp.userTagConQuotaDef is not None:
        quota_event = tag_qp.userTagConQuotaDef.userTagConQuotaEvent
        part = "tagQp.userTagConQuotaDef.userTagConQuotaEvent"
        return _finish(_quota_query(compiler, quota_event, part))
    return _finish(_custom_condition_query(compiler, tag_qp))


def _custom_condition_query(compiler: _Compiler, tag_qp: TagDefinition) -> _Sql:
    cases = []
    for index, value in enumerate(tag_qp.userTagValueDefs or []):
        part = f"tagQp.userTagValueDefs[{index}].userClusterDef"
        condition = compiler.definition(value.userClusterDef, part)
        cases.append(
            _Sql(f"WHEN {condition.text} THEN ?", (*condition.params, value.tagValue))
        )
    if not cases:
        raise DefinitionError("tagQp.userTagValueDefs", "the tag has no values")
    case = _join(cases, " ")
    select = _Sql(
        f'SELECT {_USER_ALIAS}."#user_id", CAST(CASE {case.text} END AS VARCHAR) '
        "AS tag_value",
        case.params,
    )
    inner = compiler.users_query(select, None)
    return _Sql(
        f'SELECT "#user_id", tag_value FROM (\n{inner.text}\n) WHERE tag_value IS NOT NULL',
        inner.params,
    )


def _event_scan(
    compiler: _Compiler, event: FirstLastEvent | QuotaEvent, part: str
) -> _Sql:
    window = compiler.window(event.recentDay, event.startTime, event.endTime, part)
    return compiler.event_rows(
        event.eventName, window, event.filts, event.relation, part
    )


def _tagged_users(compiler: _Compiler, source: _Sql, value_sql: str) -> _Sql:
    """Join per-user values `(uid, value, ...)` to the project's users as tags."""
    return _Sql(
        f"{source.text}\n"
        f'SELECT {_USER_ALIAS}."#user_id", CAST({value_sql} AS VARCHAR) AS tag_value\n'
        f"FROM tagged AS t JOIN {USER_TABLE} AS {_USER_ALIAS} "
        f'ON {_USER_ALIAS}."#user_id" = t.uid AND {_USER_ALIAS}.project_id = ?\n'
        f"WHERE t.value IS NOT NULL",
        (*source.params, compiler.project_id),
    )


def _first_last_query(compiler: _Compiler, event: FirstLastEvent, part: str) -> _Sql:
    prop = event.calcPropVo.property
    prop_part = f"{part}.calcPropVo.property"
    if event.calcPropVo.isCalc:
        raise DefinitionError(
            f"{part}.calcPropVo.isCalc",
            "calculated properties (isCalc true) are not supported by the sandbox; "
            "set isCalc to false",
        )
    if prop.tableType is not TableType.EVENT:
        raise DefinitionError(
            f"{prop_part}.tableType",
            "the tag value comes from a property of the event, so tableType must be "
            f"event; got {prop.tableType.value}",
        )
    column = compiler.schema.column(
        prop.columnName, TableType.EVENT, f"{prop_part}.columnName"
    )
    rows = _event_scan(compiler, event, part)
    direction = "ASC NULLS LAST" if event.isFirstEvent else "DESC NULLS LAST"
    order = "ASC" if event.isFirstEvent else "DESC"
    source = _Sql(
        "WITH tagged AS (\n"
        f'    SELECT "#user_id" AS uid, {column.sql} AS value, row_number() OVER (\n'
        f'        PARTITION BY "#user_id" ORDER BY "#event_time" {order}, '
        f"{column.sql} {direction}\n"
        "    ) AS position\n"
        f"    FROM {EVENT_TABLE}\n"
        f"    WHERE project_id = ? AND {rows.text}\n"
        "    QUALIFY position = 1\n"
        ")",
        (compiler.project_id, *rows.params),
    )
    return _tagged_users(compiler, source, "t.value")


def _quota_query(compiler: _Compiler, event: QuotaEvent, part: str) -> _Sql:
    if event.type != "normal":
        raise DefinitionError(
            f"{part}.type",
            f'the sandbox supports type "normal" only; got {event.type!r}',
        )
    aggregate = compiler.aggregate(event.analysis, event.quota, part)
    rows = _event_scan(compiler, event, part)
    source = _Sql(
        "WITH tagged AS (\n"
        f'    SELECT "#user_id" AS uid, {aggregate} AS value\n'
        f"    FROM {EVENT_TABLE}\n"
        f"    WHERE project_id = ? AND {rows.text}\n"
        '    GROUP BY "#user_id"\n'
        ")",
        (compiler.project_id, *rows.params),
    )
    return _tagged_users(compiler, source, "t.value")
