"""The definition compiler against the plain-Python reference evaluator.

Every test runs a compiled query on DuckDB over generated sample data and compares
its users (or tags) with what `reference_evaluator` computes from the same rows.
"""

import datetime
import math
import random
from typing import Any

import duckdb
import pytest
from pydantic import ValidationError
from reference_evaluator import ReferenceEvaluator

from ta_cohort_mcp.models import ClusterDefinition, TagDefinition
from ta_cohort_mcp.models.catalog import EventCatalog
from ta_cohort_mcp.sandbox import data
from ta_cohort_mcp.sandbox.catalog import sample_catalog
from ta_cohort_mcp.sandbox.compiler import (
    CompiledQuery,
    DefinitionError,
    compile_cluster,
    compile_tag,
)

TODAY = datetime.date(2020, 1, 10)
SEED = 20200110
USERS = 300
INJECTION = "'; DROP TABLE ta_user; --"

# The definitions of the API reference's examples, copied from its text. The custom
# tag example's missing comma is mended; its `uceCalcuSymbol` spelling is kept.
REFERENCE_CLUSTER: dict[str, Any] = {
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
}
REFERENCE_DETAIL_CLUSTER: dict[str, Any] = {
    "event_relation": "and",
    "event_user_relation": "and",
    "events": [
        {
            "comparator": "greater",
            "endTime": "2020-01-09 00:00:00",
            "eventName": "consume_item",
            "num": "4",
            "recentDay": "1-7",
            "startTime": "2020-01-03 00:00:00",
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
    "relation": "and",
}
REFERENCE_CUSTOM_TAG: dict[str, Any] = {
    "userTagValueDefs": [
        {
            "tagRemark": "",
            "tagValue": "tag value 1",
            "userClusterDef": {
                "event_relation": "and",
                "event_user_relation": "and",
                "events": [
                    {
                        "eventName": "player_register",
                        "num": "4",
                        "recentDay": "1-30",
                        "relation": "and",
                        "taPropQuota": {"analysis": "TIMES"},
                        "comparator": "greater",
                    }
                ],
                "filts": [],
                "relation": "and",
            },
        },
        {
            "tagRemark": "",
            "tagValue": "tag vaule 2",
            "userClusterDef": {
                "event_relation": "and",
                "event_user_relation": "and",
                "events": [
                    {
                        "eventName": "fight_success",
                        "num": "0",
                        "recentDay": "1-30",
                        "relation": "and",
                        "taPropQuota": {"analysis": "TIMES"},
                        "uceCalcuSymbol": "greater",
                    }
                ],
                "filts": [],
                "relation": "and",
            },
        },
    ]
}
REFERENCE_FIRST_LAST_TAG: dict[str, Any] = {
    "userTagConFirstLastEventDef": {
        "userTagConFirstLastEvent": {
            "calcPropVo": {
                "isCalc": False,
                "property": {"columnName": "#vp@test_num", "tableType": "event"},
            },
            "eventName": "pay",
            "isFirstEvent": True,
            "recentDay": "0-1",
            "filts": [
                {
                    "columnName": "#os",
                    "comparator": "equal",
                    "ftv": ["android"],
                    "tableType": "event",
                }
            ],
            "relation": "and",
        }
    }
}
REFERENCE_QUOTA_TAG: dict[str, Any] = {
    "userTagConQuotaDef": {
        "userTagConQuotaEvent": {
            "type": "normal",
            "quota": "activity_reward",
            "analysis": "DISTINCT",
            "eventName": "activity_attend",
            "recentDay": "0-1",
            "filts": [
                {
                    "columnName": "#os",
                    "comparator": "equal",
                    "ftv": ["android"],
                    "tableType": "event",
                }
            ],
            "relation": "and",
        }
    }
}


@pytest.fixture(scope="module")
def connection() -> Any:
    """A DuckDB database with sample data for projects 102 and 2."""
    with duckdb.connect() as database:
        data.generate(database, project_id=102, users=USERS, today=TODAY, seed=SEED)
        data.generate(database, project_id=2, users=USERS, today=TODAY, seed=SEED + 1)
        yield database


@pytest.fixture(scope="module")
def evaluator(connection: duckdb.DuckDBPyConnection) -> ReferenceEvaluator:
    return ReferenceEvaluator(connection, 102, TODAY)


def run_query(connection: duckdb.DuckDBPyConnection, query: CompiledQuery) -> list[Any]:
    return connection.execute(query.sql, query.params).fetchall()


def cluster_users(
    connection: duckdb.DuckDBPyConnection, qp: dict[str, Any], project_id: int = 102
) -> set[int]:
    query = compile_cluster(
        ClusterDefinition.model_validate(qp), project_id=project_id, today=TODAY
    )
    rows = run_query(connection, query)
    users = {row[0] for row in rows}
    assert len(users) == len(rows), "the query returned a user more than once"
    return users


def tag_values(
    connection: duckdb.DuckDBPyConnection, tag_qp: dict[str, Any], project_id: int = 102
) -> dict[int, str]:
    query = compile_tag(
        TagDefinition.model_validate(tag_qp), project_id=project_id, today=TODAY
    )
    rows = run_query(connection, query)
    tags = {row[0]: row[1] for row in rows}
    assert len(tags) == len(rows), "the query tagged a user more than once"
    return tags


def user_filter(column: str, comparator: str, *values: str) -> dict[str, Any]:
    return {
        "columnName": column,
        "comparator": comparator,
        "ftv": list(values),
        "tableType": "user",
    }


def event_filter(column: str, comparator: str, *values: str) -> dict[str, Any]:
    return {
        "columnName": column,
        "comparator": comparator,
        "ftv": list(values),
        "tableType": "event",
    }


def event_condition(
    event: str,
    comparator: str = "greater",
    num: str = "0",
    *,
    analysis: str = "TIMES",
    quota: str | None = None,
    recent_day: str | None = "0-59",
    filts: list[dict[str, Any]] | None = None,
    relation: str | None = None,
    **window: str,
) -> dict[str, Any]:
    """An event condition: the measure of `event` compared with num."""
    condition: dict[str, Any] = {
        "eventName": event,
        "comparator": comparator,
        "num": num,
        "taPropQuota": {"analysis": analysis, **({"quota": quota} if quota else {})},
    }
    if recent_day is not None:
        condition["recentDay"] = recent_day
    condition.update(window)
    if filts is not None:
        condition["filts"] = filts
    if relation is not None:
        condition["relation"] = relation
    return condition


def assert_same_cluster(
    connection: duckdb.DuckDBPyConnection,
    evaluator: ReferenceEvaluator,
    qp: dict[str, Any],
) -> set[int]:
    compiled = cluster_users(connection, qp)
    expected = evaluator.cluster(ClusterDefinition.model_validate(qp))
    assert compiled == expected
    return compiled


def numeric_or_text(value: str) -> Any:
    try:
        return float(value)
    except ValueError:
        return value


def assert_same_tags(actual: dict[int, str], expected: dict[int, str]) -> None:
    assert actual.keys() == expected.keys()
    for user_id, value in expected.items():
        got, want = numeric_or_text(actual[user_id]), numeric_or_text(value)
        if isinstance(want, float) and isinstance(got, float):
            assert math.isclose(got, want, rel_tol=1e-9), (user_id, got, want)
        else:
            assert actual[user_id] == value, user_id


# User property comparators, on every type. The last field: whether the sample data
# must give at least one user, so that the case really tests something.
USER_FILTER_CASES = [
    ("channel", "equal", ["taptap"], True),
    ("channel", "equal", ["taptap", "huawei"], True),
    ("channel", "notEqual", ["taptap"], True),
    ("channel", "notEqual", ["taptap", "huawei"], True),
    ("country", "notEqual", ["CN"], True),
    ("nickname", "include", ["张"], True),
    ("nickname", "include", ["さ", "Zo"], True),
    ("nickname", "notInclude", ["_1"], True),
    ("nickname", "regexMatch", ["^M.ller_[0-9]+$"], True),
    ("nickname", "notRegexMatch", ["^[A-Za-z]"], True),
    ("country", "isNull", [], True),
    ("country", "notNull", [], True),
    ("user_level", "equal", ["3"], True),
    ("user_level", "notEqual", ["3", "4"], True),
    ("user_level", "greater", ["7"], True),
    ("user_level", "less", ["3"], True),
    ("user_level", "range", ["2", "4"], True),
    ("total_pay", "greater", ["250.5"], True),
    ("total_pay", "less", ["100"], True),
    ("total_pay", "range", ["10", "99.99"], True),
    ("total_pay", "isNull", [], True),
    ("total_pay", "notNull", [], True),
    ("gold", "equal", ["-1"], False),
    ("vip", "isTrue", [], True),
    ("vip", "isFalse", [], True),
    ("vip", "isNull", [], True),
    ("vip", "equal", ["true"], True),
    ("vip", "notEqual", ["TRUE"], True),
    ("register_time", "greater", ["2019-12-01 12:00:00"], True),
    ("register_time", "less", ["2019-11-01"], True),
    ("register_time", "range", ["2019-11-15 00:00:00", "2019-12-15 23:59:59"], True),
    ("last_login_time", "isNull", [], True),
    ("last_login_time", "notNull", [], True),
    ("#account_id", "equal", ["acc7"], True),
]


@pytest.mark.parametrize(("column", "comparator", "values", "found"), USER_FILTER_CASES)
def test_user_filter_comparator(
    connection: duckdb.DuckDBPyConnection,
    evaluator: ReferenceEvaluator,
    column: str,
    comparator: str,
    values: list[str],
    found: bool,
) -> None:
    users = assert_same_cluster(
        connection, evaluator, {"filts": [user_filter(column, comparator, *values)]}
    )
    if found:
        assert users


def test_timestamp_equal_and_not_equal(
    connection: duckdb.DuckDBPyConnection, evaluator: ReferenceEvaluator
) -> None:
    rows = connection.execute(
        'SELECT register_time FROM ta_user WHERE project_id = 102 AND "#user_id" = 5'
    ).fetchall()
    text = rows[0][0].strftime("%Y-%m-%d %H:%M:%S")
    equal = {"filts": [user_filter("register_time", "equal", text)]}
    assert 5 in assert_same_cluster(connection, evaluator, equal)
    not_equal = {"filts": [user_filter("register_time", "notEqual", text)]}
    assert 5 not in assert_same_cluster(connection, evaluator, not_equal)


def test_today_as_datetime_uses_its_date(connection: duckdb.DuckDBPyConnection) -> None:
    qp = ClusterDefinition.model_validate(REFERENCE_CLUSTER)
    late = datetime.datetime(2020, 1, 10, 18, 30)
    by_date = compile_cluster(qp, project_id=102, today=TODAY)
    by_datetime = compile_cluster(qp, project_id=102, today=late)
    assert by_datetime.params == by_date.params


EVENT_FILTER_CASES = [
    ("consume_item", "item_id", "equal", ["potion"]),
    ("consume_item", "item_id", "notEqual", ["potion", "sword"]),
    ("consume_item", "item_id", "include", ["skin"]),
    ("consume_item", "item_id", "notInclude", ["_0"]),
    ("consume_item", "item_id", "regexMatch", ["^s(word|hield)$"]),
    ("consume_item", "item_id", "notRegexMatch", ["^s"]),
    ("consume_item", "item_count", "greater", ["3"]),
    ("consume_item", "item_count", "range", ["2", "3"]),
    ("pay", "pay_amount", "equal", ["9.99"]),
    ("pay", "pay_amount", "less", ["5"]),
    ("pay", "test_num", "isNull", []),
    ("pay", "test_num", "greater", ["50.5"]),
    ("pay", "is_first_pay", "isTrue", []),
    ("pay", "is_first_pay", "isFalse", []),
    ("pay", "#os", "equal", ["ios"]),
    ("pay", "#vp@test_num", "notNull", []),
    ("login", "#event_time", "greater", ["2020-01-05 12:00:00"]),
    ("login", "#event_time", "range", ["2019-12-01", "2019-12-02 23:59:59"]),
    ("fight_success", "stage", "equal", ["boss"]),
    ("fight_success", "level", "less", ["10"]),
    ("activity_attend", "activity_reward", "isNull", []),
]


@pytest.mark.parametrize(
    ("event", "column", "comparator", "values"), EVENT_FILTER_CASES
)
def test_event_filter_comparator(
    connection: duckdb.DuckDBPyConnection,
    evaluator: ReferenceEvaluator,
    event: str,
    column: str,
    comparator: str,
    values: list[str],
) -> None:
    qp = {
        "events": [
            event_condition(event, filts=[event_filter(column, comparator, *values)])
        ]
    }
    users = assert_same_cluster(connection, evaluator, qp)
    assert users


MEASURE_CASES = [
    ("consume_item", "TIMES", None, "greater", "4"),
    ("consume_item", "TIMES", None, "equal", "0"),
    ("consume_item", "TIMES", None, "less", "1"),
    ("consume_item", "TIMES", None, "notEqual", "0"),
    ("consume_item", "TIMES", None, "range", "3,6"),
    ("pay", "SUM", "pay_amount", "greater", "50"),
    ("pay", "SUM", "pay_amount", "less", "10"),
    ("consume_item", "SUM", "item_count", "equal", "6"),
    ("pay", "AVG", "pay_amount", "range", "5,30"),
    ("consume_item", "AVG", "item_count", "greater", "3.5"),
    ("fight_success", "MAX", "level", "greater", "50"),
    ("fight_success", "MIN", "level", "less", "5"),
    ("pay", "MIN", "test_num", "less", "20"),
    ("pay", "MAX", "#vp@test_num", "notEqual", "0"),
    ("consume_item", "DISTINCT", "item_id", "equal", "2"),
    ("consume_item", "DISTINCT", "item_id", "greater", "3"),
    ("activity_attend", "DISTINCT", "activity_reward", "less", "1"),
    ("fight_success", "DISTINCT", "stage", "range", "2,3"),
]


@pytest.mark.parametrize(
    ("event", "analysis", "quota", "comparator", "num"), MEASURE_CASES
)
def test_event_measure(
    connection: duckdb.DuckDBPyConnection,
    evaluator: ReferenceEvaluator,
    event: str,
    analysis: str,
    quota: str | None,
    comparator: str,
    num: str,
) -> None:
    qp = {
        "events": [
            event_condition(
                event,
                comparator,
                num,
                analysis=analysis,
                quota=quota,
                recent_day="0-30",
            )
        ]
    }
    users = assert_same_cluster(connection, evaluator, qp)
    assert users


def test_times_zero_matches_users_without_events(
    connection: duckdb.DuckDBPyConnection,
) -> None:
    never = cluster_users(
        connection, {"events": [event_condition("pay", "equal", "0")]}
    )
    ever = cluster_users(
        connection, {"events": [event_condition("pay", "greater", "0")]}
    )
    assert never
    assert never.isdisjoint(ever)
    assert len(never) + len(ever) == USERS


def test_sum_without_events_matches_nobody(
    connection: duckdb.DuckDBPyConnection,
) -> None:
    below = cluster_users(
        connection,
        {
            "events": [
                event_condition(
                    "pay", "less", "1000000", analysis="SUM", quota="pay_amount"
                )
            ]
        },
    )
    payers = cluster_users(
        connection, {"events": [event_condition("pay", "greater", "0")]}
    )
    assert below == payers


RELATION_CASES: list[dict[str, Any]] = [
    {"events": [event_condition("pay", filts=[], relation="or")], "filts": []},
    {
        "events": [
            event_condition("consume_item", "greater", "4", recent_day="1-7"),
            event_condition("pay", "greater", "0", recent_day="0-1"),
        ],
        "event_relation": "and",
    },
    {
        "events": [
            event_condition("consume_item", "greater", "4", recent_day="1-7"),
            event_condition("pay", "greater", "0", recent_day="0-1"),
        ],
        "event_relation": "or",
    },
    {
        "filts": [
            user_filter("user_level", "equal", "3"),
            user_filter("vip", "isTrue"),
        ],
        "relation": "and",
    },
    {
        "filts": [
            user_filter("user_level", "equal", "3"),
            user_filter("vip", "isTrue"),
        ],
        "relation": "or",
    },
    {
        "events": [event_condition("pay", "greater", "0", recent_day="0-1")],
        "filts": [user_filter("channel", "equal", "taptap")],
        "event_user_relation": "or",
    },
    {
        "events": [event_condition("pay", "greater", "0", recent_day="0-1")],
        "filts": [user_filter("channel", "equal", "taptap")],
        "event_user_relation": "and",
    },
    {
        "events": [
            event_condition(
                "pay",
                filts=[
                    event_filter("#os", "equal", "ios"),
                    event_filter("pay_amount", "greater", "40"),
                ],
                relation="or",
            )
        ],
    },
    {
        "events": [
            event_condition(
                "pay",
                filts=[
                    event_filter("#os", "equal", "ios"),
                    event_filter("pay_amount", "greater", "40"),
                ],
                relation="and",
            )
        ],
    },
    {
        "events": [
            event_condition("login", "greater", "10"),
            event_condition("pay", "equal", "0"),
            event_condition(
                "share", "range", "1,2", filts=[event_filter("#os", "notEqual", "ios")]
            ),
        ],
        "event_relation": "or",
        "filts": [
            user_filter("country", "isNull"),
            user_filter("user_level", "greater", "8"),
        ],
        "relation": "or",
        "event_user_relation": "and",
    },
]


@pytest.mark.parametrize("qp", RELATION_CASES)
def test_relations(
    connection: duckdb.DuckDBPyConnection,
    evaluator: ReferenceEvaluator,
    qp: dict[str, Any],
) -> None:
    users = assert_same_cluster(connection, evaluator, qp)
    assert users


def test_or_relation_widens_and(connection: duckdb.DuckDBPyConnection) -> None:
    both = cluster_users(connection, RELATION_CASES[3])
    either = cluster_users(connection, RELATION_CASES[4])
    assert both < either


WINDOW_CASES: list[dict[str, str | None]] = [
    {"recent_day": "0-0"},
    {"recent_day": "3-3"},
    {"recent_day": "1-7"},
    {"recent_day": "10-40"},
    {
        "recent_day": None,
        "startTime": "2019-12-20 00:00:00",
        "endTime": "2019-12-31 00:00:00",
    },
    {
        "recent_day": None,
        "startTime": "2019-12-20 06:30:00",
        "endTime": "2019-12-31 18:15:00",
    },
    {
        "recent_day": None,
        "startTime": "2020-01-09 00:00:00",
        "endTime": "2020-01-09 00:00:00",
    },
    {
        "recent_day": "1-7",
        "startTime": "2019-12-01 00:00:00",
        "endTime": "2019-12-02 00:00:00",
    },
]


@pytest.mark.parametrize("window", WINDOW_CASES)
def test_window(
    connection: duckdb.DuckDBPyConnection,
    evaluator: ReferenceEvaluator,
    window: dict[str, Any],
) -> None:
    qp = {"events": [event_condition("login", "greater", "1", **window)]}
    users = assert_same_cluster(connection, evaluator, qp)
    assert users


def test_recent_day_wins_over_absolute_bounds(
    connection: duckdb.DuckDBPyConnection,
) -> None:
    relative = cluster_users(
        connection,
        {"events": [event_condition("login", "greater", "1", recent_day="1-7")]},
    )
    both = cluster_users(
        connection,
        {
            "events": [
                event_condition(
                    "login",
                    "greater",
                    "1",
                    recent_day="1-7",
                    startTime="2019-12-01 00:00:00",
                    endTime="2019-12-02 00:00:00",
                )
            ]
        },
    )
    assert both == relative


def test_window_bounds_exact() -> None:
    """recentDay "1-7" on 2020-01-10 runs from 2020-01-03 00:00:00 to 2020-01-09 23:59:59."""
    times = [
        datetime.datetime(2020, 1, 2, 23, 59, 59),
        datetime.datetime(2020, 1, 3, 0, 0, 0),
        datetime.datetime(2020, 1, 9, 23, 59, 59),
        datetime.datetime(2020, 1, 10, 0, 0, 0),
    ]
    with duckdb.connect() as database:
        data.create_tables(database)
        database.execute(
            'INSERT INTO ta_user (project_id, "#user_id", "#account_id") VALUES (1, 1, ?)',
            ["a1"],
        )
        for moment in times:
            database.execute(
                'INSERT INTO ta_event (project_id, "#user_id", "#event_name", "#event_time") '
                "VALUES (1, 1, 'consume_item', ?)",
                [moment],
            )
        count = {
            "events": [event_condition("consume_item", "equal", "2", recent_day="1-7")]
        }
        query = compile_cluster(
            ClusterDefinition.model_validate(count), project_id=1, today=TODAY
        )
        assert run_query(database, query) == [(1,)]
        detail = dict(
            count["events"][0],
            startTime="2020-01-03 00:00:00",
            endTime="2020-01-09 00:00:00",
        )
        del detail["recentDay"]
        query = compile_cluster(
            ClusterDefinition.model_validate({"events": [detail]}),
            project_id=1,
            today=TODAY,
        )
        assert run_query(database, query) == [(1,)]
        inclusive = dict(detail, endTime="2020-01-09 23:59:58")
        query = compile_cluster(
            ClusterDefinition.model_validate({"events": [inclusive]}),
            project_id=1,
            today=TODAY,
        )
        assert run_query(database, query) == []


def test_reference_cluster_example(
    connection: duckdb.DuckDBPyConnection, evaluator: ReferenceEvaluator
) -> None:
    users = assert_same_cluster(connection, evaluator, REFERENCE_CLUSTER)
    assert users


def test_reference_detail_window_equals_recent_day(
    connection: duckdb.DuckDBPyConnection,
) -> None:
    """The detail example echoes "1-7" as 2020-01-03 00:00:00 to 2020-01-09 00:00:00."""
    absolute = {
        **REFERENCE_DETAIL_CLUSTER,
        "events": [dict(REFERENCE_DETAIL_CLUSTER["events"][0])],
    }
    del absolute["events"][0]["recentDay"]
    assert cluster_users(connection, absolute) == cluster_users(
        connection, REFERENCE_CLUSTER
    )


def test_reference_custom_tag_example(
    connection: duckdb.DuckDBPyConnection, evaluator: ReferenceEvaluator
) -> None:
    tags = tag_values(connection, REFERENCE_CUSTOM_TAG)
    assert tags == evaluator.tag(TagDefinition.model_validate(REFERENCE_CUSTOM_TAG))
    assert "tag value 1" in tags.values()
    assert "tag vaule 2" in tags.values()


def test_reference_first_last_tag_example(
    connection: duckdb.DuckDBPyConnection,
) -> None:
    tags = tag_values(connection, REFERENCE_FIRST_LAST_TAG, project_id=2)
    expected = ReferenceEvaluator(connection, 2, TODAY).tag(
        TagDefinition.model_validate(REFERENCE_FIRST_LAST_TAG)
    )
    assert_same_tags(tags, expected)
    assert tags


def test_reference_quota_tag_example(connection: duckdb.DuckDBPyConnection) -> None:
    tags = tag_values(connection, REFERENCE_QUOTA_TAG, project_id=2)
    expected = ReferenceEvaluator(connection, 2, TODAY).tag(
        TagDefinition.model_validate(REFERENCE_QUOTA_TAG)
    )
    assert tags == expected
    assert tags


def test_custom_tag_first_value_wins(
    connection: duckdb.DuckDBPyConnection, evaluator: ReferenceEvaluator
) -> None:
    level_3 = {"filts": [user_filter("user_level", "equal", "3")]}
    vip = {"filts": [user_filter("vip", "isTrue")]}
    tag_qp = {
        "userTagValueDefs": [
            {"tagValue": "level 3", "userClusterDef": level_3},
            {"tagValue": "vip", "userClusterDef": vip},
            {
                "tagValue": "payer",
                "userClusterDef": {
                    "events": [event_condition("pay", recent_day="0-30")],
                    "filts": [],
                },
            },
        ]
    }
    tags = tag_values(connection, tag_qp)
    assert tags == evaluator.tag(TagDefinition.model_validate(tag_qp))
    vip_level_3 = cluster_users(
        connection, {"filts": [*level_3["filts"], *vip["filts"]]}
    )
    assert vip_level_3
    assert {tags[user] for user in vip_level_3} == {"level 3"}


FIRST_LAST_CASES = [
    ("pay", "#vp@test_num", True, "0-30"),
    ("pay", "test_num", False, "0-30"),
    ("consume_item", "item_id", True, "0-59"),
    ("consume_item", "item_id", False, "0-59"),
    ("fight_success", "level", True, "1-7"),
    ("pay", "is_first_pay", False, "0-59"),
    ("login", "#event_time", True, "0-59"),
    ("login", "#app_version", False, "0-10"),
]


@pytest.mark.parametrize(("event", "column", "first", "recent_day"), FIRST_LAST_CASES)
def test_first_last_tag(
    connection: duckdb.DuckDBPyConnection,
    evaluator: ReferenceEvaluator,
    event: str,
    column: str,
    first: bool,
    recent_day: str,
) -> None:
    tag_qp = {
        "userTagConFirstLastEventDef": {
            "userTagConFirstLastEvent": {
                "calcPropVo": {
                    "isCalc": False,
                    "property": {"columnName": column, "tableType": "event"},
                },
                "eventName": event,
                "isFirstEvent": first,
                "recentDay": recent_day,
            }
        }
    }
    tags = tag_values(connection, tag_qp)
    assert_same_tags(tags, evaluator.tag(TagDefinition.model_validate(tag_qp)))
    assert tags


def test_first_last_tag_ties_on_time() -> None:
    """Events at the same second: first takes the smallest value, last the largest."""
    moment = datetime.datetime(2020, 1, 9, 12, 0, 0)
    with duckdb.connect() as database:
        data.create_tables(database)
        database.execute('INSERT INTO ta_user (project_id, "#user_id") VALUES (1, 1)')
        for item in ["b", "a", None, "c"]:
            database.execute(
                'INSERT INTO ta_event (project_id, "#user_id", "#event_name", "#event_time", item_id) '
                "VALUES (1, 1, 'pay', ?, ?)",
                [moment, item],
            )
        for first, expected in ((True, "a"), (False, "c")):
            tag_qp = TagDefinition.model_validate(
                {
                    "userTagConFirstLastEventDef": {
                        "userTagConFirstLastEvent": {
                            "calcPropVo": {
                                "property": {
                                    "columnName": "item_id",
                                    "tableType": "event",
                                }
                            },
                            "eventName": "pay",
                            "isFirstEvent": first,
                            "recentDay": "1-1",
                        }
                    }
                }
            )
            query = compile_tag(tag_qp, project_id=1, today=TODAY)
            assert run_query(database, query) == [(1, expected)]


QUOTA_CASES = [
    ("pay", "TIMES", None),
    ("pay", "SUM", "pay_amount"),
    ("consume_item", "SUM", "item_count"),
    ("pay", "AVG", "#vp@test_num"),
    ("fight_success", "MAX", "level"),
    ("fight_success", "MIN", "level"),
    ("consume_item", "DISTINCT", "item_id"),
]


@pytest.mark.parametrize(("event", "analysis", "quota"), QUOTA_CASES)
def test_quota_tag(
    connection: duckdb.DuckDBPyConnection,
    evaluator: ReferenceEvaluator,
    event: str,
    analysis: str,
    quota: str | None,
) -> None:
    quota_event: dict[str, Any] = {
        "eventName": event,
        "analysis": analysis,
        "recentDay": "0-14",
    }
    if quota:
        quota_event["quota"] = quota
    tag_qp = {"userTagConQuotaDef": {"userTagConQuotaEvent": quota_event}}
    tags = tag_values(connection, tag_qp)
    assert_same_tags(tags, evaluator.tag(TagDefinition.model_validate(tag_qp)))
    assert tags


def test_quota_tag_skips_users_without_event(
    connection: duckdb.DuckDBPyConnection,
) -> None:
    tag_qp = {
        "userTagConQuotaDef": {
            "userTagConQuotaEvent": {
                "eventName": "pay",
                "analysis": "TIMES",
                "recentDay": "0-1",
            }
        }
    }
    tags = tag_values(connection, tag_qp)
    assert "0" not in tags.values()
    assert len(tags) < USERS


ERROR_CASES: list[tuple[str, dict[str, Any], str]] = [
    (
        "cluster",
        {"filts": [user_filter("user_lvl", "equal", "3")]},
        "qp.filts[0].columnName",
    ),
    (
        "cluster",
        {"filts": [user_filter("pay_amount", "greater", "3")]},
        "qp.filts[0].columnName",
    ),
    (
        "cluster",
        {"filts": [user_filter("project_id", "equal", "3")]},
        "qp.filts[0].columnName",
    ),
    (
        "cluster",
        {"filts": [user_filter("user_level", "equal", "3", "three")]},
        "qp.filts[0].ftv[1]",
    ),
    ("cluster", {"filts": [user_filter("vip", "equal", "yes")]}, "qp.filts[0].ftv[0]"),
    (
        "cluster",
        {"filts": [user_filter("register_time", "greater", "last week")]},
        "qp.filts[0].ftv[0]",
    ),
    (
        "cluster",
        {"filts": [user_filter("total_pay", "greater", "nan")]},
        "qp.filts[0].ftv[0]",
    ),
    (
        "cluster",
        {"filts": [user_filter("vip", "greater", "1")]},
        "qp.filts[0].comparator",
    ),
    (
        "cluster",
        {"filts": [user_filter("channel", "isTrue")]},
        "qp.filts[0].comparator",
    ),
    (
        "cluster",
        {"filts": [user_filter("user_level", "include", "3")]},
        "qp.filts[0].comparator",
    ),
    (
        "cluster",
        {"filts": [user_filter("channel", "regexMatch", "(?=tap)")]},
        "qp.filts[0].ftv[0]",
    ),
    (
        "cluster",
        {
            "events": [
                event_condition(
                    "pay", filts=[event_filter("pay_amout", "greater", "3")]
                )
            ]
        },
        "qp.events[0].filts[0].columnName",
    ),
    (
        "cluster",
        {
            "events": [
                event_condition(
                    "pay", filts=[event_filter("pay_amount", "greater", "lots")]
                )
            ]
        },
        "qp.events[0].filts[0].ftv[0]",
    ),
    (
        "cluster",
        {"events": [event_condition("pay", analysis="SUM", quota="pay_amout")]},
        "qp.events[0].taPropQuota.quota",
    ),
    (
        "cluster",
        {"events": [event_condition("pay", analysis="AVG", quota="item_id")]},
        "qp.events[0].taPropQuota.quota",
    ),
    (
        "tag",
        {
            "userTagValueDefs": [
                {
                    "tagValue": "a",
                    "userClusterDef": {
                        "filts": [user_filter("user_level", "equal", "3")]
                    },
                },
                {
                    "tagValue": "b",
                    "userClusterDef": {"filts": [user_filter("levl", "equal", "3")]},
                },
            ]
        },
        "tagQp.userTagValueDefs[1].userClusterDef.filts[0].columnName",
    ),
    (
        "tag",
        {
            "userTagConFirstLastEventDef": {
                "userTagConFirstLastEvent": {
                    "calcPropVo": {
                        "property": {"columnName": "#vp@missing", "tableType": "event"}
                    },
                    "eventName": "pay",
                    "isFirstEvent": True,
                    "recentDay": "0-1",
                }
            }
        },
        "tagQp.userTagConFirstLastEventDef.userTagConFirstLastEvent.calcPropVo.property.columnName",
    ),
    (
        "tag",
        {
            "userTagConFirstLastEventDef": {
                "userTagConFirstLastEvent": {
                    "calcPropVo": {
                        "isCalc": True,
                        "property": {"columnName": "test_num", "tableType": "event"},
                    },
                    "eventName": "pay",
                    "isFirstEvent": True,
                    "recentDay": "0-1",
                }
            }
        },
        "tagQp.userTagConFirstLastEventDef.userTagConFirstLastEvent.calcPropVo.isCalc",
    ),
    (
        "tag",
        {
            "userTagConFirstLastEventDef": {
                "userTagConFirstLastEvent": {
                    "calcPropVo": {
                        "property": {"columnName": "user_level", "tableType": "user"}
                    },
                    "eventName": "pay",
                    "isFirstEvent": True,
                    "recentDay": "0-1",
                }
            }
        },
        "tagQp.userTagConFirstLastEventDef.userTagConFirstLastEvent.calcPropVo.property.tableType",
    ),
    (
        "tag",
        {
            "userTagConQuotaDef": {
                "userTagConQuotaEvent": {
                    "eventName": "pay",
                    "analysis": "SUM",
                    "quota": "item_id",
                    "recentDay": "0-1",
                }
            }
        },
        "tagQp.userTagConQuotaDef.userTagConQuotaEvent.quota",
    ),
    (
        "tag",
        {
            "userTagConQuotaDef": {
                "userTagConQuotaEvent": {
                    "type": "ratio",
                    "eventName": "pay",
                    "analysis": "TIMES",
                    "recentDay": "0-1",
                }
            }
        },
        "tagQp.userTagConQuotaDef.userTagConQuotaEvent.type",
    ),
]


@pytest.mark.parametrize(("kind", "definition", "part"), ERROR_CASES)
def test_definition_error_part(
    kind: str, definition: dict[str, Any], part: str
) -> None:
    with pytest.raises(DefinitionError) as raised:
        if kind == "cluster":
            compile_cluster(
                ClusterDefinition.model_validate(definition),
                project_id=102,
                today=TODAY,
            )
        else:
            compile_tag(
                TagDefinition.model_validate(definition), project_id=102, today=TODAY
            )
    assert raised.value.part == part
    assert str(raised.value).startswith(f"{part}: ")


# Mistakes that the models reject, so a definition never reaches the compiler.
MODEL_ERROR_CASES: list[tuple[str, dict[str, Any], str]] = [
    (
        "cluster",
        {"filts": [user_filter("user_level", "range", "5", "2")]},
        "qp.filts[0].ftv",
    ),
    (
        "cluster",
        {"filts": [event_filter("#os", "equal", "ios")]},
        "qp.filts[0].tableType",
    ),
    (
        "cluster",
        {
            "events": [
                event_condition("pay", filts=[user_filter("user_level", "equal", "3")])
            ]
        },
        "qp.events[0].filts[0].tableType",
    ),
    (
        "cluster",
        {"events": [event_condition("pay", "range", "5,1")]},
        "qp.events[0].num",
    ),
]


@pytest.mark.parametrize(("kind", "definition", "part"), MODEL_ERROR_CASES)
def test_model_rejects_before_compiling(
    kind: str, definition: dict[str, Any], part: str
) -> None:
    assert kind == "cluster"
    with pytest.raises(ValidationError) as raised:
        ClusterDefinition.model_validate(definition)
    assert part.rsplit(".", 1)[-1] in str(raised.value)


def test_unknown_column_error_suggests() -> None:
    with pytest.raises(DefinitionError) as raised:
        compile_cluster(
            ClusterDefinition.model_validate(
                {"filts": [user_filter("user_lvl", "equal", "3")]}
            ),
            project_id=102,
            today=TODAY,
        )
    assert "'user_lvl'" in raised.value.message
    assert "'user_level'" in raised.value.message


def test_uncastable_value_error_names_value() -> None:
    with pytest.raises(DefinitionError) as raised:
        compile_cluster(
            ClusterDefinition.model_validate(
                {"filts": [user_filter("user_level", "equal", "three")]}
            ),
            project_id=102,
            today=TODAY,
        )
    assert "'three'" in raised.value.message
    assert "number" in raised.value.message


def test_values_are_bound_parameters(connection: duckdb.DuckDBPyConnection) -> None:
    qp = {
        "events": [
            event_condition(
                INJECTION, filts=[event_filter("item_id", "include", INJECTION)]
            )
        ],
        "filts": [
            user_filter("nickname", "equal", INJECTION),
            user_filter("channel", "regexMatch", INJECTION),
        ],
        "event_user_relation": "or",
    }
    query = compile_cluster(
        ClusterDefinition.model_validate(qp), project_id=102, today=TODAY
    )
    assert INJECTION not in query.sql
    assert "DROP" not in query.sql
    assert INJECTION in query.params
    assert run_query(connection, query) == []
    remaining = connection.execute(
        "SELECT count(*) FROM ta_user WHERE project_id = 102"
    ).fetchall()
    assert remaining == [(USERS,)]


def test_tag_value_is_bound_parameter(connection: duckdb.DuckDBPyConnection) -> None:
    tag_qp = {
        "userTagValueDefs": [
            {
                "tagValue": INJECTION,
                "userClusterDef": {"filts": [user_filter("user_level", "equal", "3")]},
            }
        ]
    }
    query = compile_tag(
        TagDefinition.model_validate(tag_qp), project_id=102, today=TODAY
    )
    assert INJECTION not in query.sql
    values = {row[1] for row in run_query(connection, query)}
    assert values == {INJECTION}


def test_query_reads_project_only(connection: duckdb.DuckDBPyConnection) -> None:
    users_102 = cluster_users(connection, REFERENCE_CLUSTER, project_id=102)
    users_2 = cluster_users(connection, REFERENCE_CLUSTER, project_id=2)
    expected_2 = ReferenceEvaluator(connection, 2, TODAY).cluster(
        ClusterDefinition.model_validate(REFERENCE_CLUSTER)
    )
    assert users_2 == expected_2
    assert users_102 != users_2


def test_generate_is_deterministic() -> None:
    digests = []
    for _ in range(2):
        with duckdb.connect() as database:
            data.generate(database, project_id=7, users=50, today=TODAY, seed=3)
            digests.append(
                (
                    database.execute(
                        "SELECT count(*), sum(hash(COLUMNS(*))) FROM ta_user"
                    ).fetchall(),
                    database.execute(
                        "SELECT count(*), sum(hash(COLUMNS(*))) FROM ta_event"
                    ).fetchall(),
                )
            )
    assert digests[0] == digests[1]


def test_generate_seed_changes_data() -> None:
    counts = []
    for seed in (3, 4):
        with duckdb.connect() as database:
            data.generate(database, project_id=7, users=50, today=TODAY, seed=seed)
            counts.append(
                database.execute(
                    "SELECT sum(hash(COLUMNS(*))) FROM ta_event"
                ).fetchall()
            )
    assert counts[0] != counts[1]


def test_generate_is_idempotent_per_project() -> None:
    with duckdb.connect() as database:
        assert data.generate(database, project_id=7, users=50, today=TODAY, seed=3)
        before = database.execute("SELECT count(*) FROM ta_event").fetchall()
        assert not data.generate(database, project_id=7, users=50, today=TODAY, seed=3)
        assert database.execute("SELECT count(*) FROM ta_event").fetchall() == before
        assert data.generate(database, project_id=8, users=20, today=TODAY, seed=3)
        users = database.execute(
            "SELECT project_id, count(*) FROM ta_user GROUP BY 1 ORDER BY 1"
        ).fetchall()
        assert users == [(7, 50), (8, 20)]


def test_generate_events_per_user(connection: duckdb.DuckDBPyConnection) -> None:
    rows = connection.execute(
        "SELECT count(*) FROM ta_event WHERE project_id = 102"
    ).fetchall()
    assert 20 * USERS < rows[0][0] < 40 * USERS


def test_generate_window_of_days(connection: duckdb.DuckDBPyConnection) -> None:
    rows = connection.execute(
        'SELECT min("#event_time"), max("#event_time") FROM ta_event'
    ).fetchall()
    first, last = rows[0]
    assert first >= datetime.datetime(2019, 11, 12)
    assert last < datetime.datetime(2020, 1, 11)


def test_generate_unique_user_ids(connection: duckdb.DuckDBPyConnection) -> None:
    rows = connection.execute(
        'SELECT count(*), count(DISTINCT "#user_id"), count(DISTINCT "#account_id") FROM ta_user WHERE project_id = 2'
    ).fetchall()
    assert rows == [(USERS, USERS, USERS)]


def test_generate_rejects_no_users() -> None:
    with (
        duckdb.connect() as database,
        pytest.raises(ValueError, match="users must be at least 1"),
    ):
        data.generate(database, project_id=7, users=0, today=TODAY, seed=3)


def test_catalog_matches_model(connection: duckdb.DuckDBPyConnection) -> None:
    catalog = sample_catalog(connection, 102)
    parsed = EventCatalog.model_validate(catalog)
    assert parsed.projectId == 102
    events = {event["name"]: event["properties"] for event in catalog["events"]}
    assert "pay_amount" in events["pay"]
    assert "activity_reward" not in events["pay"]
    assert "player_register" in events
    types = {prop["name"]: prop["type"] for prop in catalog["eventProperties"]}
    assert types["test_num"] == "number"
    assert types["is_first_pay"] == "boolean"
    assert types["#event_time"] == "datetime"
    assert types["#os"] == "string"
    user_types = {prop["name"]: prop["type"] for prop in catalog["userProperties"]}
    assert user_types["register_time"] == "datetime"
    assert "project_id" not in user_types


def test_catalog_of_empty_project(connection: duckdb.DuckDBPyConnection) -> None:
    catalog = sample_catalog(connection, 999)
    assert catalog["events"] == []
    assert catalog["userProperties"]


# Building blocks of random definitions: event -> quota properties by analysis,
# and filters that fit each event or the user table.
RANDOM_MEASURES: dict[str, list[tuple[str, str | None]]] = {
    "consume_item": [("TIMES", None), ("SUM", "item_count"), ("DISTINCT", "item_id")],
    "pay": [("TIMES", None), ("SUM", "pay_amount"), ("MAX", "test_num")],
    "fight_success": [("TIMES", None), ("MIN", "level"), ("DISTINCT", "stage")],
    "login": [("TIMES", None), ("DISTINCT", "#app_version")],
    "activity_attend": [("TIMES", None), ("DISTINCT", "activity_reward")],
}
RANDOM_EVENT_FILTERS = [
    event_filter("#os", "equal", "android"),
    event_filter("#os", "notEqual", "ios", "mac"),
    event_filter("#app_version", "include", "2.0"),
    event_filter("#event_time", "greater", "2019-12-25 08:00:00"),
]
RANDOM_USER_FILTERS = [
    user_filter("user_level", "range", "2", "5"),
    user_filter("vip", "isFalse"),
    user_filter("country", "equal", "CN", "JP"),
    user_filter("total_pay", "isNull"),
    user_filter("nickname", "regexMatch", "^[^A-Z]"),
    user_filter("register_time", "less", "2019-12-20"),
]
RANDOM_WINDOWS: list[dict[str, str | None]] = [
    {"recent_day": "0-6"},
    {"recent_day": "1-30"},
    {"recent_day": "0-59"},
    {
        "recent_day": None,
        "startTime": "2019-12-10 00:00:00",
        "endTime": "2019-12-24 00:00:00",
    },
]


def random_definition(seed: int) -> dict[str, Any]:
    """A definition built at random from the blocks above, the same for a seed."""
    chooser = random.Random(seed)
    events = []
    for _ in range(chooser.randint(0, 3)):
        name = chooser.choice(list(RANDOM_MEASURES))
        analysis, quota = chooser.choice(RANDOM_MEASURES[name])
        comparator = chooser.choice(["greater", "less", "range", "equal"])
        if comparator == "range":
            low = chooser.randint(0, 4)
            num = f"{low},{low + chooser.randint(0, 10)}"
        else:
            num = str(chooser.randint(0, 12))
        filts = chooser.sample(RANDOM_EVENT_FILTERS, chooser.randint(0, 2))
        events.append(
            event_condition(
                name,
                comparator,
                num,
                analysis=analysis,
                quota=quota,
                filts=filts,
                relation=chooser.choice(["and", "or"]),
                **chooser.choice(RANDOM_WINDOWS),
            )
        )
    minimum_filters = 0 if events else 1
    filts = chooser.sample(RANDOM_USER_FILTERS, chooser.randint(minimum_filters, 3))
    return {
        "events": events,
        "event_relation": chooser.choice(["and", "or"]),
        "filts": filts,
        "relation": chooser.choice(["and", "or"]),
        "event_user_relation": chooser.choice(["and", "or"]),
    }


@pytest.mark.parametrize("seed", range(60))
def test_random_definition(
    connection: duckdb.DuckDBPyConnection, evaluator: ReferenceEvaluator, seed: int
) -> None:
    assert_same_cluster(connection, evaluator, random_definition(seed))


def test_random_definitions_find_users(connection: duckdb.DuckDBPyConnection) -> None:
    found = [
        bool(cluster_users(connection, random_definition(seed))) for seed in range(60)
    ]
    assert sum(found) > 30
