"""The API reference's example definitions, as request bodies for the sandbox.

The reference's second tag example misses a comma and spells `comparator` as
`uceCalcuSymbol`; the body here is the valid JSON it means.
"""

from typing import Any

import httpx

PROJECT_ID = 102

# Level-3 users who did consume_item more than 4 times in the days 1-7 ago.
REFERENCE_CLUSTER: dict[str, Any] = {
    "projectId": PROJECT_ID,
    "clusterName": "recent_7_days_consume",
    "clusterCatalog": "catalog_cluster",
    "clusterType": "cluster_by_static_condition",
    "displayName": "recent_7_days_consume",
    "qp": {
        "events": [
            {
                "comparator": "greater",
                "eventName": "consume_item",
                "num": "4",
                "recentDay": "1-7",
                "taPropQuota": {"analysis": "TIMES"},
            }
        ],
        "event_relation": "and",
        "filts": [
            {
                "columnName": "user_level",
                "comparator": "equal",
                "ftv": ["3"],
                "tableType": "user",
            }
        ],
        "relation": "and",
        "event_user_relation": "and",
    },
}


def _times_condition(event: str, num: str, recent_day: str) -> dict[str, Any]:
    return {
        "event_relation": "and",
        "event_user_relation": "and",
        "events": [
            {
                "eventName": event,
                "num": num,
                "recentDay": recent_day,
                "relation": "and",
                "taPropQuota": {"analysis": "TIMES"},
                "comparator": "greater",
            }
        ],
        "filts": [],
        "relation": "and",
    }


ANDROID_FILTER = {
    "columnName": "#os",
    "comparator": "equal",
    "ftv": ["android"],
    "tableType": "event",
}

# Tag kind -> add body. Names are unique so all three can exist at once.
REFERENCE_TAGS: dict[str, dict[str, Any]] = {
    "custom condition": {
        "projectId": PROJECT_ID,
        "clusterName": "bench_tag_condition",
        "clusterCatalog": "catalog_tag",
        "clusterType": "tag_by_static_condition",
        "subConditionTabType": "tag_condition_default",
        "displayName": "bench_tag_condition",
        "tagQp": {
            "userTagValueDefs": [
                {
                    "tagRemark": "",
                    "tagValue": "tag value 1",
                    "userClusterDef": _times_condition("player_register", "4", "1-30"),
                },
                {
                    "tagRemark": "",
                    "tagValue": "tag vaule 2",
                    "userClusterDef": _times_condition("fight_success", "0", "1-30"),
                },
            ]
        },
    },
    "first/last event": {
        "projectId": PROJECT_ID,
        "clusterName": "bench_tag_first_event",
        "clusterCatalog": "catalog_tag",
        "clusterType": "tag_by_static_condition",
        "subConditionTabType": "tag_condition_by_firstlast_event",
        "displayName": "bench_tag_first_event",
        "tagQp": {
            "userTagConFirstLastEventDef": {
                "userTagConFirstLastEvent": {
                    "calcPropVo": {
                        "isCalc": False,
                        "property": {
                            "columnName": "#vp@test_num",
                            "tableType": "event",
                        },
                    },
                    "eventName": "pay",
                    "isFirstEvent": True,
                    "recentDay": "0-1",
                    "filts": [ANDROID_FILTER],
                    "relation": "and",
                }
            }
        },
    },
    "indicator value": {
        "projectId": PROJECT_ID,
        "clusterName": "bench_tag_quota",
        "clusterCatalog": "catalog_tag",
        "clusterType": "tag_by_static_condition",
        "subConditionTabType": "tag_condition_by_quotation",
        "displayName": "bench_tag_quota",
        "tagQp": {
            "userTagConQuotaDef": {
                "userTagConQuotaEvent": {
                    "type": "normal",
                    "quota": "activity_reward",
                    "analysis": "DISTINCT",
                    "eventName": "activity_attend",
                    "recentDay": "0-1",
                    "filts": [ANDROID_FILTER],
                    "relation": "and",
                }
            }
        },
    },
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
