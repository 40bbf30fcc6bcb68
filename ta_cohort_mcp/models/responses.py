"""Response bodies: the envelope and the data of each endpoint.

Responses tolerate fields that a TA version adds, and keep them.
"""

from typing import Any

from pydantic import Field

from ta_cohort_mcp.models.base import ResponseModel


class Envelope(ResponseModel):
    """The wrapper of every response; return_code 0 means success."""

    return_code: int
    return_message: str = ""
    data: Any = None


class ClusterDetail(ResponseModel):
    """Data of user-cluster-detail."""

    id: int
    projectId: int | None = None
    clusterName: str
    displayName: str | None = None
    clusterCatalog: str | None = None
    clusterType: str | None = None
    subConditionTabType: str | None = None
    progress: int | None = Field(
        default=None, description="100 done, 0-99 computing, -1 failed."
    )
    refreshTime: str | None = None
    userId: int | None = None
    usersNum: int | None = None
    userClusterDef: dict[str, Any] | None = Field(
        default=None, description="Cluster definition, same as qp."
    )
    userTagDef: dict[str, Any] | None = Field(
        default=None, description="Tag definition, same as tagQp."
    )


class ClusterSummary(ResponseModel):
    """One entry of user-cluster-list."""

    id: int
    clusterName: str
    displayName: str | None = None
    clusterCatalog: str | None = None
    clusterType: str | None = None
    historyDataStatus: int | None = None
    mainColumnName: str | None = None
    progress: int | None = None
    projectId: int | None = None
    refreshDelay: int | None = None
    refreshTime: str | None = None
    remarks: str | None = None
    selectType: str | None = None
    status: int | None = None
    uploadFileName: str | None = None
    userId: int | None = None
    userName: str | None = None
    usersNum: int | None = None


class PagerResult(ResponseModel):
    """Paging of a list."""

    pageNum: int
    pageSize: int
    totalNum: int


class ClusterList(ResponseModel):
    """Data of user-cluster-list."""

    pagerResult: PagerResult
    userClusters: list[ClusterSummary]


class RefreshProgress(ResponseModel):
    """Data of the refresh-progress endpoints: 0..100, 100 done, -1 failed."""

    progress: int


class ImportResult(ResponseModel):
    """Data of import-id-cluster-add (and of modify where TA returns it)."""

    clusterId: int | None = None
    tagValueNullNum: int = 0
    unmatchedNum: int = 0
    uploadNum: int = 0
    userNum: int = 0
