"""Request bodies and query parameters of every cluster and tag endpoint."""

import re
from typing import Annotated, Self

from pydantic import AfterValidator, Field, field_validator, model_validator

from ta_cohort_mcp.models.base import RequestModel
from ta_cohort_mcp.models.definitions import (
    TAG_FIELDS,
    ClusterDefinition,
    TagDefinition,
)
from ta_cohort_mcp.models.enums import (
    CONDITION_TYPES,
    ClusterCatalog,
    ClusterType,
    ConditionClusterType,
    SubConditionTabType,
)

CLUSTER_NAME_PATTERN = r"^[A-Za-z0-9_]{1,24}$"
_CLUSTER_NAME = re.compile(CLUSTER_NAME_PATTERN)


def validate_cluster_name(value: str) -> str:
    """Raise ValueError unless `value` is 1 to 24 letters, digits or underscores."""
    if _CLUSTER_NAME.match(value) is None:
        raise ValueError(
            "clusterName may contain only letters, digits and underscore, "
            f"1 to 24 characters; got {value!r} ({len(value)} characters)"
        )
    return value


# TA's ids are Java longs.
MAX_ID = 2**63 - 1

ProjectId = Annotated[
    int, Field(ge=0, le=MAX_ID, description="Project ID.", examples=[102])
]
ClusterId = Annotated[
    int, Field(ge=0, le=MAX_ID, description="Cluster ID.", examples=[970])
]
ClusterName = Annotated[
    str,
    AfterValidator(validate_cluster_name),
    Field(
        json_schema_extra={"pattern": CLUSTER_NAME_PATTERN},
        description="Cluster name: letters, digits and underscore, at most 24.",
        examples=["recent_7_days_consume"],
    ),
]
DisplayName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=50,
        description="Display name, at most 50 characters.",
        examples=["recent_7_days_consume"],
    ),
]
Remarks = Annotated[str, Field(max_length=500, description="Remarks.")]


class _DefinitionBody(RequestModel):
    """The fields shared by the add and update bodies, and the rules that tie them."""

    projectId: ProjectId
    clusterCatalog: ClusterCatalog | None = Field(
        default=None,
        description="catalog_cluster (cluster, the default) or catalog_tag (tag).",
    )
    clusterType: ConditionClusterType | None = Field(
        default=None,
        description=(
            "static: members kept until refreshed; dynamic: recomputed daily. "
            "cluster_… for clusters, tag_… for tags."
        ),
    )
    subConditionTabType: SubConditionTabType | None = Field(
        default=None,
        description=(
            "Tag kind, required for tags; names the tagQp field: _default "
            "userTagValueDefs, _by_firstlast_event userTagConFirstLastEventDef, "
            "_by_quotation userTagConQuotaDef."
        ),
    )
    displayName: DisplayName
    qp: ClusterDefinition | None = Field(
        default=None, description="Cluster definition, for clusters."
    )
    tagQp: TagDefinition | None = Field(
        default=None, description="Tag definition, for tags."
    )

    @field_validator("clusterType", mode="before")
    @classmethod
    def _check_condition_type(cls, value: object) -> object:
        if isinstance(value, str) and value in set(ClusterType) - set(CONDITION_TYPES):
            allowed = ", ".join(t.value for t in CONDITION_TYPES)
            raise ValueError(
                f"clusterType {value} cannot be defined by conditions; use one of "
                f"{allowed} (id clusters are made by the id-upload endpoints)"
            )
        return value

    def cluster_type(self) -> ClusterType | None:
        """Return clusterType as a member of the full `ClusterType` enum."""
        return None if self.clusterType is None else ClusterType(self.clusterType.value)

    def catalog(self) -> ClusterCatalog:
        """Return the catalog given, or the one the type or definition implies."""
        if self.clusterCatalog is not None:
            return self.clusterCatalog
        if self.clusterType is not None:
            return self.clusterType.catalog
        return ClusterCatalog.TAG if self.tagQp is not None else ClusterCatalog.CLUSTER

    @model_validator(mode="after")
    def _check_consistency(self) -> Self:
        catalog = self.catalog()
        if self.clusterType is not None and self.clusterType.catalog is not catalog:
            raise ValueError(
                f"clusterType {self.clusterType.value} does not fit clusterCatalog "
                f"{catalog.value}: tag_… types belong to catalog_tag, cluster_… types "
                "to catalog_cluster"
            )
        if catalog is ClusterCatalog.CLUSTER:
            self._check_cluster()
        else:
            self._check_tag()
        return self

    def _check_cluster(self) -> None:
        if self.qp is None:
            raise ValueError(
                "a cluster (catalog_cluster) needs qp, the cluster definition"
            )
        if self.tagQp is not None:
            raise ValueError("a cluster (catalog_cluster) takes qp, not tagQp")
        if self.subConditionTabType is not None:
            raise ValueError("subConditionTabType is only for tags (catalog_tag)")

    def _check_tag(self) -> None:
        if self.tagQp is None:
            raise ValueError("a tag (catalog_tag) needs tagQp, the tag definition")
        if self.qp is not None:
            raise ValueError("a tag (catalog_tag) takes tagQp, not qp")
        kind = self.tagQp.kind
        if self.subConditionTabType is None:
            raise ValueError(
                f"a tag needs subConditionTabType; for {TAG_FIELDS[kind]} use {kind.value}"
            )
        if self.subConditionTabType is not kind:
            raise ValueError(
                f"subConditionTabType {self.subConditionTabType.value} needs tagQp."
                f"{TAG_FIELDS[self.subConditionTabType]}, but tagQp has "
                f"{TAG_FIELDS[kind]} (which is {kind.value})"
            )


class ClusterAddRequest(_DefinitionBody):
    """Body of user-cluster-add: a new conditional cluster or tag."""

    clusterName: ClusterName


class ClusterUpdateRequest(_DefinitionBody):
    """Body of user-cluster-update and user-cluster-update-by-name."""


class PagerHeader(RequestModel):
    """Paging of a list request: the page number and its size."""

    pageNum: int = Field(default=1, ge=1, description="Page number, from 1.")
    pageSize: int = Field(default=10, ge=1, le=1000, description="Entries per page.")


class ClusterListRequest(RequestModel):
    """Body of user-cluster-list."""

    projectId: ProjectId
    clusterCatalog: ClusterCatalog = Field(
        description="catalog_cluster or catalog_tag."
    )
    clusterTypes: list[ClusterType] = Field(
        min_length=1,
        description="Cluster types to list.",
        examples=[["cluster_by_static_condition"]],
    )
    pagerHeader: PagerHeader | None = Field(default=None, description="Paging.")

    @model_validator(mode="after")
    def _check_types_fit(self) -> Self:
        wrong = [
            t.value for t in self.clusterTypes if t.catalog is not self.clusterCatalog
        ]
        if wrong:
            raise ValueError(
                f"clusterTypes {', '.join(wrong)} do not fit clusterCatalog "
                f"{self.clusterCatalog.value}"
            )
        return self


class ByIdQuery(RequestModel):
    """Query of the endpoints that name a cluster by id (detail, delete, refresh, progress)."""

    projectId: ProjectId
    clusterId: ClusterId


class ByNameQuery(RequestModel):
    """Query of the endpoints that name a cluster by name."""

    projectId: ProjectId
    clusterName: ClusterName


class DetailQuery(RequestModel):
    """Query of user-cluster-detail: by clusterId or by clusterName."""

    projectId: ProjectId
    clusterId: ClusterId | None = None
    clusterName: ClusterName | None = None

    @model_validator(mode="after")
    def _check_one_key(self) -> Self:
        if (self.clusterId is None) == (self.clusterName is None):
            raise ValueError("give exactly one of clusterId or clusterName")
        return self


class UpdateQuery(RequestModel):
    """Query of user-cluster-update."""

    clusterId: ClusterId


class ImportAddQuery(RequestModel):
    """Query of import-id-cluster-add; the body is the ids as text/csv."""

    projectId: ProjectId
    displayName: DisplayName
    mainColumnName: str = Field(
        min_length=1,
        description="Property the ids are matched against, such as #account_id.",
        examples=["#account_id"],
    )
    clusterCatalog: ClusterCatalog | None = Field(
        default=None, description="catalog_cluster (default) or catalog_tag."
    )
    clusterName: ClusterName | None = Field(
        default=None, description="Cluster name; generated by TA when absent."
    )
    remarks: Remarks | None = None


class _ImportModifyFields(RequestModel):
    projectId: ProjectId
    displayName: DisplayName | None = None
    mainColumnName: str | None = Field(
        default=None, min_length=1, description="Property the ids are matched against."
    )
    remarks: Remarks | None = None


class ImportModifyQuery(_ImportModifyFields):
    """Query of import-id-cluster-modify; the body is the new ids as text/csv."""

    clusterId: ClusterId


class ImportModifyByNameQuery(_ImportModifyFields):
    """Query of import-id-cluster-modify-by-name; the body is the new ids as text/csv."""

    clusterName: ClusterName
