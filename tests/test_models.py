"""The models parse every reference example, serialise it back, and enforce the rules."""

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError
from reference_examples import (
    REQUEST_EXAMPLES,
    RESPONSE_EXAMPLES,
    canonical,
    load_example,
    raw_example,
)

from ta_cohort_mcp.models import (
    ClusterAddRequest,
    ClusterDefinition,
    ClusterDetail,
    ClusterList,
    ClusterListRequest,
    ClusterUpdateRequest,
    DetailQuery,
    Envelope,
    EventCondition,
    Filter,
    ImportAddQuery,
    ImportResult,
    RefreshProgress,
    SubConditionTabType,
    TagDefinition,
)

REQUEST_MODELS: dict[str, type[BaseModel]] = {
    "add-cluster.request": ClusterAddRequest,
    "add-tag-custom.request": ClusterAddRequest,
    "add-tag-firstlast.request": ClusterAddRequest,
    "add-tag-quota.request": ClusterAddRequest,
    "update.request": ClusterUpdateRequest,
    "update-by-name.request": ClusterUpdateRequest,
    "list.request": ClusterListRequest,
}
DATA_MODELS: dict[str, type[BaseModel]] = {
    "detail.response": ClusterDetail,
    "list.response": ClusterList,
    "progress.response": RefreshProgress,
    "import-add.response": ImportResult,
}


def dump(model: BaseModel) -> Any:
    return model.model_dump(mode="json", by_alias=True, exclude_unset=True)


def test_every_example_is_covered() -> None:
    assert set(REQUEST_MODELS) == set(REQUEST_EXAMPLES)
    assert set(DATA_MODELS) <= set(RESPONSE_EXAMPLES)


@pytest.mark.parametrize("name", REQUEST_EXAMPLES)
def test_request_example_round_trips(name: str) -> None:
    example = load_example(name)
    model = REQUEST_MODELS[name].model_validate(example)
    assert dump(model) == canonical(example)


@pytest.mark.parametrize("name", RESPONSE_EXAMPLES)
def test_response_envelope_round_trips(name: str) -> None:
    example = load_example(name)
    assert dump(Envelope.model_validate(example)) == example


@pytest.mark.parametrize("name", sorted(DATA_MODELS))
def test_response_data_round_trips(name: str) -> None:
    data = load_example(name)["data"]
    assert dump(DATA_MODELS[name].model_validate(data)) == data


def test_custom_tag_typo_is_invalid_json_as_printed() -> None:
    import json

    with pytest.raises(json.JSONDecodeError):
        json.loads(raw_example("add-tag-custom.request"))


def test_uce_calcu_symbol_is_comparator() -> None:
    body = ClusterAddRequest.model_validate(load_example("add-tag-custom.request"))
    assert body.tagQp is not None
    values = body.tagQp.userTagValueDefs
    assert values is not None
    events = values[1].userClusterDef.events
    assert events is not None
    assert events[0].comparator == "greater"


def test_detail_definition_parses_as_qp() -> None:
    detail = ClusterDetail.model_validate(load_example("detail.response")["data"])
    assert detail.userClusterDef is not None
    qp = ClusterDefinition.model_validate(detail.userClusterDef)
    assert qp.events is not None
    assert qp.events[0].startTime == "2020-01-03 00:00:00"


def test_tag_kinds_follow_the_field() -> None:
    kinds = {
        name: ClusterAddRequest.model_validate(load_example(name)).subConditionTabType
        for name in (
            "add-tag-custom.request",
            "add-tag-firstlast.request",
            "add-tag-quota.request",
        )
    }
    assert kinds == {
        "add-tag-custom.request": SubConditionTabType.DEFAULT,
        "add-tag-firstlast.request": SubConditionTabType.FIRST_LAST_EVENT,
        "add-tag-quota.request": SubConditionTabType.QUOTA,
    }


def test_responses_keep_added_fields() -> None:
    detail = ClusterDetail.model_validate(
        {"id": 1, "clusterName": "a", "newField": {"x": 1}}
    )
    assert dump(detail)["newField"] == {"x": 1}


# Each documented mistake, applied to the reference's cluster example, and a part
# of the message that must name the field or the rule.
def _cluster_with(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = load_example("add-cluster.request")
    body.update(changes)
    return body


def _event_with(**changes: Any) -> dict[str, Any]:
    body = _cluster_with()
    body["qp"]["events"][0].update(changes)
    return body


def _filter_with(**changes: Any) -> dict[str, Any]:
    body = _cluster_with()
    body["qp"]["filts"][0].update(changes)
    return body


MISTAKES: list[tuple[str, dict[str, Any], list[str]]] = [
    (
        "cluster name with a space",
        _cluster_with(clusterName="recent 7 days"),
        ["clusterName", "letters, digits and underscore", "24"],
    ),
    (
        "cluster name of 25 characters",
        _cluster_with(clusterName="a" * 25),
        ["clusterName", "24 characters"],
    ),
    (
        "display name of 51 characters",
        _cluster_with(displayName="x" * 51),
        ["displayName", "50 characters"],
    ),
    (
        "recentDay with A > B",
        _event_with(recentDay="7-1"),
        ["recentDay", "A > B", '"1-7"'],
    ),
    ("recentDay not A-B", _event_with(recentDay="last week"), ["recentDay", '"A-B"']),
    (
        "range with one value",
        _filter_with(comparator="range", ftv=["3"]),
        ["ftv", "range", "two values"],
    ),
    (
        "greater with two values",
        _filter_with(comparator="greater", ftv=["3", "4"]),
        ["greater", "exactly one value"],
    ),
    (
        "isNull with a value",
        _filter_with(comparator="isNull", ftv=["3"]),
        ["isNull", "empty"],
    ),
    (
        "tag type in the cluster catalog",
        _cluster_with(clusterType="tag_by_static_condition"),
        ["tag_by_static_condition", "catalog_cluster"],
    ),
    (
        "SQL type through add",
        _cluster_with(clusterType="cluster_by_static_sql"),
        ["cluster_by_static_sql", "cluster_by_static_condition"],
    ),
    (
        "cluster without qp",
        _cluster_with(qp=None),
        ["needs qp"],
    ),
    (
        "unknown key",
        _cluster_with(clusterID=970),
        ["clusterID", "accepted keys", "clusterName"],
    ),
    (
        "unknown event key",
        _event_with(eventname="pay"),
        ["eventname", "eventName"],
    ),
    (
        "aggregate without quota",
        _event_with(taPropQuota={"analysis": "SUM"}),
        ["SUM", "quota"],
    ),
    (
        "event without a window",
        _event_with(recentDay=None),
        ["recentDay", "startTime", "endTime"],
    ),
    (
        "num that is not a number",
        _event_with(num="four"),
        ["num", "number"],
    ),
    (
        "range measure with one bound",
        _event_with(comparator="range", num="4"),
        ["range", "low,high"],
    ),
    (
        "comparator a measure cannot use",
        _event_with(comparator="include"),
        ["comparator", "greater"],
    ),
    ("num that is NaN", _event_with(num="nan"), ["num", "plain decimal"]),
    ("num with an exponent", _event_with(num="1e400"), ["num", "plain decimal"]),
    ("num in full-width digits", _event_with(num="１２"), ["num", "plain decimal"]),
    (
        "range measure with low above high",
        _event_with(comparator="range", num="5,1"),
        ["low <= high"],
    ),
    (
        "range filter with low above high",
        _filter_with(comparator="range", ftv=["5", "1"]),
        ["low <= high"],
    ),
    (
        "event property in the user filters",
        _filter_with(columnName="#os", tableType="event", ftv=["ios"]),
        ["qp.filts", "tableType user", "#os"],
    ),
    (
        "user property in an event's filters",
        _event_with(
            filts=[
                {
                    "columnName": "user_level",
                    "comparator": "equal",
                    "ftv": ["3"],
                    "tableType": "user",
                }
            ]
        ),
        ["event condition's filts", "tableType event", "user_level"],
    ),
    (
        "time without zero padding",
        _event_with(
            recentDay=None, startTime="2020-1-3 0:0:0", endTime="2020-01-09 00:00:00"
        ),
        ["yyyy-MM-dd HH:mm:ss"],
    ),
    ("project id above a long", _cluster_with(projectId=2**63), ["projectId"]),
    (
        "time in the wrong format",
        _event_with(recentDay=None, startTime="2020-01-03", endTime="2020-01-09"),
        ["yyyy-MM-dd HH:mm:ss"],
    ),
]


@pytest.mark.parametrize(
    ("body", "fragments"),
    [(body, fragments) for _, body, fragments in MISTAKES],
    ids=[name for name, _, _ in MISTAKES],
)
def test_mistake_is_rejected_with_rule(
    body: dict[str, Any], fragments: list[str]
) -> None:
    body = {key: value for key, value in body.items() if value is not None}
    for event in body.get("qp", {}).get("events", []):
        for key in [key for key, value in event.items() if value is None]:
            del event[key]
    with pytest.raises(ValidationError) as caught:
        ClusterAddRequest.model_validate(body)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message


def _tag(kind: str) -> dict[str, Any]:
    return load_example(
        {
            "default": "add-tag-custom.request",
            "firstlast": "add-tag-firstlast.request",
            "quota": "add-tag-quota.request",
        }[kind]
    )


def test_tag_kind_mismatch_is_rejected() -> None:
    body = _tag("firstlast")
    body["subConditionTabType"] = "tag_condition_by_quotation"
    with pytest.raises(ValidationError) as caught:
        ClusterAddRequest.model_validate(body)
    message = str(caught.value)
    assert "tag_condition_by_quotation" in message
    assert "userTagConQuotaDef" in message
    assert "userTagConFirstLastEventDef" in message


def test_tag_without_kind_names_the_kind() -> None:
    body = _tag("quota")
    del body["subConditionTabType"]
    with pytest.raises(ValidationError) as caught:
        ClusterAddRequest.model_validate(body)
    assert "tag_condition_by_quotation" in str(caught.value)


def test_tag_with_two_kinds_is_rejected() -> None:
    both = {**_tag("quota")["tagQp"], **_tag("firstlast")["tagQp"]}
    with pytest.raises(ValidationError) as caught:
        TagDefinition.model_validate(both)
    assert "exactly one of" in str(caught.value)


def test_tag_in_cluster_catalog_is_rejected() -> None:
    body = _tag("quota")
    body["clusterCatalog"] = "catalog_cluster"
    with pytest.raises(ValidationError) as caught:
        ClusterAddRequest.model_validate(body)
    assert "does not fit clusterCatalog catalog_cluster" in str(caught.value)


def test_empty_definition_is_rejected() -> None:
    with pytest.raises(ValidationError) as caught:
        ClusterDefinition.model_validate({"events": [], "filts": []})
    assert "at least one condition" in str(caught.value)


def test_detail_query_needs_one_key() -> None:
    with pytest.raises(ValidationError) as caught:
        DetailQuery.model_validate({"projectId": 102})
    assert "exactly one of clusterId or clusterName" in str(caught.value)


def test_list_types_must_fit_catalog() -> None:
    body = load_example("list.request")
    body["clusterTypes"] = ["tag_by_static_condition"]
    with pytest.raises(ValidationError) as caught:
        ClusterListRequest.model_validate(body)
    assert "tag_by_static_condition" in str(caught.value)


def test_import_query_keeps_hash_column() -> None:
    query = ImportAddQuery.model_validate(
        {"projectId": 102, "displayName": "高价值用户", "mainColumnName": "#account_id"}
    )
    assert dump(query) == {
        "projectId": 102,
        "displayName": "高价值用户",
        "mainColumnName": "#account_id",
    }


def test_filter_in_and_not_in_take_many_values() -> None:
    for comparator in ("equal", "notEqual"):
        item = Filter.model_validate(
            {
                "columnName": "channel",
                "comparator": comparator,
                "ftv": ["a", "b", "c"],
                "tableType": "user",
            }
        )
        assert item.ftv == ["a", "b", "c"]


def test_absolute_window_is_accepted() -> None:
    event = EventCondition.model_validate(
        {
            "eventName": "pay",
            "comparator": "greater",
            "num": "0",
            "startTime": "2020-01-03 00:00:00",
            "endTime": "2020-01-09 23:59:59",
            "taPropQuota": {"analysis": "SUM", "quota": "pay_amount"},
        }
    )
    assert event.recentDay is None
