"""Deleting needs the user: elicitation where the client offers it, else a confirm token."""

from typing import Any

import httpx
import pytest
from mcp import types
from mcp.client import Client
from reference_examples import load_example
from server_fixtures import call, connect, error_kind, structured, text

from ta_cohort_mcp.config import Settings
from ta_cohort_mcp.sandbox import SandboxServer
from ta_cohort_mcp.server.confirm import CONFIRM_TTL_SECONDS

pytestmark = pytest.mark.anyio


class FakeClock:
    """A monotonic clock that moves only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def create(client: Client, name: str) -> int:
    body = load_example("add-cluster.request")
    body["clusterName"] = name
    result = await call(client, "user_cluster_add", body)
    cluster_id: int = structured(result)["clusterId"]
    return cluster_id


async def exists(client: Client, cluster_id: int) -> bool:
    result = await call(
        client, "user_cluster_detail", {"projectId": 102, "clusterId": cluster_id}
    )
    return not result.is_error


async def test_preview_then_confirm(
    mcp_client: Client, sandbox: SandboxServer, cluster_name: str
) -> None:
    cluster_id = await create(mcp_client, cluster_name)
    key = {"projectId": 102, "clusterId": cluster_id}
    deletes_before = sandbox.stats["user-cluster-delete"]
    preview = await call(mcp_client, "user_cluster_delete", key)
    data = structured(preview)
    assert data["deleted"] is False
    assert data["cluster"]["clusterName"] == cluster_name
    assert data["expiresInSeconds"] == CONFIRM_TTL_SECONDS
    assert data["confirm"] in text(preview)
    assert sandbox.stats["user-cluster-delete"] == deletes_before
    assert await exists(mcp_client, cluster_id)
    done = await call(
        mcp_client, "user_cluster_delete", {**key, "confirm": data["confirm"]}
    )
    assert structured(done)["deleted"] is True
    assert not await exists(mcp_client, cluster_id)


async def test_token_works_once(mcp_client: Client, cluster_name: str) -> None:
    cluster_id = await create(mcp_client, cluster_name)
    key = {"projectId": 102, "clusterId": cluster_id}
    token = structured(await call(mcp_client, "user_cluster_delete", key))["confirm"]
    await call(mcp_client, "user_cluster_delete", {**key, "confirm": token})
    again = await call(mcp_client, "user_cluster_delete", {**key, "confirm": token})
    assert error_kind(again) == "confirm_rejected"
    assert "without confirm" in text(again)


async def test_token_bound_to_cluster(
    mcp_client: Client, cluster_name: str, sandbox: SandboxServer
) -> None:
    first = await create(mcp_client, cluster_name)
    second = await create(mcp_client, cluster_name + "_b")
    token = structured(
        await call(
            mcp_client, "user_cluster_delete", {"projectId": 102, "clusterId": first}
        )
    )["confirm"]
    before = sandbox.stats["user-cluster-delete"]
    wrong = await call(
        mcp_client,
        "user_cluster_delete",
        {"projectId": 102, "clusterId": second, "confirm": token},
    )
    by_name = await call(
        mcp_client,
        "delete_user_cluster_by_name",
        {"projectId": 102, "clusterName": cluster_name, "confirm": token},
    )
    assert error_kind(wrong) == "confirm_rejected"
    assert error_kind(by_name) == "confirm_rejected"
    assert sandbox.stats["user-cluster-delete"] == before
    assert await exists(mcp_client, first)
    assert await exists(mcp_client, second)


async def test_name_token_deletes_same_id(
    mcp_client: Client, cluster_name: str
) -> None:
    cluster_id = await create(mcp_client, cluster_name)
    preview = await call(
        mcp_client,
        "delete_user_cluster_by_name",
        {"projectId": 102, "clusterName": cluster_name},
    )
    token = structured(preview)["confirm"]
    done = await call(
        mcp_client,
        "user_cluster_delete",
        {"projectId": 102, "clusterId": cluster_id, "confirm": token},
    )
    assert structured(done)["deleted"] is True
    assert not await exists(mcp_client, cluster_id)


async def test_name_token_rejects_other_id(
    mcp_client: Client, cluster_name: str, sandbox: SandboxServer
) -> None:
    first = await create(mcp_client, cluster_name)
    second = await create(mcp_client, cluster_name + "_b")
    preview = await call(
        mcp_client,
        "delete_user_cluster_by_name",
        {"projectId": 102, "clusterName": cluster_name},
    )
    token = structured(preview)["confirm"]
    before = sandbox.stats["user-cluster-delete"]
    wrong = await call(
        mcp_client,
        "user_cluster_delete",
        {"projectId": 102, "clusterId": second, "confirm": token},
    )
    assert error_kind(wrong) == "confirm_rejected"
    assert "by delete_user_cluster_by_name" in text(wrong)
    assert repr(cluster_name) in text(wrong)
    assert sandbox.stats["user-cluster-delete"] == before
    assert await exists(mcp_client, first)
    assert await exists(mcp_client, second)


async def test_token_expires(server_settings: Settings, cluster_name: str) -> None:
    clock = FakeClock()
    async with connect(server_settings, clock=clock) as client:
        cluster_id = await create(client, cluster_name)
        key = {"projectId": 102, "clusterId": cluster_id}
        token = structured(await call(client, "user_cluster_delete", key))["confirm"]
        clock.now += CONFIRM_TTL_SECONDS + 1
        late = await call(client, "user_cluster_delete", {**key, "confirm": token})
        assert error_kind(late) == "confirm_rejected"
        assert "expired" in text(late)
        assert await exists(client, cluster_id)


async def test_token_valid_before_expiry(
    server_settings: Settings, cluster_name: str
) -> None:
    clock = FakeClock()
    async with connect(server_settings, clock=clock) as client:
        cluster_id = await create(client, cluster_name)
        key = {"projectId": 102, "clusterId": cluster_id}
        token = structured(await call(client, "user_cluster_delete", key))["confirm"]
        clock.now += CONFIRM_TTL_SECONDS - 1
        done = await call(client, "user_cluster_delete", {**key, "confirm": token})
        assert structured(done)["deleted"] is True


def answering(action: str, content: dict[str, Any] | None, asked: list[str]) -> Any:
    async def callback(
        context: Any, params: types.ElicitRequestParams
    ) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action=action, content=content)  # type: ignore[arg-type]

    return callback


async def test_elicitation_accept_deletes(
    server_settings: Settings, cluster_name: str
) -> None:
    asked: list[str] = []
    callback = answering("accept", {"confirm": True}, asked)
    async with connect(
        server_settings, mode="legacy", elicitation_callback=callback
    ) as client:
        cluster_id = await create(client, cluster_name)
        result = await call(
            client, "user_cluster_delete", {"projectId": 102, "clusterId": cluster_id}
        )
        assert structured(result)["deleted"] is True
        assert "confirm" not in structured(result)
        assert len(asked) == 1
        assert cluster_name in asked[0]
        assert not await exists(client, cluster_id)


@pytest.mark.parametrize(
    ("action", "content"),
    [("decline", None), ("cancel", None), ("accept", {"confirm": False})],
)
async def test_elicitation_refusal_keeps(
    server_settings: Settings,
    cluster_name: str,
    sandbox: SandboxServer,
    action: str,
    content: dict[str, Any] | None,
) -> None:
    asked: list[str] = []
    callback = answering(action, content, asked)
    async with connect(
        server_settings, mode="legacy", elicitation_callback=callback
    ) as client:
        await create(client, cluster_name)
        before = sandbox.stats["delete-user-cluster-by-name"]
        result = await call(
            client,
            "delete_user_cluster_by_name",
            {"projectId": 102, "clusterName": cluster_name},
        )
        assert not result.is_error, text(result)
        assert structured(result)["deleted"] is False
        assert text(result).startswith("Not deleted: the user")
        assert sandbox.stats["delete-user-cluster-by-name"] == before
        detail = await call(
            client,
            "user_cluster_detail",
            {"projectId": 102, "clusterName": cluster_name},
        )
        assert not detail.is_error


async def test_modern_mode_uses_token(
    server_settings: Settings, cluster_name: str
) -> None:
    asked: list[str] = []
    callback = answering("accept", {"confirm": True}, asked)
    async with connect(
        server_settings, mode="auto", elicitation_callback=callback
    ) as client:
        cluster_id = await create(client, cluster_name)
        result = await call(
            client, "user_cluster_delete", {"projectId": 102, "clusterId": cluster_id}
        )
    assert structured(result)["deleted"] is False
    assert "confirm" in structured(result)
    assert asked == []


async def replace_by_name(client: Client, name: str, old_id: int) -> int:
    """Delete cluster `old_id` and create a new cluster with the same name."""
    token = structured(
        await call(
            client, "user_cluster_delete", {"projectId": 102, "clusterId": old_id}
        )
    )["confirm"]
    await call(
        client,
        "user_cluster_delete",
        {"projectId": 102, "clusterId": old_id, "confirm": token},
    )
    return await create(client, name)


async def test_name_token_rejects_new_cluster(
    mcp_client: Client, cluster_name: str
) -> None:
    first = await create(mcp_client, cluster_name)
    key = {"projectId": 102, "clusterName": cluster_name}
    token = structured(await call(mcp_client, "delete_user_cluster_by_name", key))[
        "confirm"
    ]
    second = await replace_by_name(mcp_client, cluster_name, first)
    assert second != first
    late = await call(
        mcp_client, "delete_user_cluster_by_name", {**key, "confirm": token}
    )
    assert error_kind(late) == "confirm_rejected"
    assert "changed since the preview" in text(late)
    assert str(first) in text(late)
    assert str(second) in text(late)
    assert await exists(mcp_client, second)


async def test_name_token_deletes_previewed_id(
    mcp_client: Client, cluster_name: str
) -> None:
    cluster_id = await create(mcp_client, cluster_name)
    key = {"projectId": 102, "clusterName": cluster_name}
    token = structured(await call(mcp_client, "delete_user_cluster_by_name", key))[
        "confirm"
    ]
    done = await call(
        mcp_client, "delete_user_cluster_by_name", {**key, "confirm": token}
    )
    assert structured(done)["deleted"] is True
    assert structured(done)["clusterId"] == cluster_id
    assert not await exists(mcp_client, cluster_id)


async def test_elicitation_rejects_new_cluster(
    server_settings: Settings, cluster_name: str, sandbox: SandboxServer
) -> None:
    replaced: list[int] = []

    async def swap_then_accept(
        context: Any, params: types.ElicitRequestParams
    ) -> types.ElicitResult:
        token = {"token": sandbox.token, "projectId": 102}
        async with httpx.AsyncClient(base_url=sandbox.base_url) as http:
            await http.post(
                "/open/delete-user-cluster-by-name",
                params={**token, "clusterName": cluster_name},
            )
            body = load_example("add-cluster.request")
            body["clusterName"] = cluster_name
            reply = await http.post("/open/user-cluster-add", params=token, json=body)
        replaced.append(reply.json()["data"])
        return types.ElicitResult(action="accept", content={"confirm": True})

    async with connect(
        server_settings, mode="legacy", elicitation_callback=swap_then_accept
    ) as client:
        first = await create(client, cluster_name)
        result = await call(
            client,
            "delete_user_cluster_by_name",
            {"projectId": 102, "clusterName": cluster_name},
        )
        assert error_kind(result) == "confirm_rejected"
        assert "changed since the preview" in text(result)
        assert replaced != [first]
        assert await exists(client, replaced[0])
