"""The sandbox's Open API over loopback HTTP, called with httpx directly."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from reference_examples import load_example
from sandbox_fixtures import PROJECT_2_TOKEN, SANDBOX_TODAY

from ta_cohort_mcp.models import ClusterCatalog, ClusterType
from ta_cohort_mcp.sandbox import ErrorCode, SandboxConfig, SandboxServer
from ta_cohort_mcp.sandbox.store import NewCluster

REFRESH_TIMEOUT = 20.0
LIST_ALL_CLUSTERS = [
    "cluster_by_static_condition",
    "cluster_by_dynamic_condition",
    "cluster_by_import",
]


# Helpers


def envelope(response: httpx.Response) -> dict[str, Any]:
    """Return the JSON envelope of a response that must be HTTP 200."""
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def ok(response: httpx.Response) -> Any:
    """Return the data of a successful envelope."""
    body = envelope(response)
    assert body["return_code"] == 0, body
    assert body["return_message"] == "success"
    return body.get("data")


def error_of(response: httpx.Response) -> tuple[int, str]:
    """Return the code and message of an error envelope."""
    body = envelope(response)
    assert "data" not in body
    return body["return_code"], body["return_message"]


def add_body(name: str, project_id: int = 102, **changes: Any) -> dict[str, Any]:
    """Return the reference's conditional cluster example under another name."""
    body: dict[str, Any] = load_example("add-cluster.request")
    body["clusterName"] = name
    body["projectId"] = project_id
    body.update(changes)
    return body


def add_cluster(http: httpx.Client, token: str, body: dict[str, Any]) -> int:
    cluster_id = ok(
        http.post("/open/user-cluster-add", params={"token": token}, json=body)
    )
    assert isinstance(cluster_id, int)
    return cluster_id


def progress_of(
    http: httpx.Client, token: str, cluster_id: int, project_id: int = 102
) -> int:
    data = ok(
        http.get(
            "/open/user-cluster-refresh-progress",
            params={"token": token, "projectId": project_id, "clusterId": cluster_id},
        )
    )
    progress: int = data["progress"]
    return progress


def wait_refreshed(
    http: httpx.Client, token: str, cluster_id: int, project_id: int = 102
) -> int:
    """Poll progress until the refresh ends; return 100 or -1."""
    deadline = time.monotonic() + REFRESH_TIMEOUT
    while time.monotonic() < deadline:
        progress = progress_of(http, token, cluster_id, project_id)
        if progress in (100, -1):
            return progress
        time.sleep(0.02)
    raise AssertionError(f"refresh of cluster {cluster_id} did not end")


def detail(
    http: httpx.Client, token: str, project_id: int = 102, **key: Any
) -> dict[str, Any]:
    data: dict[str, Any] = ok(
        http.get(
            "/open/user-cluster-detail",
            params={"token": token, "projectId": project_id, **key},
        )
    )
    return data


def upload(
    http: httpx.Client,
    endpoint: str,
    params: dict[str, Any],
    content: bytes | Iterator[bytes],
    content_type: str = "text/csv",
) -> httpx.Response:
    return http.post(
        f"/open/{endpoint}",
        params=params,
        content=content,
        headers={"Content-Type": content_type},
    )


def account_ids(sandbox: SandboxServer, project_id: int, count: int) -> list[str]:
    with sandbox.store.cursor() as cursor:
        rows = cursor.execute(
            'SELECT "#account_id" FROM ta_user WHERE project_id = ? '
            'ORDER BY "#user_id" LIMIT ?',
            [project_id, count],
        ).fetchall()
    return [str(account) for (account,) in rows]


# Conditional clusters and tags


def test_add_cluster_computes_members(sandbox, sandbox_http, cluster_name):
    cluster_id = add_cluster(sandbox_http, sandbox.token, add_body(cluster_name))
    assert wait_refreshed(sandbox_http, sandbox.token, cluster_id) == 100
    data = detail(sandbox_http, sandbox.token, clusterId=cluster_id)
    assert data["usersNum"] > 0
    assert data["usersNum"] == len(sandbox.store.members(cluster_id))
    assert time.strptime(data["refreshTime"], "%Y-%m-%d %H:%M:%S")


def test_detail_echoes_reference_definition(sandbox, sandbox_http, cluster_name):
    cluster_id = add_cluster(sandbox_http, sandbox.token, add_body(cluster_name))
    data = detail(sandbox_http, sandbox.token, clusterId=cluster_id)
    reference = load_example("detail.response")["data"]
    assert SANDBOX_TODAY.isoformat() == "2020-01-10"
    assert data["userClusterDef"] == reference["userClusterDef"]
    assert data["clusterName"] == cluster_name
    assert data["clusterType"] == "cluster_by_static_condition"
    assert data["clusterCatalog"] == "catalog_cluster"
    assert data["displayName"] == "recent_7_days_consume"
    assert data["projectId"] == 102
    assert data["id"] == cluster_id
    assert data["mainColumnName"] == ""
    assert data["remarks"] == ""
    assert isinstance(data["userId"], int)


def test_detail_by_name(sandbox, sandbox_http, cluster_name):
    cluster_id = add_cluster(sandbox_http, sandbox.token, add_body(cluster_name))
    data = detail(sandbox_http, sandbox.token, clusterName=cluster_name)
    assert data["id"] == cluster_id


def test_add_custom_tag_with_alias(sandbox, sandbox_http, cluster_name):
    body = load_example("add-tag-custom.request")
    body["clusterName"] = cluster_name
    cluster_id = add_cluster(sandbox_http, sandbox.token, body)
    assert wait_refreshed(sandbox_http, sandbox.token, cluster_id) == 100
    data = detail(sandbox_http, sandbox.token, clusterId=cluster_id)
    values = data["userTagDef"]["userTagValueDefs"]
    assert "userClusterDef" not in data
    assert data["subConditionTabType"] == "tag_condition_default"
    assert values[1]["userClusterDef"]["events"][0]["comparator"] == "greater"
    assert values[0]["userClusterDef"]["events"][0]["startTime"] == (
        "2019-12-11 00:00:00"
    )
    members = sandbox.store.members(cluster_id)
    assert data["usersNum"] == len(members) > 0
    assert {value for _, value in members} <= {"tag value 1", "tag vaule 2"}


@pytest.mark.parametrize(
    "example", ["add-tag-firstlast.request", "add-tag-quota.request"]
)
def test_add_other_tag_kinds(sandbox, sandbox_http, cluster_name, example):
    body = load_example(example)
    body["clusterName"] = cluster_name
    cluster_id = add_cluster(sandbox_http, sandbox.token, body)
    assert wait_refreshed(sandbox_http, sandbox.token, cluster_id, 2) == 100
    data = detail(sandbox_http, sandbox.token, 2, clusterId=cluster_id)
    assert data["subConditionTabType"] == body["subConditionTabType"]
    assert data["usersNum"] > 0
    assert all(value for _, value in sandbox.store.members(cluster_id))


def test_add_without_type_is_static(sandbox, sandbox_http, cluster_name):
    body = add_body(cluster_name)
    del body["clusterType"], body["clusterCatalog"]
    cluster_id = add_cluster(sandbox_http, sandbox.token, body)
    data = detail(sandbox_http, sandbox.token, clusterId=cluster_id)
    assert data["clusterType"] == "cluster_by_static_condition"


def test_update_replaces_definition(sandbox, sandbox_http, cluster_name):
    cluster_id = add_cluster(sandbox_http, sandbox.token, add_body(cluster_name))
    wait_refreshed(sandbox_http, sandbox.token, cluster_id)
    body = load_example("update.request")
    body["displayName"] = "level 3 only"
    body["clusterType"] = "cluster_by_dynamic_condition"
    body["qp"] = {"filts": body["qp"]["filts"]}
    response = sandbox_http.post(
        "/open/user-cluster-update",
        params={"token": sandbox.token, "clusterId": cluster_id},
        json=body,
    )
    assert ok(response) is None
    assert "data" not in response.json()
    assert wait_refreshed(sandbox_http, sandbox.token, cluster_id) == 100
    data = detail(sandbox_http, sandbox.token, clusterId=cluster_id)
    assert data["displayName"] == "level 3 only"
    assert data["clusterType"] == "cluster_by_dynamic_condition"
    assert "events" not in data["userClusterDef"]
    with sandbox.store.cursor() as cursor:
        level_3 = cursor.execute(
            "SELECT count(*) FROM ta_user WHERE project_id = 102 AND user_level = 3"
        ).fetchone()[0]
    assert data["usersNum"] == level_3


def test_update_by_name(sandbox, sandbox_http, cluster_name):
    cluster_id = add_cluster(sandbox_http, sandbox.token, add_body(cluster_name))
    body = load_example("update-by-name.request")
    body["displayName"] = "renamed"
    ok(
        sandbox_http.post(
            "/open/user-cluster-update-by-name",
            params={
                "token": sandbox.token,
                "projectId": 102,
                "clusterName": cluster_name,
            },
            json=body,
        )
    )
    assert detail(sandbox_http, sandbox.token, clusterId=cluster_id)["displayName"] == (
        "renamed"
    )


def test_update_by_name_project_mismatch(sandbox, sandbox_http, cluster_name):
    add_cluster(sandbox_http, sandbox.token, add_body(cluster_name))
    body = load_example("update-by-name.request")
    response = sandbox_http.post(
        "/open/user-cluster-update-by-name",
        params={"token": sandbox.token, "projectId": 2, "clusterName": cluster_name},
        json=body,
    )
    code, message = error_of(response)
    assert code == ErrorCode.INVALID_PARAMETER
    assert "projectId" in message


def test_update_rejects_catalog_change(sandbox, sandbox_http, cluster_name):
    cluster_id = add_cluster(sandbox_http, sandbox.token, add_body(cluster_name))
    body = load_example("add-tag-custom.request")
    del body["clusterName"]
    body["projectId"] = 102
    response = sandbox_http.post(
        "/open/user-cluster-update",
        params={"token": sandbox.token, "clusterId": cluster_id},
        json=body,
    )
    assert error_of(response)[0] == ErrorCode.OPERATION_NOT_ALLOWED


@pytest.mark.parametrize("by", ["id", "name"])
def test_delete_removes_cluster(sandbox, sandbox_http, cluster_name, by):
    cluster_id = add_cluster(sandbox_http, sandbox.token, add_body(cluster_name))
    if by == "id":
        endpoint = "user-cluster-delete"
        key: dict[str, Any] = {"clusterId": cluster_id}
    else:
        endpoint = "delete-user-cluster-by-name"
        key = {"clusterName": cluster_name}
    response = sandbox_http.post(
        f"/open/{endpoint}", params={"token": sandbox.token, "projectId": 102, **key}
    )
    assert ok(response) is None
    again = sandbox_http.get(
        "/open/user-cluster-detail",
        params={"token": sandbox.token, "projectId": 102, "clusterId": cluster_id},
    )
    assert error_of(again)[0] == ErrorCode.CLUSTER_NOT_FOUND
    assert sandbox.store.members(cluster_id) == []


def test_list_filters_and_orders(sandbox, sandbox_http, cluster_name):
    static_id = add_cluster(sandbox_http, sandbox.token, add_body(cluster_name + "_s"))
    dynamic_id = add_cluster(
        sandbox_http,
        sandbox.token,
        add_body(cluster_name + "_d", clusterType="cluster_by_dynamic_condition"),
    )
    tag = load_example("add-tag-custom.request")
    tag["clusterName"] = cluster_name + "_t"
    tag_id = add_cluster(sandbox_http, sandbox.token, tag)

    def list_ids(types: list[str], catalog: str = "catalog_cluster") -> list[int]:
        data = ok(
            sandbox_http.post(
                "/open/user-cluster-list",
                params={"token": sandbox.token},
                json={
                    "projectId": 102,
                    "clusterCatalog": catalog,
                    "clusterTypes": types,
                    "pagerHeader": {"pageNum": 1, "pageSize": 1000},
                },
            )
        )
        assert data["pagerResult"]["totalNum"] == len(data["userClusters"])
        return [entry["id"] for entry in data["userClusters"]]

    static_ids = list_ids(["cluster_by_static_condition"])
    assert static_id in static_ids
    assert dynamic_id not in static_ids
    assert tag_id not in static_ids
    both = list_ids(["cluster_by_static_condition", "cluster_by_dynamic_condition"])
    assert both == sorted(both, reverse=True)
    assert {static_id, dynamic_id} <= set(both)
    assert tag_id in list_ids(["tag_by_static_condition"], "catalog_tag")


def test_list_pages(sandbox, sandbox_http, cluster_name):
    for index in range(3):
        add_cluster(sandbox_http, sandbox.token, add_body(f"{cluster_name}_{index}"))

    def page(number: int) -> dict[str, Any]:
        data: dict[str, Any] = ok(
            sandbox_http.post(
                "/open/user-cluster-list",
                params={"token": sandbox.token},
                json={
                    "projectId": 102,
                    "clusterCatalog": "catalog_cluster",
                    "clusterTypes": ["cluster_by_static_condition"],
                    "pagerHeader": {"pageNum": number, "pageSize": 2},
                },
            )
        )
        return data

    first, second = page(1), page(2)
    assert first["pagerResult"]["pageNum"] == 1
    assert first["pagerResult"]["pageSize"] == 2
    assert first["pagerResult"]["totalNum"] >= 3
    assert len(first["userClusters"]) == 2
    assert first["userClusters"][-1]["id"] > second["userClusters"][0]["id"]


def test_list_entry_fields(sandbox, sandbox_http, cluster_name):
    cluster_id = add_cluster(sandbox_http, sandbox.token, add_body(cluster_name))
    data = ok(
        sandbox_http.post(
            "/open/user-cluster-list",
            params={"token": sandbox.token},
            json=load_example("list.request"),
        )
    )
    entry = next(e for e in data["userClusters"] if e["id"] == cluster_id)
    reference = load_example("list.response")["data"]["userClusters"][0]
    assert set(entry) == set(reference)
    assert data["pagerResult"]["pageSize"] == 10


# Refresh and progress


def test_refresh_by_id_and_name(sandbox, sandbox_http, cluster_name):
    cluster_id = add_cluster(sandbox_http, sandbox.token, add_body(cluster_name))
    wait_refreshed(sandbox_http, sandbox.token, cluster_id)
    by_id = sandbox_http.post(
        "/open/user-cluster-refresh",
        params={"token": sandbox.token, "projectId": 102, "clusterId": cluster_id},
    )
    assert ok(by_id) is None
    assert wait_refreshed(sandbox_http, sandbox.token, cluster_id) == 100
    by_name = sandbox_http.post(
        "/open/user-cluster-refresh-by-name",
        params={"token": sandbox.token, "projectId": 102, "clusterName": cluster_name},
    )
    assert ok(by_name) is None
    assert wait_refreshed(sandbox_http, sandbox.token, cluster_id) == 100


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_progress_by_name_methods(sandbox, sandbox_http, cluster_name, method):
    cluster_id = add_cluster(sandbox_http, sandbox.token, add_body(cluster_name))
    wait_refreshed(sandbox_http, sandbox.token, cluster_id)
    for endpoint, key in (
        ("user-cluster-refresh-progress", {"clusterId": cluster_id}),
        ("user-cluster-refresh-progress-by-name", {"clusterName": cluster_name}),
    ):
        response = sandbox_http.request(
            method,
            f"/open/{endpoint}",
            params={"token": sandbox.token, "projectId": 102, **key},
        )
        assert ok(response) == {"progress": 100}


def test_slow_refresh_steps_progress(sandbox, sandbox_http, cluster_name):
    sandbox.faults.add("slow_refresh", "user-cluster-add", count=1, seconds=1.0)
    cluster_id = add_cluster(sandbox_http, sandbox.token, add_body(cluster_name))
    seen = set()
    deadline = time.monotonic() + REFRESH_TIMEOUT
    while time.monotonic() < deadline:
        progress = progress_of(sandbox_http, sandbox.token, cluster_id)
        seen.add(progress)
        if progress == 100:
            break
        time.sleep(0.02)
    assert 100 in seen
    assert any(0 < value < 100 for value in seen)
    assert -1 not in seen


def test_refresh_during_refresh_restarts(sandbox, sandbox_http, cluster_name):
    sandbox.faults.add("slow_refresh", "user-cluster-add", count=1, seconds=30.0)
    cluster_id = add_cluster(sandbox_http, sandbox.token, add_body(cluster_name))
    assert sandbox.sandbox.refresher.is_running(cluster_id)
    response = sandbox_http.post(
        "/open/user-cluster-refresh",
        params={"token": sandbox.token, "projectId": 102, "clusterId": cluster_id},
    )
    assert ok(response) is None
    assert wait_refreshed(sandbox_http, sandbox.token, cluster_id) == 100


def test_failing_refresh_reports_error(sandbox, sandbox_http, cluster_name):
    # A stored definition the compiler rejects, as a database written by an
    # older sandbox could hold.
    record = sandbox.store.create(
        NewCluster(
            project_id=102,
            cluster_name=cluster_name,
            display_name="broken",
            catalog=ClusterCatalog.CLUSTER,
            cluster_type=ClusterType.CLUSTER_BY_STATIC_CONDITION,
            definition={
                "filts": [
                    {
                        "columnName": "no_such_column",
                        "comparator": "equal",
                        "ftv": ["1"],
                        "tableType": "user",
                    }
                ]
            },
            progress=100,
        )
    )
    response = sandbox_http.post(
        "/open/user-cluster-refresh",
        params={"token": sandbox.token, "projectId": 102, "clusterId": record.id},
    )
    assert ok(response) is None
    assert wait_refreshed(sandbox_http, sandbox.token, record.id) == -1
    data = detail(sandbox_http, sandbox.token, clusterId=record.id)
    assert data["progress"] == -1
    assert "no_such_column" in data["errorMessage"]


# Error codes


def test_missing_token(sandbox_http):
    response = sandbox_http.get(
        "/open/user-cluster-detail", params={"projectId": 102, "clusterId": 1}
    )
    assert error_of(response) == (-1008, "The parameter (token) is empty")


def test_invalid_token(sandbox_http):
    response = sandbox_http.get(
        "/open/user-cluster-detail",
        params={"token": "wrong", "projectId": 102, "clusterId": 1},
    )
    code, message = error_of(response)
    assert code == ErrorCode.TOKEN_INVALID
    assert "wrong" not in message


def test_unknown_project(sandbox, sandbox_http):
    response = sandbox_http.get(
        "/open/user-cluster-detail",
        params={"token": sandbox.token, "projectId": 999, "clusterId": 1},
    )
    code, message = error_of(response)
    assert code == ErrorCode.PROJECT_NOT_ALLOWED
    assert "999" in message


def test_project_not_allowed_for_token(sandbox, sandbox_http, cluster_name):
    response = sandbox_http.post(
        "/open/user-cluster-add",
        params={"token": PROJECT_2_TOKEN},
        json=add_body(cluster_name, 102),
    )
    assert error_of(response)[0] == ErrorCode.PROJECT_NOT_ALLOWED


def test_missing_project_id(sandbox, sandbox_http):
    response = sandbox_http.get(
        "/open/user-cluster-detail", params={"token": sandbox.token, "clusterId": 1}
    )
    assert error_of(response) == (-1003, "The parameter (projectId) is empty")


def test_invalid_query_value(sandbox, sandbox_http):
    response = sandbox_http.get(
        "/open/user-cluster-detail",
        params={"token": sandbox.token, "projectId": "abc", "clusterId": 1},
    )
    code, message = error_of(response)
    assert code == ErrorCode.INVALID_PARAMETER
    assert "projectId" in message


def test_unknown_query_key(sandbox, sandbox_http):
    response = sandbox_http.get(
        "/open/user-cluster-detail",
        params={"token": sandbox.token, "projectId": 102, "clusterID": 1},
    )
    code, message = error_of(response)
    assert code == ErrorCode.INVALID_PARAMETER
    assert "clusterId" in message


def test_body_error_names_field(sandbox, sandbox_http, cluster_name):
    body = add_body(cluster_name)
    body["qp"]["events"][0]["comparator"] = "greaterr"
    response = sandbox_http.post(
        "/open/user-cluster-add", params={"token": sandbox.token}, json=body
    )
    code, message = error_of(response)
    assert code == ErrorCode.INVALID_PARAMETER
    assert "qp.events[0].comparator" in message


def test_body_not_json(sandbox, sandbox_http):
    response = sandbox_http.post(
        "/open/user-cluster-add",
        params={"token": sandbox.token},
        content=b'{"projectId": 102,',
        headers={"Content-Type": "application/json"},
    )
    code, message = error_of(response)
    assert code == ErrorCode.INVALID_PARAMETER
    assert "JSON" in message


def test_body_nested_too_deep(sandbox, sandbox_http):
    depth = 100_000
    response = sandbox_http.post(
        "/open/user-cluster-list",
        params={"token": sandbox.token, "projectId": 102},
        content=b"[" * depth + b"]" * depth,
        headers={"Content-Type": "application/json"},
    )
    code, message = error_of(response)
    assert code == ErrorCode.INVALID_PARAMETER
    assert "request body is nested too deeply" in message


def test_cluster_not_found(sandbox, sandbox_http):
    by_id = sandbox_http.get(
        "/open/user-cluster-detail",
        params={"token": sandbox.token, "projectId": 102, "clusterId": 987654},
    )
    by_name = sandbox_http.post(
        "/open/user-cluster-refresh-by-name",
        params={"token": sandbox.token, "projectId": 102, "clusterName": "absent"},
    )
    assert error_of(by_id)[0] == ErrorCode.CLUSTER_NOT_FOUND
    assert error_of(by_name)[0] == ErrorCode.CLUSTER_NOT_FOUND


def test_duplicate_name(sandbox, sandbox_http, cluster_name):
    add_cluster(sandbox_http, sandbox.token, add_body(cluster_name))
    response = sandbox_http.post(
        "/open/user-cluster-add",
        params={"token": sandbox.token},
        json=add_body(cluster_name),
    )
    code, message = error_of(response)
    assert code == ErrorCode.DUPLICATE_NAME
    assert cluster_name in message


def test_same_name_other_project(sandbox, sandbox_http, cluster_name):
    add_cluster(sandbox_http, sandbox.token, add_body(cluster_name, 102))
    assert add_cluster(sandbox_http, sandbox.token, add_body(cluster_name, 2)) > 0


def test_invalid_definition(sandbox, sandbox_http, cluster_name):
    body = add_body(cluster_name)
    body["qp"]["filts"][0]["columnName"] = "no_such_column"
    response = sandbox_http.post(
        "/open/user-cluster-add", params={"token": sandbox.token}, json=body
    )
    code, message = error_of(response)
    assert code == ErrorCode.INVALID_DEFINITION
    assert "qp.filts[0]" in message
    assert sandbox.store.get_by_name(102, cluster_name) is None


def test_refresh_of_upload_rejected(sandbox, sandbox_http):
    cluster_id = ok(
        upload(
            sandbox_http,
            "import-id-cluster-add",
            {
                "token": sandbox.token,
                "projectId": 102,
                "displayName": "ids",
                "mainColumnName": "#account_id",
            },
            b"acc1\n",
        )
    )["clusterId"]
    for endpoint in ("user-cluster-refresh", "user-cluster-update"):
        response = sandbox_http.post(
            f"/open/{endpoint}",
            params={"token": sandbox.token, "projectId": 102, "clusterId": cluster_id}
            if endpoint == "user-cluster-refresh"
            else {"token": sandbox.token, "clusterId": cluster_id},
            json=load_example("update.request"),
        )
        assert error_of(response)[0] == ErrorCode.OPERATION_NOT_ALLOWED


def test_modify_of_condition_rejected(sandbox, sandbox_http, cluster_name):
    cluster_id = add_cluster(sandbox_http, sandbox.token, add_body(cluster_name))
    response = upload(
        sandbox_http,
        "import-id-cluster-modify",
        {"token": sandbox.token, "projectId": 102, "clusterId": cluster_id},
        b"acc1\n",
    )
    assert error_of(response)[0] == ErrorCode.OPERATION_NOT_ALLOWED


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"", "text/csv"),
        (b"\n\n  \n", "text/csv"),
        (b"acc1,extra\n", "text/csv"),
        (b"\xff\xfeacc1\n", "text/csv"),
        (b"acc1\n", "application/x-www-form-urlencoded"),
    ],
    ids=["empty", "blank", "two-columns", "not-utf8", "form-type"],
)
def test_invalid_upload(sandbox, sandbox_http, content, content_type):
    response = upload(
        sandbox_http,
        "import-id-cluster-add",
        {
            "token": sandbox.token,
            "projectId": 102,
            "displayName": "bad",
            "mainColumnName": "#account_id",
        },
        content,
        content_type,
    )
    assert error_of(response)[0] == ErrorCode.INVALID_UPLOAD


@pytest.mark.parametrize(
    ("params", "first_line", "content_type", "expected"),
    [
        ({}, b"acc1,extra\n", "text/csv", ErrorCode.INVALID_UPLOAD),
        ({}, b"acc1\n", "application/octet-stream", ErrorCode.INVALID_UPLOAD),
        ({"token": ""}, b"acc1\n", "text/csv", ErrorCode.TOKEN_EMPTY),
    ],
    ids=["bad-first-line", "wrong-type", "no-token"],
)
def test_rejected_large_upload_gets_envelope(
    sandbox, params, first_line, content_type, expected
):
    def chunks() -> Iterator[bytes]:
        yield first_line
        for _ in range(100):
            yield b"acc2\n" * 20_000

    query = {
        "token": sandbox.token,
        "projectId": 102,
        "displayName": "large",
        "mainColumnName": "#account_id",
        **params,
    }
    with httpx.Client(base_url=sandbox.base_url, timeout=60.0) as client:
        response = upload(
            client, "import-id-cluster-add", query, chunks(), content_type
        )
    assert error_of(response)[0] == expected


def test_unknown_main_column(sandbox, sandbox_http):
    response = upload(
        sandbox_http,
        "import-id-cluster-add",
        {
            "token": sandbox.token,
            "projectId": 102,
            "displayName": "bad",
            "mainColumnName": "account_id",
        },
        b"acc1\n",
    )
    code, message = error_of(response)
    assert code == ErrorCode.INVALID_PARAMETER
    assert "#account_id" in message


def test_unexpected_method(sandbox, sandbox_http):
    response = sandbox_http.get(
        "/open/user-cluster-add", params={"token": sandbox.token}
    )
    assert response.status_code == 405


# Id uploads


def test_import_add_counts(sandbox, sandbox_http, cluster_name):
    known = account_ids(sandbox, 102, 4)
    lines = [*known, known[0], "no_such_account", "", "  "]
    response = upload(
        sandbox_http,
        "import-id-cluster-add",
        {
            "token": sandbox.token,
            "projectId": 102,
            "displayName": "uploaded",
            "mainColumnName": "#account_id",
            "clusterName": cluster_name,
            "remarks": "from a file",
        },
        ("\r\n".join(lines) + "\r\n").encode(),
    )
    data = ok(response)
    assert data["uploadNum"] == 6
    assert data["userNum"] == 4
    assert data["unmatchedNum"] == 1
    assert data["tagValueNullNum"] == 0
    info = detail(sandbox_http, sandbox.token, clusterId=data["clusterId"])
    assert info["clusterName"] == cluster_name
    assert info["clusterType"] == "cluster_by_import"
    assert info["mainColumnName"] == "#account_id"
    assert info["remarks"] == "from a file"
    assert info["usersNum"] == 4
    assert info["progress"] == 100
    assert "userClusterDef" not in info


def test_import_generates_name(sandbox, sandbox_http):
    data = ok(
        upload(
            sandbox_http,
            "import-id-cluster-add",
            {
                "token": sandbox.token,
                "projectId": 102,
                "displayName": "unnamed",
                "mainColumnName": "#account_id",
            },
            b"acc1\n",
        )
    )
    name = detail(sandbox_http, sandbox.token, clusterId=data["clusterId"])[
        "clusterName"
    ]
    assert len(name) <= 24
    assert name.startswith("import_")


def test_import_tag_counts(sandbox, sandbox_http):
    known = account_ids(sandbox, 102, 3)
    text = (
        f'{known[0]},gold\n{known[1]},\n"{known[2]}","silver, shiny"\n{known[0]},late\n'
    )
    data = ok(
        upload(
            sandbox_http,
            "import-id-cluster-add",
            {
                "token": sandbox.token,
                "projectId": 102,
                "displayName": "tagged",
                "mainColumnName": "#account_id",
                "clusterCatalog": "catalog_tag",
            },
            text.encode(),
        )
    )
    assert data["uploadNum"] == 4
    assert data["tagValueNullNum"] == 1
    assert data["unmatchedNum"] == 0
    assert data["userNum"] == 2
    values = sorted(value for _, value in sandbox.store.members(data["clusterId"]))
    assert values == ["gold", "silver, shiny"]
    info = detail(sandbox_http, sandbox.token, clusterId=data["clusterId"])
    assert info["clusterType"] == "tag_by_import"
    assert info["clusterCatalog"] == "catalog_tag"


def test_import_by_user_property(sandbox, sandbox_http):
    data = ok(
        upload(
            sandbox_http,
            "import-id-cluster-add",
            {
                "token": sandbox.token,
                "projectId": 102,
                "displayName": "levels",
                "mainColumnName": "user_level",
            },
            b"3\n",
        )
    )
    with sandbox.store.cursor() as cursor:
        level_3 = cursor.execute(
            "SELECT count(*) FROM ta_user WHERE project_id = 102 AND user_level = 3"
        ).fetchone()[0]
    assert data["userNum"] == level_3


@pytest.mark.parametrize("by", ["id", "name"])
def test_import_modify_replaces(sandbox, sandbox_http, cluster_name, by):
    known = account_ids(sandbox, 102, 5)
    first = ok(
        upload(
            sandbox_http,
            "import-id-cluster-add",
            {
                "token": sandbox.token,
                "projectId": 102,
                "displayName": "before",
                "mainColumnName": "#account_id",
                "clusterName": cluster_name,
            },
            "\n".join(known[:3]).encode(),
        )
    )
    cluster_id = first["clusterId"]
    if by == "id":
        endpoint, key = "import-id-cluster-modify", {"clusterId": cluster_id}
    else:
        endpoint, key = (
            "import-id-cluster-modify-by-name",
            {"clusterName": cluster_name},
        )
    data = ok(
        upload(
            sandbox_http,
            endpoint,
            {
                "token": sandbox.token,
                "projectId": 102,
                "displayName": "after",
                "remarks": "second file",
                **key,
            },
            "\n".join(known[3:]).encode(),
        )
    )
    assert data == {
        "clusterId": cluster_id,
        "tagValueNullNum": 0,
        "unmatchedNum": 0,
        "uploadNum": 2,
        "userNum": 2,
    }
    info = detail(sandbox_http, sandbox.token, clusterId=cluster_id)
    assert info["displayName"] == "after"
    assert info["remarks"] == "second file"
    assert info["mainColumnName"] == "#account_id"
    assert info["usersNum"] == 2


def test_import_modify_main_column(sandbox, sandbox_http, cluster_name):
    first = ok(
        upload(
            sandbox_http,
            "import-id-cluster-add",
            {
                "token": sandbox.token,
                "projectId": 102,
                "displayName": "ids",
                "mainColumnName": "#account_id",
                "clusterName": cluster_name,
            },
            b"acc1\n",
        )
    )
    with sandbox.store.cursor() as cursor:
        distinct_id = cursor.execute(
            'SELECT "#distinct_id" FROM ta_user WHERE project_id = 102 '
            "AND \"#account_id\" = 'acc2'"
        ).fetchone()[0]
    data = ok(
        upload(
            sandbox_http,
            "import-id-cluster-modify",
            {
                "token": sandbox.token,
                "projectId": 102,
                "clusterId": first["clusterId"],
                "mainColumnName": "#distinct_id",
            },
            f"{distinct_id}\n".encode(),
        )
    )
    assert data["userNum"] == 1
    info = detail(sandbox_http, sandbox.token, clusterId=first["clusterId"])
    assert info["mainColumnName"] == "#distinct_id"


def test_import_million_ids_streamed(sandbox, sandbox_http):
    known = account_ids(sandbox, 102, 1000)

    def chunks() -> Iterator[bytes]:
        for start in range(0, 1_000_000, 10_000):
            lines = [
                known[i % 1000] if i % 2 else f"x{i}"
                for i in range(start, start + 10_000)
            ]
            yield ("\n".join(lines) + "\n").encode()

    with httpx.Client(base_url=sandbox.base_url, timeout=120.0) as client:
        data = ok(
            upload(
                client,
                "import-id-cluster-add",
                {
                    "token": sandbox.token,
                    "projectId": 102,
                    "displayName": "million",
                    "mainColumnName": "#account_id",
                },
                chunks(),
            )
        )
    assert data["uploadNum"] == 1_000_000
    assert data["unmatchedNum"] == 500_000
    assert data["userNum"] == 500


def test_curl_reference_upload(sandbox, tmp_path):
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")

    accounts = account_ids(sandbox, 102, 5)
    ids_file = tmp_path / "test.csv"
    ids_file.write_text("\n".join(accounts) + "\n", encoding="ascii")
    url = (
        f"{sandbox.base_url}/open/import-id-cluster-add?token={sandbox.token}"
        "&projectId=102&displayName=xxxx&mainColumnName=%23account_id"
    )

    result = subprocess.run(
        [
            curl,
            "--silent",
            "--show-error",
            "--header",
            "Content-Type: text/csv",
            "--data-binary",
            f"@{ids_file}",
            url,
        ],
        capture_output=True,
        check=True,
        timeout=30,
    )

    body = json.loads(result.stdout)
    assert body["return_code"] == 0
    assert body["data"]["uploadNum"] == 5
    assert body["data"]["userNum"] == 5
    assert body["data"]["unmatchedNum"] == 0


# Faults and counts


def detail_params(sandbox: SandboxServer) -> dict[str, Any]:
    return {"token": sandbox.token, "projectId": 102, "clusterId": 987654}


def test_fault_http_500(sandbox, sandbox_http):
    sandbox.faults.add("http_500", "user-cluster-detail", count=1)
    first = sandbox_http.get("/open/user-cluster-detail", params=detail_params(sandbox))
    second = sandbox_http.get(
        "/open/user-cluster-detail", params=detail_params(sandbox)
    )
    assert first.status_code == 500
    assert second.status_code == 200


def test_fault_http_429(sandbox, sandbox_http):
    sandbox.faults.add("http_429", "user-cluster-detail", count=1, retry_after=7)
    response = sandbox_http.get(
        "/open/user-cluster-detail", params=detail_params(sandbox)
    )
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"


def test_fault_drop(sandbox, sandbox_http):
    sandbox.faults.add("drop", "user-cluster-detail", count=1)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        sandbox_http.get("/open/user-cluster-detail", params=detail_params(sandbox))
    after = sandbox_http.get("/open/user-cluster-detail", params=detail_params(sandbox))
    assert after.status_code == 200


def test_fault_malformed(sandbox, sandbox_http):
    sandbox.faults.add("malformed", "user-cluster-detail", count=1)
    response = sandbox_http.get(
        "/open/user-cluster-detail", params=detail_params(sandbox)
    )
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_fault_html(sandbox, sandbox_http):
    sandbox.faults.add("html", "user-cluster-detail", count=1)
    response = sandbox_http.get(
        "/open/user-cluster-detail", params=detail_params(sandbox)
    )
    assert response.status_code == 502
    assert response.headers["content-type"].startswith("text/html")
    assert "<html>" in response.text


def test_fault_return_code(sandbox, sandbox_http):
    sandbox.faults.add(
        "return_code", "*", count=1, return_code=-1234, return_message="busy"
    )
    response = sandbox_http.get(
        "/open/user-cluster-detail", params=detail_params(sandbox)
    )
    assert error_of(response) == (-1234, "busy")


def test_fault_latency(sandbox):
    sandbox.faults.add("latency", "user-cluster-detail", count=1, seconds=2.0)
    with (
        httpx.Client(base_url=sandbox.base_url, timeout=0.2) as client,
        pytest.raises(httpx.ReadTimeout),
    ):
        client.get("/open/user-cluster-detail", params=detail_params(sandbox))


def test_fault_always_until_cleared(sandbox, sandbox_http):
    sandbox.faults.add("http_500", "user-cluster-detail")
    for _ in range(3):
        response = sandbox_http.get(
            "/open/user-cluster-detail", params=detail_params(sandbox)
        )
        assert response.status_code == 500
    sandbox.faults.clear()
    response = sandbox_http.get(
        "/open/user-cluster-detail", params=detail_params(sandbox)
    )
    assert response.status_code == 200


def test_fault_other_endpoint_untouched(sandbox, sandbox_http):
    sandbox.faults.add("http_500", "user-cluster-list")
    response = sandbox_http.get(
        "/open/user-cluster-detail", params=detail_params(sandbox)
    )
    assert response.status_code == 200


def test_faults_over_http(sandbox, sandbox_http):
    rules = [{"kind": "http_429", "endpoint": "user-cluster-detail", "count": 1}]
    added = ok(sandbox_http.post("/_sandbox/faults", json=rules))
    assert added[0]["kind"] == "http_429"
    response = sandbox_http.get(
        "/open/user-cluster-detail", params=detail_params(sandbox)
    )
    assert response.status_code == 429
    ok(sandbox_http.post("/_sandbox/faults", json=rules))
    assert ok(sandbox_http.delete("/_sandbox/faults")) is None
    assert sandbox.faults.rules() == []


def test_faults_over_http_rejects_typo(sandbox_http):
    response = sandbox_http.post(
        "/_sandbox/faults", json=[{"kind": "http_500", "endpoint": "user-cluster-ad"}]
    )
    code, message = error_of(response)
    assert code == ErrorCode.INVALID_PARAMETER
    assert "user-cluster-ad" in message


def test_stats_count_requests(sandbox, sandbox_http):
    ok(sandbox_http.post("/_sandbox/stats/reset"))
    sandbox.faults.add("http_500", "user-cluster-detail", count=1)
    sandbox_http.get("/open/user-cluster-detail", params=detail_params(sandbox))
    sandbox_http.get("/open/user-cluster-detail", params={"projectId": 102})
    sandbox_http.post(
        "/open/user-cluster-list", params={"token": sandbox.token}, json={}
    )
    counts = ok(sandbox_http.get("/_sandbox/stats"))
    assert counts["requests"]["user-cluster-detail"] == 2
    assert counts["requests"]["user-cluster-list"] == 1
    assert sandbox.stats["user-cluster-detail"] == 2


def test_catalog_endpoint(sandbox, sandbox_http):
    data = ok(
        sandbox_http.get(
            "/_sandbox/catalog", params={"token": sandbox.token, "projectId": 102}
        )
    )
    names = {event["name"] for event in data["events"]}
    assert data["projectId"] == 102
    assert {"consume_item", "pay", "player_register"} <= names
    missing = sandbox_http.get("/_sandbox/catalog", params={"projectId": 102})
    assert error_of(missing)[0] == ErrorCode.TOKEN_EMPTY


# Restart and command line


def test_clusters_survive_restart(tmp_path, cluster_name):
    config = SandboxConfig(db_path=str(tmp_path / "sandbox.duckdb"), users=200)
    with (
        SandboxServer(config) as server,
        httpx.Client(base_url=server.base_url) as http,
    ):
        cluster_id = add_cluster(http, server.token, add_body(cluster_name))
        assert wait_refreshed(http, server.token, cluster_id) == 100
        before = detail(http, server.token, clusterId=cluster_id)
        members = server.store.members(cluster_id)
        upload_id = ok(
            upload(
                http,
                "import-id-cluster-add",
                {
                    "token": server.token,
                    "projectId": 102,
                    "displayName": "kept",
                    "mainColumnName": "#account_id",
                },
                b"acc1\nacc2\n",
            )
        )["clusterId"]
    with (
        SandboxServer(config) as server,
        httpx.Client(base_url=server.base_url) as http,
    ):
        after = detail(http, server.token, clusterId=cluster_id)
        assert after == before
        assert server.store.members(cluster_id) == members
        listed = ok(
            http.post(
                "/open/user-cluster-list",
                params={"token": server.token},
                json={
                    "projectId": 102,
                    "clusterCatalog": "catalog_cluster",
                    "clusterTypes": LIST_ALL_CLUSTERS,
                },
            )
        )
        assert [entry["id"] for entry in listed["userClusters"]] == [
            upload_id,
            cluster_id,
        ]
        new_id = add_cluster(http, server.token, add_body(cluster_name + "_2"))
        assert new_id > upload_id


@pytest.mark.anyio
async def test_server_async_context():
    config = SandboxConfig(users=50, projects=(102,))
    async with (
        SandboxServer(config) as server,
        httpx.AsyncClient(base_url=server.base_url) as http,
    ):
        response = await http.get(
            "/open/user-cluster-refresh-progress",
            params={"token": server.token, "projectId": 102, "clusterId": 1},
        )
    assert error_of(response)[0] == ErrorCode.CLUSTER_NOT_FOUND
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.base_url


def test_server_rejects_remote_host():
    with pytest.raises(ValueError, match="loopback"):
        SandboxServer(host="0.0.0.0")


def test_command_runs_until_interrupt(tmp_path):
    environment = {**os.environ, "TA_SANDBOX_TOKEN": "cli-token"}
    with subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ta_cohort_mcp",
            "sandbox",
            "--port",
            "0",
            "--users",
            "50",
            "--log-level",
            "WARNING",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment,
        cwd=Path(__file__).parent.parent,
    ) as process:
        try:
            assert process.stderr is not None
            line = process.stderr.readline().decode()
            assert "cli-token" in line
            base_url = line.split(" on ", 1)[1].split(" ", 1)[0]
            response = httpx.get(
                f"{base_url}/open/user-cluster-detail",
                params={"token": "cli-token", "projectId": 102, "clusterId": 1},
            )
            assert error_of(response)[0] == ErrorCode.CLUSTER_NOT_FOUND
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=10) == 0
            assert process.stdout is not None
            assert process.stdout.read() == b""
        except BaseException:
            process.kill()
            raise


def test_command_rejects_remote_host():
    result = subprocess.run(
        [sys.executable, "-m", "ta_cohort_mcp", "sandbox", "--host", "0.0.0.0"],
        capture_output=True,
        timeout=30,
        cwd=Path(__file__).parent.parent,
    )
    assert result.returncode == 2
    assert b"loopback" in result.stderr


def test_command_busy_port_fails_before_data(tmp_path):
    database = tmp_path / "sandbox.duckdb"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "ta_cohort_mcp",
                "sandbox",
                "--port",
                str(port),
                "--db",
                str(database),
            ],
            capture_output=True,
            timeout=30,
            cwd=Path(__file__).parent.parent,
        )
    lines = result.stderr.decode().splitlines()
    assert result.returncode == 2
    assert len(lines) == 1
    assert f"port {port} " in lines[0]
    assert "already in use" in lines[0]
    assert not database.exists()


def test_unknown_main_column_empty_hints_escape(sandbox, sandbox_http):
    response = upload(
        sandbox_http,
        "import-id-cluster-add",
        {
            "token": sandbox.token,
            "projectId": 102,
            "displayName": "bad",
            "mainColumnName": "",
        },
        b"acc1\n",
    )
    code, message = error_of(response)
    assert code == ErrorCode.INVALID_PARAMETER
    assert "%23" in message


def test_unknown_main_column_named_no_escape_hint(sandbox, sandbox_http):
    response = upload(
        sandbox_http,
        "import-id-cluster-add",
        {
            "token": sandbox.token,
            "projectId": 102,
            "displayName": "bad",
            "mainColumnName": "acount_id",
        },
        b"acc1\n",
    )
    code, message = error_of(response)
    assert code == ErrorCode.INVALID_PARAMETER
    assert "'acount_id'" in message
    assert "%23" not in message
