"""Problems found in tool arguments, and the text a tool result shows for them.

A tool's caller is usually a language model, so every problem names the JSON path
of the offending value, shows a short preview of it, states what was expected and,
where the choices are finite, lists them with the closest one first.
"""

import difflib
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# Maximum length of a value's preview in a message or in `Problem.value`, in characters.
PREVIEW_LENGTH = 80
# Maximum length of a key shown inside a path, because hostile keys can be very long.
_PATH_KEY_LENGTH = 40
_IDENTIFIER = re.compile(r"^[A-Za-z_#$][A-Za-z0-9_#$]*$")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the arguments of a tool call.

    `path` is the JSON path of the offending value ("qp.events[0].comparator").
    For a missing or unknown key it is the path of the object that contains the
    key, and "" is the top level. `value` is the offending value: a scalar as
    given, with strings cut to `PREVIEW_LENGTH` characters, or an object or
    array as a short JSON preview text.
    """

    path: str
    message: str
    value: object | None = None
    expected: str | None = None
    allowed: list[str] | None = None
    closest: str | None = None


class ArgumentError(Exception):
    """The arguments of a tool call are invalid; `problems` lists what to fix.

    `truncated` is true when more problems were found than `problems` contains.
    """

    def __init__(self, problems: Sequence[Problem], *, truncated: bool = False):
        self.problems = list(problems)
        self.truncated = truncated
        super().__init__(format_problems(self.problems, truncated=truncated))


def format_problems(problems: list[Problem], *, truncated: bool = False) -> str:
    """Return the problems as text for a tool result, one line per problem."""
    count = len(problems)
    noun = "problem" if count == 1 else "problems"
    lines = [f"invalid arguments ({count} {noun}):"]
    for problem in problems:
        if problem.path:
            lines.append(f"- {problem.path}: {problem.message}")
        else:
            lines.append(f"- {problem.message}")
    if truncated:
        lines.append(
            f"Only the first {count} problems are listed; fix them and call again."
        )
    return "\n".join(lines)


def format_path(parts: Iterable[str | int]) -> str:
    """Return a readable JSON path, such as `qp.filts[0].#os` or `x["a b"]`."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _IDENTIFIER.match(part) and len(part) <= _PATH_KEY_LENGTH:
            text += f".{part}" if text else part
        else:
            text += f"[{json.dumps(cut(part, _PATH_KEY_LENGTH), ensure_ascii=False)}]"
    return text


def join_path(path: str, part: str | int) -> str:
    """Return `path` extended by one key or index."""
    return (
        path + format_path([part]) if isinstance(part, int) else _join_key(path, part)
    )


def _join_key(path: str, key: str) -> str:
    step = format_path([key])
    if not path or step.startswith("["):
        return path + step
    return f"{path}.{step}"


def cut(text: str, length: int = PREVIEW_LENGTH) -> str:
    """Return `text` cut to `length` characters, marked with "…" when cut."""
    if len(text) <= length:
        return text
    return text[: length - 1] + "…"


def show(value: object) -> str:
    """Return a preview of a JSON value for a message, about 80 characters at most."""
    if isinstance(value, str):
        preview = repr(cut(value))
        if len(value) > PREVIEW_LENGTH:
            preview += f" ({len(value)} characters)"
        return preview
    return _preview(value, PREVIEW_LENGTH)


def problem_value(value: object) -> object | None:
    """Return the form of `value` kept in `Problem.value`: bounded in size."""
    if isinstance(value, str):
        return cut(value)
    if value is None or isinstance(value, bool | int | float):
        if (
            isinstance(value, int)
            and not isinstance(value, bool)
            and value.bit_length() > 256
        ):
            return _preview(value, PREVIEW_LENGTH)
        return value
    return _preview(value, PREVIEW_LENGTH)


def json_type(value: object) -> str:
    """Return the JSON type name of a Python value decoded from JSON."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def closest_first(name: str, choices: Sequence[str]) -> list[str]:
    """Return `choices` with those like `name` first, closest first, then the rest."""
    close = closest_matches(name, choices, limit=3)
    return close + [choice for choice in choices if choice not in close]


def closest_match(name: str, choices: Sequence[str]) -> str | None:
    """Return the choice most like `name`, ignoring case, or None if none is close."""
    matches = closest_matches(name, choices, limit=1)
    return matches[0] if matches else None


def closest_matches(name: str, choices: Sequence[str], limit: int) -> list[str]:
    """Return up to `limit` choices like `name`, case-insensitive, closest first."""
    lowered = {choice.lower(): choice for choice in choices}
    matches = difflib.get_close_matches(
        cut(name, 200).lower(), list(lowered), n=limit, cutoff=0.6
    )
    return [lowered[match] for match in matches]


def _preview(value: object, budget: int) -> str:
    """Return compact JSON of `value`, cut to about `budget` characters."""
    parts: list[str] = []
    _write(value, parts, budget)
    text = "".join(parts)
    return cut(text, budget) if len(text) > budget else text


def _write(value: object, parts: list[str], budget: int) -> int:
    """Append compact JSON of `value` to `parts` within `budget`; return the rest."""
    if budget <= 0:
        return 0
    if isinstance(value, dict):
        parts.append("{")
        budget -= 1
        for index, (key, item) in enumerate(value.items()):
            if budget <= 0:
                break
            if index:
                parts.append(", ")
                budget -= 2
            key_text = json.dumps(cut(str(key), budget + 1), ensure_ascii=False) + ": "
            parts.append(key_text)
            budget = _write(item, parts, budget - len(key_text))
        parts.append("}")
        return budget - 1
    if isinstance(value, list):
        parts.append("[")
        budget -= 1
        for index, item in enumerate(value):
            if budget <= 0:
                break
            if index:
                parts.append(", ")
                budget -= 2
            budget = _write(item, parts, budget)
        parts.append("]")
        return budget - 1
    text = _scalar_json(value, budget)
    parts.append(text)
    return budget - len(text)


def _scalar_json(value: object, budget: int) -> str:
    if isinstance(value, str):
        return json.dumps(cut(value, budget + 1), ensure_ascii=False)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if value.bit_length() > 256:
            return f"<integer of {value.bit_length()} bits>"
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    return f"<{type(value).__name__}>"
