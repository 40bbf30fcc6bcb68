"""The event catalog: a project's events, event properties and user properties.

The sandbox serves one catalog object at `/_sandbox/catalog`. A catalog file
(`TA_CATALOG_FILE`) is one such object; its `projects` list can add the
catalogs of further projects. A catalog without `projectId` applies to every
project that has no catalog of its own.
"""

from enum import StrEnum
from typing import Self

from pydantic import Field, model_validator

from ta_cohort_mcp.models.base import RequestModel, closest_names
from ta_cohort_mcp.models.requests import ProjectId


class PropertyType(StrEnum):
    """Data type of a property, which decides the comparators that fit it."""

    STRING = "string"
    NUMBER = "number"
    BOOLEAN = "boolean"
    DATETIME = "datetime"


class CatalogProperty(RequestModel):
    """An event property or user property and its data type."""

    name: str = Field(min_length=1, description="Property name, such as pay_amount.")
    type: PropertyType = Field(description="string, number, boolean or datetime.")
    displayName: str | None = Field(default=None, description="Name shown in TA.")


class CatalogEvent(RequestModel):
    """An event and the event properties it carries."""

    name: str = Field(min_length=1, description="Event name, such as pay.")
    displayName: str | None = Field(default=None, description="Name shown in TA.")
    properties: list[str] | None = Field(
        default=None,
        description=(
            "Names of the event properties this event carries, from "
            "eventProperties. Absent: every event property is accepted."
        ),
    )


def _duplicates(names: list[str]) -> list[str]:
    seen: set[str] = set()
    repeated = []
    for name in names:
        if name in seen and name not in repeated:
            repeated.append(name)
        seen.add(name)
    return repeated


class EventCatalog(RequestModel):
    """The events, event properties and user properties of one project."""

    projectId: int | None = Field(
        default=None,
        ge=0,
        description="Project the catalog describes; absent: every project.",
    )
    events: list[CatalogEvent] = Field(default_factory=list, description="Events.")
    eventProperties: list[CatalogProperty] = Field(
        default_factory=list, description="Event properties, shared by the events."
    )
    userProperties: list[CatalogProperty] = Field(
        default_factory=list, description="User properties."
    )

    @model_validator(mode="after")
    def _check_names(self) -> Self:
        lists = {
            "events": [event.name for event in self.events],
            "eventProperties": [prop.name for prop in self.eventProperties],
            "userProperties": [prop.name for prop in self.userProperties],
        }
        for field, names in lists.items():
            repeated = _duplicates(names)
            if repeated:
                raise ValueError(
                    f"{field} lists {', '.join(repeated)} more than once; "
                    "give each name once"
                )
        known = lists["eventProperties"]
        for event in self.events:
            for item in event.properties or []:
                if item not in known:
                    hint = closest_names(item, known)
                    message = (
                        f"event {event.name!r} lists property {item!r}, which is not "
                        "in eventProperties; add it there with its type"
                    )
                    if hint:
                        message += f", or did you mean {hint[0]!r}?"
                    raise ValueError(message)
        return self


class CatalogFile(EventCatalog):
    """A catalog file: one catalog, and optionally the catalogs of more projects."""

    projects: list[EventCatalog] = Field(
        default_factory=list,
        description="Catalogs of further projects, each with its projectId.",
    )

    def catalogs(self) -> list[EventCatalog]:
        """Return the catalogs of the file: the top level (if it has any), then projects.

        The top level counts as a catalog when it has a projectId or lists
        anything, so a file of `projects` alone does not apply to other projects.
        """
        top = EventCatalog(
            projectId=self.projectId,
            events=self.events,
            eventProperties=self.eventProperties,
            userProperties=self.userProperties,
        )
        listed = self.events or self.eventProperties or self.userProperties
        has_top = self.projectId is not None or bool(listed)
        return [top, *self.projects] if has_top else list(self.projects)

    @model_validator(mode="after")
    def _check_projects(self) -> Self:
        for index, catalog in enumerate(self.projects):
            if catalog.projectId is None:
                raise ValueError(
                    f"projects[{index}] has no projectId; give the project it "
                    "describes, or move its lists to the top level"
                )
        projects = [
            "every project"
            if catalog.projectId is None
            else f"project {catalog.projectId}"
            for catalog in self.catalogs()
        ]
        repeated = _duplicates(projects)
        if repeated:
            raise ValueError(
                f"the file has more than one catalog for {', '.join(repeated)}; "
                "merge them into one"
            )
        return self


class EventCatalogArguments(RequestModel):
    """Arguments of the event_catalog tool."""

    projectId: ProjectId
    eventName: str | None = Field(
        default=None,
        min_length=1,
        description="Only this event and the properties it carries.",
    )
