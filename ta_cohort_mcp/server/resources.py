"""Resources: clusters and tags of the allowed projects, schemas, a reference, catalogs.

URIs:

- `ta://schemas/qp`, `ta://schemas/tagQp`: JSON Schemas of the definitions.
- `ta://reference/definitions`: comparators, measures and recentDay, as Markdown.
- `ta://projects/{projectId}/clusters`: the project's clusters and tags.
- `ta://projects/{projectId}/clusters/{clusterName}`: one cluster or tag in detail.
- `ta://projects/{projectId}/catalog`: the project's event catalog.

`resources/list` pages through TA's list endpoint, one TA page per MCP page, so a
project with thousands of clusters costs one TA request per page. The cursor
records the project, the catalog (clusters, then tags) and the page number.
"""

import base64
import binascii
import json
import logging
import re
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

from mcp import types
from mcp.shared.exceptions import MCPError

from ta_cohort_mcp.client import TAAPIError, TAClient, TAError
from ta_cohort_mcp.config import Settings
from ta_cohort_mcp.models import (
    CLUSTER_NAME_PATTERN,
    Analysis,
    ClusterCatalog,
    ClusterList,
    ClusterListRequest,
    ClusterSummary,
    ClusterType,
    Comparator,
    MeasureComparator,
    PagerHeader,
)
from ta_cohort_mcp.schemas import load_schema
from ta_cohort_mcp.server.catalog import (
    COMPARATORS_BY_TYPE,
    CatalogFileError,
    CatalogStore,
)
from ta_cohort_mcp.server.results import counted

logger = logging.getLogger(__name__)

SCHEMA_URIS = {"ta://schemas/qp": "qp", "ta://schemas/tagQp": "tagQp"}
REFERENCE_URI = "ta://reference/definitions"
CLUSTERS_TEMPLATE = "ta://projects/{projectId}/clusters"
CLUSTER_TEMPLATE = "ta://projects/{projectId}/clusters/{clusterName}"
CATALOG_TEMPLATE = "ta://projects/{projectId}/catalog"
TEMPLATES = (CLUSTERS_TEMPLATE, CLUSTER_TEMPLATE, CATALOG_TEMPLATE)

# Clusters per resources/list page, which is also the pageSize requested from TA.
LIST_PAGE_SIZE = 100
# Entries of each catalog that a read of ta://projects/{projectId}/clusters shows;
# 1000 is the largest pageSize the list request model accepts.
CLUSTERS_READ_LIMIT = 1000

_JSON = "application/json"
_MARKDOWN = "text/markdown"
_PROJECT_URI = re.compile(r"^ta://projects/(?P<project>[^/?#]+)/(?P<rest>.+)$")
_CLUSTER_NAME = re.compile(CLUSTER_NAME_PATTERN)
_CURSOR_VERSION = 1

_T = TypeVar("_T")


def catalog_types(catalog: ClusterCatalog) -> list[ClusterType]:
    """Return every cluster type of a catalog, for the list request."""
    return [kind for kind in ClusterType if kind.catalog is catalog]


def listed_projects(settings: Settings) -> list[int]:
    """Return the projects whose resources are listed: the allowlist, else the default.

    The default project comes first, then the others in increasing order.
    """
    others = sorted(settings.projects) if settings.projects else []
    default = settings.project_id
    if default is None or (settings.projects and default not in settings.projects):
        return others
    return [default, *(project for project in others if project != default)]


def check_project(settings: Settings, project_id: int) -> None:
    """Raise MCPError INVALID_PARAMS unless the project allowlist admits the project."""
    if settings.projects and project_id not in settings.projects:
        allowed = ", ".join(str(project) for project in sorted(settings.projects))
        raise MCPError(
            code=types.INVALID_PARAMS,
            message=(
                f"project {project_id} is not in the project allowlist; "
                f"allowed projects: {allowed}"
            ),
        )


async def list_page(
    client: TAClient, project_id: int, catalog: ClusterCatalog, page: int, size: int
) -> ClusterList:
    """Return one page of a project's clusters (or tags), of every type."""
    request = ClusterListRequest(
        projectId=project_id,
        clusterCatalog=catalog,
        clusterTypes=catalog_types(catalog),
        pagerHeader=PagerHeader(pageNum=page, pageSize=size),
    )
    return await client.user_cluster_list(request)


@dataclass(frozen=True)
class Cursor:
    """Position in resources/list: the next TA page to read."""

    project_id: int
    catalog: ClusterCatalog
    page: int

    def encode(self) -> str:
        data = {
            "v": _CURSOR_VERSION,
            "p": self.project_id,
            "c": self.catalog.value,
            "n": self.page,
        }
        text = json.dumps(data, separators=(",", ":"))
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str, projects: list[int]) -> "Cursor":
        """Parse a cursor made by `encode`.

        Raises:
            MCPError: INVALID_PARAMS for a cursor this server did not make, or one
                whose project is no longer listed.
        """
        invalid = MCPError(
            code=types.INVALID_PARAMS,
            message=(
                "invalid cursor for resources/list; send the nextCursor of the "
                "previous page unchanged, or no cursor to start again"
            ),
        )
        try:
            padded = text + "=" * (-len(text) % 4)
            data = json.loads(base64.urlsafe_b64decode(padded.encode()))
            cursor = cls(int(data["p"]), ClusterCatalog(data["c"]), int(data["n"]))
            version = data["v"]
        except (binascii.Error, ValueError, KeyError, TypeError):
            raise invalid from None
        if version != _CURSOR_VERSION or cursor.page < 1:
            raise invalid
        if cursor.project_id not in projects:
            raise MCPError(
                code=types.INVALID_PARAMS,
                message=(
                    f"the cursor names project {cursor.project_id}, which is no "
                    "longer listed; list again without a cursor"
                ),
            )
        return cursor


def _next_stage(cursor: Cursor, projects: list[int]) -> Cursor | None:
    """Return the first page after the current catalog: tags, or the next project."""
    if cursor.catalog is ClusterCatalog.CLUSTER:
        return Cursor(cursor.project_id, ClusterCatalog.TAG, 1)
    index = projects.index(cursor.project_id)
    if index + 1 < len(projects):
        return Cursor(projects[index + 1], ClusterCatalog.CLUSTER, 1)
    return None


def static_resources() -> list[types.Resource]:
    """Return the resources that do not depend on a project."""
    return [
        types.Resource(
            uri="ta://schemas/qp",
            name="qp-schema",
            title="Cluster definition (qp) JSON Schema",
            description="JSON Schema of qp, the definition of a conditional cluster.",
            mime_type=_JSON,
        ),
        types.Resource(
            uri="ta://schemas/tagQp",
            name="tagQp-schema",
            title="Tag definition (tagQp) JSON Schema",
            description="JSON Schema of tagQp, the definition of a conditional tag.",
            mime_type=_JSON,
        ),
        types.Resource(
            uri=REFERENCE_URI,
            name="definitions-reference",
            title="Definition reference",
            description="Comparators, measures and recentDay windows, with examples.",
            mime_type=_MARKDOWN,
        ),
    ]


def static_contents(uri: str) -> types.TextResourceContents | None:
    """Return the contents of a resource that needs no TA request, or None."""
    if uri in SCHEMA_URIS:
        schema = load_schema(SCHEMA_URIS[uri])
        text = json.dumps(schema, ensure_ascii=False)
        return types.TextResourceContents(uri=uri, mime_type=_JSON, text=text)
    if uri == REFERENCE_URI:
        return types.TextResourceContents(
            uri=uri, mime_type=_MARKDOWN, text=DEFINITIONS_REFERENCE
        )
    return None


def project_resources(project_id: int, has_catalog: bool) -> list[types.Resource]:
    """Return the list resource of a project, and its catalog when it has one."""
    resources = [
        types.Resource(
            uri=f"ta://projects/{project_id}/clusters",
            name=f"project-{project_id}-clusters",
            title=f"Clusters and tags of project {project_id}",
            description="Every cluster and tag with its size and refresh state.",
            mime_type=_JSON,
        )
    ]
    if has_catalog:
        resources.append(
            types.Resource(
                uri=f"ta://projects/{project_id}/catalog",
                name=f"project-{project_id}-catalog",
                title=f"Event catalog of project {project_id}",
                description="Events, event properties and user properties, typed.",
                mime_type=_JSON,
            )
        )
    return resources


def cluster_resource(project_id: int, summary: ClusterSummary) -> types.Resource:
    """Return the resource of one cluster or tag of the list endpoint."""
    noun = "Tag" if summary.clusterCatalog == ClusterCatalog.TAG.value else "Cluster"
    facts = [f"{noun} {summary.clusterType or ''}".strip()]
    if summary.usersNum is not None:
        facts.append(counted(summary.usersNum, "user"))
    if summary.progress is not None:
        facts.append(f"progress {summary.progress}")
    if summary.refreshTime:
        facts.append(f"refreshed {summary.refreshTime}")
    return types.Resource(
        uri=f"ta://projects/{project_id}/clusters/{summary.clusterName}",
        name=summary.clusterName,
        title=summary.displayName or None,
        description=", ".join(facts) + ".",
        mime_type=_JSON,
    )


def resource_templates() -> list[types.ResourceTemplate]:
    """Return the URI templates of the project resources."""
    return [
        types.ResourceTemplate(
            uri_template=CLUSTERS_TEMPLATE,
            name="project-clusters",
            title="Clusters and tags of a project",
            description=(
                "Clusters and tags with type, usersNum, progress and refreshTime "
                f"(first {CLUSTERS_READ_LIMIT} of each)."
            ),
            mime_type=_JSON,
        ),
        types.ResourceTemplate(
            uri_template=CLUSTER_TEMPLATE,
            name="cluster-detail",
            title="Cluster or tag detail",
            description="Definition, usersNum, progress and refreshTime of a cluster or tag.",
            mime_type=_JSON,
        ),
        types.ResourceTemplate(
            uri_template=CATALOG_TEMPLATE,
            name="project-catalog",
            title="Event catalog of a project",
            description="Events, event properties and user properties with their types.",
            mime_type=_JSON,
        ),
    ]


class ResourceService:
    """Lists and reads the resources of one server."""

    def __init__(self, settings: Settings, catalogs: CatalogStore) -> None:
        self.settings = settings
        self.catalogs = catalogs

    async def list_resources(
        self, client: TAClient, cursor_text: str | None
    ) -> types.ListResourcesResult:
        """Return one page of resources and the cursor of the next, if any."""
        projects = listed_projects(self.settings)
        resources: list[types.Resource] = []
        if cursor_text is None:
            resources.extend(static_resources())
            if not projects:
                return types.ListResourcesResult(resources=resources)
            cursor: Cursor | None = Cursor(projects[0], ClusterCatalog.CLUSTER, 1)
        else:
            cursor = Cursor.decode(cursor_text, projects)
        # Empty catalogs are skipped in the same request, so no page is empty
        # unless every remaining catalog is.
        while cursor is not None:
            if cursor.catalog is ClusterCatalog.CLUSTER and cursor.page == 1:
                has_catalog = await self._has_catalog(cursor.project_id)
                resources.extend(project_resources(cursor.project_id, has_catalog))
            entries, cursor = await self._cluster_page(client, cursor, projects)
            resources.extend(entries)
            if entries:
                break
        next_cursor = cursor.encode() if cursor is not None else None
        return types.ListResourcesResult(resources=resources, next_cursor=next_cursor)

    async def _cluster_page(
        self, client: TAClient, cursor: Cursor, projects: list[int]
    ) -> tuple[list[types.Resource], Cursor | None]:
        """Read one TA page; return its resources and the cursor that follows it."""
        try:
            page = await list_page(
                client, cursor.project_id, cursor.catalog, cursor.page, LIST_PAGE_SIZE
            )
        except TAAPIError as error:
            # TA rejected this project (a token without access to it, say): one
            # such project must not hide the other projects' resources.
            logger.warning(
                "resources/list: listing %s of project %d failed, skipped: %s",
                cursor.catalog.value,
                cursor.project_id,
                error,
            )
            return [], _next_stage(cursor, projects)
        except TAError as error:
            # A transport failure would repeat, after its retries, for every
            # remaining project, so the listing ends here with what it has.
            logger.warning(
                "resources/list: listing %s of project %d failed, listing ended: %s",
                cursor.catalog.value,
                cursor.project_id,
                error,
            )
            return [], None
        entries = [
            cluster_resource(cursor.project_id, summary)
            for summary in page.userClusters
        ]
        seen = (cursor.page - 1) * LIST_PAGE_SIZE + len(page.userClusters)
        if page.userClusters and seen < page.pagerResult.totalNum:
            return entries, Cursor(cursor.project_id, cursor.catalog, cursor.page + 1)
        return entries, _next_stage(cursor, projects)

    async def _has_catalog(self, project_id: int) -> bool:
        try:
            return await self.catalogs.get(project_id) is not None
        except CatalogFileError as error:
            logger.error("catalog of project %d unavailable: %s", project_id, error)
            return False

    async def read_resource(
        self, client: TAClient, uri: str
    ) -> types.ReadResourceResult:
        """Return the contents of one resource.

        Raises:
            MCPError: INVALID_PARAMS for an unknown URI, a project outside the
                allowlist or a cluster TA does not have; INTERNAL_ERROR when TA
                cannot be reached or the catalog file is invalid.
        """
        static = static_contents(uri)
        if static is not None:
            return types.ReadResourceResult(contents=[static])
        match = _PROJECT_URI.match(uri)
        if match is None:
            raise _unknown_uri(uri)
        project_id = _project_id(match.group("project"), uri)
        check_project(self.settings, project_id)
        rest = match.group("rest")
        if rest == "clusters":
            data = await self._read_clusters(client, project_id)
        elif rest == "catalog":
            data = await self._read_catalog(project_id)
        elif rest.startswith("clusters/"):
            data = await self._read_cluster(
                client, project_id, rest[len("clusters/") :]
            )
        else:
            raise _unknown_uri(uri)
        return _contents(uri, json.dumps(data, ensure_ascii=False), _JSON)

    async def _read_clusters(self, client: TAClient, project_id: int) -> dict[str, Any]:
        data: dict[str, Any] = {"projectId": project_id}
        for catalog, key in (
            (ClusterCatalog.CLUSTER, "clusters"),
            (ClusterCatalog.TAG, "tags"),
        ):
            page = await _call_ta(
                list_page(client, project_id, catalog, 1, CLUSTERS_READ_LIMIT)
            )
            total = page.pagerResult.totalNum
            data[key] = {
                "totalNum": total,
                "items": [_summary(entry) for entry in page.userClusters],
            }
            if total > len(page.userClusters):
                data[key]["more"] = (
                    f"{total - len(page.userClusters)} more: page with user_cluster_list "
                    f"(clusterCatalog {catalog.value}, pagerHeader)"
                )
        return data

    async def _read_cluster(
        self, client: TAClient, project_id: int, name: str
    ) -> dict[str, Any]:
        if _CLUSTER_NAME.match(name) is None:
            raise MCPError(
                code=types.INVALID_PARAMS,
                message=(
                    f"invalid clusterName {name!r} in the URI: use 1 to 24 letters, "
                    "digits or underscores, such as "
                    f"ta://projects/{project_id}/clusters/recent_7_days_consume"
                ),
            )
        detail = await _call_ta(
            client.user_cluster_detail(project_id, cluster_name=name)
        )
        data: dict[str, Any] = detail.model_dump(mode="json", exclude_none=True)
        return data

    async def _read_catalog(self, project_id: int) -> dict[str, Any]:
        try:
            catalog = await self.catalogs.get(project_id)
        except CatalogFileError as error:
            raise MCPError(code=types.INTERNAL_ERROR, message=str(error)) from None
        if catalog is None:
            raise MCPError(
                code=types.INVALID_PARAMS,
                message=(
                    f"project {project_id} has no event catalog: catalogs come from "
                    f"{self.catalogs.source}. Set TA_CATALOG_FILE to a catalog file "
                    "(format: schemas/catalog.json)"
                ),
            )
        return catalog.to_json()


async def _call_ta(call: Awaitable[_T]) -> _T:
    """Await a client call; raise its error as an MCPError for resources/read."""
    try:
        return await call
    except TAAPIError as error:
        raise MCPError(code=types.INVALID_PARAMS, message=str(error)) from None
    except TAError as error:
        raise MCPError(code=types.INTERNAL_ERROR, message=str(error)) from None


def _summary(entry: ClusterSummary) -> dict[str, Any]:
    fields = ("id", "clusterName", "displayName", "clusterType", "usersNum", "progress")
    data = {name: getattr(entry, name) for name in fields}
    data["refreshTime"] = entry.refreshTime
    return {name: value for name, value in data.items() if value is not None}


def _project_id(text: str, uri: str) -> int:
    if not text.isdigit():
        raise MCPError(
            code=types.INVALID_PARAMS,
            message=(
                f"invalid projectId {text!r} in {uri}: use a project number, "
                "such as ta://projects/102/clusters"
            ),
        )
    return int(text)


def _unknown_uri(uri: str) -> MCPError:
    known = ", ".join([*SCHEMA_URIS, REFERENCE_URI, *TEMPLATES])
    return MCPError(
        code=types.INVALID_PARAMS,
        message=f"unknown resource {uri}; resources and templates: {known}",
    )


def _contents(uri: str, text: str, mime_type: str) -> types.ReadResourceResult:
    return types.ReadResourceResult(
        contents=[types.TextResourceContents(uri=uri, mime_type=mime_type, text=text)]
    )


def _definitions_reference() -> str:
    comparators = ", ".join(f"`{item.value}`" for item in Comparator)
    measure = ", ".join(f"`{item.value}`" for item in MeasureComparator)
    analyses = ", ".join(f"`{item.value}`" for item in Analysis)
    by_type = "\n".join(
        f"  - {kind.value}: {', '.join(item.value for item in fitting)}"
        for kind, fitting in COMPARATORS_BY_TYPE.items()
    )
    return f"""# Definitions: qp and tagQp

## Filter comparators (`filts[].comparator`)
{comparators}.
- `ftv` holds the values as strings. `equal`/`notEqual` with several values mean
  IN / NOT IN. `range` takes two values, low and high. `greater`/`less` take one.
  `isTrue`, `isFalse`, `isNull`, `notNull` take none.
- `include`/`notInclude` test a substring; `regexMatch`/`notRegexMatch` a regex.
- By property type (checked when the project has an event catalog):
{by_type}
- `tableType`: `user` for user properties, `event` for event properties.

## Event measures (`events[]`)
- `taPropQuota.analysis`: {analyses}. `TIMES` counts events; the others
  aggregate the event property named in `taPropQuota.quota` (SUM, AVG, MAX and
  MIN need a number; DISTINCT counts distinct values).
- `comparator` compares the measure with `num` (a number as text): {measure}.
  `range` takes `num` "low,high".
- `events[].filts` filter the events by event properties (`tableType` `event`).

## Time window
- `recentDay` "A-B": whole days from B days ago to A days ago, both included,
  0 = today. "1-7" is the 7 days before today; "0-0" is today.
- Or absolute bounds: `startTime` and `endTime`, `yyyy-MM-dd HH:mm:ss`.

## Combining
`event_relation` joins the events, `relation` the filts, `event_user_relation`
the two parts: `and` or `or`.

## Example
```json
{{"events": [{{"eventName": "consume_item", "comparator": "greater", "num": "4",
  "recentDay": "1-7", "taPropQuota": {{"analysis": "TIMES"}}}}],
 "filts": [{{"columnName": "user_level", "comparator": "equal", "ftv": ["3"],
  "tableType": "user"}}],
 "event_relation": "and", "relation": "and", "event_user_relation": "and"}}
```
Tags (tagQp) use exactly one of `userTagValueDefs` (values tried in order, each
with a qp-like `userClusterDef`), `userTagConFirstLastEventDef` or
`userTagConQuotaDef`; see ta://schemas/tagQp.
"""


DEFINITIONS_REFERENCE = _definitions_reference()
