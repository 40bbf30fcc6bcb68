"""State shared by the tool handlers and the context handlers of one server.

`ServerState` lives as long as the `Server` object. `Runtime` is what the
server's lifespan yields: the TA client, opened once per stdio process, per HTTP
session manager, or per in-memory client connection. A handler reaches it as
`ctx.lifespan_context`. `HandlerRegistry` is the hook through which
`server.context.register` adds resources, prompts and completions.
"""

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mcp import types
from mcp.server.context import ServerRequestContext

from ta_cohort_mcp.client import TAClient
from ta_cohort_mcp.config import Settings
from ta_cohort_mcp.models import ClusterDefinition, TagDefinition
from ta_cohort_mcp.server.catalog import ProjectCatalog
from ta_cohort_mcp.server.confirm import ConfirmationStore
from ta_cohort_mcp.server.problems import Problem


@dataclass
class Runtime:
    """The lifespan's value: the open TA client."""

    client: TAClient


Context = ServerRequestContext[Runtime, Any]

ListHandler = Callable[
    [Context, types.PaginatedRequestParams | None], Awaitable[types.ListResourcesResult]
]
ListTemplatesHandler = Callable[
    [Context, types.PaginatedRequestParams | None],
    Awaitable[types.ListResourceTemplatesResult],
]
ReadHandler = Callable[
    [Context, types.ReadResourceRequestParams], Awaitable[types.ReadResourceResult]
]
ListPromptsHandler = Callable[
    [Context, types.PaginatedRequestParams | None], Awaitable[types.ListPromptsResult]
]
GetPromptHandler = Callable[
    [Context, types.GetPromptRequestParams], Awaitable[types.GetPromptResult]
]
CompletionHandler = Callable[
    [Context, types.CompleteRequestParams], Awaitable[types.CompleteResult]
]
# Checks a parsed qp or tagQp beyond its shape, such as against the event
# catalog of the project (None when no project is given). It returns the
# problems, whose paths start with the given prefix.
DefinitionChecker = Callable[
    [Context, int | None, ClusterDefinition | TagDefinition, str],
    Awaitable[Sequence[Problem]],
]

# Returns the event catalog of a project, or None when it has none.
CatalogReader = Callable[[int], Awaitable[ProjectCatalog | None]]


@dataclass
class HandlerRegistry:
    """Handlers for everything but tools; `server.context.register` fills it in.

    Each handler left as None means the server does not offer that method.
    `instructions` are appended, one paragraph each, to the server instructions
    sent at initialization.
    """

    on_list_resources: ListHandler | None = None
    on_list_resource_templates: ListTemplatesHandler | None = None
    on_read_resource: ReadHandler | None = None
    on_list_prompts: ListPromptsHandler | None = None
    on_get_prompt: GetPromptHandler | None = None
    on_completion: CompletionHandler | None = None
    definition_checker: DefinitionChecker | None = None
    instructions: list[str] = field(default_factory=list)


@dataclass
class ServerState:
    """Settings, enabled tools and pending delete confirmations of one server.

    `clock` returns seconds on a monotonic scale; tests replace it to expire
    confirm tokens without waiting.
    """

    settings: Settings
    enabled_tools: tuple[str, ...]
    confirmations: ConfirmationStore
    clock: Callable[[], float] = time.monotonic
    definition_checker: DefinitionChecker | None = None
    catalog_reader: CatalogReader | None = None

    @staticmethod
    def client(ctx: Context) -> TAClient:
        """Return the TA client of the connection that `ctx` belongs to."""
        return ctx.lifespan_context.client
