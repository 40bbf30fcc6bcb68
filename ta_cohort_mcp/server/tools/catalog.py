"""The event_catalog tool: a project's events and properties, with their types."""

from collections.abc import Mapping
from typing import Any

from ta_cohort_mcp.models import closest_names
from ta_cohort_mcp.models.catalog import EventCatalogArguments, PropertyType
from ta_cohort_mcp.server.catalog import CatalogFileError, ProjectCatalog
from ta_cohort_mcp.server.results import ToolFailure
from ta_cohort_mcp.server.tools.base import (
    INTEGER,
    OBJECTS,
    Call,
    Outcome,
    ToolSpec,
    output_schema,
)


async def _event_catalog(call: Call[EventCatalogArguments]) -> Outcome:
    arguments = call.arguments
    project_id = arguments.projectId
    reader = call.state.catalog_reader
    try:
        catalog = await reader(project_id) if reader is not None else None
    except CatalogFileError as error:
        raise ToolFailure("catalog_invalid", str(error)) from None
    if catalog is None:
        raise ToolFailure(
            "catalog_unavailable",
            f"project {project_id} has no event catalog on this server, so event "
            "and property names cannot be looked up here. Ask the user for exact "
            "names; TA checks them when the cluster is added. To add a catalog, "
            "start the server with TA_CATALOG_FILE (format: schemas/catalog.json).",
            projectId=project_id,
        )
    if arguments.eventName is None:
        heading = f"Event catalog of project {project_id}."
        text = _catalog_text(
            heading,
            list(catalog.events),
            catalog.event_property_types(None),
            catalog.user_properties,
        )
        return Outcome(text, catalog.to_json())
    return Outcome(*_one_event(catalog, arguments.eventName))


def _catalog_text(
    heading: str,
    events: list[str],
    event_properties: Mapping[str, PropertyType],
    user_properties: Mapping[str, PropertyType],
) -> str:
    """Return the names and types as text, for clients that show only text."""

    def typed(properties: Mapping[str, PropertyType]) -> str:
        return ", ".join(f"{name} ({kind.value})" for name, kind in properties.items())

    return "\n".join(
        [
            heading,
            f"Events ({len(events)}): {', '.join(events)}",
            f"Event properties ({len(event_properties)}): {typed(event_properties)}",
            f"User properties ({len(user_properties)}): {typed(user_properties)}",
        ]
    )


def _one_event(catalog: ProjectCatalog, event_name: str) -> tuple[str, dict[str, Any]]:
    """Return the text and data of one event with its typed properties."""
    event = catalog.events.get(event_name)
    if event is None:
        names = list(catalog.events)
        message = f"project {catalog.project_id} has no event {event_name!r}"
        hint = closest_names(event_name, names)
        if hint:
            message += f"; did you mean {hint[0]!r}?"
        else:
            message += "; call event_catalog without eventName to list every event"
        raise ToolFailure("unknown_event", message, eventName=event_name)
    properties = catalog.event_property_types(event_name)
    data = {
        "projectId": catalog.project_id,
        "events": [event.model_dump(mode="json", exclude_none=True)],
        "eventProperties": [
            {"name": name, "type": kind.value} for name, kind in properties.items()
        ],
        "userProperties": [
            prop.model_dump(mode="json", exclude_none=True)
            for prop in catalog.catalog.userProperties
        ],
    }
    heading = f"Event {event_name!r} of project {catalog.project_id}."
    text = _catalog_text(heading, [event_name], properties, catalog.user_properties)
    return text, data


CATALOG_TOOLS = [
    ToolSpec(
        name="event_catalog",
        title="Events and properties",
        description=(
            "List a project's events, event properties and user properties with "
            "their types (string, number, boolean, datetime), for exact names in "
            'definitions. Example: {"projectId":102,"eventName":"pay"}'
        ),
        handler=_event_catalog,
        output_schema=output_schema(
            {
                "projectId": INTEGER,
                "events": OBJECTS,
                "eventProperties": OBJECTS,
                "userProperties": OBJECTS,
            },
            ["projectId", "events"],
        ),
        read_only=True,
        destructive=False,
        idempotent=True,
    ),
]
