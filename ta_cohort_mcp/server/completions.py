"""Completions of prompt arguments and resource template variables.

`projectId` completes from the listed projects, `clusterName` from TA's list
endpoint for the project given in the context (else the default project), and
`eventName` and `columnName` from the project's event catalog. Matching is by
prefix, ignoring case.
"""

import logging
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from mcp import types

from ta_cohort_mcp.client import TAClient, TAError
from ta_cohort_mcp.config import Settings
from ta_cohort_mcp.models import ClusterCatalog
from ta_cohort_mcp.server.catalog import CatalogFileError, CatalogStore, ProjectCatalog
from ta_cohort_mcp.server.prompts import PromptCatalog
from ta_cohort_mcp.server.resources import TEMPLATES, list_page, listed_projects

logger = logging.getLogger(__name__)

# The MCP specification caps one completion at 100 values.
MAX_VALUES = 100
# Cluster names of a project are listed again after this many seconds.
CLUSTER_NAMES_TTL = 30.0
# Names requested per list request, and the maximum pages read per catalog, so
# a completion costs at most 2 x 20 requests and considers 20,000 names of each.
CLUSTER_NAMES_PAGE_SIZE = 1000
MAX_CLUSTER_NAME_PAGES = 20

_VARIABLE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass
class _ClusterNames:
    names: list[str]
    complete: bool
    expires: float


def template_variables(template: str) -> list[str]:
    """Return the variable names of a URI template, such as ["projectId"]."""
    return _VARIABLE.findall(template)


def prefix_completion(
    values: Iterable[str], prefix: str, *, complete: bool = True
) -> types.Completion:
    """Return the values starting with `prefix` (ignoring case), at most MAX_VALUES.

    `complete` is False when `values` may lack some names, which sets has_more.
    """
    lowered = prefix.lower()
    matches: list[str] = []
    seen: set[str] = set()
    for value in values:
        if value.lower().startswith(lowered) and value not in seen:
            matches.append(value)
            seen.add(value)
    has_more = len(matches) > MAX_VALUES or not complete
    return types.Completion(
        values=matches[:MAX_VALUES],
        total=len(matches) if complete else None,
        has_more=has_more,
    )


def _empty() -> types.CompleteResult:
    return types.CompleteResult(completion=types.Completion(values=[], has_more=False))


class CompletionService:
    """Completes the arguments of this server's prompts and resource templates."""

    def __init__(
        self, settings: Settings, catalogs: CatalogStore, prompts: PromptCatalog
    ) -> None:
        self.settings = settings
        self.catalogs = catalogs
        self.prompts = prompts
        self._cluster_names: dict[int, _ClusterNames] = {}

    def accepts(
        self, ref: types.PromptReference | types.ResourceTemplateReference, name: str
    ) -> bool:
        """Return whether `name` is an argument of the prompt or template `ref`."""
        if isinstance(ref, types.PromptReference):
            spec = self.prompts.prompts.get(ref.name)
            return spec is not None and name in spec.argument_names()
        return ref.uri in TEMPLATES and name in template_variables(ref.uri)

    async def complete(
        self, client: TAClient, params: types.CompleteRequestParams
    ) -> types.CompleteResult:
        """Return the completion of one argument; unknown references get none."""
        name = params.argument.name
        prefix = params.argument.value
        if not self.accepts(params.ref, name):
            return _empty()
        context: Mapping[str, str] = {}
        if params.context is not None and params.context.arguments:
            context = params.context.arguments

        if name == "projectId":
            projects = [str(project) for project in listed_projects(self.settings)]
            return types.CompleteResult(completion=prefix_completion(projects, prefix))
        project_id = self._project(context)
        if project_id is None:
            return _empty()

        if name == "clusterName":
            completion = await self._complete_cluster_name(client, project_id, prefix)
        elif name in ("eventName", "columnName"):
            completion = await self._complete_from_catalog(
                project_id, name, prefix, context.get("eventName")
            )
        else:
            completion = None
        if completion is None:
            return _empty()
        return types.CompleteResult(completion=completion)

    async def _complete_cluster_name(
        self, client: TAClient, project_id: int, prefix: str
    ) -> types.Completion | None:
        names = await self._names(client, project_id)
        if names is None:
            return None
        return prefix_completion(names.names, prefix, complete=names.complete)

    async def _complete_from_catalog(
        self, project_id: int, name: str, prefix: str, event_name: str | None
    ) -> types.Completion | None:
        catalog = await self._catalog(project_id)
        if catalog is None:
            return None
        if name == "eventName":
            return prefix_completion(catalog.events, prefix)
        return prefix_completion(_column_names(catalog, event_name), prefix)

    def _project(self, context: Mapping[str, str]) -> int | None:
        """Return the project in the context, else the default; None if neither fits."""
        text = context.get("projectId", "").strip()
        if not text:
            return self.settings.project_id
        if not text.isdigit():
            return None
        project_id = int(text)
        if self.settings.projects and project_id not in self.settings.projects:
            return None
        return project_id

    async def _catalog(self, project_id: int) -> ProjectCatalog | None:
        try:
            return await self.catalogs.get(project_id)
        except CatalogFileError as error:
            logger.error(
                "completion: catalog of project %d unavailable: %s", project_id, error
            )
            return None

    async def _names(self, client: TAClient, project_id: int) -> _ClusterNames | None:
        """Return the cluster and tag names of a project, listed at most every TTL."""
        now = time.monotonic()
        cached = self._cluster_names.get(project_id)
        if cached is not None and cached.expires > now:
            return cached
        names: list[str] = []
        complete = True
        try:
            for catalog in (ClusterCatalog.CLUSTER, ClusterCatalog.TAG):
                catalog_complete = await self._list_names(
                    client, project_id, catalog, names
                )
                complete = complete and catalog_complete
        except TAError as error:
            logger.warning(
                "completion: listing clusters of project %d failed: %s",
                project_id,
                error,
            )
            return None
        listed = _ClusterNames(sorted(set(names)), complete, now + CLUSTER_NAMES_TTL)
        self._cluster_names[project_id] = listed
        return listed

    async def _list_names(
        self,
        client: TAClient,
        project_id: int,
        catalog: ClusterCatalog,
        names: list[str],
    ) -> bool:
        """Append the names of one catalog; return False when pages were left unread."""
        for page_number in range(1, MAX_CLUSTER_NAME_PAGES + 1):
            page = await list_page(
                client, project_id, catalog, page_number, CLUSTER_NAMES_PAGE_SIZE
            )
            names.extend(entry.clusterName for entry in page.userClusters)
            seen = (page_number - 1) * CLUSTER_NAMES_PAGE_SIZE + len(page.userClusters)
            if not page.userClusters or seen >= page.pagerResult.totalNum:
                return True
        return False


def _column_names(catalog: ProjectCatalog, event_name: str | None) -> list[str]:
    """Return property names: the event's own first (when given), then user properties."""
    names = list(catalog.event_property_types(event_name))
    names.extend(catalog.user_properties)
    return names
