"""refresh_and_wait: progress notifications, the wait budget, and cancellation.

The sandbox's `slow_refresh` fault steps a refresh's progress 0, 10, ... 90 over
the given seconds, so a short wait budget ends before the refresh does.
"""

import logging

import anyio
import pytest
from mcp.client import Client
from reference_examples import load_example
from server_fixtures import call, connect, error_kind, structured, text, with_settings

from ta_cohort_mcp.config import Settings
from ta_cohort_mcp.sandbox import SandboxServer

pytestmark = pytest.mark.anyio


async def create(client: Client, name: str) -> int:
    body = load_example("add-cluster.request")
    body["clusterName"] = name
    result = await call(client, "user_cluster_add", body)
    cluster_id: int = structured(result)["clusterId"]
    return cluster_id


async def test_progress_notifications(
    server_settings: Settings,
    sandbox: SandboxServer,
    cluster_name: str,
    protocol_mode: str,
) -> None:
    reports: list[tuple[float, float | None, str | None]] = []

    async def on_progress(
        progress: float, total: float | None, message: str | None
    ) -> None:
        reports.append((progress, total, message))

    async with connect(server_settings, mode=protocol_mode) as client:
        cluster_id = await create(client, cluster_name)
        sandbox.faults.add("slow_refresh", "user-cluster-refresh", count=1, seconds=0.5)
        result = await client.call_tool(
            "refresh_and_wait",
            {"projectId": 102, "clusterId": cluster_id},
            progress_callback=on_progress,
        )
    assert structured(result)["done"] is True, text(result)
    values = [progress for progress, _, _ in reports]
    assert len(values) >= 2
    assert values == sorted(values)
    assert len(set(values)) == len(values)
    assert values[-1] == 100
    assert all(total == 100 for _, total, _ in reports)


async def test_no_progress_without_request(
    server_settings: Settings, sandbox: SandboxServer, cluster_name: str
) -> None:
    async with connect(server_settings, mode="legacy") as client:
        cluster_id = await create(client, cluster_name)
        sandbox.faults.add("slow_refresh", "user-cluster-refresh", count=1, seconds=0.3)
        result = await call(
            client, "refresh_and_wait", {"projectId": 102, "clusterId": cluster_id}
        )
    assert structured(result)["done"] is True


async def test_returns_early_with_progress(
    server_settings: Settings, sandbox: SandboxServer, cluster_name: str
) -> None:
    settings = with_settings(server_settings, wait_seconds=0.6, poll_interval=0.05)
    async with connect(settings) as client:
        cluster_id = await create(client, cluster_name)
        sandbox.faults.add("slow_refresh", "user-cluster-refresh", count=1, seconds=30)
        result = await call(
            client, "refresh_and_wait", {"projectId": 102, "clusterId": cluster_id}
        )
    data = structured(result)
    assert not result.is_error, text(result)
    assert data["done"] is False
    assert 0 <= data["progress"] < 100
    assert "user_cluster_refresh_progress" in data["next"]
    assert "startRefresh false" in data["next"]
    assert "Not done after 0.6 s" in text(result)


async def test_wait_seconds_capped_by_setting(
    server_settings: Settings, sandbox: SandboxServer, cluster_name: str
) -> None:
    settings = with_settings(server_settings, wait_seconds=0.4)
    async with connect(settings) as client:
        cluster_id = await create(client, cluster_name)
        sandbox.faults.add("slow_refresh", "user-cluster-refresh", count=1, seconds=30)
        result = await call(
            client,
            "refresh_and_wait",
            {"projectId": 102, "clusterId": cluster_id, "waitSeconds": 45},
        )
    assert structured(result)["done"] is False
    assert "Not done after 0.4 s" in text(result)


async def test_keep_waiting_without_refresh(
    server_settings: Settings, sandbox: SandboxServer, cluster_name: str
) -> None:
    async with connect(server_settings) as client:
        cluster_id = await create(client, cluster_name)
        await call(
            client, "user_cluster_refresh", {"projectId": 102, "clusterId": cluster_id}
        )
        refreshes = sandbox.stats["user-cluster-refresh"]
        result = await call(
            client,
            "refresh_and_wait",
            {"projectId": 102, "clusterId": cluster_id, "startRefresh": False},
        )
    assert structured(result)["done"] is True
    assert sandbox.stats["user-cluster-refresh"] == refreshes


async def test_failed_refresh_is_error(
    server_settings: Settings, sandbox: SandboxServer, cluster_name: str
) -> None:
    async with connect(server_settings) as client:
        cluster_id = await create(client, cluster_name)
        sandbox.faults.add(
            "return_code", "user-cluster-refresh-progress", count=1, return_code=-2001
        )
        result = await call(
            client, "refresh_and_wait", {"projectId": 102, "clusterId": cluster_id}
        )
    assert error_kind(result) == "api_error"
    assert structured(result)["error"]["returnCode"] == -2001


async def test_cancel_stops_polling(
    server_settings: Settings,
    sandbox: SandboxServer,
    cluster_name: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="ta_cohort_mcp.server.tools.extra")
    async with connect(server_settings, mode="legacy") as client:
        cluster_id = await create(client, cluster_name)
        sandbox.faults.add("slow_refresh", "user-cluster-refresh", count=1, seconds=30)
        with anyio.move_on_after(0.5):
            await call(
                client, "refresh_and_wait", {"projectId": 102, "clusterId": cluster_id}
            )
        polls = sandbox.stats["user-cluster-refresh-progress"]
        await anyio.sleep(0.5)
        polls_later = sandbox.stats["user-cluster-refresh-progress"]
        after = await call(
            client,
            "user_cluster_refresh_progress",
            {"projectId": 102, "clusterId": cluster_id},
        )
    assert polls_later - polls <= 1
    assert not after.is_error
    assert "may still run on the server" in caplog.text


async def test_late_start_not_counted_done(
    server_settings: Settings, sandbox: SandboxServer, cluster_name: str
) -> None:
    # The budget ends while the request that starts the refresh is in flight.
    async with connect(server_settings) as client:
        cluster_id = await create(client, cluster_name)
        key = {"projectId": 102, "clusterId": cluster_id}
        settled = await call(client, "refresh_and_wait", {**key, "startRefresh": False})
        old_time = structured(settled)["refreshTime"]
        sandbox.faults.add("latency", "user-cluster-refresh", count=1, seconds=2.0)
        first = await call(client, "refresh_and_wait", {**key, "waitSeconds": 0.5})
        follow = await call(
            client,
            "refresh_and_wait",
            {**key, "startRefresh": False, "waitSeconds": 0.5},
        )
        late = await call(client, "refresh_and_wait", {**key, "startRefresh": False})
    assert structured(first)["done"] is False
    assert "may or may not have started" in structured(first)["next"]
    assert old_time in structured(first)["next"]
    assert structured(follow)["done"] is False, text(follow)
    assert old_time in text(follow)
    assert "may not have started" in structured(follow)["next"]
    assert structured(late)["done"] is True, text(late)
    assert structured(late)["fresh"] is True
    assert structured(late)["refreshTime"] != old_time


async def test_no_known_refresh_says_last_time(
    server_settings: Settings, cluster_name: str
) -> None:
    async with connect(server_settings) as client:
        cluster_id = await create(client, cluster_name)
        key = {"projectId": 102, "clusterId": cluster_id}
        result = await call(client, "refresh_and_wait", {**key, "startRefresh": False})
    data = structured(result)
    assert data["done"] is True
    assert data["fresh"] is False
    assert "last completed refresh" in text(result)
    assert data["refreshTime"] in text(result)
    assert "Refresh done in" not in text(result)


async def test_started_refresh_is_fresh(
    server_settings: Settings, cluster_name: str
) -> None:
    async with connect(server_settings) as client:
        cluster_id = await create(client, cluster_name)
        result = await call(
            client, "refresh_and_wait", {"projectId": 102, "clusterId": cluster_id}
        )
    assert structured(result)["fresh"] is True
    assert text(result).startswith("Refresh done in")


async def test_failed_refresh_shows_error(
    server_settings: Settings, sandbox: SandboxServer, cluster_name: str
) -> None:
    async with connect(server_settings) as client:
        cluster_id = await create(client, cluster_name)
        await anyio.to_thread.run_sync(
            sandbox.store.set_progress, cluster_id, -1, "column user_lvl not found"
        )
        result = await call(
            client,
            "refresh_and_wait",
            {"projectId": 102, "clusterId": cluster_id, "startRefresh": False},
        )
    assert error_kind(result) == "refresh_failed"
    assert "column user_lvl not found" in text(result)
    error = structured(result)["error"]
    assert error["errorMessage"] == "column user_lvl not found"
