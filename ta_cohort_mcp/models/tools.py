"""Arguments of the MCP tools, one model per tool.

Each tool that wraps an endpoint takes that endpoint's query and body fields as
flat arguments, named as the API names them. `ta-cohort-mcp schemas` publishes
the JSON Schema of each model as `schemas/tools/<tool>.json`, and the server
lists exactly that schema as the tool's input schema.
"""

from typing import Annotated, Any, Self

from pydantic import ConfigDict, Field, model_validator

from ta_cohort_mcp.models.base import RequestModel
from ta_cohort_mcp.models.catalog import EventCatalogArguments
from ta_cohort_mcp.models.enums import ClusterCatalog, ClusterType
from ta_cohort_mcp.models.requests import (
    ByIdQuery,
    ByNameQuery,
    ClusterAddRequest,
    ClusterId,
    ClusterName,
    ClusterUpdateRequest,
    DetailQuery,
    ImportAddQuery,
    ImportModifyByNameQuery,
    ImportModifyQuery,
    PagerHeader,
    ProjectId,
)

# Inline ids are bounded so that one call stays a small request; larger uploads
# go through a file under the upload directory.
MAX_INLINE_IDS = 10_000
MAX_ID_LENGTH = 256

UploadId = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)]
# A tag row is "id,value": the id ends at the first comma, the value may contain
# more, and a row without a comma has an empty value.
TagRow = Annotated[str, Field(min_length=1, max_length=2 * MAX_ID_LENGTH + 1)]
Confirm = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        description="Token from the preview call, to confirm the delete.",
    ),
]


def _drop_description(schema: dict[str, Any]) -> None:
    schema.pop("description", None)


class _ToolSchema(RequestModel):
    """Base of every tool's arguments: its schema has no top-level description.

    The tool's own description says what the arguments are for, and tools/list
    has a size budget, so the docstring is not repeated in the schema.
    """

    model_config = ConfigDict(json_schema_extra=_drop_description)


class UserClusterAddArguments(_ToolSchema, ClusterAddRequest):
    """Arguments of user_cluster_add: the body of user-cluster-add."""


class UserClusterDetailArguments(_ToolSchema, DetailQuery):
    """Arguments of user_cluster_detail: clusterId or clusterName."""


class UserClusterUpdateArguments(_ToolSchema, ClusterUpdateRequest):
    """Arguments of user_cluster_update: the cluster id and the new body."""

    clusterId: ClusterId


class UserClusterUpdateByNameArguments(_ToolSchema, ClusterUpdateRequest):
    """Arguments of user_cluster_update_by_name: the cluster name and the new body."""

    clusterName: ClusterName


class UserClusterDeleteArguments(_ToolSchema, ByIdQuery):
    """Arguments of user_cluster_delete."""

    confirm: Confirm | None = None


class DeleteUserClusterByNameArguments(_ToolSchema, ByNameQuery):
    """Arguments of delete_user_cluster_by_name."""

    confirm: Confirm | None = None


class UserClusterListArguments(_ToolSchema):
    """Arguments of user_cluster_list; the catalog and types have defaults."""

    projectId: ProjectId
    clusterCatalog: ClusterCatalog = Field(
        default=ClusterCatalog.CLUSTER, description="catalog_cluster or catalog_tag."
    )
    clusterTypes: list[ClusterType] | None = Field(
        default=None,
        min_length=1,
        description="Types to list; default every type of the catalog.",
    )
    pagerHeader: PagerHeader | None = Field(default=None, description="Paging.")

    @model_validator(mode="after")
    def _check_types_fit(self) -> Self:
        wrong = [
            t.value
            for t in self.clusterTypes or []
            if t.catalog is not self.clusterCatalog
        ]
        if wrong:
            raise ValueError(
                f"clusterTypes {', '.join(wrong)} do not fit clusterCatalog "
                f"{self.clusterCatalog.value}: tag_ types list catalog_tag, the "
                "others catalog_cluster; leave clusterTypes out to list every type"
            )
        return self

    def types(self) -> list[ClusterType]:
        """Return the types given, or every type of the catalog."""
        if self.clusterTypes is not None:
            return self.clusterTypes
        return [t for t in ClusterType if t.catalog is self.clusterCatalog]


class UserClusterRefreshArguments(_ToolSchema, ByIdQuery):
    """Arguments of user_cluster_refresh."""


class UserClusterRefreshByNameArguments(_ToolSchema, ByNameQuery):
    """Arguments of user_cluster_refresh_by_name."""


class UserClusterRefreshProgressArguments(_ToolSchema, ByIdQuery):
    """Arguments of user_cluster_refresh_progress."""


class UserClusterRefreshProgressByNameArguments(_ToolSchema, ByNameQuery):
    """Arguments of user_cluster_refresh_progress_by_name."""


class _UploadSource(RequestModel):
    """The source of uploaded ids: inline ids, inline tag rows, or a file."""

    ids: list[UploadId] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_INLINE_IDS,
        description="Cluster member ids, such as account ids.",
    )
    rows: list[TagRow] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_INLINE_IDS,
        description='Tag rows "id,value", such as ["a1,vip"]; the value may have commas.',
    )
    path: str | None = Field(
        default=None,
        min_length=1,
        max_length=4096,
        description='File in the upload directory: ids, or "id,value" lines.',
    )

    @model_validator(mode="after")
    def _check_one_source(self) -> Self:
        given = [
            name for name in ("ids", "rows", "path") if getattr(self, name) is not None
        ]
        if len(given) != 1:
            got = ", ".join(given) if given else "none"
            raise ValueError(
                "give exactly one of ids (cluster), rows (tag) or path (file); "
                f"got {got}"
            )
        return self


class ImportIdClusterAddArguments(_ToolSchema, _UploadSource, ImportAddQuery):
    """Arguments of import_id_cluster_add: the query and the ids."""

    @model_validator(mode="after")
    def _check_source_fits_catalog(self) -> Self:
        is_tag = self.clusterCatalog is ClusterCatalog.TAG
        if is_tag and self.ids is not None:
            raise ValueError(
                'a tag upload (catalog_tag) needs rows of "id,value", not ids'
            )
        if not is_tag and self.rows is not None:
            raise ValueError(
                "rows are for tags; set clusterCatalog catalog_tag, or send ids"
            )
        return self


class ImportIdClusterModifyArguments(_ToolSchema, _UploadSource, ImportModifyQuery):
    """Arguments of import_id_cluster_modify: the query and the new ids."""


class ImportIdClusterModifyByNameArguments(
    _ToolSchema, _UploadSource, ImportModifyByNameQuery
):
    """Arguments of import_id_cluster_modify_by_name: the query and the new ids."""


# Longest JSON text validate_definition takes for one definition, in characters.
MAX_DEFINITION_TEXT = 200_000
DefinitionText = Annotated[str, Field(min_length=2, max_length=MAX_DEFINITION_TEXT)]


class ValidateDefinitionArguments(_ToolSchema):
    """Arguments of validate_definition: definitions as JSON text.

    The definitions are JSON text, not typed objects, because their typed
    schemas would add about 8,000 characters to tools/list; user_cluster_add
    lists them in full. The server checks the decoded text against the full
    `qp`, `tagQp` and user_cluster_add schemas.
    """

    qp: DefinitionText | None = Field(
        default=None, description="JSON text of a cluster definition (qp)."
    )
    tagQp: DefinitionText | None = Field(
        default=None, description="JSON text of a tag definition (tagQp)."
    )
    body: DefinitionText | None = Field(
        default=None, description="JSON text of whole user_cluster_add arguments."
    )

    @model_validator(mode="after")
    def _check_something_given(self) -> Self:
        if self.qp is None and self.tagQp is None and self.body is None:
            raise ValueError("give qp, tagQp or body to check")
        return self


class RefreshAndWaitArguments(_ToolSchema):
    """Arguments of refresh_and_wait: the cluster by id or by name."""

    projectId: ProjectId
    clusterId: ClusterId | None = None
    clusterName: ClusterName | None = None
    waitSeconds: float | None = Field(
        default=None,
        gt=0,
        le=50,
        description="Seconds to wait at most; the server's limit applies.",
    )
    startRefresh: bool = Field(
        default=True,
        description="false: only wait for a refresh already started.",
    )

    @model_validator(mode="after")
    def _check_one_key(self) -> Self:
        if (self.clusterId is None) == (self.clusterName is None):
            raise ValueError("give exactly one of clusterId or clusterName")
        return self


# Tools whose published schema keeps field descriptions only at the top level:
# they repeat the definitions that user_cluster_add describes in full.
TERSE_TOOLS = frozenset({"user_cluster_update", "user_cluster_update_by_name"})

# Tool name -> its arguments model, in the order tools/list shows them.
TOOL_ARGUMENT_MODELS: dict[str, type[RequestModel]] = {
    "user_cluster_add": UserClusterAddArguments,
    "user_cluster_detail": UserClusterDetailArguments,
    "user_cluster_update": UserClusterUpdateArguments,
    "user_cluster_update_by_name": UserClusterUpdateByNameArguments,
    "user_cluster_delete": UserClusterDeleteArguments,
    "delete_user_cluster_by_name": DeleteUserClusterByNameArguments,
    "user_cluster_list": UserClusterListArguments,
    "user_cluster_refresh": UserClusterRefreshArguments,
    "user_cluster_refresh_by_name": UserClusterRefreshByNameArguments,
    "user_cluster_refresh_progress": UserClusterRefreshProgressArguments,
    "user_cluster_refresh_progress_by_name": UserClusterRefreshProgressByNameArguments,
    "import_id_cluster_add": ImportIdClusterAddArguments,
    "import_id_cluster_modify": ImportIdClusterModifyArguments,
    "import_id_cluster_modify_by_name": ImportIdClusterModifyByNameArguments,
    "validate_definition": ValidateDefinitionArguments,
    "refresh_and_wait": RefreshAndWaitArguments,
    "event_catalog": EventCatalogArguments,
}
