"""The MCP server: tool listing, argument checks, policy, and the tool boundary.

`build_server` returns a low-level `mcp.server.lowlevel.Server`. Every call goes
through `ToolDispatcher.call`, which in this order:

1. rejects tools that read-only mode or the tool allowlist removed;
2. fills in the default project, or rejects a call without projectId;
3. validates the arguments against the published input schema (with safe
   repairs), and parses them into the tool's model;
4. rejects projects outside the project allowlist;
5. runs the definition checker, if one is registered;
6. runs the tool, turning its failures into isError results.

Nothing is sent to TA before step 6.
"""

import copy
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
from mcp import types
from mcp.server.lowlevel import Server
from pydantic import BaseModel

from ta_cohort_mcp import __version__
from ta_cohort_mcp.client import TAClient, TAError
from ta_cohort_mcp.config import Settings, SettingsError
from ta_cohort_mcp.models import ClusterDefinition, TagDefinition, closest_names
from ta_cohort_mcp.models.tools import TOOL_ARGUMENT_MODELS
from ta_cohort_mcp.schemas import load_schema
from ta_cohort_mcp.server import context as context_module
from ta_cohort_mcp.server.catalog import CatalogFileError
from ta_cohort_mcp.server.confirm import ConfirmationStore
from ta_cohort_mcp.server.problems import Problem
from ta_cohort_mcp.server.results import (
    ToolFailure,
    end_sentence,
    failure,
    from_client_error,
    from_failure,
    invalid_arguments,
    success,
)
from ta_cohort_mcp.server.state import (
    Context,
    DefinitionChecker,
    HandlerRegistry,
    Runtime,
    ServerState,
)
from ta_cohort_mcp.server.tools import ALL_TOOLS, WRITE_TOOLS, Call, ToolSpec
from ta_cohort_mcp.server.tools.base import require_allowed_project
from ta_cohort_mcp.server.validation import ArgumentError, validate_arguments

logger = logging.getLogger(__name__)

JsonSchema = dict[str, Any]

SERVER_NAME = "ta-cohort-mcp"
INSTRUCTIONS = (
    "Tools for ThinkingData (TA) user clusters (cohorts) and tags. Build a "
    "definition, check it with validate_definition, create it with "
    "user_cluster_add, then count its users with refresh_and_wait. Deleting "
    "needs the user's confirmation."
)


def enabled_tool_names(settings: Settings) -> tuple[str, ...]:
    """Return the tools this server offers: the allowlist, minus writes if read-only.

    Raises:
        SettingsError: the allowlist names a tool that does not exist.
    """
    names = list(ALL_TOOLS)
    if settings.tools is not None:
        unknown = sorted(settings.tools - set(ALL_TOOLS))
        if unknown:
            hint = closest_names(unknown[0], names)
            message = f"TA_TOOLS names unknown tools: {', '.join(unknown)}"
            if hint:
                message += f" (did you mean {hint[0]}?)"
            raise SettingsError(f"{message}; the tools are {', '.join(names)}")
        names = [name for name in names if name in settings.tools]
    if settings.read_only:
        names = [name for name in names if name not in WRITE_TOOLS]
    return tuple(names)


def published_schema(name: str, settings: Settings) -> JsonSchema:
    """Return the input schema listed for tool `name` under `settings`.

    With a default project, projectId is optional: it leaves `required`.
    """
    schema = copy.deepcopy(load_schema(f"tools/{name}"))
    properties = schema.get("properties", {})
    if settings.project_id is not None and "projectId" in properties:
        required = [key for key in schema.get("required", []) if key != "projectId"]
        if required:
            schema["required"] = required
        else:
            schema.pop("required", None)
        described = properties["projectId"].get("description", "Project ID.")
        properties["projectId"]["description"] = (
            f"{described} Default {settings.project_id}."
        )
    return schema


class ToolDispatcher:
    """Checks and runs tool calls; see the module docstring for the steps."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.specs = {name: ALL_TOOLS[name] for name in state.enabled_tools}
        self.published = {
            name: published_schema(name, state.settings) for name in self.specs
        }

    def listing(self) -> list[types.Tool]:
        """Return the tools/list entries."""
        return [
            types.Tool(
                name=spec.name,
                title=spec.title,
                description=spec.description,
                input_schema=self.published[spec.name],
                output_schema=spec.output_schema,
                annotations=spec.annotations(),
            )
            for spec in self.specs.values()
        ]

    def input_schema(self, name: str) -> Mapping[str, Any] | None:
        """Return the published input schema of `name`, or None if not offered."""
        return self.published.get(name)

    async def call(
        self, ctx: Context, params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        """Run one tools/call and return its result.

        Every fault of the tool becomes an isError result; only cancellation of
        the request propagates.
        """
        name = params.name
        spec = self.specs.get(name)
        if spec is None:
            return self._not_offered(name)
        started = time.monotonic()
        try:
            result = await self._run(ctx, spec, params.arguments)
        except TAError as error:
            result = from_client_error(error, name)
        except ToolFailure as error:
            result = from_failure(error)
        except Exception:
            logger.exception("tool %s failed with an unexpected error", name)
            result = failure(
                "internal_error",
                f"{name} failed with an unexpected error on the MCP server; the "
                "details are in the server log. Try again, or report it.",
            )
        elapsed_ms = (time.monotonic() - started) * 1000
        outcome = _outcome_name(result)
        logger.info("tool %s: %s in %.0f ms", name, outcome, elapsed_ms)
        return result

    def _not_offered(self, name: str) -> types.CallToolResult:
        offered = ", ".join(self.specs)
        if name in ALL_TOOLS:
            reason = (
                "read-only mode removes the tools that change TA"
                if self.state.settings.read_only and name in WRITE_TOOLS
                else "it is not in the tool allowlist (TA_TOOLS)"
            )
            message = f"tool {name} is not offered by this server: {reason}"
        else:
            message = f"unknown tool {name!r}"
            hint = closest_names(name, list(self.specs))
            if hint:
                message += f"; did you mean {hint[0]!r}?"
        logger.info("tool %s: rejected, not offered", name)
        return failure(
            "tool_not_offered", f"{end_sentence(message)} Tools offered: {offered}."
        )

    async def _run(
        self, ctx: Context, spec: ToolSpec, raw: dict[str, Any] | None
    ) -> types.CallToolResult:
        # A tools/call without "arguments" means no arguments, so the default
        # projectId still applies.
        arguments: Any = {} if raw is None else raw
        if isinstance(arguments, dict):
            arguments = dict(arguments)
        missing = self._fill_project(spec, arguments)
        if missing is not None:
            return invalid_arguments([missing])
        encoded = _encode_json_text(spec, arguments)
        model = TOOL_ARGUMENT_MODELS[spec.name]
        try:
            validated = validate_arguments(self.published[spec.name], arguments, model)
        except ArgumentError as error:
            return invalid_arguments(error.problems, truncated=error.truncated)
        parsed = validated.model
        assert parsed is not None
        require_allowed_project(self.state, getattr(parsed, "projectId", None))
        problems = await self._check_definitions(ctx, parsed)
        if problems:
            return invalid_arguments(problems)
        call = Call(ctx, self.state, parsed, [*encoded, *validated.repairs])
        try:
            outcome = await spec.handler(call)
        except ArgumentError as error:
            return invalid_arguments(error.problems, truncated=error.truncated)
        return success(outcome.text, outcome.structured, call.repairs)

    def _fill_project(self, spec: ToolSpec, arguments: Any) -> Problem | None:
        """Fill in the default projectId; return a problem if it is missing."""
        if not isinstance(arguments, dict) and arguments is not None:
            return None
        field = TOOL_ARGUMENT_MODELS[spec.name].model_fields.get("projectId")
        if field is None or (arguments and "projectId" in arguments):
            return None
        default = self.state.settings.project_id
        if default is not None and isinstance(arguments, dict):
            arguments["projectId"] = default
            return None
        if default is not None or not field.is_required():
            return None
        return Problem(
            path="",
            message=(
                "missing required key 'projectId' at top level: give the project "
                "id, such as 102, or start the server with a default project "
                "(TA_PROJECT_ID or --project-id)"
            ),
            expected="integer",
        )

    async def _check_definitions(
        self, ctx: Context, parsed: BaseModel
    ) -> list[Problem]:
        checker = self.state.definition_checker
        if checker is None:
            return []
        project_id = getattr(parsed, "projectId", None)
        problems: list[Problem] = []
        for name in ("qp", "tagQp"):
            definition = getattr(parsed, name, None)
            if isinstance(definition, ClusterDefinition | TagDefinition):
                problems += await checker(ctx, project_id, definition, name)
        return problems


def _encode_json_text(spec: ToolSpec, arguments: Any) -> list[str]:
    """Encode objects sent where the tool takes JSON text; return the repairs."""
    if not isinstance(arguments, dict):
        return []
    repairs = []
    for name in spec.json_text_fields:
        value = arguments.get(name)
        if isinstance(value, dict | list):
            arguments[name] = json.dumps(value, ensure_ascii=False)
            repairs.append(f"{name}: encoded the {_json_kind(value)} as JSON text")
    return repairs


def _json_kind(value: object) -> str:
    return "object" if isinstance(value, dict) else "array"


def _outcome_name(result: types.CallToolResult) -> str:
    if not result.is_error:
        return "ok"
    structured = result.structured_content or {}
    error = structured.get("error", {}) if isinstance(structured, dict) else {}
    return f"error {error.get('kind', 'unknown')}"


def _catalog_checker(services: context_module.ContextServices) -> DefinitionChecker:
    """Return a definition checker over the event catalog of `services`."""

    async def check(
        ctx: Context,
        project_id: int | None,
        definition: ClusterDefinition | TagDefinition,
        path: str,
    ) -> list[Problem]:
        if project_id is None:
            return []
        return await services.definition_problems(project_id, [(definition, path)])

    return check


def build_server(
    settings: Settings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Callable[[], float] = time.monotonic,
    register_context: bool = True,
    client_options: Mapping[str, Any] | None = None,
) -> Server[Runtime]:
    """Build the MCP server for `settings`.

    `transport` replaces the network for the TA client (tests); `clock` drives
    the expiry of delete confirm tokens. With `register_context`,
    `server.context.register` adds resources, prompts and completions.
    `client_options` are more keyword arguments of `TAClient`, such as
    `read_retries` or `max_retry_wait`.

    Raises:
        SettingsError: the base URL or token is missing, TA_TOOLS names an
            unknown tool, or the catalog file is unreadable or invalid.
    """
    base_url, token = settings.require_backend()
    state = ServerState(
        settings=settings,
        enabled_tools=enabled_tool_names(settings),
        confirmations=ConfirmationStore(clock),
        clock=clock,
    )
    handlers = HandlerRegistry()
    if register_context:
        try:
            services = context_module.register(handlers, state)
        except CatalogFileError as error:
            raise SettingsError(str(error)) from None
        if handlers.definition_checker is None:
            handlers.definition_checker = _catalog_checker(services)
    state.definition_checker = handlers.definition_checker
    dispatcher = ToolDispatcher(state)
    tools = dispatcher.listing()

    @asynccontextmanager
    async def lifespan(_server: Server[Runtime]) -> AsyncIterator[Runtime]:
        client = TAClient(
            base_url,
            token,
            timeout=settings.timeout,
            transport=transport,
            **dict(client_options or {}),
        )
        async with client:
            yield Runtime(client=client)

    async def list_tools(
        ctx: Context, params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=tools)

    instructions = "\n\n".join([INSTRUCTIONS, *handlers.instructions])
    logger.info(
        "server built: %d tools%s",
        len(tools),
        " (read-only)" if settings.read_only else "",
    )
    return Server(
        SERVER_NAME,
        version=__version__,
        title="ThinkingData clusters and tags",
        instructions=instructions,
        lifespan=lifespan,
        get_tool_input_schema=dispatcher.input_schema,
        on_list_tools=list_tools,
        on_call_tool=dispatcher.call,
        on_list_resources=handlers.on_list_resources,
        on_list_resource_templates=handlers.on_list_resource_templates,
        on_read_resource=handlers.on_read_resource,
        on_list_prompts=handlers.on_list_prompts,
        on_get_prompt=handlers.on_get_prompt,
        on_completion=handlers.on_completion,
    )
