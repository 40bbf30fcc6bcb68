"""Concurrent refreshes of one cluster over loopback HTTP: each restarts the last."""

import time
from typing import Any

import anyio
import httpx
import pytest
from reference_examples import load_example

from ta_cohort_mcp.sandbox import SandboxServer

pytestmark = pytest.mark.anyio

PARALLEL_REQUESTS = 8
ROUNDS = 3
REFRESH_TIMEOUT = 20.0


def add_body(name: str) -> dict[str, Any]:
    body: dict[str, Any] = load_example("add-cluster.request")
    body["clusterName"] = name
    body["projectId"] = 102
    return body


async def progress_data(
    http: httpx.AsyncClient, token: str, cluster_id: int
) -> dict[str, Any]:
    response = await http.get(
        "/open/user-cluster-refresh-progress",
        params={"token": token, "projectId": 102, "clusterId": cluster_id},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["return_code"] == 0, body
    data: dict[str, Any] = body["data"]
    return data


async def wait_ended(
    http: httpx.AsyncClient, token: str, cluster_id: int
) -> dict[str, Any]:
    """Poll progress until the refresh ends; return the last progress data."""
    deadline = time.monotonic() + REFRESH_TIMEOUT
    while time.monotonic() < deadline:
        data = await progress_data(http, token, cluster_id)
        if data["progress"] in (100, -1):
            return data
        await anyio.sleep(0.02)
    raise AssertionError(f"refresh of cluster {cluster_id} did not end")


async def users_num(http: httpx.AsyncClient, token: str, cluster_id: int) -> int:
    response = await http.get(
        "/open/user-cluster-detail",
        params={"token": token, "projectId": 102, "clusterId": cluster_id},
    )
    count: int = response.json()["data"]["usersNum"]
    return count


async def refresh(
    http: httpx.AsyncClient, params: dict[str, Any], responses: list[httpx.Response]
) -> None:
    responses.append(await http.post("/open/user-cluster-refresh", params=params))


async def test_parallel_refreshes_succeed(
    sandbox: SandboxServer, cluster_name: str
) -> None:
    token = sandbox.token
    async with httpx.AsyncClient(base_url=sandbox.base_url, timeout=20.0) as http:
        added = await http.post(
            "/open/user-cluster-add",
            params={"token": token},
            json=add_body(cluster_name),
        )
        cluster_id = added.json()["data"]
        first = await wait_ended(http, token, cluster_id)
        assert first["progress"] == 100
        expected_users = await users_num(http, token, cluster_id)
        assert expected_users > 0
        params = {"token": token, "projectId": 102, "clusterId": cluster_id}

        for _ in range(ROUNDS):
            responses: list[httpx.Response] = []
            async with anyio.create_task_group() as group:
                for _ in range(PARALLEL_REQUESTS):
                    group.start_soon(refresh, http, params, responses)
            statuses = [response.status_code for response in responses]
            assert statuses == [200] * PARALLEL_REQUESTS
            codes = [response.json()["return_code"] for response in responses]
            assert codes == [0] * PARALLEL_REQUESTS
            final = await wait_ended(http, token, cluster_id)
            assert final["progress"] == 100, final
            assert await users_num(http, token, cluster_id) == expected_users
        assert len(sandbox.store.members(cluster_id)) == expected_users
