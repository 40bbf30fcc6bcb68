"""Argument validation of the MCP tools: repairs, problems, limits, and fuzzing."""

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from jsonschema import Draft202012Validator

from ta_cohort_mcp.models import (
    ClusterAddRequest,
    ClusterDefinition,
    ClusterListRequest,
    DetailQuery,
    TagDefinition,
)
from ta_cohort_mcp.schemas import SCHEMA_MODELS, all_schemas, client_schema
from ta_cohort_mcp.server.validation import (
    MAX_ARGUMENTS_SIZE,
    MAX_DEPTH,
    MAX_PROBLEMS,
    MAX_STRING_LENGTH,
    ArgumentError,
    Problem,
    Validated,
    format_problems,
    validate_arguments,
)

SCHEMAS = all_schemas()
ADD = SCHEMAS["user-cluster-add"]
LIST = SCHEMAS["user-cluster-list"]
DETAIL = client_schema(DetailQuery)


def cluster_add(**changes: Any) -> dict[str, Any]:
    """Return valid user-cluster-add arguments, with top-level `changes` applied."""
    arguments: dict[str, Any] = {
        "projectId": 102,
        "clusterName": "recent_7_days_consume",
        "displayName": "Recent consumers",
        "clusterCatalog": "catalog_cluster",
        "clusterType": "cluster_by_static_condition",
        "qp": {
            "events": [
                {
                    "eventName": "consume_item",
                    "comparator": "greater",
                    "num": "4",
                    "recentDay": "1-7",
                    "taPropQuota": {"analysis": "TIMES"},
                }
            ],
            "filts": [
                {
                    "columnName": "user_level",
                    "comparator": "equal",
                    "ftv": ["3"],
                    "tableType": "user",
                }
            ],
            "event_user_relation": "and",
        },
    }
    arguments.update(changes)
    return arguments


def tag_add(sub_condition: str, tag_qp: dict[str, Any]) -> dict[str, Any]:
    """Return user-cluster-add arguments of a tag."""
    return {
        "projectId": 102,
        "clusterName": "level_tag",
        "displayName": "Level tag",
        "clusterCatalog": "catalog_tag",
        "clusterType": "tag_by_static_condition",
        "subConditionTabType": sub_condition,
        "tagQp": tag_qp,
    }


CUSTOM_TAG_QP = {
    "userTagValueDefs": [
        {
            "tagValue": "high",
            "userClusterDef": {
                "filts": [
                    {
                        "columnName": "user_level",
                        "comparator": "greater",
                        "ftv": ["10"],
                        "tableType": "user",
                    }
                ]
            },
        }
    ]
}


def event(arguments: dict[str, Any]) -> dict[str, Any]:
    event_condition: dict[str, Any] = arguments["qp"]["events"][0]
    return event_condition


def user_filter(arguments: dict[str, Any]) -> dict[str, Any]:
    filter_condition: dict[str, Any] = arguments["qp"]["filts"][0]
    return filter_condition


def problems_of(
    schema: dict[str, Any], arguments: object, model: Any = None
) -> list[Problem]:
    """Return the problems that validation raises; fail if it passes."""
    with pytest.raises(ArgumentError) as caught:
        validate_arguments(schema, arguments, model)
    return caught.value.problems


def only_problem(
    schema: dict[str, Any], arguments: object, model: Any = None
) -> Problem:
    problems = problems_of(schema, arguments, model)
    assert len(problems) == 1, format_problems(problems)
    return problems[0]


# Valid arguments


def test_valid_arguments_pass_unchanged() -> None:
    arguments = cluster_add()
    result = validate_arguments(ADD, arguments, ClusterAddRequest)
    assert result.arguments == arguments
    assert result.repairs == []
    assert isinstance(result.model, ClusterAddRequest)
    assert result.model.clusterName == "recent_7_days_consume"


def test_without_model_no_parse() -> None:
    result = validate_arguments(ADD, cluster_add())
    assert isinstance(result, Validated)
    assert result.model is None


def test_input_never_mutated() -> None:
    arguments = cluster_add(projectId="102", qp=json.dumps(cluster_add()["qp"]))
    event_text = arguments["qp"]
    before = copy.deepcopy(arguments)
    result = validate_arguments(ADD, arguments, ClusterAddRequest)
    assert arguments == before
    assert arguments["qp"] is event_text
    assert result.arguments["projectId"] == 102


def test_cache_key_reused() -> None:
    first = validate_arguments(
        DETAIL, {"projectId": 1, "clusterId": 2}, cache_key="detail"
    )
    second = validate_arguments(
        DETAIL, {"projectId": 3, "clusterId": 4}, cache_key="detail"
    )
    assert first.arguments == {"projectId": 1, "clusterId": 2}
    assert second.arguments == {"projectId": 3, "clusterId": 4}


# Repair 1: JSON text for an object or an array


def test_json_text_object_decoded() -> None:
    qp = cluster_add()["qp"]
    result = validate_arguments(ADD, cluster_add(qp=json.dumps(qp)), ClusterAddRequest)
    assert result.arguments["qp"] == qp
    assert result.repairs == ["qp: decoded JSON text into an object"]


def test_json_text_array_decoded() -> None:
    arguments = cluster_add()
    events = arguments["qp"]["events"]
    arguments["qp"]["events"] = "  " + json.dumps(events)
    result = validate_arguments(ADD, arguments, ClusterAddRequest)
    assert result.arguments["qp"]["events"] == events
    assert result.repairs == ["qp.events: decoded JSON text into an array"]


def test_json_text_broken_rejected() -> None:
    problem = only_problem(ADD, cluster_add(qp='{"events": [}'), ClusterAddRequest)
    assert problem.path == "qp"
    assert problem.expected == "object"
    assert problem.value == '{"events": [}'
    assert "not valid JSON" in problem.message
    assert "line 1, column 13" in problem.message


def test_json_text_wrong_type_rejected() -> None:
    problem = only_problem(ADD, cluster_add(qp="[]"), ClusterAddRequest)
    assert problem.path == "qp"
    assert problem.expected == "object"
    assert "decodes to an array" in problem.message


def test_json_text_decoded_once() -> None:
    twice = json.dumps(json.dumps(cluster_add()["qp"]))
    problem = only_problem(ADD, cluster_add(qp=twice), ClusterAddRequest)
    assert problem.path == "qp"
    assert problem.expected == "object"
    assert "send the object itself, not text" in problem.message


def test_json_text_nan_rejected() -> None:
    problem = only_problem(
        LIST,
        {
            "projectId": 1,
            "clusterCatalog": "catalog_cluster",
            "clusterTypes": ["cluster_by_static_condition"],
            "pagerHeader": '{"pageNum": NaN}',
        },
    )
    assert problem.path == "pagerHeader"
    assert "not valid JSON" in problem.message


# Repair 2: digits for numbers, integers for strings


@pytest.mark.parametrize(("text", "number"), [("102", 102), ("+7", 7), (" 12 ", 12)])
def test_digits_become_integer(text: str, number: int) -> None:
    result = validate_arguments(ADD, cluster_add(projectId=text), ClusterAddRequest)
    assert result.arguments["projectId"] == number
    assert result.repairs == [
        f"projectId: converted the string {text!r} to the number {number}"
    ]


def test_negative_digits_then_minimum() -> None:
    problem = only_problem(ADD, cluster_add(projectId="-3"))
    assert problem.path == "projectId"
    assert problem.value == -3
    assert problem.expected == "integer >= 0"


def test_decimal_text_not_integer() -> None:
    problem = only_problem(ADD, cluster_add(projectId="4.5"))
    assert problem.path == "projectId"
    assert problem.expected == "integer"
    assert problem.value == "4.5"


@pytest.mark.parametrize("text", ["1e3", "0x10", "١٠٢", "12abc", "", "1" * 41])
def test_non_digits_not_converted(text: str) -> None:
    problem = only_problem(ADD, cluster_add(projectId=text))
    assert problem.path == "projectId"
    assert problem.expected == "integer"


def test_decimal_text_becomes_number() -> None:
    schema = {
        "type": "object",
        "properties": {"ratio": {"type": "number"}},
        "additionalProperties": False,
    }
    result = validate_arguments(schema, {"ratio": "4.5"})
    assert result.arguments == {"ratio": 4.5}
    assert result.repairs == ["ratio: converted the string '4.5' to the number 4.5"]


def test_integer_becomes_string() -> None:
    arguments = cluster_add()
    event(arguments)["num"] = 4
    result = validate_arguments(ADD, arguments, ClusterAddRequest)
    assert event(result.arguments)["num"] == "4"
    assert result.repairs == [
        "qp.events[0].num: converted the integer 4 to the string '4'"
    ]


def test_integer_items_become_strings() -> None:
    arguments = cluster_add()
    user_filter(arguments)["ftv"] = [3]
    result = validate_arguments(ADD, arguments, ClusterAddRequest)
    assert user_filter(result.arguments)["ftv"] == ["3"]
    assert result.repairs == [
        "qp.filts[0].ftv[0]: converted the integer 3 to the string '3'"
    ]


def test_boolean_not_converted_to_string() -> None:
    arguments = cluster_add()
    event(arguments)["num"] = True
    problem = only_problem(ADD, arguments)
    assert problem.path == "qp.events[0].num"
    assert problem.value is True
    assert problem.expected == "string"
    assert "booleans are not converted" in problem.message


def test_boolean_not_converted_to_integer() -> None:
    problem = only_problem(ADD, cluster_add(projectId=True))
    assert problem.path == "projectId"
    assert problem.expected == "integer"


def test_float_not_converted_to_string() -> None:
    arguments = cluster_add()
    event(arguments)["num"] = 4.5
    problem = only_problem(ADD, arguments)
    assert problem.path == "qp.events[0].num"
    assert problem.expected == "string"
    assert '"4.5"' in problem.message


def test_boolean_text_not_converted() -> None:
    arguments = tag_add(
        "tag_condition_by_firstlast_event",
        {
            "userTagConFirstLastEventDef": {
                "userTagConFirstLastEvent": {
                    "calcPropVo": {
                        "property": {"columnName": "pay_amount", "tableType": "event"}
                    },
                    "eventName": "pay",
                    "isFirstEvent": "true",
                    "recentDay": "1-7",
                }
            }
        },
    )
    problem = only_problem(ADD, arguments)
    path = "tagQp.userTagConFirstLastEventDef.userTagConFirstLastEvent.isFirstEvent"
    assert problem.path == path
    assert problem.expected == "boolean"
    assert "send true or false without quotes" in problem.message


# Repair 3: enum case and spaces


@pytest.mark.parametrize(
    ("path", "sent", "fixed"),
    [
        (("clusterCatalog",), "Catalog_Cluster", "catalog_cluster"),
        (("qp", "events", 0, "comparator"), "GREATER", "greater"),
        (("qp", "filts", 0, "comparator"), " notequal ", "notEqual"),
        (("qp", "events", 0, "taPropQuota", "analysis"), "times", "TIMES"),
    ],
)
def test_enum_case_repaired(path: tuple[str | int, ...], sent: str, fixed: str) -> None:
    arguments = cluster_add()
    parent: Any = arguments
    for part in path[:-1]:
        parent = parent[part]
    parent[path[-1]] = sent
    result = validate_arguments(ADD, arguments, ClusterAddRequest)
    parent = result.arguments
    for part in path[:-1]:
        parent = parent[part]
    assert parent[path[-1]] == fixed
    assert len(result.repairs) == 1
    assert f"to the allowed value {fixed!r}" in result.repairs[0]


def test_enum_ambiguous_case_rejected() -> None:
    schema = {
        "type": "object",
        "properties": {"mode": {"type": "string", "enum": ["Fast", "fast"]}},
        "additionalProperties": False,
    }
    problem = only_problem(schema, {"mode": "FAST"})
    assert problem.path == "mode"
    assert problem.allowed == ["Fast", "fast"]


def test_enum_list_items_repaired() -> None:
    arguments = {
        "projectId": 1,
        "clusterCatalog": "catalog_cluster",
        "clusterTypes": ["CLUSTER_BY_STATIC_CONDITION"],
    }
    result = validate_arguments(LIST, arguments, ClusterListRequest)
    assert result.arguments["clusterTypes"] == ["cluster_by_static_condition"]


# Repair 4: a lone value where an array is expected


def test_lone_string_wrapped() -> None:
    arguments = cluster_add()
    user_filter(arguments)["ftv"] = "3"
    result = validate_arguments(ADD, arguments, ClusterAddRequest)
    assert user_filter(result.arguments)["ftv"] == ["3"]
    assert result.repairs == ["qp.filts[0].ftv: wrapped the single value in an array"]


def test_lone_long_string_not_split() -> None:
    arguments = cluster_add()
    user_filter(arguments)["ftv"] = "300"
    result = validate_arguments(ADD, arguments, ClusterAddRequest)
    assert user_filter(result.arguments)["ftv"] == ["300"]


def test_lone_integer_wrapped_and_converted() -> None:
    arguments = cluster_add()
    user_filter(arguments)["ftv"] = 3
    result = validate_arguments(ADD, arguments, ClusterAddRequest)
    assert user_filter(result.arguments)["ftv"] == ["3"]
    assert result.repairs == [
        "qp.filts[0].ftv: wrapped the single value in an array",
        "qp.filts[0].ftv[0]: converted the integer 3 to the string '3'",
    ]


def test_lone_object_wrapped() -> None:
    arguments = cluster_add()
    arguments["qp"]["filts"] = user_filter(arguments)
    result = validate_arguments(ADD, arguments, ClusterAddRequest)
    assert result.arguments["qp"]["filts"] == [user_filter(cluster_add())]


def test_lone_enum_wrapped() -> None:
    arguments = {
        "projectId": 1,
        "clusterCatalog": "catalog_cluster",
        "clusterTypes": "cluster_by_static_condition",
    }
    result = validate_arguments(LIST, arguments, ClusterListRequest)
    assert result.arguments["clusterTypes"] == ["cluster_by_static_condition"]


def test_lone_boolean_not_wrapped() -> None:
    arguments = cluster_add()
    user_filter(arguments)["ftv"] = True
    problem = only_problem(ADD, arguments)
    assert problem.path == "qp.filts[0].ftv"
    assert problem.expected == "array"


def test_null_not_wrapped() -> None:
    arguments = cluster_add()
    user_filter(arguments)["ftv"] = None
    problem = only_problem(ADD, arguments)
    assert problem.path == "qp.filts[0].ftv"
    assert "leave an optional key out" in problem.message


# Repair 5: the reference's uceCalcuSymbol


def test_typo_key_renamed() -> None:
    arguments = cluster_add()
    event(arguments)["uceCalcuSymbol"] = event(arguments).pop("comparator")
    result = validate_arguments(ADD, arguments, ClusterAddRequest)
    assert event(result.arguments)["comparator"] == "greater"
    assert "uceCalcuSymbol" not in event(result.arguments)
    assert result.repairs == [
        "qp.events[0]: renamed key 'uceCalcuSymbol' to 'comparator'"
    ]


def test_typo_key_with_comparator_rejected() -> None:
    arguments = cluster_add()
    event(arguments)["uceCalcuSymbol"] = "less"
    problem = only_problem(ADD, arguments)
    assert problem.path == "qp.events[0]"
    assert problem.value == "uceCalcuSymbol"
    assert "unknown key 'uceCalcuSymbol'" in problem.message


def test_typo_key_elsewhere_rejected() -> None:
    arguments = cluster_add(uceCalcuSymbol="greater")
    problem = only_problem(ADD, arguments)
    assert problem.path == ""
    assert problem.value == "uceCalcuSymbol"


# Arguments that are not an object


def test_null_arguments_read_as_empty() -> None:
    schema = {"type": "object", "properties": {}, "additionalProperties": False}
    result = validate_arguments(schema, None)
    assert result.arguments == {}
    assert result.repairs == ["arguments: read null as no arguments"]


def test_null_arguments_missing_keys() -> None:
    problems = problems_of(DETAIL, None)
    assert [problem.message for problem in problems] == [
        "missing required key 'projectId' at top level: Project ID."
    ]


def test_arguments_json_text_decoded() -> None:
    text = json.dumps({"projectId": 1, "clusterId": 970})
    result = validate_arguments(DETAIL, text, DetailQuery)
    assert result.arguments == {"projectId": 1, "clusterId": 970}
    assert result.repairs == ["arguments: decoded JSON text into an object"]


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        (3, "got integer 3"),
        ([1, 2], "got array [1, 2]"),
        (True, "got boolean true"),
        ("[1]", "decodes to array [1]"),
        ("not json", "not valid JSON (Expecting value at line 1, column 1)"),
        ("{" * 5000 + "}" * 5000, "not valid JSON"),
    ],
)
def test_non_object_arguments_rejected(arguments: object, fragment: str) -> None:
    problem = only_problem(DETAIL, arguments)
    assert problem.path == ""
    assert problem.expected == "object"
    assert fragment in problem.message


# Mistakes: each problem names its path, value, expected and closest


def test_wrong_type_problem() -> None:
    problem = only_problem(ADD, cluster_add(qp=5))
    assert problem.path == "qp"
    assert problem.value == 5
    assert problem.expected == "object"
    assert problem.message == "expected object, got integer 5"


def test_unknown_key_problem() -> None:
    problem = only_problem(DETAIL, {"projectId": 1, "clusterID": 970}, DetailQuery)
    assert problem.path == ""
    assert problem.value == "clusterID"
    assert problem.closest == "clusterId"
    assert problem.allowed == ["clusterId", "clusterName", "projectId"]
    assert problem.message == (
        "unknown key 'clusterID' at top level; accepted: clusterId, clusterName, "
        "projectId; did you mean 'clusterId'?"
    )


def test_unknown_nested_key_problem() -> None:
    arguments = cluster_add()
    event(arguments)["eventNme"] = event(arguments).pop("eventName")
    problems = problems_of(ADD, arguments)
    unknown = [problem for problem in problems if problem.value == "eventNme"]
    assert len(unknown) == 1
    assert unknown[0].path == "qp.events[0]"
    assert unknown[0].closest == "eventName"
    assert unknown[0].allowed is not None
    assert unknown[0].allowed[0] == "eventName"


def test_missing_key_problem() -> None:
    arguments = cluster_add()
    del event(arguments)["taPropQuota"]
    problem = only_problem(ADD, arguments)
    assert problem.path == "qp.events[0]"
    assert problem.expected == "object"
    assert problem.message == (
        "missing required key 'taPropQuota': Event measure; to count events, "
        'send {"analysis": "TIMES"}'
    )


def test_enum_typo_problem() -> None:
    arguments = cluster_add()
    event(arguments)["comparator"] = "gretaer"
    problem = only_problem(ADD, arguments)
    assert problem.path == "qp.events[0].comparator"
    assert problem.value == "gretaer"
    assert problem.closest == "greater"
    assert problem.allowed == ["equal", "notEqual", "greater", "less", "range"]
    assert problem.expected == "one of: equal, notEqual, greater, less, range"
    text = format_problems([problem])
    assert (
        "qp.events[0].comparator: 'gretaer' is not one of equal, notEqual, greater, "
        "less, range; did you mean 'greater'?"
    ) in text


def test_enum_no_close_match() -> None:
    arguments = cluster_add()
    event(arguments)["comparator"] = "zzz"
    problem = only_problem(ADD, arguments)
    assert problem.closest is None
    assert "did you mean" not in problem.message


def test_out_of_range_problems() -> None:
    arguments = {
        "projectId": -1,
        "clusterCatalog": "catalog_cluster",
        "clusterTypes": ["cluster_by_static_condition"],
        "pagerHeader": {"pageNum": 0, "pageSize": 5000},
    }
    problems = {problem.path: problem for problem in problems_of(LIST, arguments)}
    assert problems["projectId"].expected == "integer >= 0"
    assert problems["projectId"].value == -1
    assert problems["pagerHeader.pageNum"].expected == "integer >= 1"
    assert problems["pagerHeader.pageSize"].expected == "integer <= 1000"


def test_min_items_problem() -> None:
    arguments = {
        "projectId": 1,
        "clusterCatalog": "catalog_cluster",
        "clusterTypes": [],
    }
    problem = only_problem(LIST, arguments)
    assert problem.path == "clusterTypes"
    assert problem.expected == "array of at least 1 item"


@pytest.mark.parametrize("name", ["my cluster", "a" * 25, "名前"])
def test_cluster_name_pattern_problem(name: str) -> None:
    problem = only_problem(ADD, cluster_add(clusterName=name))
    assert problem.path == "clusterName"
    assert problem.value == name
    assert problem.expected == "string matching ^[A-Za-z0-9_]{1,24}$"
    assert f"({len(name)} characters)" in problem.message
    assert "letters, digits and underscore" in problem.message


def test_display_name_too_long() -> None:
    problem = only_problem(ADD, cluster_add(displayName="d" * 51))
    assert problem.path == "displayName"
    assert problem.expected == "string of at most 50 characters"


def test_all_problems_reported() -> None:
    arguments = cluster_add(projectId="x", clusterNme="a", displayName="")
    event(arguments)["comparator"] = "gretaer"
    user_filter(arguments)["tableType"] = "usr"
    paths = sorted(problem.path for problem in problems_of(ADD, arguments))
    assert paths == [
        "",
        "displayName",
        "projectId",
        "qp.events[0].comparator",
        "qp.filts[0].tableType",
    ]


def test_problem_count_limited() -> None:
    arguments = {f"unknown_{index}": index for index in range(MAX_PROBLEMS + 10)}
    arguments.update({"projectId": 1})
    with pytest.raises(ArgumentError) as caught:
        validate_arguments(DETAIL, arguments)
    assert len(caught.value.problems) == MAX_PROBLEMS
    assert caught.value.truncated
    assert f"Only the first {MAX_PROBLEMS} problems" in str(caught.value)


# Cross-field rules of the models


def test_range_one_value_problem() -> None:
    arguments = cluster_add()
    user_filter(arguments).update(comparator="range", ftv=["1"])
    problem = only_problem(ADD, arguments, ClusterAddRequest)
    assert problem.path == "qp.filts[0]"
    assert problem.message == (
        "comparator range needs exactly two values in ftv, low and high; got 1"
    )


def test_model_message_without_boilerplate() -> None:
    arguments = cluster_add()
    event(arguments)["recentDay"] = "7-1"
    problem = only_problem(ADD, arguments, ClusterAddRequest)
    assert problem.path == "qp.events[0].recentDay"
    assert problem.value == "7-1"
    assert not problem.message.startswith("Value error")
    assert "errors.pydantic.dev" not in problem.message
    assert '"1-7"' in problem.message


def test_model_enum_problem_closest() -> None:
    open_schema = {"type": "object", "additionalProperties": True}
    definition = {
        "filts": [
            {
                "columnName": "user_level",
                "comparator": "gretaer",
                "ftv": ["3"],
                "tableType": "user",
            }
        ]
    }
    problem = only_problem(open_schema, definition, ClusterDefinition)
    assert problem.path == "filts[0].comparator"
    assert problem.value == "gretaer"
    assert problem.closest == "greater"
    assert problem.allowed is not None
    assert "notRegexMatch" in problem.allowed
    assert problem.message.endswith("did you mean 'greater'?")


def test_tag_kind_mismatch_problem() -> None:
    arguments = tag_add("tag_condition_by_quotation", CUSTOM_TAG_QP)
    problem = only_problem(ADD, arguments, ClusterAddRequest)
    assert problem.path == ""
    assert "subConditionTabType tag_condition_by_quotation" in problem.message
    assert "userTagValueDefs" in problem.message


def test_tag_two_kinds_problem() -> None:
    tag_qp = {
        **CUSTOM_TAG_QP,
        "userTagConQuotaDef": {
            "userTagConQuotaEvent": {
                "eventName": "pay",
                "analysis": "TIMES",
                "recentDay": "1-7",
            }
        },
    }
    problem = only_problem(SCHEMAS["tagQp"], tag_qp, TagDefinition)
    assert problem.path == ""
    assert "exactly one of" in problem.message


def test_catalog_type_mismatch_problem() -> None:
    arguments = cluster_add(clusterType="tag_by_static_condition")
    problem = only_problem(ADD, arguments, ClusterAddRequest)
    assert problem.path == ""
    assert "does not fit clusterCatalog catalog_cluster" in problem.message


def test_tag_valid_parses() -> None:
    arguments = tag_add("tag_condition_default", CUSTOM_TAG_QP)
    result = validate_arguments(ADD, arguments, ClusterAddRequest)
    assert result.model is not None
    assert result.model.tagQp is not None


def test_model_after_schema_only() -> None:
    arguments = cluster_add(projectId="x")
    user_filter(arguments).update(comparator="range", ftv=["1"])
    problems = problems_of(ADD, arguments, ClusterAddRequest)
    assert [problem.path for problem in problems] == ["projectId"]


# Hostile input


def test_huge_string_problem() -> None:
    name = "x" * (MAX_STRING_LENGTH + 1)
    problem = only_problem(ADD, cluster_add(displayName=name))
    assert problem.path == "displayName"
    assert isinstance(problem.value, str)
    assert len(problem.value) <= 80
    assert f"{MAX_STRING_LENGTH + 1:,} characters" in problem.message


def test_huge_key_problem() -> None:
    key = "k" * (MAX_STRING_LENGTH + 1)
    problem = only_problem(DETAIL, {"projectId": 1, key: 1})
    assert problem.path == ""
    assert len(str(ArgumentError([problem]))) < 400


def test_long_value_cut_in_text() -> None:
    arguments = cluster_add()
    event(arguments)["comparator"] = "g" * 5000
    with pytest.raises(ArgumentError) as caught:
        validate_arguments(ADD, arguments)
    text = str(caught.value)
    assert "g" * 100 not in text
    assert "(5000 characters)" in text


def test_long_value_cut_in_model_message() -> None:
    arguments = cluster_add()
    event(arguments)["recentDay"] = "7" * 5000
    problem = only_problem(ADD, arguments, ClusterAddRequest)
    assert problem.path == "qp.events[0].recentDay"
    assert "7" * 100 not in problem.message
    assert "(5000 characters)" in problem.message


def test_enum_wrong_type_one_problem() -> None:
    arguments = cluster_add()
    user_filter(arguments)["tableType"] = ["user", "event"]
    problem = only_problem(ADD, arguments)
    assert problem.path == "qp.filts[0].tableType"
    assert problem.allowed == ["event", "user"]


def test_deep_nesting_problem() -> None:
    nested: dict[str, Any] = {}
    inner = nested
    for _ in range(MAX_DEPTH + 5):
        inner["qp"] = {}
        inner = inner["qp"]
    problem = only_problem(ADD, nested)
    assert problem.expected == f"at most {MAX_DEPTH} levels of nesting"
    assert problem.path.startswith("qp.qp.qp")


def test_very_deep_nesting_no_recursion() -> None:
    nested: list[Any] = []
    for _ in range(100_000):
        nested = [nested]
    problem = only_problem(ADD, cluster_add(qp=nested))
    assert problem.expected == f"at most {MAX_DEPTH} levels of nesting"


def test_deep_json_text_problem() -> None:
    text = '{"events": ' * 40 + "{}" + "}" * 40
    problem = only_problem(ADD, cluster_add(qp=text))
    assert problem.path.startswith("qp.events.events")
    assert problem.expected == f"at most {MAX_DEPTH} levels of nesting"


def test_arguments_too_large_problem() -> None:
    chunk = "v" * (MAX_STRING_LENGTH - 10)
    count = MAX_ARGUMENTS_SIZE // len(chunk) + 2
    problems = problems_of(ADD, cluster_add(extra=[chunk] * count))
    assert problems[-1].expected == f"at most {MAX_ARGUMENTS_SIZE:,} characters of JSON"


def test_non_finite_number_problem() -> None:
    problem = only_problem(LIST, {"projectId": float("nan")})
    assert problem.path == "projectId"
    assert problem.expected == "finite number"


def test_non_string_key_problem() -> None:
    problem = only_problem(DETAIL, {"projectId": 1, 7: "x"})
    assert problem.path == ""
    assert "not a string" in problem.message


def test_non_json_value_problem() -> None:
    problem = only_problem(DETAIL, {"projectId": {1, 2}})
    assert problem.path == "projectId"
    assert "not a JSON value" in problem.message


def test_huge_integer_problem() -> None:
    problem = only_problem(DETAIL, {"projectId": 10**400})
    assert problem.path == "projectId"
    assert "bits" in problem.message


def test_odd_key_in_path() -> None:
    arguments = cluster_add()
    user_filter(arguments)["#os"] = "ios"
    problem = only_problem(ADD, arguments)
    assert problem.path == "qp.filts[0]"
    assert problem.value == "#os"


def test_format_problems_lines() -> None:
    problems = [
        Problem(path="", message="first"),
        Problem(path="qp.events[0]", message="second"),
    ]
    assert format_problems(problems) == (
        "invalid arguments (2 problems):\n- first\n- qp.events[0]: second"
    )


# Property tests: any input raises only ArgumentError


FUZZ = settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)

# The published schemas of tool arguments and request bodies; the catalog file's
# schema also accepts an array, so it is no tool's arguments.
OBJECT_STEMS = sorted(
    stem for stem, schema in SCHEMAS.items() if schema.get("type") == "object"
)


def property_names(schema: Any, names: set[str] | None = None) -> set[str]:
    """Return every property name that appears anywhere in `schema`."""
    names = set() if names is None else names
    if isinstance(schema, dict):
        properties = schema.get("properties")
        if isinstance(properties, dict):
            names.update(properties)
        for child in schema.values():
            property_names(child, names)
    elif isinstance(schema, list):
        for child in schema:
            property_names(child, names)
    return names


ALL_NAMES = sorted(property_names(SCHEMAS) | {"uceCalcuSymbol"})
JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from(["102", "GREATER", "catalog_tag", "[1]", '{"a": 1}', "{", " 3 "])
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(ALL_NAMES) | st.text(max_size=8), children, max_size=5
        )
    ),
    max_leaves=30,
)


def finite_containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(children, max_size=3) | st.dictionaries(
        st.text(max_size=8), children, max_size=3
    )


FINITE_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    finite_containers,
    max_leaves=10,
)


def schema_values(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Return a strategy of values valid for `schema`, for the keywords the schemas use.

    It draws much faster than hypothesis-jsonschema's `from_schema` from the
    large definition schemas, so the fuzz tests can afford more examples.
    """
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "anyOf" in schema:
        return st.one_of([schema_values(option) for option in schema["anyOf"]])
    declared = schema.get("type")
    if isinstance(declared, list):
        return st.one_of([schema_values({**schema, "type": name}) for name in declared])
    if declared == "object":
        return object_values(schema)
    if declared == "array":
        low = schema.get("minItems", 0)
        high = min(schema.get("maxItems", low + 3), low + 3)
        return st.lists(
            schema_values(schema.get("items", {})), min_size=low, max_size=high
        )
    if declared == "string":
        return string_values(schema)
    if declared == "integer":
        low = schema.get("minimum")
        if "exclusiveMinimum" in schema:
            low = schema["exclusiveMinimum"] + 1
        return st.integers(min_value=low, max_value=schema.get("maximum"))
    if declared == "number":
        exclusive = "exclusiveMinimum" in schema
        return st.floats(
            min_value=schema.get("exclusiveMinimum", schema.get("minimum")),
            max_value=schema.get("maximum"),
            exclude_min=exclusive,
            allow_nan=False,
            allow_infinity=False,
        )
    if declared == "boolean":
        return st.booleans()
    if declared == "null":
        return st.none()
    return FINITE_JSON_VALUES


def object_values(schema: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    properties = schema.get("properties", {})
    required = set(schema.get("required", []))
    if not properties:
        if schema.get("additionalProperties") is False:
            return st.just({})
        return st.dictionaries(
            st.sampled_from(ALL_NAMES), FINITE_JSON_VALUES, max_size=3
        )
    return st.fixed_dictionaries(
        {
            name: schema_values(child)
            for name, child in properties.items()
            if name in required
        },
        optional={
            name: schema_values(child)
            for name, child in properties.items()
            if name not in required
        },
    )


def string_values(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    low = schema.get("minLength", 0)
    high = schema.get("maxLength", low + 12)
    if "pattern" in schema:
        return st.from_regex(schema["pattern"], fullmatch=True).filter(
            lambda text: low <= len(text) <= high
        )
    return st.text(min_size=low, max_size=min(high, low + 12))


def check_outcome(stem: str, arguments: object) -> None:
    """Assert that validation returns schema-valid arguments or raises ArgumentError."""
    schema = SCHEMAS[stem]
    try:
        result = validate_arguments(schema, arguments, SCHEMA_MODELS[stem])
    except ArgumentError as error:
        assert error.problems
        for problem in error.problems:
            assert isinstance(problem.message, str)
            assert problem.message
        return
    assert Draft202012Validator(schema).is_valid(result.arguments)
    assert result.model is not None


def check_schema_valid(stem: str, arguments: dict[str, Any]) -> None:
    """Assert that schema-valid arguments pass unrepaired and fail only in the model."""
    plain = validate_arguments(SCHEMAS[stem], arguments)
    assert plain.repairs == []
    assert plain.arguments == arguments
    check_outcome(stem, arguments)


@pytest.mark.parametrize("stem", OBJECT_STEMS)
def test_fuzz_schema_valid(stem: str) -> None:
    @FUZZ
    @given(schema_values(SCHEMAS[stem]))
    def check(arguments: dict[str, Any]) -> None:
        check_schema_valid(stem, arguments)

    check()


# hypothesis-jsonschema generates slowly from the large schemas, so it draws
# fewer examples; `schema_values` above covers the same schemas faster.
JSONSCHEMA_FUZZ = settings(FUZZ, max_examples=4)


@pytest.mark.parametrize("stem", OBJECT_STEMS)
def test_fuzz_jsonschema_generated(stem: str) -> None:
    @JSONSCHEMA_FUZZ
    @given(from_schema(SCHEMAS[stem]))
    def check(arguments: dict[str, Any]) -> None:
        check_schema_valid(stem, arguments)

    check()


@pytest.mark.parametrize("stem", OBJECT_STEMS)
def test_fuzz_arbitrary_json(stem: str) -> None:
    @FUZZ
    @given(JSON_VALUES)
    def check(arguments: object) -> None:
        check_outcome(stem, arguments)

    check()


@st.composite
def mutated(draw: st.DrawFn, schema: dict[str, Any]) -> object:
    """Draw schema-valid arguments, then spoil one value inside them."""
    arguments = draw(schema_values(schema))
    spots: list[tuple[Any, Any]] = []
    stack: list[Any] = [arguments]
    while stack:
        node = stack.pop()
        keys: list[Any] = []
        if isinstance(node, dict):
            keys = list(node)
        elif isinstance(node, list):
            keys = list(range(len(node)))
        for key in keys:
            spots.append((node, key))
            stack.append(node[key])
    if not spots:
        return arguments
    node, key = draw(st.sampled_from(spots))
    value = node[key]
    change = draw(st.sampled_from(["json", "text", "upper", "wrap", "junk", "drop"]))
    if change == "json":
        node[key] = json.dumps(value)
    elif change == "text":
        node[key] = str(value)
    elif change == "upper":
        node[key] = str(value).upper()
    elif change == "wrap":
        node[key] = [value]
    elif change == "junk":
        node[key] = draw(JSON_VALUES)
    elif isinstance(node, dict):
        del node[key]
    return arguments


@pytest.mark.parametrize("stem", OBJECT_STEMS)
def test_fuzz_mutated_arguments(stem: str) -> None:
    @FUZZ
    @given(mutated(SCHEMAS[stem]))
    def check(arguments: object) -> None:
        check_outcome(stem, arguments)

    check()
