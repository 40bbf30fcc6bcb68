"""The published JSON Schemas match the models and follow the rules every MCP client needs."""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from reference_examples import canonical, load_example

from ta_cohort_mcp import schemas
from ta_cohort_mcp.cli import main

SCHEMA_DIRECTORY = Path(__file__).parent.parent / "schemas"
SCHEMA_FILES = sorted(SCHEMA_DIRECTORY.rglob("*.json"))
FILE_IDS = [str(path.relative_to(SCHEMA_DIRECTORY)) for path in SCHEMA_FILES]


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def subschemas(node: Any, path: str = "$") -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield every schema object inside `node` with its JSON path."""
    if not isinstance(node, dict):
        return
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from subschemas(child, f"{path}.{name}")
    if "items" in node:
        yield from subschemas(node["items"], f"{path}[]")
    for keyword in ("anyOf", "oneOf", "allOf"):
        for index, option in enumerate(node.get(keyword, [])):
            yield from subschemas(option, f"{path}.{keyword}[{index}]")


def test_every_model_has_a_file() -> None:
    missing = [
        stem
        for stem in schemas.SCHEMA_MODELS
        if not (SCHEMA_DIRECTORY / f"{stem}.json").is_file()
    ]
    assert missing == []


def test_committed_files_match_models() -> None:
    assert schemas.stale_files(SCHEMA_DIRECTORY) == []


def test_check_command_passes() -> None:
    assert main(["schemas", "--check"]) == 0


def test_check_command_finds_drift(tmp_path: Path) -> None:
    assert main(["schemas", "--dir", str(tmp_path)]) == 0
    (tmp_path / "qp.json").write_text("{}\n", encoding="utf-8")
    assert main(["schemas", "--check", "--dir", str(tmp_path)]) == 1


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=FILE_IDS)
def test_file_is_valid_schema(path: Path) -> None:
    Draft202012Validator.check_schema(load(path))


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=FILE_IDS)
def test_file_has_no_references(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert '"$ref"' not in text
    assert '"$defs"' not in text
    assert '"$schema"' not in text


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=FILE_IDS)
def test_every_property_has_a_type(path: Path) -> None:
    untyped = [where for where, node in subschemas(load(path)) if "type" not in node]
    assert untyped == []


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=FILE_IDS)
def test_every_array_has_items(path: Path) -> None:
    bare = [
        where
        for where, node in subschemas(load(path))
        if node.get("type") == "array" and "items" not in node
    ]
    assert bare == []


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=FILE_IDS)
def test_no_null_unions(path: Path) -> None:
    nullable = [
        where
        for where, node in subschemas(load(path))
        if node.get("type") == "null"
        or (isinstance(node.get("type"), list) and "null" in node["type"])
        or any(option.get("type") == "null" for option in node.get("anyOf", []))
    ]
    assert nullable == []


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=FILE_IDS)
def test_enums_are_strings(path: Path) -> None:
    wrong = [
        where
        for where, node in subschemas(load(path))
        if "enum" in node
        and (
            node.get("type") != "string"
            or not all(isinstance(v, str) for v in node["enum"])
        )
    ]
    assert wrong == []


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=FILE_IDS)
def test_objects_are_closed(path: Path) -> None:
    open_objects = [
        where
        for where, node in subschemas(load(path))
        if node.get("type") == "object"
        and node.get("additionalProperties") is not False
    ]
    assert open_objects == []


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=FILE_IDS)
def test_objects_list_properties(path: Path) -> None:
    bare = [
        where
        for where, node in subschemas(load(path))
        if node.get("type") == "object" and "properties" not in node
    ]
    assert bare == []


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=FILE_IDS)
def test_every_property_is_described(path: Path) -> None:
    """Each property name is described where it first appears; copies may omit it.

    The update tools describe only their top-level properties, because
    user_cluster_add carries the same definitions fully described.
    """
    stem = str(path.relative_to(SCHEMA_DIRECTORY).with_suffix(""))
    terse = stem in schemas.TERSE_STEMS
    described: set[str] = set()
    names: set[str] = set()
    for where, node in subschemas(load(path)):
        if where == "$" or (terse and where.count(".") > 1):
            continue
        name = where.rsplit(".", 1)[-1].removesuffix("[]")
        names.add(name)
        if node.get("description"):
            described.add(name)
    assert sorted(names - described) == []


EXAMPLE_SCHEMAS = {
    "add-cluster.request": "user-cluster-add",
    "add-tag-custom.request": "user-cluster-add",
    "add-tag-firstlast.request": "user-cluster-add",
    "add-tag-quota.request": "user-cluster-add",
    "update.request": "user-cluster-update",
    "update-by-name.request": "user-cluster-update-by-name",
    "list.request": "user-cluster-list",
}


@pytest.mark.parametrize(("example", "stem"), sorted(EXAMPLE_SCHEMAS.items()))
def test_schema_accepts_reference_example(example: str, stem: str) -> None:
    schema = load(SCHEMA_DIRECTORY / f"{stem}.json")
    errors = list(
        Draft202012Validator(schema).iter_errors(canonical(load_example(example)))
    )
    assert [error.message for error in errors] == []


def test_qp_schema_rejects_unknown_key() -> None:
    schema = load(SCHEMA_DIRECTORY / "qp.json")
    definition = canonical(load_example("add-cluster.request"))["qp"]
    definition["event_relations"] = "and"
    assert not Draft202012Validator(schema).is_valid(definition)
