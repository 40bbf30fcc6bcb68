"""The event catalog: file format, the store, and the checks of definitions."""

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from ta_cohort_mcp.models import ClusterDefinition, TagDefinition
from ta_cohort_mcp.models.catalog import EventCatalog
from ta_cohort_mcp.schemas import load_schema
from ta_cohort_mcp.server.catalog import (
    CatalogFileError,
    CatalogStore,
    ProjectCatalog,
    check_definition,
    load_catalog_file,
)

pytestmark = pytest.mark.anyio

CATALOG: dict[str, Any] = {
    "projectId": 102,
    "events": [
        {"name": "consume_item", "properties": ["item_name", "pay_amount"]},
        {"name": "player_register"},
        {"name": "fight_success"},
        {"name": "pay", "properties": ["pay_amount", "#os", "#vp@test_num"]},
        {"name": "activity_attend", "properties": ["activity_reward", "#os"]},
    ],
    "eventProperties": [
        {"name": "item_name", "type": "string"},
        {"name": "pay_amount", "type": "number"},
        {"name": "#os", "type": "string"},
        {"name": "#vp@test_num", "type": "number"},
        {"name": "activity_reward", "type": "number"},
        {"name": "is_first_pay", "type": "boolean"},
    ],
    "userProperties": [
        {"name": "user_level", "type": "number"},
        {"name": "vip", "type": "boolean"},
        {"name": "register_time", "type": "datetime"},
        {"name": "channel", "type": "string"},
    ],
}


def project_catalog(data: dict[str, Any] | None = None) -> ProjectCatalog:
    return ProjectCatalog(EventCatalog.model_validate(data or CATALOG), 102)


def event(name: str = "consume_item", **extra: Any) -> dict[str, Any]:
    condition: dict[str, Any] = {
        "eventName": name,
        "comparator": "greater",
        "num": "4",
        "recentDay": "1-7",
        "taPropQuota": {"analysis": "TIMES"},
    }
    condition.update(extra)
    return condition


def user_filter(column: str, comparator: str, ftv: list[str] | None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "columnName": column,
        "comparator": comparator,
        "tableType": "user",
    }
    if ftv is not None:
        item["ftv"] = ftv
    return item


def qp_problems(qp: dict[str, Any]) -> list[Any]:
    definition = ClusterDefinition.model_validate(qp)
    return check_definition(definition, project_catalog(), "qp")


def test_check_reference_example_passes() -> None:
    qp = {
        "events": [event()],
        "filts": [user_filter("user_level", "equal", ["3"])],
        "event_relation": "and",
        "relation": "and",
        "event_user_relation": "and",
    }
    assert qp_problems(qp) == []


def test_check_misspelt_event_suggests_closest() -> None:
    problems = qp_problems({"events": [event("consume_iten")]})
    assert len(problems) == 1
    problem = problems[0]
    assert problem.path == "qp.events[0].eventName"
    assert problem.closest == "consume_item"
    assert problem.value == "consume_iten"
    assert problem.allowed is not None
    assert problem.allowed[0] == "consume_item"
    assert "did you mean 'consume_item'?" in problem.message


def test_check_unknown_event_without_close_name() -> None:
    problems = qp_problems({"events": [event("zzzz")]})
    assert problems[0].closest is None
    assert "unknown event 'zzzz'" in problems[0].message


@pytest.mark.parametrize(
    ("column", "comparator", "ftv", "kind"),
    [
        ("user_level", "include", ["3"], "number"),
        ("channel", "isTrue", None, "string"),
        ("vip", "greater", ["1"], "boolean"),
        ("register_time", "regexMatch", ["^2020"], "datetime"),
        ("vip", "equal", ["true"], "boolean"),
        ("channel", "range", ["a", "b"], "string"),
    ],
)
def test_check_comparator_not_fitting_type(
    column: str, comparator: str, ftv: list[str] | None, kind: str
) -> None:
    problems = qp_problems({"filts": [user_filter(column, comparator, ftv)]})
    assert len(problems) == 1
    assert problems[0].path == "qp.filts[0].comparator"
    assert problems[0].value == comparator
    assert problems[0].allowed is not None
    assert comparator not in problems[0].allowed
    assert f"a {kind} property" in problems[0].message


@pytest.mark.parametrize(
    ("column", "comparator", "ftv"),
    [
        ("user_level", "range", ["1", "5"]),
        ("user_level", "notNull", None),
        ("channel", "include", ["app"]),
        ("channel", "regexMatch", ["^ap+$"]),
        ("vip", "isFalse", None),
        ("register_time", "greater", ["2020-01-03 00:00:00"]),
        ("register_time", "less", ["2020-01-03"]),
    ],
)
def test_check_comparator_fitting_type(
    column: str, comparator: str, ftv: list[str] | None
) -> None:
    assert qp_problems({"filts": [user_filter(column, comparator, ftv)]}) == []


def test_check_number_value_not_numeric() -> None:
    problems = qp_problems({"filts": [user_filter("user_level", "equal", ["3", "x"])]})
    assert len(problems) == 1
    assert problems[0].path == "qp.filts[0].ftv[1]"
    assert problems[0].value == "x"


def test_check_datetime_value_invalid() -> None:
    problems = qp_problems(
        {"filts": [user_filter("register_time", "greater", ["yesterday"])]}
    )
    assert problems[0].path == "qp.filts[0].ftv[0]"
    assert "yyyy-MM-dd" in (problems[0].expected or "")


def test_check_unknown_user_property_suggests() -> None:
    problems = qp_problems({"filts": [user_filter("user_levle", "equal", ["3"])]})
    assert problems[0].path == "qp.filts[0].columnName"
    assert problems[0].closest == "user_level"


def test_check_event_property_as_user_property() -> None:
    problems = qp_problems({"filts": [user_filter("pay_amount", "greater", ["1"])]})
    assert problems[0].path == "qp.filts[0].columnName"
    assert "set tableType to 'event'" in problems[0].message


def test_check_event_filter_uses_event_properties() -> None:
    condition = event(
        "pay",
        filts=[
            {
                "columnName": "#os",
                "comparator": "equal",
                "ftv": ["android"],
                "tableType": "event",
            },
            {
                "columnName": "item_name",
                "comparator": "equal",
                "ftv": ["a"],
                "tableType": "event",
            },
        ],
    )
    problems = qp_problems({"events": [condition]})
    assert len(problems) == 1
    assert problems[0].path == "qp.events[0].filts[1].columnName"
    assert "event 'pay' has no such property" in problems[0].message


def test_check_event_without_list_accepts_every_property() -> None:
    condition = event(
        "player_register",
        filts=[
            {
                "columnName": "item_name",
                "comparator": "include",
                "ftv": ["s"],
                "tableType": "event",
            }
        ],
    )
    assert qp_problems({"events": [condition]}) == []


def test_check_sum_of_string_property() -> None:
    condition = event(taPropQuota={"analysis": "SUM", "quota": "item_name"})
    problems = qp_problems({"events": [condition]})
    assert len(problems) == 1
    assert problems[0].path == "qp.events[0].taPropQuota.analysis"
    assert problems[0].allowed == ["DISTINCT"]


def test_check_distinct_of_string_property() -> None:
    condition = event(taPropQuota={"analysis": "DISTINCT", "quota": "item_name"})
    assert qp_problems({"events": [condition]}) == []


def test_check_unknown_quota_property() -> None:
    condition = event(taPropQuota={"analysis": "SUM", "quota": "pay_amout"})
    problems = qp_problems({"events": [condition]})
    assert problems[0].path == "qp.events[0].taPropQuota.quota"
    assert problems[0].closest == "pay_amount"


def test_check_collects_every_problem() -> None:
    qp = {
        "events": [event("consume_iten"), event("pay")],
        "filts": [
            user_filter("user_levle", "equal", ["3"]),
            user_filter("vip", "greater", ["1"]),
        ],
    }
    paths = [problem.path for problem in qp_problems(qp)]
    assert paths == [
        "qp.events[0].eventName",
        "qp.filts[0].columnName",
        "qp.filts[1].comparator",
    ]


def test_check_custom_tag_values() -> None:
    tag = TagDefinition.model_validate(
        {
            "userTagValueDefs": [
                {
                    "tagValue": "a",
                    "userClusterDef": {"events": [event("player_register")]},
                },
                {
                    "tagValue": "b",
                    "userClusterDef": {"events": [event("fight_sucess")]},
                },
            ]
        }
    )
    problems = check_definition(tag, project_catalog(), "tagQp")
    assert len(problems) == 1
    assert (
        problems[0].path
        == "tagQp.userTagValueDefs[1].userClusterDef.events[0].eventName"
    )
    assert problems[0].closest == "fight_success"


def test_check_first_last_tag() -> None:
    tag = TagDefinition.model_validate(
        {
            "userTagConFirstLastEventDef": {
                "userTagConFirstLastEvent": {
                    "calcPropVo": {
                        "isCalc": False,
                        "property": {"columnName": "#vp@test_nm", "tableType": "event"},
                    },
                    "eventName": "pay",
                    "isFirstEvent": True,
                    "recentDay": "0-1",
                    "filts": [
                        {
                            "columnName": "#os",
                            "comparator": "greater",
                            "ftv": ["1"],
                            "tableType": "event",
                        }
                    ],
                }
            }
        }
    )
    problems = check_definition(tag, project_catalog(), "tagQp")
    base = "tagQp.userTagConFirstLastEventDef.userTagConFirstLastEvent"
    assert [problem.path for problem in problems] == [
        f"{base}.calcPropVo.property.columnName",
        f"{base}.filts[0].comparator",
    ]
    assert problems[0].closest == "#vp@test_num"


def test_check_quota_tag() -> None:
    tag = TagDefinition.model_validate(
        {
            "userTagConQuotaDef": {
                "userTagConQuotaEvent": {
                    "quota": "activity_reward",
                    "analysis": "AVG",
                    "eventName": "activity_atend",
                    "recentDay": "0-1",
                }
            }
        }
    )
    problems = check_definition(tag, project_catalog(), "tagQp")
    assert len(problems) == 1
    assert problems[0].path == "tagQp.userTagConQuotaDef.userTagConQuotaEvent.eventName"
    assert problems[0].closest == "activity_attend"


def test_catalog_file_single_object(tmp_path: Path) -> None:
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(CATALOG), encoding="utf-8")
    catalogs = load_catalog_file(path)
    assert list(catalogs) == [102]
    assert catalogs[102].events[0].name == "consume_item"


def test_catalog_file_projects_with_default(tmp_path: Path) -> None:
    path = tmp_path / "catalog.json"
    data = {"events": [{"name": "login"}], "projects": [CATALOG]}
    path.write_text(json.dumps(data), encoding="utf-8")
    catalogs = load_catalog_file(path)
    assert set(catalogs) == {102, None}
    assert catalogs[None].events[0].name == "login"


def test_catalog_file_projects_only(tmp_path: Path) -> None:
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps({"projects": [CATALOG]}), encoding="utf-8")
    assert list(load_catalog_file(path)) == [102]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{", "not valid JSON"),
        ('{"events": [{"name": "a"}, {"name": "a"}]}', "more than once"),
        ('{"eventProperties": [{"name": "a", "type": "text"}]}', "type"),
        (
            '{"events": [{"name": "a", "properties": ["pay_amout"]}], '
            '"eventProperties": [{"name": "pay_amount", "type": "number"}]}',
            "pay_amount",
        ),
        ('{"evnts": []}', "evnts"),
        ('{"projectId": 1, "projects": [{"projectId": 1}]}', "more than one catalog"),
        ('{"projects": [{"events": []}]}', "projects[0] has no projectId"),
        ("[]", "is a JSON array"),
    ],
)
def test_catalog_file_invalid(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "catalog.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CatalogFileError) as caught:
        load_catalog_file(path)
    assert fragment in str(caught.value)
    assert str(path) in str(caught.value)


def test_catalog_file_missing(tmp_path: Path) -> None:
    with pytest.raises(CatalogFileError) as caught:
        load_catalog_file(tmp_path / "absent.json")
    assert "TA_CATALOG_FILE" in str(caught.value)


def test_catalog_schema_accepts_example() -> None:
    jsonschema.validate(CATALOG, load_schema("catalog"))
    jsonschema.validate({"projects": [CATALOG]}, load_schema("catalog"))


def test_catalog_schema_rejects_unknown_type() -> None:
    bad = {"userProperties": [{"name": "a", "type": "text"}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, load_schema("catalog"))


async def test_store_reads_file_again_after_change(tmp_path: Path) -> None:
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(CATALOG), encoding="utf-8")
    store = CatalogStore(file=path)
    first = await store.get(102)
    assert first is not None
    assert "login" not in first.events
    changed = {**CATALOG, "events": [*CATALOG["events"], {"name": "login"}]}
    path.write_text(json.dumps(changed), encoding="utf-8")
    second = await store.get(102)
    assert second is not None
    assert "login" in second.events


async def test_store_file_other_project_has_none(tmp_path: Path) -> None:
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(CATALOG), encoding="utf-8")
    assert await CatalogStore(file=path).get(7) is None


async def test_store_caches_fetched_catalog() -> None:
    calls: list[int] = []

    async def fetch(project_id: int) -> EventCatalog | None:
        calls.append(project_id)
        return EventCatalog.model_validate(CATALOG) if project_id == 102 else None

    store = CatalogStore(fetch=fetch)
    assert await store.get(102) is not None
    assert await store.get(102) is not None
    assert await store.get(5) is None
    assert await store.get(5) is None
    assert calls == [102, 5]


async def test_store_without_source_has_none() -> None:
    assert await CatalogStore().get(102) is None
