"""String enums of the cluster and tag API, with the values the reference lists."""

from enum import StrEnum


class ClusterCatalog(StrEnum):
    """Whether a definition is a cluster (cohort) or a tag."""

    CLUSTER = "catalog_cluster"
    TAG = "catalog_tag"


class ClusterType(StrEnum):
    """Type of a cluster or tag: the source of its members and how they update."""

    CLUSTER_BY_DYNAMIC_CONDITION = "cluster_by_dynamic_condition"
    CLUSTER_BY_STATIC_CONDITION = "cluster_by_static_condition"
    CLUSTER_BY_RESULT = "cluster_by_result"
    CLUSTER_BY_IMPORT = "cluster_by_import"
    CLUSTER_BY_DYNAMIC_SQL = "cluster_by_dynamic_sql"
    CLUSTER_BY_STATIC_SQL = "cluster_by_static_sql"
    TAG_BY_DYNAMIC_CONDITION = "tag_by_dynamic_condition"
    TAG_BY_STATIC_CONDITION = "tag_by_static_condition"
    TAG_BY_IMPORT = "tag_by_import"
    TAG_BY_DYNAMIC_SQL = "tag_by_dynamic_sql"
    TAG_BY_STATIC_SQL = "tag_by_static_sql"

    @property
    def catalog(self) -> ClusterCatalog:
        """The catalog this type belongs to: `tag_…` types are tags."""
        if self.value.startswith("tag_"):
            return ClusterCatalog.TAG
        return ClusterCatalog.CLUSTER

    @property
    def is_condition(self) -> bool:
        """Whether members come from a `qp` or `tagQp` definition."""
        return self.value.endswith("_condition")


# The types that user-cluster-add and user-cluster-update accept: the others are
# made by SQL, by a result, or by an id upload.
CONDITION_TYPES = tuple(t for t in ClusterType if t.is_condition)


class ConditionClusterType(StrEnum):
    """The cluster types that a `qp` or `tagQp` definition makes."""

    CLUSTER_BY_DYNAMIC_CONDITION = "cluster_by_dynamic_condition"
    CLUSTER_BY_STATIC_CONDITION = "cluster_by_static_condition"
    TAG_BY_DYNAMIC_CONDITION = "tag_by_dynamic_condition"
    TAG_BY_STATIC_CONDITION = "tag_by_static_condition"

    @property
    def catalog(self) -> ClusterCatalog:
        """The catalog this type belongs to: `tag_…` types are tags."""
        return ClusterType(self.value).catalog


class SubConditionTabType(StrEnum):
    """Kind of conditional tag, which decides the field of `tagQp` that is used."""

    DEFAULT = "tag_condition_default"
    FIRST_LAST_EVENT = "tag_condition_by_firstlast_event"
    QUOTA = "tag_condition_by_quotation"


class Comparator(StrEnum):
    """Filter operators of TA's filter expressions."""

    EQUAL = "equal"
    NOT_EQUAL = "notEqual"
    GREATER = "greater"
    LESS = "less"
    RANGE = "range"
    INCLUDE = "include"
    NOT_INCLUDE = "notInclude"
    IS_TRUE = "isTrue"
    IS_FALSE = "isFalse"
    IS_NULL = "isNull"
    NOT_NULL = "notNull"
    REGEX_MATCH = "regexMatch"
    NOT_REGEX_MATCH = "notRegexMatch"


# Comparators that take no value in `ftv`.
NO_VALUE_COMPARATORS = frozenset(
    {Comparator.IS_TRUE, Comparator.IS_FALSE, Comparator.IS_NULL, Comparator.NOT_NULL}
)
# Comparators that take exactly one value.
ONE_VALUE_COMPARATORS = frozenset({Comparator.GREATER, Comparator.LESS})


class MeasureComparator(StrEnum):
    """The comparators that an event measure can be compared with `num` by."""

    EQUAL = "equal"
    NOT_EQUAL = "notEqual"
    GREATER = "greater"
    LESS = "less"
    RANGE = "range"


class Analysis(StrEnum):
    """Aggregate of an event measure: a count, or an aggregate of the `quota` property."""

    TIMES = "TIMES"
    SUM = "SUM"
    AVG = "AVG"
    MAX = "MAX"
    MIN = "MIN"
    DISTINCT = "DISTINCT"


class Relation(StrEnum):
    """Logical relationship between conditions."""

    AND = "and"
    OR = "or"


class TableType(StrEnum):
    """Table of a filtered column: event properties or user properties."""

    EVENT = "event"
    USER = "user"
