"""The id-upload tools: ids inline, tag rows inline, or a file in the upload directory."""

from typing import Any

import anyio.to_thread

from ta_cohort_mcp.client import IdSource, UploadOutcome
from ta_cohort_mcp.models import (
    ClusterCatalog,
    ImportAddQuery,
    ImportModifyByNameQuery,
    ImportModifyQuery,
)
from ta_cohort_mcp.models.tools import (
    ImportIdClusterAddArguments,
    ImportIdClusterModifyArguments,
    ImportIdClusterModifyByNameArguments,
)
from ta_cohort_mcp.server.tools.base import (
    INTEGER,
    OBJECT,
    STRING,
    Call,
    Outcome,
    ToolSpec,
    output_schema,
)
from ta_cohort_mcp.server.uploads import (
    read_upload_file,
    resolve_upload_path,
    split_rows,
)

_SOURCE_FIELDS = {"ids", "rows", "path"}


async def id_source(
    call: Call[Any],
    *,
    ids: list[str] | None,
    rows: list[str] | None,
    path: str | None,
    with_values: bool | None,
) -> IdSource:
    """Build the upload source from inline ids, inline rows, or a checked file.

    With `with_values` None, a file is read as tag rows when a line has a comma.

    Raises:
        ToolFailure: the path is not allowed (see `server.uploads`).
    """
    if ids is not None:
        return IdSource.from_ids(ids)
    if rows is not None:
        return IdSource.from_pairs(_pairs(rows))
    assert path is not None
    real = resolve_upload_path(path, call.state.settings.upload_dir)
    text = await anyio.to_thread.run_sync(read_upload_file, real)
    if with_values is None:
        # NOTE: a modify call does not say whether the cluster is a tag, so a
        # file with a comma on any line is taken for "id,value" tag rows.
        with_values = "," in text
    file_ids, pairs = split_rows(text, with_values=with_values)
    if with_values:
        return IdSource.from_pairs(pairs)
    return IdSource.from_ids(file_ids)


def _pairs(rows: list[str]) -> list[tuple[str, str]]:
    """Split "id,value" rows at their first comma."""
    pairs = []
    for row in rows:
        user_id, _, value = row.partition(",")
        pairs.append((user_id, value))
    return pairs


def _outcome_data(outcome: UploadOutcome) -> dict[str, Any]:
    data: dict[str, Any] = outcome.model_dump(mode="json", exclude_none=True)
    return data


def _outcome_text(outcome: UploadOutcome) -> str:
    text = (
        f"sent {outcome.rows_sent} rows ({outcome.duplicates_dropped} repeated ids "
        f"and {outcome.blank_dropped} blank lines dropped)"
    )
    result = outcome.result
    if result is not None:
        text += f"; TA matched {result.userNum} users, {result.unmatchedNum} unmatched"
        if result.tagValueNullNum:
            text += f", {result.tagValueNullNum} rows without a tag value"
    return text


async def _add(call: Call[ImportIdClusterAddArguments]) -> Outcome:
    arguments = call.arguments
    query = ImportAddQuery.model_validate(
        arguments.model_dump(exclude=_SOURCE_FIELDS, exclude_unset=True)
    )
    is_tag = query.clusterCatalog is ClusterCatalog.TAG
    source = await id_source(
        call,
        ids=arguments.ids,
        rows=arguments.rows,
        path=arguments.path,
        with_values=is_tag,
    )
    outcome = await call.client.import_id_cluster_add(query, source)
    cluster_id = outcome.result.clusterId if outcome.result else None
    kind = "tag" if is_tag else "cluster"
    text = (
        f"Created id {kind} {cluster_id} {query.displayName!r} in project "
        f"{query.projectId}: {_outcome_text(outcome)}."
    )
    structured = {
        "clusterId": cluster_id,
        "projectId": query.projectId,
        "upload": _outcome_data(outcome),
    }
    return Outcome(text, structured)


async def _modify(call: Call[ImportIdClusterModifyArguments]) -> Outcome:
    arguments = call.arguments
    query = ImportModifyQuery.model_validate(
        arguments.model_dump(exclude=_SOURCE_FIELDS, exclude_unset=True)
    )
    source = await id_source(
        call,
        ids=arguments.ids,
        rows=arguments.rows,
        path=arguments.path,
        with_values=None,
    )
    outcome = await call.client.import_id_cluster_modify(query, source)
    text = (
        f"Replaced the ids of cluster {query.clusterId} in project {query.projectId}: "
        f"{_outcome_text(outcome)}."
    )
    structured = {
        "clusterId": query.clusterId,
        "projectId": query.projectId,
        "upload": _outcome_data(outcome),
    }
    return Outcome(text, structured)


async def _modify_by_name(call: Call[ImportIdClusterModifyByNameArguments]) -> Outcome:
    arguments = call.arguments
    query = ImportModifyByNameQuery.model_validate(
        arguments.model_dump(exclude=_SOURCE_FIELDS, exclude_unset=True)
    )
    source = await id_source(
        call,
        ids=arguments.ids,
        rows=arguments.rows,
        path=arguments.path,
        with_values=None,
    )
    outcome = await call.client.import_id_cluster_modify_by_name(query, source)
    text = (
        f"Replaced the ids of cluster {query.clusterName!r} in project "
        f"{query.projectId}: {_outcome_text(outcome)}."
    )
    structured = {
        "clusterName": query.clusterName,
        "projectId": query.projectId,
        "upload": _outcome_data(outcome),
    }
    return Outcome(text, structured)


_UPLOADED = output_schema(
    {
        "clusterId": INTEGER,
        "clusterName": STRING,
        "projectId": INTEGER,
        "upload": OBJECT,
    },
    ["upload"],
)
_SOURCES = 'Give ids (cluster), rows of "id,value" (tag), or a file path.'

UPLOAD_TOOLS = [
    ToolSpec(
        name="import_id_cluster_add",
        title="Create cluster or tag from ids",
        description=(
            f"Create a cluster, or a tag with clusterCatalog catalog_tag, from ids. "
            f"{_SOURCES} Example: "
            '{"projectId":102,"displayName":"vip_list","mainColumnName":"#account_id",'
            '"ids":["j77639","h84497"]}'
        ),
        handler=_add,
        output_schema=_UPLOADED,
        read_only=False,
        destructive=False,
        idempotent=False,
    ),
    ToolSpec(
        name="import_id_cluster_modify",
        title="Replace the ids of a cluster by id",
        description=(
            f"Replace the ids of an id cluster or tag, by clusterId. {_SOURCES} "
            'Example: {"projectId":102,"clusterId":1889,"ids":["j77639"]}'
        ),
        handler=_modify,
        output_schema=_UPLOADED,
        read_only=False,
        destructive=True,
        idempotent=True,
    ),
    ToolSpec(
        name="import_id_cluster_modify_by_name",
        title="Replace the ids of a cluster by name",
        description=(
            f"Replace the ids of an id cluster or tag, by clusterName. {_SOURCES} "
            'Example: {"projectId":102,"clusterName":"vip_list","ids":["j77639"]}'
        ),
        handler=_modify_by_name,
        output_schema=_UPLOADED,
        read_only=False,
        destructive=True,
        idempotent=True,
    ),
]
