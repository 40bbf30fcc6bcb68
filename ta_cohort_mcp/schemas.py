"""JSON Schemas of the definitions and request bodies, in a form every MCP client accepts.

Pydantic's schemas use `$ref`/`$defs`, `anyOf` with `null` for optional fields and
titles on every property; several MCP clients reject or misread those. The
published form has every reference inlined, optional fields left out of
`required` with one plain type, `additionalProperties: false` on every object, and
no titles or examples. `ta-cohort-mcp schemas` writes the files to `schemas/` and
`--check` fails when the committed files differ from the models.
"""

import argparse
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ta_cohort_mcp.models import (
    ClusterAddRequest,
    ClusterDefinition,
    ClusterListRequest,
    ClusterUpdateRequest,
    TagDefinition,
)
from ta_cohort_mcp.models.catalog import CatalogFile
from ta_cohort_mcp.models.tools import TERSE_TOOLS, TOOL_ARGUMENT_MODELS

JsonSchema = dict[str, Any]

# File stem -> the model it is generated from.
SCHEMA_MODELS: dict[str, type[BaseModel]] = {
    "qp": ClusterDefinition,
    "tagQp": TagDefinition,
    "user-cluster-add": ClusterAddRequest,
    "user-cluster-update": ClusterUpdateRequest,
    "user-cluster-update-by-name": ClusterUpdateRequest,
    "user-cluster-list": ClusterListRequest,
    "catalog": CatalogFile,
}
# The input schema of each MCP tool, under tools/.
SCHEMA_MODELS.update(
    {f"tools/{name}": model for name, model in TOOL_ARGUMENT_MODELS.items()}
)
# Stems whose field descriptions are kept only at the top level, because they
# repeat definitions described elsewhere and tools/list has a size budget.
TERSE_STEMS = frozenset(f"tools/{name}" for name in TERSE_TOOLS)

# The repository's schemas/ in a checkout; the copy inside an installed wheel.
_REPOSITORY_DIRECTORY = Path(__file__).resolve().parent.parent / "schemas"
_PACKAGED_DIRECTORY = Path(__file__).resolve().parent / "_data" / "schemas"
DEFAULT_DIRECTORY = (
    _REPOSITORY_DIRECTORY if _REPOSITORY_DIRECTORY.is_dir() else _PACKAGED_DIRECTORY
)

_DROPPED_KEYWORDS = ("title", "examples", "$schema")


def client_schema(model: type[BaseModel]) -> JsonSchema:
    """Return the published, self-contained JSON Schema of `model`."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    definitions = raw.pop("$defs", {})
    schema = _simplify(_inline(raw, definitions, set()))
    return schema


def stem_schema(stem: str) -> JsonSchema:
    """Return the published schema of the file stem `stem`."""
    schema = client_schema(SCHEMA_MODELS[stem])
    if stem in TERSE_STEMS:
        schema["properties"] = {
            name: _keep_top_description(child)
            for name, child in schema.get("properties", {}).items()
        }
    return schema


def _keep_top_description(schema: JsonSchema) -> JsonSchema:
    stripped: JsonSchema = _strip_descriptions(schema)
    if "description" in schema:
        stripped["description"] = schema["description"]
    return _order(stripped)


def _inline(node: Any, definitions: dict[str, Any], seen: set[str]) -> Any:
    """Replace every local `$ref` in `node` by a copy of its definition.

    A definition keeps its field descriptions only where it first appears, so a
    schema that contains `qp` twice (a tag value's userClusterDef) does not repeat
    every sentence; the copy's own description, from the referring field, stays.
    """
    if isinstance(node, list):
        return [_inline(item, definitions, seen) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" not in node:
        return {key: _inline(value, definitions, seen) for key, value in node.items()}
    name = node["$ref"].removeprefix("#/$defs/")
    repeated = name in seen
    seen.add(name)
    target = _inline(definitions[name], definitions, seen)
    if repeated:
        target = _strip_descriptions(target)
    siblings = {key: value for key, value in node.items() if key != "$ref"}
    if "description" in siblings:
        target.pop("description", None)
    return {**target, **_inline(siblings, definitions, seen)}


def _strip_descriptions(node: Any) -> Any:
    if isinstance(node, list):
        return [_strip_descriptions(item) for item in node]
    if not isinstance(node, dict):
        return node
    stripped = {}
    for key, value in node.items():
        if key == "properties":
            stripped[key] = {
                name: _strip_descriptions(child) for name, child in value.items()
            }
        elif key != "description":
            stripped[key] = _strip_descriptions(value)
    return stripped


def _simplify(schema: JsonSchema) -> JsonSchema:
    """Rewrite one schema object, then its children, into the published form."""
    schema = dict(schema)
    if "anyOf" in schema:
        options = [option for option in schema["anyOf"] if option != {"type": "null"}]
        if len(options) == 1:
            del schema["anyOf"]
            merged = {**options[0], **schema}
            schema = merged
        else:
            schema["anyOf"] = options
        if schema.get("default", 0) is None:
            del schema["default"]
    for keyword in _DROPPED_KEYWORDS:
        schema.pop(keyword, None)
    if "properties" in schema:
        schema["properties"] = {
            name: _simplify(child) for name, child in schema["properties"].items()
        }
        schema["type"] = "object"
        schema.setdefault("additionalProperties", False)
    if schema.get("type") == "object" and "properties" not in schema:
        schema.setdefault("additionalProperties", True)
    if "items" in schema:
        schema["items"] = _simplify(schema["items"])
        if "description" in schema:
            schema["items"].pop("description", None)
    if "anyOf" in schema:
        schema["anyOf"] = [_simplify(option) for option in schema["anyOf"]]
    for name in ("allOf", "oneOf"):
        if name in schema:
            schema[name] = [_simplify(option) for option in schema[name]]
    return _order(schema)


_KEY_ORDER = (
    "type",
    "description",
    "enum",
    "default",
    "properties",
    "required",
    "items",
)


def _order(schema: JsonSchema) -> JsonSchema:
    """Put the keywords in a stable, readable order."""
    first = {key: schema[key] for key in _KEY_ORDER if key in schema}
    rest = {key: value for key, value in schema.items() if key not in first}
    return {**first, **rest}


def all_schemas() -> dict[str, JsonSchema]:
    """Return every published schema, by file stem."""
    return {stem: stem_schema(stem) for stem in SCHEMA_MODELS}


def render(schema: JsonSchema) -> str:
    """Return the text of a schema file: indented JSON with a final newline."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def load_schema(stem: str, directory: Path = DEFAULT_DIRECTORY) -> JsonSchema:
    """Read a published schema file, or generate it when the package has no schemas/."""
    path = directory / f"{stem}.json"
    if path.is_file():
        loaded: JsonSchema = json.loads(path.read_text(encoding="utf-8"))
        return loaded
    return stem_schema(stem)


def stale_files(directory: Path) -> list[str]:
    """Return the schema files in `directory` that are missing or differ from the models."""
    stale = []
    for stem, schema in all_schemas().items():
        path = directory / f"{stem}.json"
        if not path.is_file() or path.read_text(encoding="utf-8") != render(schema):
            stale.append(path.name)
    return stale


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of `ta-cohort-mcp schemas`."""
    parser.add_argument(
        "--dir",
        type=Path,
        default=DEFAULT_DIRECTORY,
        help="directory of the schema files (default: the repository's schemas/)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if a file is missing or differs from the models",
    )


def run(args: argparse.Namespace) -> int:
    """Write the schema files, or with --check compare them with the models."""
    directory: Path = args.dir
    if args.check:
        stale = stale_files(directory)
        if stale:
            print(
                f"schemas out of date in {directory}: {', '.join(stale)}; "
                "run `ta-cohort-mcp schemas` to regenerate them"
            )
            return 1
        print(f"schemas in {directory} match the models")
        return 0
    for stem, schema in all_schemas().items():
        path = directory / f"{stem}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(schema), encoding="utf-8")
    print(f"wrote {len(SCHEMA_MODELS)} schema files to {directory}")
    return 0
