"""Prompt files: parsing, rendering and the files shipped in prompts/."""

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from mcp import types
from mcp.client import Client
from mcp.shared.exceptions import MCPError
from server_fixtures import connect, with_settings

from ta_cohort_mcp.config import Settings
from ta_cohort_mcp.server.prompts import (
    PromptCatalog,
    PromptFileError,
    load_prompts,
    parse_prompt,
    prompt_directory,
)
from ta_cohort_mcp.server.resources import static_contents
from ta_cohort_mcp.server.tools import ALL_TOOLS

SHIPPED = {
    "build_cohort",
    "build_tag",
    "refresh_and_report",
    "review_cohorts",
    "import_ids",
}

# Shapes of the resource URIs, with every variable written {x}.
RESOURCE_SHAPES = {
    "ta://projects/{x}/catalog",
    "ta://projects/{x}/clusters",
    "ta://projects/{x}/clusters/{x}",
    "ta://reference/definitions",
    "ta://schemas/qp",
    "ta://schemas/tagQp",
}

GOOD = """+++
name = "greet"
title = "Greet"
description = "Say hello."

[[arguments]]
name = "projectId"
description = "Project."
required = true

[[arguments]]
name = "who"
description = "Person."
default = "everyone"
+++
Hello {{who}} in {{ projectId }}.
"""


def test_prompt_directory_is_repository() -> None:
    assert prompt_directory() == Path(__file__).resolve().parent.parent / "prompts"


def test_shipped_prompts_parse() -> None:
    assert set(load_prompts()) == SHIPPED


def test_shipped_prompts_use_known_argument_names() -> None:
    known = {
        "projectId",
        "clusterName",
        "eventName",
        "columnName",
        "description",
        "path",
        "staleDays",
    }
    for spec in load_prompts().values():
        assert set(spec.argument_names()) <= known, spec.name


def test_parse_reads_front_matter() -> None:
    spec = parse_prompt(GOOD, "greet.md")
    assert spec.name == "greet"
    assert spec.title == "Greet"
    assert spec.argument_names() == ["projectId", "who"]
    assert spec.arguments[0].required is True
    assert spec.arguments[1].default == "everyone"


def test_render_fills_default() -> None:
    spec = parse_prompt(GOOD, "greet.md")
    assert spec.render({"projectId": "102"}, {}) == "Hello everyone in 102.\n"


def test_render_server_default_for_required() -> None:
    spec = parse_prompt(GOOD, "greet.md")
    text = spec.render({"who": "Ann"}, {"projectId": "7"})
    assert text == "Hello Ann in 7.\n"


def test_render_missing_required() -> None:
    spec = parse_prompt(GOOD, "greet.md")
    with pytest.raises(ValueError, match="needs the argument 'projectId'"):
        spec.render({"who": "Ann"}, {})


def test_render_unknown_argument_suggests() -> None:
    spec = parse_prompt(GOOD, "greet.md")
    with pytest.raises(ValueError, match="did you mean 'projectId'"):
        spec.render({"projectID": "1"}, {})


def test_render_keeps_braces_of_values() -> None:
    spec = parse_prompt(GOOD, "greet.md")
    text = spec.render({"projectId": "1", "who": "{{projectId}}"}, {})
    assert text == "Hello {{projectId}} in 1.\n"


def test_listed_argument_with_server_default_optional() -> None:
    spec = parse_prompt(GOOD, "greet.md")
    prompt = spec.to_prompt({"projectId": "7"})
    assert prompt.arguments is not None
    assert prompt.arguments[0].required is False
    assert prompt.arguments[0].description == "Project. Default: 7."


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("no front matter", "must start with TOML front matter"),
        ("+++\nname = \n+++\ntext", "invalid TOML"),
        ('+++\nname = "a b"\ndescription = "d"\n+++\ntext', "name must be"),
        ('+++\nname = "a"\n+++\ntext', "description is missing"),
        (
            '+++\nname = "a"\ndescription = "d"\nextra = 1\n+++\nx',
            "unknown front matter",
        ),
        (
            '+++\nname = "a"\ndescription = "d"\n+++\nHi {{who}}',
            "not a declared argument",
        ),
        (
            '+++\nname = "a"\ndescription = "d"\n[[arguments]]\nname = "who"\n'
            'description = "w"\n+++\nHi',
            "never uses",
        ),
        (
            '+++\nname = "a"\ndescription = "d"\n[[arguments]]\nname = "who"\n'
            'description = "w"\n[[arguments]]\nname = "who"\ndescription = "w"\n'
            "+++\n{{who}}",
            "declared twice",
        ),
        (
            '+++\nname = "a"\ndescription = "d"\n[[arguments]]\nname = "who"\n'
            'description = "w"\nrequired = "yes"\n+++\n{{who}}',
            "required must be true or false",
        ),
    ],
)
def test_parse_rejects_invalid_file(text: str, fragment: str) -> None:
    with pytest.raises(PromptFileError) as caught:
        parse_prompt(text, "bad.md")
    assert fragment in str(caught.value)
    assert str(caught.value).startswith("bad.md")


def test_load_rejects_duplicate_names(tmp_path: Path) -> None:
    (tmp_path / "one.md").write_text(GOOD, encoding="utf-8")
    (tmp_path / "two.md").write_text(GOOD, encoding="utf-8")
    with pytest.raises(PromptFileError, match=r"already used by one\.md"):
        load_prompts(tmp_path)


def test_load_skips_readme(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("# Prompts\n", encoding="utf-8")
    (tmp_path / "greet.md").write_text(GOOD, encoding="utf-8")
    assert list(load_prompts(tmp_path)) == ["greet"]


def test_catalog_unknown_prompt_is_invalid_params() -> None:
    catalog = PromptCatalog(load_prompts(), {}, static_contents)
    params = types.GetPromptRequestParams(name="build_cohorts")
    with pytest.raises(MCPError) as caught:
        catalog.get_result(params)
    assert caught.value.code == types.INVALID_PARAMS
    assert "did you mean 'build_cohort'" in caught.value.message


def test_shipped_prompts_name_existing_tools() -> None:
    tool_like = re.compile(r"`([a-z]+(?:_[a-z]+)+)`")
    for spec in load_prompts().values():
        for name in tool_like.findall(spec.text):
            assert name in ALL_TOOLS, f"{spec.name} names unknown tool {name}"


def test_shipped_prompts_name_existing_resources() -> None:
    for spec in load_prompts().values():
        for uri in re.findall(r"ta://[^\s`),;]+", spec.text):
            shape = re.sub(r"\{\{\w+\}\}|<\w+>", "{x}", uri)
            assert shape.rstrip(".") in RESOURCE_SHAPES, f"{spec.name}: {uri}"


def test_parse_reads_embed() -> None:
    text = GOOD.replace('title = "Greet"', 'embed = ["ta://schemas/qp"]')
    assert parse_prompt(text, "greet.md").embed == ("ta://schemas/qp",)


def test_parse_rejects_embed_not_list() -> None:
    text = GOOD.replace('title = "Greet"', 'embed = "ta://schemas/qp"')
    with pytest.raises(PromptFileError, match="embed must be a list"):
        parse_prompt(text, "greet.md")


def test_catalog_rejects_embed_needing_ta() -> None:
    text = GOOD.replace('title = "Greet"', 'embed = ["ta://projects/1/catalog"]')
    spec = parse_prompt(text, "greet.md")
    with pytest.raises(PromptFileError, match="ta://projects/1/catalog"):
        PromptCatalog({spec.name: spec}, {}, static_contents)


def test_catalog_embeds_resource_after_text() -> None:
    text = GOOD.replace('title = "Greet"', 'embed = ["ta://schemas/qp"]')
    spec = parse_prompt(text, "greet.md")
    catalog = PromptCatalog({spec.name: spec}, {}, static_contents)
    params = types.GetPromptRequestParams(name="greet", arguments={"projectId": "1"})
    messages = catalog.get_result(params).messages
    assert len(messages) == 2
    assert isinstance(messages[0].content, types.TextContent)
    assert isinstance(messages[1].content, types.EmbeddedResource)
    assert messages[1].content.resource.uri == "ta://schemas/qp"


# Argument checks, through a real client session


@pytest.fixture
async def allowlist_client(server_settings: Settings) -> AsyncIterator[Client]:
    settings = with_settings(server_settings, projects=frozenset({102}))
    async with connect(settings) as client:
        yield client


NOT_A_NUMBER = "must be a whole number of 0 or more"
NOT_ALLOWED = "is not in the project allowlist; allowed projects: 102"


@pytest.mark.parametrize(
    ("name", "arguments", "expected"),
    [
        (
            "build_cohort",
            {"projectId": "abc", "description": "x"},
            f"projectId {NOT_A_NUMBER}, such as 102; got 'abc'",
        ),
        ("build_cohort", {"projectId": "2", "description": "x"}, f"2 {NOT_ALLOWED}"),
        (
            "build_tag",
            {"projectId": "-1", "description": "x"},
            f"projectId {NOT_A_NUMBER}",
        ),
        ("review_cohorts", {"projectId": "2"}, f"2 {NOT_ALLOWED}"),
        (
            "review_cohorts",
            {"projectId": "102", "staleDays": "-5"},
            f"staleDays {NOT_A_NUMBER}, such as 7; got '-5'",
        ),
        (
            "review_cohorts",
            {"projectId": "102", "staleDays": "1.5"},
            f"staleDays {NOT_A_NUMBER}",
        ),
        (
            "import_ids",
            {"projectId": "102 OR 1", "path": "/tmp/a"},
            f"projectId {NOT_A_NUMBER}",
        ),
    ],
)
@pytest.mark.anyio
async def test_prompt_rejects_invalid_argument(
    allowlist_client: Client, name: str, arguments: dict[str, str], expected: str
) -> None:
    with pytest.raises(MCPError) as caught:
        await allowlist_client.get_prompt(name, arguments)
    assert caught.value.code == types.INVALID_PARAMS
    assert expected in caught.value.message
    assert f"prompt {name!r}" in caught.value.message


@pytest.mark.anyio
async def test_prompt_accepts_allowed_project(allowlist_client: Client) -> None:
    result = await allowlist_client.get_prompt(
        "review_cohorts", {"projectId": " 102 ", "staleDays": "0"}
    )
    content = result.messages[0].content
    assert isinstance(content, types.TextContent)
    assert "project 102" in content.text
    assert "0 days" in content.text


@pytest.mark.anyio
async def test_prompt_checks_default_project(server_settings: Settings) -> None:
    settings = with_settings(server_settings, project_id=102, projects=None)
    async with connect(settings) as client:
        result = await client.get_prompt("build_cohort", {"description": "payers"})
        with pytest.raises(MCPError) as caught:
            await client.get_prompt(
                "build_cohort", {"projectId": "x1", "description": "y"}
            )
    content = result.messages[0].content
    assert isinstance(content, types.TextContent)
    assert "102" in content.text
    assert "'x1'" in caught.value.message
