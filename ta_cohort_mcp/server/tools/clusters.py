"""Tools over the cluster endpoints: add, detail, update, list, refresh, progress."""

from typing import Any

from ta_cohort_mcp.models import (
    ClusterDetail,
    ClusterListRequest,
    ClusterSummary,
    ClusterUpdateRequest,
    PagerHeader,
)
from ta_cohort_mcp.models.tools import (
    UserClusterAddArguments,
    UserClusterDetailArguments,
    UserClusterListArguments,
    UserClusterRefreshArguments,
    UserClusterRefreshByNameArguments,
    UserClusterRefreshProgressArguments,
    UserClusterRefreshProgressByNameArguments,
    UserClusterUpdateArguments,
    UserClusterUpdateByNameArguments,
)
from ta_cohort_mcp.server.results import as_json, compact, counted
from ta_cohort_mcp.server.tools.base import (
    BOOLEAN,
    INTEGER,
    OBJECT,
    OBJECTS,
    STRING,
    Call,
    Outcome,
    ToolSpec,
    output_schema,
)

_CLUSTER_EXAMPLE = (
    '{"projectId":102,"clusterName":"buyers_7d","displayName":"buyers_7d",'
    '"qp":{"events":[{"eventName":"consume_item","comparator":"greater","num":"4",'
    '"recentDay":"1-7","taPropQuota":{"analysis":"TIMES"}}]}}'
)


def progress_text(progress: int | None) -> str:
    """Return what a progress value means: done, failed, or a percentage."""
    if progress is None:
        return "progress unknown"
    if progress == 100:
        return "refresh done (progress 100)"
    if progress < 0:
        return f"refresh failed (progress {progress})"
    return f"refresh at {progress}%"


def describe_cluster(cluster: ClusterDetail | ClusterSummary) -> str:
    """Return one line: id, name, type, usersNum, progress and refresh time."""
    parts = [f"cluster {cluster.id} {cluster.clusterName!r}"]
    if cluster.displayName and cluster.displayName != cluster.clusterName:
        parts.append(f"({cluster.displayName!r})")
    if cluster.clusterType:
        parts.append(cluster.clusterType)
    if cluster.projectId is not None:
        parts.append(f"project {cluster.projectId}")
    facts = [f"usersNum {cluster.usersNum}" if cluster.usersNum is not None else ""]
    facts.append(
        progress_text(cluster.progress) if cluster.progress is not None else ""
    )
    if cluster.refreshTime:
        facts.append(f"refreshed {cluster.refreshTime}")
    return " ".join(parts) + ": " + ", ".join(fact for fact in facts if fact)


def sentence(text: str) -> str:
    """Return `text` with its first letter in upper case and the rest unchanged."""
    return text[:1].upper() + text[1:]


def cluster_data(cluster: ClusterDetail | ClusterSummary) -> dict[str, Any]:
    """Return the cluster as JSON data without null fields."""
    data: dict[str, Any] = compact(cluster.model_dump(mode="json"))
    return data


async def _add(call: Call[UserClusterAddArguments]) -> Outcome:
    body = call.arguments
    cluster_id = await call.client.user_cluster_add(body)
    kind = "tag" if body.tagQp is not None else "cluster"
    text = (
        f"Created {kind} {cluster_id} {body.clusterName!r} in project {body.projectId}. "
        "Count its users with refresh_and_wait, or user_cluster_refresh and then "
        "user_cluster_detail."
    )
    structured = {
        "clusterId": cluster_id,
        "clusterName": body.clusterName,
        "projectId": body.projectId,
    }
    return Outcome(text, structured)


async def _detail(call: Call[UserClusterDetailArguments]) -> Outcome:
    query = call.arguments
    cluster = await call.client.user_cluster_detail(
        query.projectId, cluster_id=query.clusterId, cluster_name=query.clusterName
    )
    text = sentence(describe_cluster(cluster))
    definition = cluster.userClusterDef or cluster.userTagDef
    if definition:
        label = "qp" if cluster.userClusterDef else "tagQp"
        text += f"\n{label}: {as_json(definition)}"
    return Outcome(text, {"cluster": cluster_data(cluster)})


def _update_body(arguments: ClusterUpdateRequest, key: str) -> ClusterUpdateRequest:
    fields = arguments.model_dump(exclude={key}, exclude_unset=True)
    return ClusterUpdateRequest.model_validate(fields)


async def _update(call: Call[UserClusterUpdateArguments]) -> Outcome:
    arguments = call.arguments
    body = _update_body(arguments, "clusterId")
    await call.client.user_cluster_update(arguments.clusterId, body)
    text = (
        f"Updated the definition of cluster {arguments.clusterId} in project "
        f"{body.projectId}. Refresh it to recompute its users."
    )
    structured = {
        "updated": True,
        "projectId": body.projectId,
        "clusterId": arguments.clusterId,
    }
    return Outcome(text, structured)


async def _update_by_name(call: Call[UserClusterUpdateByNameArguments]) -> Outcome:
    arguments = call.arguments
    body = _update_body(arguments, "clusterName")
    await call.client.user_cluster_update_by_name(
        body.projectId, arguments.clusterName, body
    )
    text = (
        f"Updated the definition of cluster {arguments.clusterName!r} in project "
        f"{body.projectId}. Refresh it to recompute its users."
    )
    structured = {
        "updated": True,
        "projectId": body.projectId,
        "clusterName": arguments.clusterName,
    }
    return Outcome(text, structured)


async def _list(call: Call[UserClusterListArguments]) -> Outcome:
    arguments = call.arguments
    body = ClusterListRequest(
        projectId=arguments.projectId,
        clusterCatalog=arguments.clusterCatalog,
        clusterTypes=arguments.types(),
        pagerHeader=arguments.pagerHeader or PagerHeader(),
    )
    listing = await call.client.user_cluster_list(body)
    pager = listing.pagerResult
    shown = len(listing.userClusters)
    lines = [
        f"{shown} of {counted(pager.totalNum, 'entry', 'entries')} of "
        f"{arguments.clusterCatalog.value} in "
        f"project {arguments.projectId} (page {pager.pageNum}, {pager.pageSize} a page)."
    ]
    lines += ["- " + describe_cluster(cluster) for cluster in listing.userClusters]
    if pager.pageNum * pager.pageSize < pager.totalNum:
        lines.append(f"More on page {pager.pageNum + 1} (pagerHeader.pageNum).")
    structured = {
        "pagerResult": pager.model_dump(mode="json"),
        "userClusters": [cluster_data(c) for c in listing.userClusters],
    }
    return Outcome("\n".join(lines), structured)


_REFRESH_NEXT = (
    "TA computes it in the background; follow it with {progress} or wait for it with "
    "refresh_and_wait."
)


async def _refresh(call: Call[UserClusterRefreshArguments]) -> Outcome:
    query = call.arguments
    await call.client.user_cluster_refresh(query.projectId, query.clusterId)
    text = f"Refresh of cluster {query.clusterId} started. " + _REFRESH_NEXT.format(
        progress="user_cluster_refresh_progress"
    )
    structured = {
        "started": True,
        "projectId": query.projectId,
        "clusterId": query.clusterId,
    }
    return Outcome(text, structured)


async def _refresh_by_name(call: Call[UserClusterRefreshByNameArguments]) -> Outcome:
    query = call.arguments
    await call.client.user_cluster_refresh_by_name(query.projectId, query.clusterName)
    text = f"Refresh of cluster {query.clusterName!r} started. " + _REFRESH_NEXT.format(
        progress="user_cluster_refresh_progress_by_name"
    )
    structured = {
        "started": True,
        "projectId": query.projectId,
        "clusterName": query.clusterName,
    }
    return Outcome(text, structured)


async def _progress(call: Call[UserClusterRefreshProgressArguments]) -> Outcome:
    query = call.arguments
    result = await call.client.user_cluster_refresh_progress(
        query.projectId, query.clusterId
    )
    text = f"Cluster {query.clusterId}: {progress_text(result.progress)}."
    return Outcome(text, {"progress": result.progress, "clusterId": query.clusterId})


async def _progress_by_name(
    call: Call[UserClusterRefreshProgressByNameArguments],
) -> Outcome:
    query = call.arguments
    result = await call.client.user_cluster_refresh_progress_by_name(
        query.projectId, query.clusterName
    )
    text = f"Cluster {query.clusterName!r}: {progress_text(result.progress)}."
    structured = {"progress": result.progress, "clusterName": query.clusterName}
    return Outcome(text, structured)


_PROGRESS_NOTE = " 0-99 running, 100 done, -1 failed."
_UPDATED = output_schema(
    {
        "updated": BOOLEAN,
        "projectId": INTEGER,
        "clusterId": INTEGER,
        "clusterName": STRING,
    },
    ["updated"],
)
_STARTED = output_schema(
    {
        "started": BOOLEAN,
        "projectId": INTEGER,
        "clusterId": INTEGER,
        "clusterName": STRING,
    },
    ["started"],
)

CLUSTER_TOOLS = [
    ToolSpec(
        name="user_cluster_add",
        title="Create cluster or tag",
        description=(
            "Create a cluster (cohort) from qp, or a tag from tagQp with catalog_tag "
            "and subConditionTabType. Returns clusterId. "
            f"Example: {_CLUSTER_EXAMPLE}"
        ),
        handler=_add,
        output_schema=output_schema(
            {"clusterId": INTEGER, "clusterName": STRING, "projectId": INTEGER},
            ["clusterId"],
        ),
        read_only=False,
        destructive=False,
        idempotent=False,
    ),
    ToolSpec(
        name="user_cluster_detail",
        title="Cluster or tag detail",
        description=(
            "Get one cluster or tag by clusterId or clusterName: definition, usersNum, "
            'progress, refreshTime. Example: {"projectId":102,"clusterId":970}'
        ),
        handler=_detail,
        output_schema=output_schema({"cluster": OBJECT}, ["cluster"]),
        read_only=True,
        destructive=False,
        idempotent=True,
    ),
    ToolSpec(
        name="user_cluster_update",
        title="Update cluster or tag by id",
        description=(
            "Replace the definition of a cluster or tag, by clusterId; fields as in "
            "user_cluster_add. Example: "
            '{"clusterId":970,"projectId":102,"displayName":"level_4","qp":{"filts":'
            '[{"columnName":"user_level","comparator":"equal","ftv":["4"],'
            '"tableType":"user"}]}}'
        ),
        handler=_update,
        output_schema=_UPDATED,
        read_only=False,
        destructive=True,
        idempotent=True,
    ),
    ToolSpec(
        name="user_cluster_update_by_name",
        title="Update cluster or tag by name",
        description=(
            "Replace the definition of a cluster or tag, by clusterName; fields as "
            "in user_cluster_add. Example: "
            '{"clusterName":"level_4","projectId":102,"displayName":"level_4","qp":'
            '{"filts":[{"columnName":"user_level","comparator":"equal","ftv":["4"],'
            '"tableType":"user"}]}}'
        ),
        handler=_update_by_name,
        output_schema=_UPDATED,
        read_only=False,
        destructive=True,
        idempotent=True,
    ),
    ToolSpec(
        name="user_cluster_list",
        title="List clusters or tags",
        description=(
            "List the clusters (or tags, with catalog_tag) of a project, a page at a "
            'time. Example: {"projectId":102,"clusterCatalog":"catalog_cluster",'
            '"pagerHeader":{"pageNum":1,"pageSize":10}}'
        ),
        handler=_list,
        output_schema=output_schema(
            {"pagerResult": OBJECT, "userClusters": OBJECTS}, ["userClusters"]
        ),
        read_only=True,
        destructive=False,
        idempotent=True,
    ),
    ToolSpec(
        name="user_cluster_refresh",
        title="Refresh cluster by id",
        description=(
            "Start recomputing the members of a cluster or tag, by clusterId; returns "
            'at once. Example: {"projectId":102,"clusterId":970}'
        ),
        handler=_refresh,
        output_schema=_STARTED,
        read_only=False,
        destructive=False,
        idempotent=True,
    ),
    ToolSpec(
        name="user_cluster_refresh_by_name",
        title="Refresh cluster by name",
        description=(
            "Start recomputing the members of a cluster or tag, by clusterName; "
            'returns at once. Example: {"projectId":102,'
            '"clusterName":"recent_7_days_consume"}'
        ),
        handler=_refresh_by_name,
        output_schema=_STARTED,
        read_only=False,
        destructive=False,
        idempotent=True,
    ),
    ToolSpec(
        name="user_cluster_refresh_progress",
        title="Refresh progress by id",
        description=(
            "Get the refresh progress of a cluster or tag, by clusterId."
            + _PROGRESS_NOTE
            + ' Example: {"projectId":102,"clusterId":970}'
        ),
        handler=_progress,
        output_schema=output_schema(
            {"progress": INTEGER, "clusterId": INTEGER}, ["progress"]
        ),
        read_only=True,
        destructive=False,
        idempotent=True,
    ),
    ToolSpec(
        name="user_cluster_refresh_progress_by_name",
        title="Refresh progress by name",
        description=(
            "Get the refresh progress of a cluster or tag, by clusterName."
            + _PROGRESS_NOTE
            + ' Example: {"projectId":102,"clusterName":"recent_7_days_consume"}'
        ),
        handler=_progress_by_name,
        output_schema=output_schema(
            {"progress": INTEGER, "clusterName": STRING}, ["progress"]
        ),
        read_only=True,
        destructive=False,
        idempotent=True,
    ),
]
