"""Event catalogs: where they come from, and the checks they allow on definitions.

A catalog comes from the file named by `TA_CATALOG_FILE`, or, without a file,
from the sandbox's `GET /_sandbox/catalog`. TA itself has no such endpoint, so
when that request fails the server runs without a catalog and checks only the
definitions' shape.

With a catalog, `check_definition` rejects names the catalog does not list,
with the closest names, and comparators that do not fit a property's type.
"""

import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ta_cohort_mcp.models import (
    Analysis,
    ClusterDefinition,
    Comparator,
    EventCondition,
    Filter,
    PropertyRef,
    TableType,
    TagDefinition,
)
from ta_cohort_mcp.models.catalog import CatalogFile, EventCatalog, PropertyType
from ta_cohort_mcp.server.problems import (
    Problem,
    closest_first,
    closest_match,
    join_path,
    problem_value,
    show,
)

logger = logging.getLogger(__name__)

# Prefix of TA's virtual properties, such as `#vp@test_num`.
VIRTUAL_PREFIX = "#vp@"

# The comparators that fit each property type. Null checks fit every type.
# NOTE: TA's documentation gives no such table; this one is the server's own
# rule, so it may reject a comparator that TA accepts on some type.
COMPARATORS_BY_TYPE: dict[PropertyType, tuple[Comparator, ...]] = {
    PropertyType.STRING: (
        Comparator.EQUAL,
        Comparator.NOT_EQUAL,
        Comparator.INCLUDE,
        Comparator.NOT_INCLUDE,
        Comparator.REGEX_MATCH,
        Comparator.NOT_REGEX_MATCH,
        Comparator.IS_NULL,
        Comparator.NOT_NULL,
    ),
    PropertyType.NUMBER: (
        Comparator.EQUAL,
        Comparator.NOT_EQUAL,
        Comparator.GREATER,
        Comparator.LESS,
        Comparator.RANGE,
        Comparator.IS_NULL,
        Comparator.NOT_NULL,
    ),
    PropertyType.BOOLEAN: (
        Comparator.IS_TRUE,
        Comparator.IS_FALSE,
        Comparator.IS_NULL,
        Comparator.NOT_NULL,
    ),
    PropertyType.DATETIME: (
        Comparator.EQUAL,
        Comparator.NOT_EQUAL,
        Comparator.GREATER,
        Comparator.LESS,
        Comparator.RANGE,
        Comparator.IS_NULL,
        Comparator.NOT_NULL,
    ),
}
# Aggregates of a property that need a number; DISTINCT counts values of any type.
NUMERIC_ANALYSES = frozenset({Analysis.SUM, Analysis.AVG, Analysis.MAX, Analysis.MIN})
# Forms a datetime value in `ftv` may take.
DATETIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d")
# Maximum number of names in `Problem.allowed`, closest first.
MAX_ALLOWED_NAMES = 10


_FIX_FILE = "fix the file named by TA_CATALOG_FILE or --catalog-file"


class CatalogFileError(ValueError):
    """The catalog file is missing, is not JSON, or does not fit the catalog schema."""


class ProjectCatalog:
    """The catalog of one project, indexed by name."""

    def __init__(self, catalog: EventCatalog, project_id: int) -> None:
        self.project_id = project_id
        self.catalog = catalog
        self.events = {event.name: event for event in catalog.events}
        self.event_properties = {
            prop.name: prop.type for prop in catalog.eventProperties
        }
        self.user_properties = {prop.name: prop.type for prop in catalog.userProperties}
        # Event name -> its own properties, for events that list them.
        self._event_own: dict[str, dict[str, PropertyType]] = {}
        for event in catalog.events:
            if event.properties is not None:
                self._event_own[event.name] = {
                    name: self.event_properties[name] for name in event.properties
                }

    def event_property_types(self, event_name: str | None) -> dict[str, PropertyType]:
        """Return the properties an event carries: its own list, or every event property.

        For an unknown event, or None, every event property is returned.
        """
        if event_name is not None and event_name in self._event_own:
            return self._event_own[event_name]
        return self.event_properties

    def lists_properties(self, event_name: str | None) -> bool:
        """Return whether the catalog lists the properties of this event."""
        return event_name is not None and event_name in self._event_own

    def to_json(self) -> dict[str, Any]:
        """Return the catalog as JSON data, with the project it was read for."""
        data = self.catalog.model_dump(mode="json", exclude_none=True)
        data["projectId"] = self.project_id
        return data


def load_catalog_file(path: Path) -> dict[int | None, EventCatalog]:
    """Read a catalog file; the key None is the catalog of every other project.

    Raises:
        CatalogFileError: the file cannot be read, is not JSON, or is invalid.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise CatalogFileError(
            f"cannot read the catalog file {path}: {error.strerror}; "
            "check TA_CATALOG_FILE or --catalog-file"
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise CatalogFileError(
            f"the catalog file {path} is not valid JSON: {error.msg} at line "
            f"{error.lineno}, column {error.colno}; {_FIX_FILE}"
        ) from None
    if isinstance(data, list):
        raise CatalogFileError(
            f"the catalog file {path} is a JSON array; it must be one catalog "
            "object, with the catalogs of further projects in its projects list; "
            f"{_FIX_FILE}"
        )
    try:
        parsed = CatalogFile.model_validate(data)
    except ValidationError as error:
        raise CatalogFileError(
            f"the catalog file {path} does not fit the catalog format "
            f"(schemas/catalog.json): {_first_error(error)}; {_FIX_FILE}"
        ) from None
    return {catalog.projectId: catalog for catalog in parsed.catalogs()}


def parse_served_catalog(data: Any) -> EventCatalog:
    """Parse the `data` of a `/_sandbox/catalog` response.

    Raises:
        ValueError: the data does not fit the catalog format.
    """
    try:
        return EventCatalog.model_validate(data)
    except ValidationError as error:
        raise ValueError(_first_error(error)) from None


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    location = ".".join(str(part) for part in first["loc"])
    count = error.error_count()
    more = f" (and {count - 1} more)" if count > 1 else ""
    return f"{location}: {first['msg']}{more}"


# Returns the catalog data a server serves for a project, or None when it serves none.
CatalogFetcher = Callable[[int], Awaitable[EventCatalog | None]]


@dataclass
class _Cached:
    catalog: ProjectCatalog | None
    expires: float


class CatalogStore:
    """The catalog of each project, from the catalog file or from the API server.

    The file is read again when its modification time changes. A catalog fetched
    from the server is kept for `ttl` seconds, and so is the absence of one.
    """

    def __init__(
        self,
        *,
        file: Path | None = None,
        fetch: CatalogFetcher | None = None,
        ttl: float = 60.0,
    ) -> None:
        self.file = file
        self._fetch = fetch
        self._ttl = ttl
        self._file_stamp: tuple[int, int] | None = None
        self._file_catalogs: dict[int | None, EventCatalog] = {}
        self._fetched: dict[int, _Cached] = {}

    @property
    def source(self) -> str:
        """Where catalogs come from, for messages: the file, the server, or nowhere."""
        if self.file is not None:
            return f"the catalog file {self.file}"
        if self._fetch is not None:
            return "the API server's /_sandbox/catalog"
        return "nowhere (no catalog file is set)"

    def load_file(self) -> None:
        """Read the catalog file now, so that an invalid file fails at start-up.

        Raises:
            CatalogFileError: the file is missing or invalid.
        """
        if self.file is not None:
            self._file_for_reading()

    async def get(self, project_id: int) -> ProjectCatalog | None:
        """Return the catalog of a project, or None when there is none.

        Raises:
            CatalogFileError: the catalog file has become unreadable or invalid.
        """
        if self.file is not None:
            catalogs = self._file_for_reading()
            catalog = catalogs.get(project_id, catalogs.get(None))
            return None if catalog is None else ProjectCatalog(catalog, project_id)
        if self._fetch is None:
            return None
        cached = self._fetched.get(project_id)
        now = time.monotonic()
        if cached is not None and cached.expires > now:
            return cached.catalog
        fetched = await self._fetch(project_id)
        found = None if fetched is None else ProjectCatalog(fetched, project_id)
        self._fetched[project_id] = _Cached(found, now + self._ttl)
        return found

    def _file_for_reading(self) -> dict[int | None, EventCatalog]:
        assert self.file is not None
        try:
            status = self.file.stat()
        except OSError as error:
            raise CatalogFileError(
                f"cannot read the catalog file {self.file}: {error.strerror}; "
                "check TA_CATALOG_FILE or --catalog-file"
            ) from None
        stamp = (status.st_mtime_ns, status.st_size)
        if stamp != self._file_stamp:
            self._file_catalogs = load_catalog_file(self.file)
            self._file_stamp = stamp
            logger.info(
                "read the catalog file %s: %d catalogs",
                self.file,
                len(self._file_catalogs),
            )
        return self._file_catalogs


def check_definition(
    definition: ClusterDefinition | TagDefinition,
    catalog: ProjectCatalog,
    path_prefix: str,
) -> list[Problem]:
    """Return the problems of a qp or tagQp against a project's catalog.

    `path_prefix` is the JSON path of the definition in the arguments, such as
    "qp" or "tagQp"; every problem's path starts with it.
    """
    checker = _Checker(catalog)
    if isinstance(definition, ClusterDefinition):
        checker.cluster(definition, path_prefix)
    else:
        checker.tag(definition, path_prefix)
    return checker.problems


class _Checker:
    """Walks a definition and collects the problems found against a catalog."""

    def __init__(self, catalog: ProjectCatalog) -> None:
        self.catalog = catalog
        self.problems: list[Problem] = []

    def cluster(self, definition: ClusterDefinition, path: str) -> None:
        for index, event in enumerate(definition.events or []):
            self.event_condition(event, join_path(join_path(path, "events"), index))
        for index, item in enumerate(definition.filts or []):
            self.filter(item, join_path(join_path(path, "filts"), index), None)

    def tag(self, definition: TagDefinition, path: str) -> None:
        values_path = join_path(path, "userTagValueDefs")
        for index, value in enumerate(definition.userTagValueDefs or []):
            self.cluster(
                value.userClusterDef,
                join_path(join_path(values_path, index), "userClusterDef"),
            )
        if definition.userTagConFirstLastEventDef is not None:
            first_last = definition.userTagConFirstLastEventDef.userTagConFirstLastEvent
            at = join_path(
                join_path(path, "userTagConFirstLastEventDef"),
                "userTagConFirstLastEvent",
            )
            known = self.event_name(first_last.eventName, join_path(at, "eventName"))
            self.property_ref(
                first_last.calcPropVo.property,
                join_path(join_path(at, "calcPropVo"), "property"),
                first_last.eventName if known else None,
            )
            self.filters(first_last.filts, at, first_last.eventName if known else None)
        if definition.userTagConQuotaDef is not None:
            quota_event = definition.userTagConQuotaDef.userTagConQuotaEvent
            at = join_path(
                join_path(path, "userTagConQuotaDef"), "userTagConQuotaEvent"
            )
            known = self.event_name(quota_event.eventName, join_path(at, "eventName"))
            event = quota_event.eventName if known else None
            self.measure(quota_event.analysis, quota_event.quota, at, event)
            self.filters(quota_event.filts, at, event)

    def event_condition(self, condition: EventCondition, path: str) -> None:
        known = self.event_name(condition.eventName, join_path(path, "eventName"))
        event = condition.eventName if known else None
        quota = condition.taPropQuota
        self.measure(quota.analysis, quota.quota, join_path(path, "taPropQuota"), event)
        self.filters(condition.filts, path, event)

    def filters(self, filts: list[Filter] | None, path: str, event: str | None) -> None:
        for index, item in enumerate(filts or []):
            self.filter(item, join_path(join_path(path, "filts"), index), event)

    def event_name(self, name: str, path: str) -> bool:
        """Record a problem unless the catalog lists the event; return whether it does."""
        if name in self.catalog.events:
            return True
        names = list(self.catalog.events)
        self.problems.append(
            _unknown_name(
                path,
                name,
                names,
                f"unknown event {name!r}: the event catalog of project "
                f"{self.catalog.project_id} has no such event",
                "an event name from the project's event catalog",
            )
        )
        return False

    def measure(
        self, analysis: Analysis, quota: str | None, path: str, event: str | None
    ) -> None:
        if analysis is Analysis.TIMES or quota is None:
            return
        kind = self.property_type(
            quota, TableType.EVENT, join_path(path, "quota"), event
        )
        if kind is None or analysis not in NUMERIC_ANALYSES:
            return
        if kind is not PropertyType.NUMBER:
            self.problems.append(
                Problem(
                    path=join_path(path, "analysis"),
                    message=(
                        f"analysis {analysis.value} needs a number property, but "
                        f"{quota!r} is a {kind.value}; use DISTINCT to count its "
                        "values, or pick a number property for quota"
                    ),
                    value=analysis.value,
                    expected="an aggregate that fits the property type",
                    allowed=[Analysis.DISTINCT.value],
                )
            )

    def property_ref(self, ref: PropertyRef, path: str, event: str | None) -> None:
        self.property_type(
            ref.columnName, ref.tableType, join_path(path, "columnName"), event
        )

    def filter(self, item: Filter, path: str, event: str | None) -> None:
        kind = self.property_type(
            item.columnName, item.tableType, join_path(path, "columnName"), event
        )
        if kind is None:
            return
        fitting = COMPARATORS_BY_TYPE[kind]
        if item.comparator not in fitting:
            allowed = [comparator.value for comparator in fitting]
            self.problems.append(
                Problem(
                    path=join_path(path, "comparator"),
                    message=(
                        f"comparator {item.comparator.value!r} does not fit "
                        f"{item.columnName!r}, a {kind.value} property; use one of "
                        f"{', '.join(allowed)}"
                    ),
                    value=item.comparator.value,
                    expected=f"a comparator for a {kind.value} property",
                    allowed=allowed,
                )
            )
            return
        self.filter_values(item, kind, join_path(path, "ftv"))

    def filter_values(self, item: Filter, kind: PropertyType, path: str) -> None:
        if item.comparator in (Comparator.REGEX_MATCH, Comparator.NOT_REGEX_MATCH):
            return
        for index, value in enumerate(item.ftv or []):
            if kind is PropertyType.NUMBER and not _is_number(value):
                expected = 'a number as text, such as "3"'
            elif kind is PropertyType.DATETIME and not _is_datetime(value):
                expected = "a time as yyyy-MM-dd HH:mm:ss or yyyy-MM-dd"
            else:
                continue
            self.problems.append(
                Problem(
                    path=join_path(path, index),
                    message=(
                        f"{show(value)} is not a valid value for {item.columnName!r}, "
                        f"a {kind.value} property; expected {expected}"
                    ),
                    value=problem_value(value),
                    expected=expected,
                )
            )

    def property_type(
        self, name: str, table: TableType, path: str, event: str | None
    ) -> PropertyType | None:
        """Return the type of a property, or record a problem and return None."""
        if table is TableType.USER:
            known = self.catalog.user_properties
            kind_text = "user property"
        else:
            known = self.catalog.event_property_types(event)
            kind_text = "event property"
        if name in known:
            return known[name]
        # TA's virtual property `#vp@x` is the column `x` in the sandbox, whose
        # catalog lists `x`; a catalog file may list `#vp@x` itself (above).
        if name.startswith(VIRTUAL_PREFIX) and name[len(VIRTUAL_PREFIX) :] in known:
            return known[name[len(VIRTUAL_PREFIX) :]]
        where = (
            f"event {event!r}"
            if table is TableType.EVENT and self.catalog.lists_properties(event)
            else f"the event catalog of project {self.catalog.project_id}"
        )
        message = f"unknown {kind_text} {name!r}: {where} has no such property"
        other = self._other_table(name, table)
        if other is not None:
            noun = "an event" if other is TableType.EVENT else "a user"
            message += (
                f"; the catalog lists {name!r} as {noun} property, so set "
                f"tableType to {other.value!r}"
            )
        self.problems.append(
            _unknown_name(path, name, list(known), message, f"a {kind_text} name")
        )
        return None

    def _other_table(self, name: str, table: TableType) -> TableType | None:
        """Return the other table type when the property is listed there."""
        if table is TableType.USER and name in self.catalog.event_property_types(None):
            return TableType.EVENT
        if table is TableType.EVENT and name in self.catalog.user_properties:
            return TableType.USER
        return None


def _unknown_name(
    path: str, name: str, names: Iterable[str], message: str, expected: str
) -> Problem:
    choices = list(names)
    closest = closest_match(name, choices)
    if closest is not None:
        message += f"; did you mean {closest!r}?"
    elif not choices:
        message += "; the catalog lists none"
    return Problem(
        path=path,
        message=message,
        value=problem_value(name),
        expected=expected,
        allowed=closest_first(name, choices)[:MAX_ALLOWED_NAMES] or None,
        closest=closest,
    )


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _is_datetime(text: str) -> bool:
    for form in DATETIME_FORMATS:
        try:
            datetime.strptime(text, form)
        except ValueError:
            continue
        return True
    return False
