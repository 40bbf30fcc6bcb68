"""Cluster definitions (`qp`) and the three kinds of tag definition (`tagQp`).

Field names are the API's own (camelCase and snake_case as TA spells them), so a
model dumps to exactly the JSON that TA sends and accepts.
"""

import re
from datetime import datetime
from typing import Annotated, ClassVar, Self

from pydantic import AfterValidator, AliasChoices, Field, model_validator

from ta_cohort_mcp.models.base import RequestModel
from ta_cohort_mcp.models.enums import (
    NO_VALUE_COMPARATORS,
    ONE_VALUE_COMPARATORS,
    Analysis,
    Comparator,
    MeasureComparator,
    Relation,
    SubConditionTabType,
    TableType,
)

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_RECENT_DAY = re.compile(r"^([0-9]{1,4})-([0-9]{1,4})$")
# TA's time form, zero-padded so that the text compares in time order.
_TIME_TEXT = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$")
# A plain decimal number: ASCII digits with an optional sign and fraction.
# Exponents, NaN, infinity, underscores and full-width digits are rejected,
# because TA's number parsing is not known to accept them.
_DECIMAL = re.compile(r"^-?[0-9]{1,30}(\.[0-9]{1,30})?$")

RecentDay = Annotated[
    str,
    AfterValidator(lambda value: validate_recent_day(value)),
    Field(
        description=(
            'Relative window "A-B": from B days ago to A days ago, whole days, '
            'both included, 0 = today. "1-7" = the 7 days before today.'
        ),
        examples=["1-7"],
    ),
]
TimeText = Annotated[
    str,
    AfterValidator(lambda value: validate_time_text(value)),
    Field(
        description="Absolute bound, yyyy-MM-dd HH:mm:ss.",
        examples=["2020-01-03 00:00:00"],
    ),
]


def validate_recent_day(value: str) -> str:
    """Raise ValueError unless `value` is "A-B" with whole days A <= B."""
    match = _RECENT_DAY.match(value)
    if match is None:
        raise ValueError(
            f'recentDay must be "A-B" with whole days A <= B, such as "1-7"; got {value!r}'
        )
    start, end = int(match.group(1)), int(match.group(2))
    if start > end:
        raise ValueError(
            f"recentDay {value!r} has A > B; write the nearer day first: "
            f'"{end}-{start}"'
        )
    return value


def validate_time_text(value: str) -> str:
    """Raise ValueError unless `value` is a valid time in the yyyy-MM-dd HH:mm:ss form."""
    try:
        if _TIME_TEXT.match(value) is None:
            raise ValueError(value)
        datetime.strptime(value, TIME_FORMAT)
    except ValueError:
        raise ValueError(
            f"time must be yyyy-MM-dd HH:mm:ss, such as 2020-01-03 00:00:00; got {value!r}"
        ) from None
    return value


def check_window(
    recent_day: str | None, start_time: str | None, end_time: str | None, where: str
) -> None:
    """Raise ValueError unless a window is given by recentDay or by both bounds."""
    if recent_day is not None:
        return
    if start_time is None or end_time is None:
        raise ValueError(
            f'{where} needs a time window: recentDay (such as "1-7"), '
            "or both startTime and endTime"
        )
    if start_time > end_time:
        raise ValueError(f"{where}: startTime {start_time} is after endTime {end_time}")


def _range_is_reversed(low: str, high: str) -> bool:
    """Return whether two range bounds, both numbers or both times, are out of order."""
    if _DECIMAL.match(low) and _DECIMAL.match(high):
        return float(low) > float(high)
    if _TIME_TEXT.match(low) and _TIME_TEXT.match(high):
        return low > high
    return False


def check_filter_tables(
    filters: "list[Filter] | None", expected: TableType, where: str
) -> None:
    """Raise ValueError unless every filter in `filters` is on the `expected` table."""
    for index, item in enumerate(filters or []):
        if item.tableType is not expected:
            if expected is TableType.USER:
                fix = "move event property filters into an event condition's filts"
            else:
                fix = "move user property filters into qp.filts"
            raise ValueError(
                f"{where} take tableType {expected.value} only; filter {index} "
                f"({item.columnName!r}) has tableType {item.tableType.value}: set "
                f"tableType to {expected.value} if it is an {expected.value} "
                f"property, or {fix}"
            )


class Filter(RequestModel):
    """One property condition: a user property or an event property."""

    columnName: str = Field(
        min_length=1,
        description="Property name, such as user_level or #os.",
        examples=["user_level"],
    )
    comparator: Comparator = Field(description="Operator.")
    ftv: list[str] | None = Field(
        default=None,
        description=(
            "Values, as strings. Several values with equal/notEqual mean IN/NOT IN; "
            "range takes two; isTrue, isFalse, isNull, notNull take none."
        ),
        examples=[["3"]],
    )
    tableType: TableType = Field(
        description="event: event property; user: user property."
    )

    @model_validator(mode="after")
    def _check_values(self) -> Self:
        values = self.ftv or []
        op = self.comparator
        if op in NO_VALUE_COMPARATORS:
            if values:
                raise ValueError(
                    f"ftv must be empty or absent for comparator {op.value}"
                )
        elif op is Comparator.RANGE:
            if len(values) != 2:
                raise ValueError(
                    f"comparator range needs exactly two values in ftv, low and high; "
                    f"got {len(values)}"
                )
            if _range_is_reversed(values[0], values[1]):
                raise ValueError(
                    f"comparator range needs ftv [low, high] with low <= high; got "
                    f"{values!r}"
                )
        elif op in ONE_VALUE_COMPARATORS:
            if len(values) != 1:
                raise ValueError(
                    f"comparator {op.value} needs exactly one value in ftv; "
                    f"got {len(values)}"
                )
        elif not values:
            raise ValueError(f"comparator {op.value} needs at least one value in ftv")
        return self


class PropQuota(RequestModel):
    """The measure of an event condition: a count, or an aggregate of a property."""

    analysis: Analysis = Field(
        default=Analysis.TIMES,
        description="TIMES counts events; SUM, AVG, MAX, MIN, DISTINCT aggregate quota.",
    )
    quota: str | None = Field(
        default=None,
        description="Event property that SUM, AVG, MAX, MIN or DISTINCT aggregate.",
        examples=["pay_amount"],
    )

    @model_validator(mode="after")
    def _check_quota(self) -> Self:
        if self.analysis is not Analysis.TIMES and not self.quota:
            raise ValueError(
                f"analysis {self.analysis.value} needs quota, the event property "
                "to aggregate"
            )
        return self


class EventCondition(RequestModel):
    """A condition on what a user did: a measure of one event compared with `num`."""

    accepted_aliases: ClassVar[frozenset[str]] = frozenset({"uceCalcuSymbol"})

    eventName: str = Field(
        min_length=1, description="Event name.", examples=["consume_item"]
    )
    comparator: MeasureComparator = Field(
        validation_alias=AliasChoices("comparator", "uceCalcuSymbol"),
        description="How the measure compares with num.",
    )
    num: str | None = Field(
        default=None,
        description='Value the measure is compared with, as text; range takes "low,high".',
        examples=["4"],
    )
    recentDay: RecentDay | None = None
    startTime: TimeText | None = None
    endTime: TimeText | None = None
    taPropQuota: PropQuota = Field(description="Event measure.")
    filts: list[Filter] | None = Field(
        default=None, description="Event property filters (tableType event)."
    )
    relation: Relation | None = Field(
        default=None, description="How filts combine: and, or."
    )

    @model_validator(mode="after")
    def _check_measure(self) -> Self:
        check_window(self.recentDay, self.startTime, self.endTime, "event condition")
        if self.num is None:
            raise ValueError(f"num is required with comparator {self.comparator.value}")
        is_range = self.comparator is MeasureComparator.RANGE
        parts = self.num.split(",") if is_range else [self.num]
        if is_range and len(parts) != 2:
            raise ValueError(f'comparator range needs num "low,high"; got {self.num!r}')
        for part in parts:
            if _DECIMAL.match(part) is None:
                raise ValueError(
                    f'num must be a plain decimal number as text, such as "4" or '
                    f'"2.5"; got {self.num!r}'
                )
        if is_range and float(parts[0]) > float(parts[1]):
            raise ValueError(
                f'comparator range needs num "low,high" with low <= high; got '
                f"{self.num!r}"
            )
        check_filter_tables(self.filts, TableType.EVENT, "the event condition's filts")
        return self


class ClusterDefinition(RequestModel):
    """A cluster definition (`qp`): event conditions and user filters."""

    events: list[EventCondition] | None = Field(
        default=None, description="Event conditions."
    )
    event_relation: Relation | None = Field(
        default=None, description="How events combine: and, or."
    )
    filts: list[Filter] | None = Field(
        default=None, description="User property filters (tableType user)."
    )
    relation: Relation | None = Field(
        default=None, description="How filts combine: and, or."
    )
    event_user_relation: Relation | None = Field(
        default=None, description="How the events part and the filts part combine."
    )

    @model_validator(mode="after")
    def _check_not_empty(self) -> Self:
        if not self.events and not self.filts:
            raise ValueError(
                "a definition needs at least one condition in events or filts"
            )
        check_filter_tables(self.filts, TableType.USER, "qp.filts")
        return self


class TagValueDefinition(RequestModel):
    """One value of a custom condition tag and the definition its users match."""

    tagValue: str = Field(min_length=1, description="Tag value.")
    tagRemark: str | None = Field(default=None, description="Remark.")
    userClusterDef: ClusterDefinition = Field(
        description="Users matching this get tagValue; the first matching value wins."
    )


class PropertyRef(RequestModel):
    """A property by name and table."""

    columnName: str = Field(min_length=1, description="Property name.")
    tableType: TableType = Field(description="event or user.")


class CalcProperty(RequestModel):
    """The property of the first or last event whose value becomes the tag value."""

    isCalc: bool = Field(
        default=False, description="Whether the property is calculated."
    )
    property: PropertyRef = Field(description="Property whose value is the tag value.")


class FirstLastEvent(RequestModel):
    """The event whose first or last occurrence sets the tag value."""

    calcPropVo: CalcProperty = Field(description="Property that gives the value.")
    eventName: str = Field(min_length=1, description="Event name.", examples=["pay"])
    isFirstEvent: bool = Field(description="true: first occurrence; false: last.")
    recentDay: RecentDay | None = None
    startTime: TimeText | None = None
    endTime: TimeText | None = None
    filts: list[Filter] | None = Field(
        default=None, description="Event property filters."
    )
    relation: Relation | None = Field(default=None, description="How filts combine.")

    @model_validator(mode="after")
    def _check_window(self) -> Self:
        check_window(self.recentDay, self.startTime, self.endTime, "first/last event")
        check_filter_tables(self.filts, TableType.EVENT, "the first/last event's filts")
        return self


class FirstLastEventDefinition(RequestModel):
    """First and last event tag definition."""

    userTagConFirstLastEvent: FirstLastEvent = Field(description="The event.")


class QuotaEvent(RequestModel):
    """The event measure whose value per user is the tag value."""

    type: str = Field(default="normal", description='Measure type; "normal".')
    eventName: str = Field(
        min_length=1, description="Event name.", examples=["activity_attend"]
    )
    analysis: Analysis = Field(
        description="Aggregate: TIMES, SUM, AVG, MAX, MIN, DISTINCT."
    )
    quota: str | None = Field(
        default=None, description="Event property to aggregate (not for TIMES)."
    )
    recentDay: RecentDay | None = None
    startTime: TimeText | None = None
    endTime: TimeText | None = None
    filts: list[Filter] | None = Field(
        default=None, description="Event property filters."
    )
    relation: Relation | None = Field(default=None, description="How filts combine.")

    @model_validator(mode="after")
    def _check_measure(self) -> Self:
        check_window(self.recentDay, self.startTime, self.endTime, "indicator event")
        if self.analysis is not Analysis.TIMES and not self.quota:
            raise ValueError(
                f"analysis {self.analysis.value} needs quota, the property to aggregate"
            )
        check_filter_tables(self.filts, TableType.EVENT, "the indicator event's filts")
        return self


class QuotaDefinition(RequestModel):
    """Indicator value tag definition (TA 3.2.1 and later)."""

    userTagConQuotaEvent: QuotaEvent = Field(description="The measured event.")


class TagDefinition(RequestModel):
    """A tag definition (`tagQp`): exactly one of its three fields, matching subConditionTabType."""

    userTagValueDefs: list[TagValueDefinition] | None = Field(
        default=None,
        min_length=1,
        description="Custom condition tag (tag_condition_default): values tried in order.",
    )
    userTagConFirstLastEventDef: FirstLastEventDefinition | None = Field(
        default=None,
        description="First/last event tag (tag_condition_by_firstlast_event).",
    )
    userTagConQuotaDef: QuotaDefinition | None = Field(
        default=None,
        description="Indicator value tag (tag_condition_by_quotation).",
    )

    @property
    def kind(self) -> SubConditionTabType:
        """The kind of tag that the field in use defines."""
        if self.userTagConFirstLastEventDef is not None:
            return SubConditionTabType.FIRST_LAST_EVENT
        if self.userTagConQuotaDef is not None:
            return SubConditionTabType.QUOTA
        return SubConditionTabType.DEFAULT

    @model_validator(mode="after")
    def _check_one_kind(self) -> Self:
        present = [
            name for name in TAG_FIELDS.values() if getattr(self, name) is not None
        ]
        if len(present) != 1:
            fields = ", ".join(TAG_FIELDS.values())
            raise ValueError(
                f"tagQp needs exactly one of {fields}; got "
                f"{', '.join(present) if present else 'none'}"
            )
        return self


# The field of tagQp that each kind of conditional tag uses.
TAG_FIELDS: dict[SubConditionTabType, str] = {
    SubConditionTabType.DEFAULT: "userTagValueDefs",
    SubConditionTabType.FIRST_LAST_EVENT: "userTagConFirstLastEventDef",
    SubConditionTabType.QUOTA: "userTagConQuotaDef",
}
