"""Parts of a tool: its listing, its handler, and the call a handler gets."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from mcp import types
from pydantic import BaseModel

from ta_cohort_mcp.client import TAClient
from ta_cohort_mcp.server.results import ToolFailure
from ta_cohort_mcp.server.state import Context, ServerState

JsonSchema = dict[str, Any]
M = TypeVar("M", bound=BaseModel)


@dataclass
class Outcome:
    """A successful result: a short text and the structured content it summarises."""

    text: str
    structured: dict[str, Any]


@dataclass
class Call(Generic[M]):
    """One validated tool call, as a handler receives it."""

    ctx: Context
    state: ServerState
    arguments: M
    repairs: list[str] = field(default_factory=list)

    @property
    def client(self) -> TAClient:
        """The TA client of this call's connection."""
        return self.state.client(self.ctx)


Handler = Callable[[Call[Any]], Awaitable[Outcome]]


@dataclass(frozen=True)
class ToolSpec:
    """A tool: how it is listed, its hints, and its handler.

    Its arguments model is `TOOL_ARGUMENT_MODELS[name]`, and its input schema
    the file `schemas/tools/<name>.json` generated from that model.
    """

    name: str
    title: str
    description: str
    handler: Handler
    output_schema: JsonSchema
    read_only: bool
    destructive: bool
    idempotent: bool
    open_world: bool = True
    # Arguments taken as JSON text; an object or array sent there is encoded.
    json_text_fields: frozenset[str] = frozenset()

    @property
    def writes(self) -> bool:
        """Whether the tool changes anything in TA; read-only mode removes these."""
        return not self.read_only

    def annotations(self) -> types.ToolAnnotations:
        """Return the MCP hints of this tool."""
        return types.ToolAnnotations(
            read_only_hint=self.read_only,
            destructive_hint=self.destructive,
            idempotent_hint=self.idempotent,
            open_world_hint=self.open_world,
        )


def require_allowed_project(state: ServerState, project_id: int | None) -> None:
    """Raise ToolFailure unless `project_id` is None or in the project allowlist."""
    allowed = state.settings.projects
    if allowed is None or project_id is None or project_id in allowed:
        return
    listed = ", ".join(str(p) for p in sorted(allowed))
    raise ToolFailure(
        "project_not_allowed",
        f"projectId {project_id} is not allowed on this server (allowed: "
        f"{listed}); nothing was sent. Use one of the allowed projects.",
        projectId=project_id,
    )


def output_schema(properties: dict[str, Any], required: list[str]) -> JsonSchema:
    """Return a compact output schema: nested values are plain objects or arrays."""
    schema: JsonSchema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


INTEGER = {"type": "integer"}
STRING = {"type": "string"}
BOOLEAN = {"type": "boolean"}
OBJECT = {"type": "object"}
OBJECTS = {"type": "array", "items": {"type": "object"}}
