"""The id-upload tools: ids inline, tag rows inline, or a file in the upload directory.

A file is opened and checked (see `server.uploads`) before any request. The
client streams that open file, which is closed when the call ends, however it
ends. The modify tools first read the cluster with user-cluster-detail, because
a tag (clusterCatalog catalog_tag, or a `tag_` clusterType) takes "id,value"
rows and a cluster takes one id per line, commas included.
"""

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import anyio.to_thread

from ta_cohort_mcp.client import IdSource, TAError, UploadOutcome
from ta_cohort_mcp.client.upload import IdFileCutShortError, IdFileEncodingError
from ta_cohort_mcp.models import (
    ClusterCatalog,
    ClusterDetail,
    ImportAddQuery,
    ImportModifyByNameQuery,
    ImportModifyQuery,
)
from ta_cohort_mcp.models.tools import (
    ImportIdClusterAddArguments,
    ImportIdClusterModifyArguments,
    ImportIdClusterModifyByNameArguments,
)
from ta_cohort_mcp.server.results import ToolFailure, counted, from_client_error
from ta_cohort_mcp.server.tools.base import (
    INTEGER,
    OBJECT,
    STRING,
    Call,
    Outcome,
    ToolSpec,
    output_schema,
)
from ta_cohort_mcp.server.uploads import open_upload_file, resolve_upload_path

_SOURCE_FIELDS = {"ids", "rows", "path"}


@asynccontextmanager
async def upload_file(
    path: str | None, upload_dir: Path | None
) -> AsyncIterator[BinaryIO | None]:
    """Open and check the file at `path` (None gives None), and close it on exit.

    Raises:
        ToolFailure: the path is not allowed (see `server.uploads`); raised
            before any request.
    """
    if path is None:
        yield None
        return
    real = resolve_upload_path(path, upload_dir)
    # A worker thread that is not abandoned on cancellation, so the file it
    # opened is always returned here and closed below.
    handle = await anyio.to_thread.run_sync(open_upload_file, real)
    try:
        yield handle
    finally:
        handle.close()


def id_source(
    *,
    ids: list[str] | None,
    rows: list[str] | None,
    path: str | None,
    handle: BinaryIO | None,
    is_tag: bool,
    target: str,
) -> IdSource:
    """Build the upload source for a cluster or a tag (`is_tag`) named `target`.

    A file is read as "id,value" rows for a tag and as one id per line for a
    cluster.

    Raises:
        ToolFailure: inline ids for a tag, inline rows for a cluster, or an
            inline id with a comma.
    """
    if ids is not None:
        if is_tag:
            raise ToolFailure(
                "source_mismatch",
                f'{target} is a tag, which takes rows of "id,value", not ids; '
                "nothing was sent. Send rows, or a file of id,value lines.",
            )
        _reject_commas(ids)
        return IdSource.from_ids(ids)
    if rows is not None:
        if not is_tag:
            raise ToolFailure(
                "source_mismatch",
                f"{target} is a cluster, which takes ids, not rows of "
                '"id,value"; nothing was sent. Send the ids, one per entry.',
            )
        return IdSource.from_pairs(_pairs(rows))
    assert handle is not None and path is not None
    return IdSource.from_open_file(handle, with_values=is_tag, name=path)


def _reject_commas(ids: list[str]) -> None:
    """Raise ToolFailure for the first id with a comma, which TA reads as two columns."""
    for index, value in enumerate(ids):
        if "," in value:
            raise ToolFailure(
                "invalid_id",
                f"ids[{index}] {value[:80]!r} contains a comma, which the upload "
                "reads as a column separator; nothing was sent. Send each id as its "
                'own entry, or for a tag use rows of "id,value".',
            )


async def cluster_is_tag(
    call: Call[Any],
    tool: str,
    project_id: int,
    *,
    cluster_id: int | None = None,
    cluster_name: str | None = None,
) -> bool:
    """Read the cluster with user-cluster-detail and return whether it is a tag.

    Raises:
        ToolFailure: the detail call failed, or its result has neither a known
            clusterCatalog nor a known clusterType.
    """
    try:
        detail = await call.client.user_cluster_detail(
            project_id, cluster_id=cluster_id, cluster_name=cluster_name
        )
    except TAError as error:
        raise _detail_failed(error, tool) from None
    is_tag = _detail_is_tag(detail)
    if is_tag is None:
        target = _target(project_id, cluster_id, cluster_name)
        # NOTE: not run by a test, because the sandbox always returns both fields.
        raise ToolFailure(
            "cluster_kind_unknown",
            f"{tool}: user_cluster_detail of {target} "
            f"returned clusterCatalog {detail.clusterCatalog!r} and clusterType "
            f"{detail.clusterType!r}, so it is unknown whether it takes ids or "
            "id,value rows; nothing was uploaded. Check the cluster in TA.",
        )
    return is_tag


def _detail_is_tag(detail: ClusterDetail) -> bool | None:
    """Return whether the cluster is a tag, from clusterCatalog, else clusterType."""
    if detail.clusterCatalog == ClusterCatalog.TAG.value:
        return True
    if detail.clusterCatalog == ClusterCatalog.CLUSTER.value:
        return False
    cluster_type = detail.clusterType or ""
    if cluster_type.startswith("tag_"):
        return True
    if cluster_type.startswith("cluster_"):
        return False
    return None


def _detail_failed(error: TAError, tool: str) -> ToolFailure:
    """Return the failure of the detail call, saying that nothing was uploaded."""
    result = from_client_error(error, tool)
    content = result.structured_content or {}
    details = dict(content.get("error", {}))
    kind = str(details.pop("kind", "client_error"))
    message = str(details.pop("message", error.message))
    return ToolFailure(
        kind,
        f"{message} Nothing was uploaded: {tool} reads the cluster with "
        "user_cluster_detail first, to tell a cluster from a tag.",
        **details,
    )


@contextmanager
def file_errors(tool: str, check: str) -> Iterator[None]:
    """Turn invalid UTF-8 in an upload file into a failure that names the file.

    `check` is the step that shows whether a write cut short was applied.
    """
    endpoint = tool.replace("_", "-")
    try:
        yield
    except IdFileEncodingError as error:
        raise ToolFailure(
            "invalid_file",
            f"{tool}: {error.message}.",
            path=error.source_name,
            byteOffset=error.byte_offset,
            line=error.line_number,
        ) from None
    except IdFileCutShortError as error:
        raise ToolFailure(
            "write_uncertain",
            f"{tool}: the file {error.source_name!r} is not valid UTF-8 at byte "
            f"offset {error.byte_offset} (line {error.line_number}). It changed "
            "after its UTF-8 check, while the upload was being sent, so the "
            f"request was cut short after {error.bytes_sent} body bytes and may "
            f"or may not have been applied. Do not repeat it blindly; {check}. "
            "Then save the file as UTF-8 and upload again.",
            endpoint=endpoint,
            check=check,
            path=error.source_name,
            byteOffset=error.byte_offset,
            line=error.line_number,
        ) from None


def _target(project_id: int, cluster_id: int | None, name: str | None) -> str:
    if cluster_id is not None:
        return f"cluster {cluster_id} in project {project_id}"
    return f"cluster {name!r} in project {project_id}"


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
    dropped = [
        counted(outcome.duplicates_dropped, "repeated id"),
        counted(outcome.blank_dropped, "blank line"),
    ]
    if outcome.missing_id_dropped:
        dropped.append(counted(outcome.missing_id_dropped, "row without an id"))
    text = f"sent {counted(outcome.rows_sent, 'row')} ({', '.join(dropped)} dropped)"
    result = outcome.result
    if result is not None:
        text += (
            f"; TA matched {counted(result.userNum, 'user')}, "
            f"{result.unmatchedNum} unmatched"
        )
        if result.tagValueNullNum:
            text += f", {counted(result.tagValueNullNum, 'row')} without a tag value"
    return text


async def _add(call: Call[ImportIdClusterAddArguments]) -> Outcome:
    tool = "import_id_cluster_add"
    arguments = call.arguments
    query = ImportAddQuery.model_validate(
        arguments.model_dump(exclude=_SOURCE_FIELDS, exclude_unset=True)
    )
    is_tag = query.clusterCatalog is ClusterCatalog.TAG
    kind = "tag" if is_tag else "cluster"
    check = (
        f"call user_cluster_list for project {query.projectId} and look for "
        f"displayName {query.displayName!r}"
    )
    async with upload_file(arguments.path, call.state.settings.upload_dir) as handle:
        source = id_source(
            ids=arguments.ids,
            rows=arguments.rows,
            path=arguments.path,
            handle=handle,
            is_tag=is_tag,
            target=f"the new {kind}",
        )
        with file_errors(tool, check):
            outcome = await call.client.import_id_cluster_add(query, source)
    cluster_id = outcome.result.clusterId if outcome.result else None
    text = (
        f"Created id {kind} {cluster_id} {query.displayName!r} in project "
        f"{query.projectId}: {_outcome_text(outcome)}."
    )
    structured = {
        "clusterId": cluster_id,
        "projectId": query.projectId,
        "clusterCatalog": _catalog(is_tag),
        "upload": _outcome_data(outcome),
    }
    return Outcome(text, structured)


async def _modify(call: Call[ImportIdClusterModifyArguments]) -> Outcome:
    arguments = call.arguments
    query = ImportModifyQuery.model_validate(
        arguments.model_dump(exclude=_SOURCE_FIELDS, exclude_unset=True)
    )

    async def send(source: IdSource) -> UploadOutcome:
        return await call.client.import_id_cluster_modify(query, source)

    return await _replace_ids(
        call,
        "import_id_cluster_modify",
        query.projectId,
        send,
        cluster_id=query.clusterId,
    )


async def _modify_by_name(call: Call[ImportIdClusterModifyByNameArguments]) -> Outcome:
    arguments = call.arguments
    query = ImportModifyByNameQuery.model_validate(
        arguments.model_dump(exclude=_SOURCE_FIELDS, exclude_unset=True)
    )

    async def send(source: IdSource) -> UploadOutcome:
        return await call.client.import_id_cluster_modify_by_name(query, source)

    return await _replace_ids(
        call,
        "import_id_cluster_modify_by_name",
        query.projectId,
        send,
        cluster_name=query.clusterName,
    )


async def _replace_ids(
    call: Call[ImportIdClusterModifyArguments]
    | Call[ImportIdClusterModifyByNameArguments],
    tool: str,
    project_id: int,
    send: Callable[[IdSource], Awaitable[UploadOutcome]],
    *,
    cluster_id: int | None = None,
    cluster_name: str | None = None,
) -> Outcome:
    """Replace the ids of the cluster named by id or name, reading its kind first."""
    arguments = call.arguments
    target = _target(project_id, cluster_id, cluster_name)
    # The file is opened and checked before the detail call, so a rejected
    # path sends no request at all.
    async with upload_file(arguments.path, call.state.settings.upload_dir) as handle:
        is_tag = await cluster_is_tag(
            call, tool, project_id, cluster_id=cluster_id, cluster_name=cluster_name
        )
        source = id_source(
            ids=arguments.ids,
            rows=arguments.rows,
            path=arguments.path,
            handle=handle,
            is_tag=is_tag,
            target=target,
        )
        check = f"call user_cluster_detail for {target} and compare usersNum"
        with file_errors(tool, check):
            outcome = await send(source)
    text = (
        f"Replaced the ids of {_kind_target(is_tag, target)}: {_outcome_text(outcome)}."
    )
    key: dict[str, Any] = (
        {"clusterId": cluster_id}
        if cluster_id is not None
        else {"clusterName": cluster_name}
    )
    structured = {
        **key,
        "projectId": project_id,
        "clusterCatalog": _catalog(is_tag),
        "upload": _outcome_data(outcome),
    }
    return Outcome(text, structured)


def _catalog(is_tag: bool) -> str:
    return (ClusterCatalog.TAG if is_tag else ClusterCatalog.CLUSTER).value


def _kind_target(is_tag: bool, target: str) -> str:
    """Return `target` ("cluster 5 in project 102") with "tag" for a tag."""
    return target.replace("cluster", "tag", 1) if is_tag else target


_UPLOADED = output_schema(
    {
        "clusterId": INTEGER,
        "clusterName": STRING,
        "projectId": INTEGER,
        "clusterCatalog": STRING,
        "upload": OBJECT,
    },
    ["upload"],
)
_SOURCES = 'Give ids (cluster), rows of "id,value" (tag), or a file path.'
_MODIFY_READS = "A file is read as id,value rows if the cluster is a tag."

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
            f"{_MODIFY_READS} "
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
            f"{_MODIFY_READS} "
            'Example: {"projectId":102,"clusterName":"vip_list","ids":["j77639"]}'
        ),
        handler=_modify_by_name,
        output_schema=_UPLOADED,
        read_only=False,
        destructive=True,
        idempotent=True,
    ),
]
