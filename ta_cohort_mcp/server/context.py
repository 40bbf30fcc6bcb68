"""Resources, prompts, completions and the event catalog of the MCP server.

`register` fills the server's `HandlerRegistry` with the handlers of
`resources/list`, `resources/templates/list`, `resources/read`, `prompts/list`,
`prompts/get` and `completion/complete`, and returns the `ContextServices` that
the tools use to check definitions against the event catalog.
"""

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass

import httpx
from mcp import types

from ta_cohort_mcp.config import Settings
from ta_cohort_mcp.models import ClusterDefinition, TagDefinition
from ta_cohort_mcp.models.catalog import EventCatalog
from ta_cohort_mcp.server.catalog import (
    CatalogFetcher,
    CatalogStore,
    ProjectCatalog,
    check_definition,
    parse_served_catalog,
)
from ta_cohort_mcp.server.completions import CompletionService
from ta_cohort_mcp.server.problems import Problem
from ta_cohort_mcp.server.prompts import PromptCatalog, load_prompts
from ta_cohort_mcp.server.resources import (
    ResourceService,
    resource_templates,
    static_contents,
)
from ta_cohort_mcp.server.state import Context, HandlerRegistry, ServerState

logger = logging.getLogger(__name__)

# Path of the sandbox's catalog endpoint, below the API's base URL.
SANDBOX_CATALOG_PATH = "/_sandbox/catalog"
# Seconds allowed for the catalog request. The catalog is optional, so a slow
# server must not hold up for long the tool call that needs it.
CATALOG_TIMEOUT = 10.0

INSTRUCTIONS = (
    "Before writing a definition, read ta://reference/definitions (comparators, "
    "measures, recentDay) and the project's event catalog "
    "(ta://projects/{projectId}/catalog, or the event_catalog tool) for exact event "
    "and property names. ta://projects/{projectId}/clusters/{clusterName} shows a "
    "cluster's definition, usersNum, progress and refreshTime."
)

Definition = ClusterDefinition | TagDefinition


@dataclass
class ContextServices:
    """The catalog store, resources, prompts and completions of one server."""

    settings: Settings
    catalogs: CatalogStore
    prompts: PromptCatalog
    resources: ResourceService
    completions: CompletionService

    async def catalog(self, project_id: int) -> ProjectCatalog | None:
        """Return the event catalog of a project, or None when it has none.

        Raises:
            CatalogFileError: the catalog file has become unreadable or invalid.
        """
        return await self.catalogs.get(project_id)

    async def definition_problems(
        self, project_id: int, definitions: Iterable[tuple[Definition, str]]
    ) -> list[Problem]:
        """Check definitions against the project's catalog; none without a catalog.

        Each item is a parsed definition and its JSON path in the arguments, such
        as `(body.qp, "qp")`.

        Raises:
            CatalogFileError: the catalog file has become unreadable or invalid.
        """
        catalog = await self.catalogs.get(project_id)
        if catalog is None:
            return []
        problems: list[Problem] = []
        for definition, path in definitions:
            problems.extend(check_definition(definition, catalog, path))
        return problems


def build_services(settings: Settings) -> ContextServices:
    """Build the services from the settings and read the prompt and catalog files.

    Raises:
        CatalogFileError: the catalog file is missing or invalid.
        PromptFileError: a prompt file is invalid.
    """
    fetch = None if settings.catalog_file else sandbox_catalog_fetcher(settings)
    catalogs = CatalogStore(file=settings.catalog_file, fetch=fetch)
    catalogs.load_file()
    defaults = {}
    if settings.project_id is not None:
        defaults["projectId"] = str(settings.project_id)
    prompts = PromptCatalog(
        load_prompts(), defaults, static_contents, projects=settings.projects
    )
    return ContextServices(
        settings=settings,
        catalogs=catalogs,
        prompts=prompts,
        resources=ResourceService(settings, catalogs),
        completions=CompletionService(settings, catalogs, prompts),
    )


def register(registry: HandlerRegistry, state: ServerState) -> ContextServices:
    """Add the resource, prompt and completion handlers to `registry`.

    Raises:
        CatalogFileError: the catalog file is missing or invalid.
        PromptFileError: a prompt file is invalid.
    """
    services = build_services(state.settings)

    async def list_resources(
        ctx: Context, params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        cursor = params.cursor if params is not None else None
        return await services.resources.list_resources(state.client(ctx), cursor)

    async def list_resource_templates(
        ctx: Context, params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        return types.ListResourceTemplatesResult(
            resource_templates=resource_templates()
        )

    async def read_resource(
        ctx: Context, params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        return await services.resources.read_resource(state.client(ctx), params.uri)

    async def list_prompts(
        ctx: Context, params: types.PaginatedRequestParams | None
    ) -> types.ListPromptsResult:
        return services.prompts.list_result()

    async def get_prompt(
        ctx: Context, params: types.GetPromptRequestParams
    ) -> types.GetPromptResult:
        return services.prompts.get_result(params)

    async def complete(
        ctx: Context, params: types.CompleteRequestParams
    ) -> types.CompleteResult:
        return await services.completions.complete(state.client(ctx), params)

    registry.on_list_resources = list_resources
    registry.on_list_resource_templates = list_resource_templates
    registry.on_read_resource = read_resource
    registry.on_list_prompts = list_prompts
    registry.on_get_prompt = get_prompt
    registry.on_completion = complete
    registry.instructions.append(INSTRUCTIONS)
    state.catalog_reader = services.catalog
    return services


def sandbox_catalog_fetcher(settings: Settings) -> CatalogFetcher | None:
    """Return a fetcher of `GET /_sandbox/catalog`, or None without a base URL and token.

    The fetcher returns None, and logs why, whenever the response is not a
    catalog: an HTTP error such as 404, a body that is not the JSON envelope, a
    non-zero return_code or data that does not fit the catalog format.
    """
    if not settings.base_url or settings.token is None:
        return None
    base_url = settings.base_url
    token = settings.token
    timeout = min(settings.timeout, CATALOG_TIMEOUT)

    async def fetch(project_id: int) -> EventCatalog | None:
        params = {"projectId": str(project_id), "token": token.get_secret_value()}
        try:
            async with httpx.AsyncClient(base_url=base_url, timeout=timeout) as http:
                response = await http.get(SANDBOX_CATALOG_PATH, params=params)
        except httpx.HTTPError as error:
            # The exception's request URL carries the token: log its type only.
            logger.warning(
                "no event catalog for project %d: %s%s failed (%s)",
                project_id,
                base_url,
                SANDBOX_CATALOG_PATH,
                type(error).__name__,
            )
            return None
        return _served_catalog(response, project_id)

    return fetch


def _served_catalog(response: httpx.Response, project_id: int) -> EventCatalog | None:
    """Return the catalog in a `/_sandbox/catalog` response, or None, logging why."""
    reason = None
    catalog = None
    if response.status_code != 200:
        reason = f"HTTP {response.status_code}"
    else:
        try:
            envelope = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            envelope = None
        if not isinstance(envelope, dict) or "return_code" not in envelope:
            reason = "the response is not a JSON envelope"
        elif envelope["return_code"] != 0:
            reason = f"return_code {envelope['return_code']}"
        else:
            try:
                catalog = parse_served_catalog(envelope.get("data"))
            except ValueError as error:
                reason = f"the catalog is invalid: {error}"
    if catalog is None:
        logger.info(
            "no event catalog for project %d from %s: %s",
            project_id,
            SANDBOX_CATALOG_PATH,
            reason,
        )
    return catalog
