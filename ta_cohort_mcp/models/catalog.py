"""The event catalog: a project's events, event properties and user properties.

A catalog file (`TA_CATALOG_FILE`) contains one catalog object or a JSON array of
them, one per project; the sandbox serves the same object at `/_sandbox/catalog`.
A catalog without `projectId` applies to every project that has no catalog of its
own.
"""

from enum import StrEnum
from typing import Self

from pydantic import Field, RootModel, model_validator

from ta_cohort_mcp.models.base import RequestModel, closest_names


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
    properties: list[str | CatalogProperty] | None = Field(
        default=None,
        description=(
            "Event properties this event carries: names from eventProperties, or "
            "properties with their type. Absent: every event property is accepted."
        ),
    )

    def property_names(self) -> list[str] | None:
        """Return the names in `properties`, or None when the event lists none."""
        if self.properties is None:
            return None
        return [
            item if isinstance(item, str) else item.name for item in self.properties
        ]


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
                if isinstance(item, str) and item not in known:
                    hint = closest_names(item, known)
                    message = (
                        f"event {event.name!r} lists property {item!r}, which is not "
                        "in eventProperties; add it there with its type"
                    )
                    if hint:
                        message += f", or did you mean {hint[0]!r}?"
                    raise ValueError(message)
        return self


class CatalogFile(RootModel[EventCatalog | list[EventCatalog]]):
    """A catalog file: one catalog object, or an array of them, one per project."""

    def catalogs(self) -> list[EventCatalog]:
        """Return the catalogs of the file as a list."""
        if isinstance(self.root, EventCatalog):
            return [self.root]
        return list(self.root)

    @model_validator(mode="after")
    def _check_projects(self) -> Self:
        projects = [
            "every project" if catalog.projectId is None else str(catalog.projectId)
            for catalog in self.catalogs()
        ]
        repeated = _duplicates(projects)
        if repeated:
            raise ValueError(
                f"the file has more than one catalog for {', '.join(repeated)}; "
                "merge them into one"
            )
        return self
