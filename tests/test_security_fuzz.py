"""Fuzz every tool through an MCP session, with arguments drawn from its schema.

Valid arguments are drawn by hypothesis-jsonschema from the input schema the
server lists (with string, array and object sizes capped so drawing stays
fast). Invalid ones are valid ones with one change: a wrong type, an unknown
key, a value out of range, broken JSON text, a huge string, deep nesting or a
missing required key.

Valid arguments must never produce a JSON-RPC error or an internal_error
result (an exception the server did not expect). Invalid ones must produce
an isError result of kind invalid_arguments whose text names the changed key,
and the sandbox's request counter must show that nothing reached the API.

The sandbox here is this module's own, because valid writes really create
clusters. `TA_FUZZ_EXAMPLES` sets the examples per tool and per test (default
100); docs/security.md gives the command of a longer run.
"""

import copy
import json
import os
import re
import string
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from mcp import types
from mcp.client import Client
from mcp.shared.exceptions import MCPError
from pydantic import SecretStr
from sandbox_fixtures import SANDBOX_TODAY
from server_fixtures import connect

from ta_cohort_mcp.config import Settings
from ta_cohort_mcp.sandbox import SandboxConfig, SandboxServer
from ta_cohort_mcp.server.tools import ALL_TOOLS
from ta_cohort_mcp.server.validation import (
    MAX_ARGUMENTS_SIZE,
    MAX_DEPTH,
    MAX_STRING_LENGTH,
)

FUZZ_EXAMPLES = int(os.environ.get("TA_FUZZ_EXAMPLES", "100"))
FUZZ_TOKEN = "fuzz-token"
FUZZ_PROJECTS = (102, 2)

FUZZ = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)

# Caps added to the schemas that values are drawn from. Each capped schema still
# admits only values valid for the published schema.
STRING_CAP = 40
ARRAY_CAP = 4
OBJECT_CAP = 4

TOOL_NAMES = sorted(ALL_TOOLS)


@dataclass
class FuzzSession:
    """An MCP client session on its own sandbox, driven from synchronous tests."""

    portal: BlockingPortal
    client: Client
    sandbox: SandboxServer
    schemas: dict[str, dict[str, Any]]

    def call(self, name: str, arguments: dict[str, Any]) -> types.CallToolResult:
        """Call tool `name`; a JSON-RPC error fails the test with the arguments."""
        try:
            result: types.CallToolResult = self.portal.call(
                self.client.call_tool, name, arguments
            )
        except MCPError as error:
            preview = json.dumps(arguments, ensure_ascii=False)[:500]
            pytest.fail(
                f"{name} answered JSON-RPC error {error.code} ({error.message}) "
                f"to {preview}"
            )
        return result


@pytest.fixture(scope="module")
def fuzz_session() -> Iterator[FuzzSession]:
    config = SandboxConfig(
        today=SANDBOX_TODAY, users=200, tokens={FUZZ_TOKEN: set(FUZZ_PROJECTS)}
    )
    with SandboxServer(config) as sandbox:
        server_settings = Settings(
            base_url=sandbox.base_url,
            token=SecretStr(sandbox.token),
            timeout=5.0,
            # Short, so examples that hit a real cluster do not wait long.
            wait_seconds=0.5,
            poll_interval=0.05,
        )
        with start_blocking_portal() as portal:
            opened = portal.wrap_async_context_manager(connect(server_settings))
            with opened as client:
                listing = portal.call(client.list_tools)
                schemas = {tool.name: tool.input_schema for tool in listing.tools}
                yield FuzzSession(portal, client, sandbox, schemas)


def capped(schema: Any) -> Any:
    """Return a copy of `schema` with sizes capped and projectId a sandbox project."""
    result = _capped(copy.deepcopy(schema))
    properties = result.get("properties", {})
    if "projectId" in properties:
        properties["projectId"] = {"type": "integer", "enum": [*FUZZ_PROJECTS, 7]}
    return result


def _capped(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_capped(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    for key, value in list(schema.items()):
        if key in ("properties", "patternProperties"):
            schema[key] = {name: _capped(child) for name, child in value.items()}
        elif isinstance(value, dict | list):
            schema[key] = _capped(value)
    kind = schema.get("type")
    if kind == "string" and "pattern" not in schema:
        low = schema.get("minLength", 0)
        schema["maxLength"] = min(schema.get("maxLength", STRING_CAP), low + STRING_CAP)
    if kind == "array":
        low = schema.get("minItems", 0)
        schema["maxItems"] = min(schema.get("maxItems", ARRAY_CAP), low + ARRAY_CAP)
    if kind == "object":
        schema["maxProperties"] = max(
            OBJECT_CAP,
            len(schema.get("required", [])),
            len(schema.get("properties", {})),
        )
    return schema


def error_text(result: types.CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


def error_kind(result: types.CallToolResult) -> Any:
    content = result.structured_content or {}
    return content.get("error", {}).get("kind")


# Invalid variants


@dataclass
class Variant:
    """Invalid arguments and the key whose change made them invalid."""

    arguments: dict[str, Any]
    key: str
    change: str


UNKNOWN_KEYS = st.sampled_from(
    ["clusterID", "projectID", "project_id", "cluster_name", "token", "qP"]
) | st.text(string.ascii_letters + string.digits, min_size=1, max_size=12)

BROKEN_JSON = st.sampled_from(
    ['{"events": [', "[1, 2", "{'single': 'quotes'}", '{"a": 1,}', "[}", "{"]
)


def _single_type(schema: dict[str, Any]) -> str | None:
    kind = schema.get("type")
    return kind if isinstance(kind, str) else None


def _deep(levels: int) -> Any:
    value: Any = "x"
    for _ in range(levels):
        value = [value]
    return value


def _wrong_type(kind: str) -> st.SearchStrategy[Any]:
    # No safe repair turns these into the expected type: booleans are never
    # converted, and a boolean wrapped in an array is still of the wrong items.
    if kind == "boolean":
        return st.sampled_from(["yes", "no", 1, 0, [True]])
    return st.sampled_from([True, False, [[True]]])


def _out_of_range(schema: dict[str, Any]) -> list[st.SearchStrategy[Any]]:
    """Return strategies of values just outside the bounds that `schema` states."""
    options: list[st.SearchStrategy[Any]] = []
    if "enum" in schema:
        options.append(st.sampled_from(["zz_not_allowed", "no such value"]))
    if "minimum" in schema:
        low = schema["minimum"]
        options.append(st.integers(min_value=low - 10**6, max_value=low - 1))
    if "maximum" in schema:
        high = schema["maximum"]
        options.append(st.integers(min_value=high + 1, max_value=high + 10**6))
    if "maxLength" in schema:
        limit = schema["maxLength"]
        options.append(st.integers(1, 50).map(lambda extra: "x" * (limit + extra)))
    if schema.get("minLength", 0) >= 1:
        options.append(st.just(""))
    if "pattern" in schema:
        pattern = re.compile(schema["pattern"])
        options.append(
            st.sampled_from(["bad name!", "名字", "a-b", "x" * 60, "a b"]).filter(
                lambda text: pattern.fullmatch(text) is None
            )
        )
    if schema.get("minItems", 0) >= 1:
        options.append(st.just([]))
    if schema.get("maxItems", 10**6) <= 100:
        limit = schema["maxItems"]
        options.append(st.just(["x"] * (limit + 1)))
    return options


@st.composite
def invalid_variants(
    draw: st.DrawFn, schema: dict[str, Any], valid: st.SearchStrategy[Any]
) -> Variant:
    """Draw valid arguments for `schema`, then change one key so they are invalid."""
    arguments: dict[str, Any] = dict(draw(valid))
    properties: dict[str, Any] = schema.get("properties", {})
    assert schema.get("additionalProperties") is False
    typed = {name: sub for name, sub in properties.items() if _single_type(sub)}
    changes = ["unknown_key", "huge_string", "deep_nesting"]
    if typed:
        changes.append("wrong_type")
    ranged = {name: _out_of_range(sub) for name, sub in typed.items()}
    ranged = {name: options for name, options in ranged.items() if options}
    if ranged:
        changes.append("out_of_range")
    structured = [
        name
        for name, sub in typed.items()
        if _single_type(sub) in ("object", "array", "integer")
    ]
    if structured:
        changes.append("broken_json")
    present_required = [key for key in schema.get("required", []) if key in arguments]
    if present_required:
        changes.append("missing_required")
    change = draw(st.sampled_from(changes))

    if change == "unknown_key":
        key = draw(UNKNOWN_KEYS.filter(lambda name: name not in properties))
        arguments[key] = draw(st.sampled_from([1, "x", True, None, {"a": 1}]))
    elif change == "missing_required":
        key = draw(st.sampled_from(present_required))
        del arguments[key]
    else:
        names = {
            "huge_string": sorted(properties),
            "deep_nesting": sorted(properties),
            "wrong_type": sorted(typed),
            "out_of_range": sorted(ranged),
            "broken_json": sorted(structured),
        }[change]
        key = draw(st.sampled_from(names))
        if change == "huge_string":
            arguments[key] = "x" * (MAX_STRING_LENGTH + draw(st.integers(1, 100)))
        elif change == "deep_nesting":
            arguments[key] = _deep(MAX_DEPTH + draw(st.integers(1, 20)))
        elif change == "wrong_type":
            arguments[key] = draw(_wrong_type(_single_type(typed[key]) or ""))
        elif change == "out_of_range":
            arguments[key] = draw(st.one_of(ranged[key]))
        else:
            kind = _single_type(typed[key])
            text = BROKEN_JSON if kind != "integer" else st.just("12abc")
            arguments[key] = draw(text)
    return Variant(arguments, key, change)


# Tests


def test_every_tool_listed(fuzz_session: FuzzSession) -> None:
    assert sorted(fuzz_session.schemas) == TOOL_NAMES


@pytest.mark.parametrize("name", TOOL_NAMES)
def test_valid_arguments_never_protocol_error(
    name: str, fuzz_session: FuzzSession
) -> None:
    strategy = from_schema(capped(fuzz_session.schemas[name]))

    @FUZZ
    @given(strategy)
    def check(arguments: dict[str, Any]) -> None:
        result = fuzz_session.call(name, arguments)
        assert error_text(result)
        if result.is_error:
            assert isinstance(error_kind(result), str), result
            assert error_kind(result) != "internal_error", arguments

    check()


@pytest.mark.parametrize("name", TOOL_NAMES)
def test_invalid_arguments_rejected_unsent(
    name: str, fuzz_session: FuzzSession
) -> None:
    schema = fuzz_session.schemas[name]
    valid = from_schema(capped(schema))
    stats = fuzz_session.sandbox.stats

    @FUZZ
    @given(invalid_variants(schema, valid))
    def check(variant: Variant) -> None:
        before = stats.total
        result = fuzz_session.call(name, variant.arguments)
        preview = json.dumps(variant.arguments, ensure_ascii=False)[:300]
        assert result.is_error, f"{variant.change} accepted: {preview}"
        assert error_kind(result) == "invalid_arguments", error_text(result)[:300]
        assert variant.key in error_text(result), error_text(result)[:500]
        assert stats.total == before, f"{variant.change} reached the sandbox"

    check()


@pytest.mark.parametrize("name", TOOL_NAMES)
def test_arbitrary_json_never_protocol_error(
    name: str, fuzz_session: FuzzSession
) -> None:
    keys = [*sorted(fuzz_session.schemas[name].get("properties", {})), "x"]
    leaves = st.none() | st.booleans() | st.integers() | st.text(max_size=20)
    values = st.recursive(
        leaves,
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(st.text(max_size=8), children, max_size=3)
        ),
        max_leaves=8,
    )

    @FUZZ
    @given(st.dictionaries(st.sampled_from(keys), values, max_size=4))
    def check(arguments: dict[str, Any]) -> None:
        result = fuzz_session.call(name, arguments)
        assert error_text(result)
        assert error_kind(result) != "internal_error", arguments

    check()


@pytest.mark.parametrize("name", TOOL_NAMES)
def test_oversized_arguments_rejected_unsent(
    name: str, fuzz_session: FuzzSession
) -> None:
    # Each string is under the string limit; together they pass the size limit.
    piece = "x" * (MAX_STRING_LENGTH // 2)
    count = MAX_ARGUMENTS_SIZE // len(piece) + 2
    key = sorted(fuzz_session.schemas[name].get("properties", {}))[0]
    stats = fuzz_session.sandbox.stats
    before = stats.total
    result = fuzz_session.call(name, {key: [piece] * count})
    assert result.is_error
    assert error_kind(result) == "invalid_arguments", error_text(result)[:300]
    assert stats.total == before
