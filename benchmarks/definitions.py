"""The API reference's example definitions, as request bodies for the sandbox.

The bodies are the demo's, all moved into one project and renamed, so that the
cohort and the three tags can exist at once.
"""

from typing import Any

import httpx

from ta_cohort_mcp.server.demo import (
    CUSTOM_TAG,
    FIRST_LAST_TAG,
    QUOTA_TAG,
    REFERENCE_COHORT,
)

PROJECT_ID = 102

# Level-3 users who did consume_item more than 4 times in the days 1-7 ago.
REFERENCE_CLUSTER: dict[str, Any] = REFERENCE_COHORT


def _in_benchmark_project(body: dict[str, Any], name: str) -> dict[str, Any]:
    return {**body, "projectId": PROJECT_ID, "clusterName": name, "displayName": name}


# Tag kind -> add body.
REFERENCE_TAGS: dict[str, dict[str, Any]] = {
    "custom condition": _in_benchmark_project(CUSTOM_TAG, "bench_tag_condition"),
    "first/last event": _in_benchmark_project(FIRST_LAST_TAG, "bench_tag_first_event"),
    "indicator value": _in_benchmark_project(QUOTA_TAG, "bench_tag_quota"),
}


class SandboxCallError(RuntimeError):
    """The sandbox returned a non-zero return_code."""


def call(
    http: httpx.Client, path: str, token: str, *, body: Any = None, **query: Any
) -> Any:
    """Call a sandbox endpoint and return `data`, raising on a non-zero return_code."""
    params = {"token": token, **{k: v for k, v in query.items() if v is not None}}
    if body is None:
        response = http.get(path, params=params)
    else:
        response = http.post(path, params=params, json=body)
    response.raise_for_status()
    envelope = response.json()
    if envelope.get("return_code") != 0:
        raise SandboxCallError(
            f"{path} returned {envelope.get('return_code')}: "
            f"{envelope.get('return_message')}"
        )
    return envelope.get("data")


def add_cluster(http: httpx.Client, token: str, body: dict[str, Any]) -> int:
    """Create a cluster or tag and return its id."""
    data = call(http, "/open/user-cluster-add", token, body=body)
    if isinstance(data, dict):
        data = data.get("clusterId", data.get("id"))
    if not isinstance(data, int | str):
        raise SandboxCallError(f"user-cluster-add returned no cluster id: {data!r}")
    return int(data)


def sandbox_request_count(http: httpx.Client) -> int:
    """Return how many /open/ requests the sandbox has received since its last reset."""
    response = http.get("/_sandbox/stats")
    response.raise_for_status()
    return int(response.json()["data"]["total"])


def reset_sandbox_requests(http: httpx.Client) -> None:
    http.post("/_sandbox/stats/reset").raise_for_status()
