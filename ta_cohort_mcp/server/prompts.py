"""Prompts read from Markdown files with TOML front matter.

The file format is described in the repository's `prompts/README.md`. A file
contains the prompt's name, title, description and arguments between two `+++`
lines, then the text, in which `{{argument}}` is replaced by the argument value.
"""

import logging
import re
import tomllib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcp import types
from mcp.shared.exceptions import MCPError

from ta_cohort_mcp.models import closest_names

logger = logging.getLogger(__name__)

# The repository's prompts/ in a checkout; the copy inside an installed wheel.
_PACKAGE_DIRECTORY = Path(__file__).resolve().parent.parent
_REPOSITORY_DIRECTORY = _PACKAGE_DIRECTORY.parent / "prompts"
_PACKAGED_DIRECTORY = _PACKAGE_DIRECTORY / "_data" / "prompts"

_FRONT_MATTER = re.compile(r"\A\+\+\+\n(.*?)\n\+\+\+\n?(.*)\Z", re.DOTALL)
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_FRONT_MATTER_KEYS = ("name", "title", "description", "arguments", "embed")
# Arguments whose value must be a whole number of 0 or more, in any prompt.
_INTEGER_ARGUMENTS = ("projectId", "staleDays")
_DIGITS = re.compile(r"[0-9]{1,18}")

# Returns the contents of a resource that needs no TA request, or None if unknown.
ResourceReader = Callable[[str], types.TextResourceContents | None]


class PromptFileError(ValueError):
    """A prompt file that cannot be parsed, with the file and the fault."""


@dataclass(frozen=True)
class PromptArgumentSpec:
    """One argument of a prompt file."""

    name: str
    description: str
    required: bool = False
    default: str = ""


@dataclass(frozen=True)
class PromptSpec:
    """A prompt parsed from its file."""

    name: str
    title: str | None
    description: str
    arguments: tuple[PromptArgumentSpec, ...]
    text: str
    source: str
    embed: tuple[str, ...] = ()

    def argument_names(self) -> list[str]:
        """Return the argument names in file order."""
        return [argument.name for argument in self.arguments]

    def to_prompt(self, defaults: Mapping[str, str]) -> types.Prompt:
        """Return the `prompts/list` entry; an argument with a server default is optional."""
        arguments = []
        for argument in self.arguments:
            description = argument.description
            required = argument.required
            if argument.name in defaults:
                required = False
                description = f"{description} Default: {defaults[argument.name]}."
            arguments.append(
                types.PromptArgument(
                    name=argument.name, description=description, required=required
                )
            )
        return types.Prompt(
            name=self.name,
            title=self.title,
            description=self.description,
            arguments=arguments,
        )

    def render(
        self,
        values: Mapping[str, str],
        defaults: Mapping[str, str],
        projects: Collection[int] | None = None,
    ) -> str:
        """Return the text with every placeholder replaced.

        projectId and staleDays must be whole numbers of 0 or more, and projectId
        must be in `projects` when that allowlist is given and not empty.

        Raises:
            ValueError: an argument is unknown, a required one is missing, or a
                value is invalid.
        """
        accepted = self.argument_names()
        for name in values:
            if name not in accepted:
                message = (
                    f"prompt {self.name!r} has no argument {name!r}; "
                    f"accepted arguments: {', '.join(accepted)}"
                )
                hint = closest_names(name, accepted)
                if hint:
                    message += f"; did you mean {hint[0]!r}?"
                raise ValueError(message)
        filled: dict[str, str] = {}
        for argument in self.arguments:
            value = values.get(argument.name, "")
            if value.strip() == "":
                value = defaults.get(argument.name, "")
            if value.strip() == "" and argument.required:
                raise ValueError(
                    f"prompt {self.name!r} needs the argument {argument.name!r}: "
                    f"{argument.description}"
                )
            if value.strip():
                value = self._checked_value(argument.name, value, projects)
            filled[argument.name] = value if value.strip() else argument.default
        return _PLACEHOLDER.sub(lambda match: filled[match.group(1)], self.text)

    def _checked_value(
        self, name: str, value: str, projects: Collection[int] | None
    ) -> str:
        """Check a numeric argument and return it as a plain integer; others as given."""
        if name not in _INTEGER_ARGUMENTS:
            return value
        number = value.strip()
        if _DIGITS.fullmatch(number) is None:
            raise ValueError(
                f"prompt {self.name!r}: {name} must be a whole number of 0 or more, "
                f"such as {'102' if name == 'projectId' else '7'}; got {value!r}"
            )
        if name == "projectId" and projects and int(number) not in projects:
            allowed = ", ".join(str(project) for project in sorted(projects))
            raise ValueError(
                f"prompt {self.name!r}: project {int(number)} is not in the project "
                f"allowlist; allowed projects: {allowed}"
            )
        return str(int(number))


def prompt_directory() -> Path:
    """Return the repository's prompts/ in a checkout, else the wheel's copy."""
    in_checkout = (_PACKAGE_DIRECTORY.parent / "pyproject.toml").is_file()
    if in_checkout and _REPOSITORY_DIRECTORY.is_dir():
        return _REPOSITORY_DIRECTORY
    return _PACKAGED_DIRECTORY


def parse_prompt(text: str, source: str) -> PromptSpec:
    """Parse the text of one prompt file; `source` names the file in errors.

    Raises:
        PromptFileError: the front matter is missing or invalid, or the text and
            the arguments do not match.
    """
    match = _FRONT_MATTER.match(text.replace("\r\n", "\n"))
    if match is None:
        raise PromptFileError(
            f"{source}: a prompt file must start with TOML front matter "
            "between two lines of +++"
        )
    try:
        front = tomllib.loads(match.group(1))
    except tomllib.TOMLDecodeError as error:
        raise PromptFileError(f"{source}: invalid TOML front matter: {error}") from None
    body = match.group(2).strip() + "\n"
    return _build_spec(front, body, source)


def _build_spec(front: dict[str, Any], body: str, source: str) -> PromptSpec:
    unknown = sorted(set(front) - set(_FRONT_MATTER_KEYS))
    if unknown:
        raise PromptFileError(
            f"{source}: unknown front matter key {unknown[0]!r}; "
            f"accepted keys: {', '.join(_FRONT_MATTER_KEYS)}"
        )
    name = front.get("name")
    if not isinstance(name, str) or _NAME.match(name) is None:
        raise PromptFileError(
            f"{source}: name must be 1 to 64 letters, digits or underscores; "
            f"got {name!r}"
        )
    description = front.get("description")
    if not isinstance(description, str) or not description.strip():
        raise PromptFileError(f"{source}: description is missing or empty")
    title = front.get("title")
    if title is not None and not isinstance(title, str):
        raise PromptFileError(f"{source}: title must be a string; got {title!r}")
    arguments = tuple(
        _build_argument(item, f"{source}: arguments[{index}]")
        for index, item in enumerate(front.get("arguments", []))
    )
    _check_placeholders(arguments, body, source)
    embed = front.get("embed", [])
    if not isinstance(embed, list) or not all(isinstance(uri, str) for uri in embed):
        raise PromptFileError(f"{source}: embed must be a list of resource URIs")
    return PromptSpec(
        name, title, description.strip(), arguments, body, source, tuple(embed)
    )


def _build_argument(item: Any, where: str) -> PromptArgumentSpec:
    if not isinstance(item, dict):
        raise PromptFileError(f"{where} must be a table with name and description")
    unknown = sorted(set(item) - {"name", "description", "required", "default"})
    if unknown:
        raise PromptFileError(
            f"{where}: unknown key {unknown[0]!r}; "
            "accepted keys: name, description, required, default"
        )
    name = item.get("name")
    description = item.get("description")
    required = item.get("required", False)
    default = item.get("default", "")
    if not isinstance(name, str) or _NAME.match(name) is None:
        raise PromptFileError(
            f"{where}: name must be letters, digits or _; got {name!r}"
        )
    if not isinstance(description, str) or not description.strip():
        raise PromptFileError(f"{where} ({name}): description is missing or empty")
    if not isinstance(required, bool):
        raise PromptFileError(f"{where} ({name}): required must be true or false")
    if not isinstance(default, str):
        raise PromptFileError(f"{where} ({name}): default must be a string")
    return PromptArgumentSpec(name, description.strip(), required, default)


def _check_placeholders(
    arguments: tuple[PromptArgumentSpec, ...], body: str, source: str
) -> None:
    declared = [argument.name for argument in arguments]
    repeated = sorted({name for name in declared if declared.count(name) > 1})
    if repeated:
        raise PromptFileError(f"{source}: argument {repeated[0]!r} is declared twice")
    used = set(_PLACEHOLDER.findall(body))
    undeclared = sorted(used - set(declared))
    if undeclared:
        raise PromptFileError(
            f"{source}: the text uses {{{{{undeclared[0]}}}}}, which is not a "
            "declared argument; add it to arguments or fix the spelling"
        )
    unused = [name for name in declared if name not in used]
    if unused:
        raise PromptFileError(
            f"{source}: argument {unused[0]!r} is declared but the text never "
            f"uses {{{{{unused[0]}}}}}"
        )


def load_prompts(directory: Path | None = None) -> dict[str, PromptSpec]:
    """Read every prompt file (`*.md` except README.md) in `directory`, by name.

    Raises:
        PromptFileError: a file is invalid, or two files share a name.
    """
    directory = directory or prompt_directory()
    prompts: dict[str, PromptSpec] = {}
    for path in sorted(directory.glob("*.md")):
        if path.name.lower() == "readme.md":
            continue
        spec = parse_prompt(path.read_text(encoding="utf-8"), path.name)
        if spec.name in prompts:
            raise PromptFileError(
                f"{path.name}: prompt name {spec.name!r} is already used by "
                f"{prompts[spec.name].source}"
            )
        prompts[spec.name] = spec
    logger.debug("loaded %d prompts from %s", len(prompts), directory)
    return prompts


class PromptCatalog:
    """The prompts a server serves, with the server's argument defaults.

    `read_resource` gives the contents of the resources that prompts embed.
    `projects` is the project allowlist that a projectId argument must be in.

    Raises:
        PromptFileError: a prompt embeds a resource that `read_resource` lacks.
    """

    def __init__(
        self,
        prompts: Mapping[str, PromptSpec],
        defaults: Mapping[str, str],
        read_resource: ResourceReader | None = None,
        projects: Collection[int] | None = None,
    ) -> None:
        self.prompts = dict(prompts)
        self.defaults = dict(defaults)
        # The project allowlist, or None to admit every projectId.
        self.projects = frozenset(projects) if projects else None
        self._embedded: dict[str, types.TextResourceContents] = {}
        for spec in self.prompts.values():
            for uri in spec.embed:
                contents = read_resource(uri) if read_resource is not None else None
                if contents is None:
                    raise PromptFileError(
                        f"{spec.source}: embed names {uri}, which is not a resource "
                        "that can be read without a TA request"
                    )
                self._embedded[uri] = contents

    def list_result(self) -> types.ListPromptsResult:
        """Return every prompt, in one page."""
        return types.ListPromptsResult(
            prompts=[spec.to_prompt(self.defaults) for spec in self.prompts.values()]
        )

    def get_result(self, params: types.GetPromptRequestParams) -> types.GetPromptResult:
        """Render one prompt as a user message, then one per embedded resource.

        Raises:
            MCPError: INVALID_PARAMS for an unknown prompt or invalid arguments.
        """
        spec = self.prompts.get(params.name)
        if spec is None:
            names = list(self.prompts)
            message = f"unknown prompt {params.name!r}; prompts: {', '.join(names)}"
            hint = closest_names(params.name, names)
            if hint:
                message += f"; did you mean {hint[0]!r}?"
            raise MCPError(code=types.INVALID_PARAMS, message=message)
        try:
            text = spec.render(params.arguments or {}, self.defaults, self.projects)
        except ValueError as error:
            raise MCPError(code=types.INVALID_PARAMS, message=str(error)) from None
        messages = [
            types.PromptMessage(
                role="user", content=types.TextContent(type="text", text=text)
            )
        ]
        for uri in spec.embed:
            resource = types.EmbeddedResource(
                type="resource", resource=self._embedded[uri]
            )
            messages.append(types.PromptMessage(role="user", content=resource))
        return types.GetPromptResult(description=spec.description, messages=messages)
