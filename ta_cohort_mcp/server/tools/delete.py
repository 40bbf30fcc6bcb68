"""The two delete tools, which delete only after the user confirms.

On a 2025-11-25 connection whose client declared the elicitation capability,
the server asks the user directly. Otherwise the first call returns a preview
of the cluster and a confirm token, and a second call with `confirm` set to
that token deletes. A token is bound to its project and cluster, works once and
expires after five minutes. A token of delete_user_cluster_by_name also works
with user_cluster_delete for the cluster id its preview showed.

A by-name delete deletes only the cluster id the user saw: after the token or
the user's answer, it looks the name up again, rejects the delete when the name
now stands for another id, and deletes by id.
"""

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from ta_cohort_mcp.models import ClusterDetail
from ta_cohort_mcp.models.tools import (
    DeleteUserClusterByNameArguments,
    UserClusterDeleteArguments,
)
from ta_cohort_mcp.server.confirm import ClusterKey, cluster_key
from ta_cohort_mcp.server.results import ToolFailure, counted
from ta_cohort_mcp.server.state import Context
from ta_cohort_mcp.server.tools.base import (
    BOOLEAN,
    OBJECT,
    STRING,
    Call,
    Outcome,
    ToolSpec,
    output_schema,
)
from ta_cohort_mcp.server.tools.clusters import cluster_data, describe_cluster

logger = logging.getLogger(__name__)

_ELICIT_SCHEMA = {
    "type": "object",
    "properties": {
        "confirm": {
            "type": "boolean",
            "title": "Delete",
            "description": "Delete this cluster or tag for good",
        }
    },
    "required": ["confirm"],
}


@dataclass
class _Target:
    """The cluster a delete call names, and how to look it up and delete it."""

    tool: str
    label: str
    key: ClusterKey
    preview: Callable[[], Awaitable[ClusterDetail]]
    # Deletes the cluster the user saw, given its previewed id, and returns the
    # ids of what it deleted.
    perform: Callable[[int | None], Awaitable[dict[str, object]]]
    ids: dict[str, object]


def can_elicit(ctx: Context) -> bool:
    """Return whether the server can put a question to this call's user mid-call.

    Only 2025-11-25 connections with a back channel and a client that declared
    the elicitation capability qualify.
    """
    if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
        return False
    capabilities = ctx.session.client_capabilities
    if capabilities is None or capabilities.elicitation is None:
        return False
    return ctx.session.can_send_request


async def _confirmed_delete(
    call: Call[Any], target: _Target, confirm: str | None
) -> Outcome:
    if confirm is not None:
        return await _delete_with_token(call, target, confirm)
    if can_elicit(call.ctx):
        cluster = await target.preview()
        answer = await _ask_user(call.ctx, target, cluster)
        if answer is not None:
            return await _after_answer(target, cluster, answer)
    else:
        cluster = await target.preview()
    return _preview_with_token(call, target, cluster)


async def _delete_with_token(call: Call[Any], target: _Target, confirm: str) -> Outcome:
    redemption = call.state.confirmations.redeem(confirm, target.key)
    if redemption.reason is not None:
        raise ToolFailure(
            "confirm_rejected",
            f"Not deleted: {redemption.reason}. Call {target.tool} again without "
            "confirm to get a new preview and token.",
        )
    ids = await target.perform(redemption.cluster_id)
    logger.info("deleted %s after a confirm token", target.label)
    return Outcome(f"Deleted {target.label}.", {"deleted": True, **ids})


async def _ask_user(
    ctx: Context, target: _Target, cluster: ClusterDetail
) -> str | None:
    """Return "yes", "no" or "declined"; None when the client could not ask."""
    message = f"Delete {describe_cluster(cluster)}? This cannot be undone."
    try:
        result = await ctx.session.elicit_form(
            message, _ELICIT_SCHEMA, related_request_id=ctx.request_id
        )
    except MCPError as error:
        logger.warning(
            "elicitation for %s failed (%s); falling back to a confirm token",
            target.label,
            error.message,
        )
        return None
    if result.action != "accept":
        return "declined"
    content = result.content or {}
    return "yes" if content.get("confirm") is True else "no"


async def _after_answer(
    target: _Target, cluster: ClusterDetail, answer: str
) -> Outcome:
    if answer == "yes":
        ids = await target.perform(cluster.id)
        logger.info("deleted %s after the user confirmed", target.label)
        return Outcome(
            f"Deleted {target.label} after the user confirmed.",
            {"deleted": True, **ids},
        )
    reason = "the user declined" if answer == "declined" else "the user chose not to"
    text = f"Not deleted: {reason} to delete {describe_cluster(cluster)}."
    structured = {"deleted": False, "declined": True, **target.ids}
    structured["cluster"] = cluster_data(cluster)
    return Outcome(text, structured)


def _preview_with_token(
    call: Call[Any], target: _Target, cluster: ClusterDetail
) -> Outcome:
    store = call.state.confirmations
    project_id, kind, _ = target.key
    # The preview proves which cluster id the name stood for, so the token
    # also deletes that id through user_cluster_delete.
    aliases = []
    if kind == "name":
        aliases.append(cluster_key(project_id, cluster_id=cluster.id, name=None))
    token = store.issue(
        target.key,
        aliases=aliases,
        issued_for=f"{target.label}, by {target.tool}",
        cluster_id=cluster.id,
    )
    minutes = round(store.ttl_seconds / 60)
    text = (
        f"Not deleted yet: {describe_cluster(cluster)}. Ask the user; to delete it, "
        f'call {target.tool} again with the same arguments and confirm "{token}" '
        f"within {counted(minutes, 'minute')}."
    )
    structured = {
        "deleted": False,
        "confirm": token,
        "expiresInSeconds": int(store.ttl_seconds),
        "cluster": cluster_data(cluster),
        **target.ids,
    }
    return Outcome(text, structured)


async def _delete(call: Call[UserClusterDeleteArguments]) -> Outcome:
    query = call.arguments
    client = call.client

    async def preview() -> ClusterDetail:
        return await client.user_cluster_detail(
            query.projectId, cluster_id=query.clusterId
        )

    async def perform(previewed_id: int | None) -> dict[str, object]:
        # The token key or the preview already fixed the id to query.clusterId.
        await client.user_cluster_delete(query.projectId, query.clusterId)
        return {"projectId": query.projectId, "clusterId": query.clusterId}

    target = _Target(
        tool="user_cluster_delete",
        label=f"cluster {query.clusterId} in project {query.projectId}",
        key=cluster_key(query.projectId, cluster_id=query.clusterId, name=None),
        preview=preview,
        perform=perform,
        ids={"projectId": query.projectId, "clusterId": query.clusterId},
    )
    return await _confirmed_delete(call, target, query.confirm)


async def _delete_by_name(call: Call[DeleteUserClusterByNameArguments]) -> Outcome:
    query = call.arguments
    client = call.client

    async def preview() -> ClusterDetail:
        return await client.user_cluster_detail(
            query.projectId, cluster_name=query.clusterName
        )

    async def perform(previewed_id: int | None) -> dict[str, object]:
        current = await preview()
        if previewed_id is not None and current.id != previewed_id:
            raise ToolFailure(
                "confirm_rejected",
                f"Not deleted: cluster {query.clusterName!r} in project "
                f"{query.projectId} changed since the preview: the preview showed "
                f"clusterId {previewed_id}, and the name now belongs to clusterId "
                f"{current.id}. Call delete_user_cluster_by_name again without "
                "confirm to get a new preview and token.",
            )
        # Deleting by id leaves no gap in which the name could move to another
        # cluster between the check and the delete.
        await client.user_cluster_delete(query.projectId, current.id)
        return {
            "projectId": query.projectId,
            "clusterName": query.clusterName,
            "clusterId": current.id,
        }

    target = _Target(
        tool="delete_user_cluster_by_name",
        label=f"cluster {query.clusterName!r} in project {query.projectId}",
        key=cluster_key(query.projectId, cluster_id=None, name=query.clusterName),
        preview=preview,
        perform=perform,
        ids={"projectId": query.projectId, "clusterName": query.clusterName},
    )
    return await _confirmed_delete(call, target, query.confirm)


_DELETED = output_schema(
    {"deleted": BOOLEAN, "confirm": STRING, "cluster": OBJECT}, ["deleted"]
)
_HOW = "The user confirms first, when asked or with the preview's confirm token."

DELETE_TOOLS = [
    ToolSpec(
        name="user_cluster_delete",
        title="Delete cluster or tag by id",
        description=(
            f"Delete a cluster or tag by clusterId. {_HOW} "
            'Example: {"projectId":102,"clusterId":970}'
        ),
        handler=_delete,
        output_schema=_DELETED,
        read_only=False,
        destructive=True,
        idempotent=True,
    ),
    ToolSpec(
        name="delete_user_cluster_by_name",
        title="Delete cluster or tag by name",
        description=(
            f"Delete a cluster or tag by clusterName. {_HOW} "
            'Example: {"projectId":102,"clusterName":"recent_7_days_consume"}'
        ),
        handler=_delete_by_name,
        output_schema=_DELETED,
        read_only=False,
        destructive=True,
        idempotent=True,
    ),
]
