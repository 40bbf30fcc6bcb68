"""Validation of tool arguments: safe repairs, the published JSON Schema, the model.

Every tool call goes through `validate_arguments` before anything is sent to TA:

1. Arguments that are JSON text are decoded; null counts as no arguments.
2. Size and depth limits are checked (see `ta_cohort_mcp.server.repairs`).
3. The safe repairs are applied where the schema expects them, and reported.
4. The result is validated against the tool's JSON Schema (Draft 2020-12).
5. When a pydantic model is given, the result is parsed into it, which applies
   the rules that span fields (a range needs two values, a tag's kind matches
   its definition, and so on).

Any failure raises `ArgumentError` listing every problem found, up to
`MAX_PROBLEMS`, each with its JSON path, the value, what was expected, the
allowed values and the closest of them.
"""

import json
import logging
import re
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Generic, TypeVar, overload

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError as SchemaError
from jsonschema.exceptions import best_match
from pydantic import BaseModel
from pydantic import ValidationError as ModelError

from ta_cohort_mcp.server.problems import (
    PREVIEW_LENGTH,
    ArgumentError,
    Problem,
    closest_first,
    closest_match,
    cut,
    format_path,
    format_problems,
    json_type,
    problem_value,
    show,
)
from ta_cohort_mcp.server.repairs import (
    MAX_ARGUMENTS_SIZE,
    MAX_DEPTH,
    MAX_PROBLEMS,
    MAX_STRING_LENGTH,
    Repairer,
    check_limits,
)

__all__ = [
    "MAX_ARGUMENTS_SIZE",
    "MAX_DEPTH",
    "MAX_PROBLEMS",
    "MAX_STRING_LENGTH",
    "ArgumentError",
    "Problem",
    "Validated",
    "format_problems",
    "validate_arguments",
]

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

# Compiled validators, by cache key; the schema is kept to detect a reused id().
_VALIDATORS: dict[Hashable, tuple[dict[str, Any], Draft202012Validator]] = {}
_MAX_CACHED_VALIDATORS = 256

# Prefixes pydantic puts before the message of an error raised in a validator.
_PYDANTIC_PREFIXES = ("Value error, ", "Assertion failed, ")
# Maximum length of a schema description quoted in a message.
_DESCRIPTION_LENGTH = 200
# Maximum length of a model's error message; the models quote the values they reject.
_MESSAGE_LENGTH = 400
# Maximum number of schema errors read; more than enough for `MAX_PROBLEMS`.
_MAX_ERRORS = 5 * MAX_PROBLEMS
# Nesting levels searched for the object an unknown key belongs to.
_MAX_OWNER_DEPTH = 3
# Maximum length of the JSON example that moves an unknown key to its object.
_EXAMPLE_LENGTH = 120
# The value to send for a missing key, where its schema description gives none.
_MISSING_KEY_HINTS = {
    "taPropQuota": 'to count events, send {"analysis": "TIMES"}',
}


@dataclass
class Validated(Generic[M]):
    """Arguments that passed validation, the repairs applied, and the parsed model."""

    arguments: dict[str, object]
    repairs: list[str] = field(default_factory=list)
    model: M | None = None


@overload
def validate_arguments(
    schema: dict[str, Any],
    arguments: object,
    model: type[M],
    *,
    cache_key: Hashable | None = None,
) -> Validated[M]: ...


@overload
def validate_arguments(
    schema: dict[str, Any],
    arguments: object,
    model: None = None,
    *,
    cache_key: Hashable | None = None,
) -> Validated[BaseModel]: ...


def validate_arguments(
    schema: dict[str, Any],
    arguments: object,
    model: type[M] | None = None,
    *,
    cache_key: Hashable | None = None,
) -> Validated[M] | Validated[BaseModel]:
    """Repair, validate against `schema` (jsonschema Draft 2020-12), then parse `model`.

    `cache_key` names the schema in the validator cache, such as a tool name.
    Without it the cache uses the schema object's identity, so pass the same
    dict on every call.

    Raises:
        ArgumentError: the arguments are invalid; `.problems` lists why.
        jsonschema.exceptions.SchemaError: `schema` itself is not a valid schema.
    """
    repairs: list[str] = []
    top = _as_object(arguments, repairs)

    problems = check_limits(top)
    if problems:
        raise _error(problems)

    repairer = Repairer()
    repaired = repairer.repair_arguments(top, schema)
    repairs.extend(repairer.repairs)

    problems = _schema_problems(schema, repaired, repairer, cache_key)
    if problems:
        raise _error(problems)

    parsed = None
    if model is not None:
        try:
            parsed = model.model_validate(repaired)
        except ModelError as error:
            raise _error(list(_model_problems(error))) from None
    if repairs:
        logger.debug("repaired arguments: %s", "; ".join(repairs))
    return Validated(arguments=repaired, repairs=repairs, model=parsed)


def _error(problems: list[Problem]) -> ArgumentError:
    return ArgumentError(
        problems[:MAX_PROBLEMS], truncated=len(problems) > MAX_PROBLEMS
    )


def _as_object(arguments: object, repairs: list[str]) -> dict[str, object]:
    """Return the arguments as an object, decoding JSON text and reading null as {}."""
    if arguments is None:
        repairs.append("arguments: read null as no arguments")
        return {}
    if isinstance(arguments, dict):
        return arguments
    if isinstance(arguments, str):
        decoded = _decode_arguments(arguments)
        repairs.append("arguments: decoded JSON text into an object")
        return decoded
    raise ArgumentError(
        [
            Problem(
                path="",
                message=(
                    "arguments must be a JSON object of named arguments, got "
                    f"{_describe(arguments)}"
                ),
                value=problem_value(arguments),
                expected="object",
            )
        ]
    )


def _decode_arguments(text: str) -> dict[str, object]:
    """Return the object that JSON text of the whole arguments encodes."""

    def fail(reason: str) -> ArgumentError:
        return ArgumentError(
            [
                Problem(
                    path="",
                    message=f"arguments must be a JSON object; got a string {reason}",
                    value=problem_value(text),
                    expected="object",
                )
            ]
        )

    if len(text) > MAX_ARGUMENTS_SIZE:
        raise fail(
            f"of {len(text):,} characters, more than the limit of "
            f"{MAX_ARGUMENTS_SIZE:,}"
        )
    try:
        decoded = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as error:
        raise fail(
            f"that is not valid JSON ({error.msg} at line {error.lineno}, "
            f"column {error.colno})"
        ) from None
    except (ValueError, RecursionError):
        raise fail("that is not valid JSON or is nested too deep to decode") from None
    if not isinstance(decoded, dict):
        raise fail(f"of JSON text that decodes to {_describe(decoded)}")
    return decoded


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON number")


def _validator(
    schema: dict[str, Any], cache_key: Hashable | None
) -> Draft202012Validator:
    """Return the compiled validator of `schema`, checking the schema on first use."""
    key = cache_key if cache_key is not None else ("id", id(schema))
    cached = _VALIDATORS.get(key)
    if cached is not None and (cache_key is not None or cached[0] is schema):
        return cached[1]
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    if len(_VALIDATORS) >= _MAX_CACHED_VALIDATORS:
        _VALIDATORS.pop(next(iter(_VALIDATORS)))
    _VALIDATORS[key] = (schema, validator)
    return validator


def _schema_problems(
    schema: dict[str, Any],
    instance: dict[str, object],
    repairer: Repairer,
    cache_key: Hashable | None,
) -> list[Problem]:
    """Return the repair problems, then the schema's, stopping past `MAX_PROBLEMS`."""
    errors = list(
        islice(_validator(schema, cache_key).iter_errors(instance), _MAX_ERRORS)
    )
    # A value outside an enum often has the wrong type too; the enum problem,
    # which lists the allowed values, is reported alone.
    enum_paths = {
        format_path(error.absolute_path)
        for error in errors
        if error.validator == "enum"
    }
    skipped_type_paths = repairer.failed_paths | enum_paths

    problems = list(repairer.problems)
    seen: set[tuple[str, str, str]] = set()
    for error in errors:
        path = format_path(error.absolute_path)
        if error.validator == "type" and path in skipped_type_paths:
            continue
        for problem in _from_schema_error(error):
            marker = (problem.path, str(error.validator), problem.message)
            if marker not in seen:
                seen.add(marker)
                problems.append(problem)
        if len(problems) > MAX_PROBLEMS:
            break
    return problems


def _from_schema_error(error: SchemaError) -> Iterator[Problem]:
    """Yield the problems that one jsonschema error stands for."""
    path = format_path(error.absolute_path)
    keyword = str(error.validator)
    instance: Any = error.instance
    rule: Any = error.validator_value
    subschema: Any = error.schema if isinstance(error.schema, dict) else {}

    if keyword == "required":
        yield from _missing_keys(path, instance, rule, subschema)
    elif keyword == "additionalProperties":
        yield from _unknown_keys(path, instance, subschema)
    elif keyword == "type":
        yield _wrong_type(path, instance, rule)
    elif keyword == "enum":
        yield _not_in_enum(path, instance, rule)
    elif keyword in ("anyOf", "oneOf") and error.context:
        best = best_match(error.context)
        yield from _from_schema_error(best)
    else:
        yield _bounds_problem(path, keyword, instance, rule, subschema)


def _missing_keys(
    path: str, instance: Any, required: Any, subschema: dict[str, Any]
) -> Iterator[Problem]:
    if not isinstance(instance, dict) or not isinstance(required, list):
        return
    properties = subschema.get("properties", {})
    for key in required:
        if key in instance:
            continue
        child = properties.get(key, {}) if isinstance(properties, dict) else {}
        message = f"missing required key {key!r}"
        if not path:
            message += " at top level"
        description = child.get("description") if isinstance(child, dict) else None
        if isinstance(description, str) and description:
            message += f": {cut(description, _DESCRIPTION_LENGTH)}"
        hint = _MISSING_KEY_HINTS.get(key)
        if hint is not None:
            message = f"{message.rstrip('.')}; {hint}"
        child_type = child.get("type") if isinstance(child, dict) else None
        yield Problem(
            path=path,
            message=message,
            expected=_type_text(child_type) if child_type else None,
        )


def _unknown_keys(
    path: str, instance: Any, subschema: dict[str, Any]
) -> Iterator[Problem]:
    if not isinstance(instance, dict):
        return
    properties = subschema.get("properties", {})
    accepted = list(properties) if isinstance(properties, dict) else []
    patterns = subschema.get("patternProperties", {})
    unknown = [
        key
        for key in instance
        if key not in accepted and not _matches_any_pattern(key, patterns)
    ]
    # Unknown keys that a nested object accepts -> that object's dotted path.
    owners: dict[str, str] = {}
    for key in unknown:
        owner = _nested_owner(key, properties)
        if owner is not None:
            owners[key] = owner
    for key in unknown:
        location = "at top level" if not path else ""
        message = f"unknown key {show(key)}"
        if location:
            message += f" {location}"
        if not accepted:
            message += "; this object takes no keys"
            yield Problem(
                path=path, message=message, value=problem_value(key), allowed=[]
            )
            continue
        ordered = closest_first(key, accepted)
        closest = closest_match(key, accepted)
        message += f"; accepted: {', '.join(ordered)}"
        owner = owners.get(key)
        if owner is not None:
            closest = None
            message += f"; {show(key)} belongs inside {owner}"
            moved = {name: instance[name] for name, at in owners.items() if at == owner}
            example = _nested_example(owner, moved)
            if example is not None:
                message += f": send {example}"
        elif closest is not None:
            message += f"; did you mean {closest!r}?"
        yield Problem(
            path=path,
            message=message,
            value=problem_value(key),
            expected="one of the accepted keys",
            allowed=ordered,
            closest=closest,
        )


def _nested_owner(key: str, properties: Any) -> str | None:
    """Return the dotted path of the nearest nested object that accepts `key`.

    Only nested objects are searched, breadth first, to `_MAX_OWNER_DEPTH`
    levels, so "pageSize" sent beside "pagerHeader" returns "pagerHeader".
    """
    level: list[tuple[str, Any]] = [("", properties)]
    for _ in range(_MAX_OWNER_DEPTH):
        found: list[str] = []
        deeper: list[tuple[str, Any]] = []
        for prefix, members in level:
            if not isinstance(members, dict):
                continue
            for name, child in members.items():
                nested = child.get("properties") if isinstance(child, dict) else None
                if not isinstance(nested, dict):
                    continue
                path = f"{prefix}{name}"
                if key in nested:
                    found.append(path)
                deeper.append((f"{path}.", nested))
        if len(found) == 1:
            return found[0]
        if found:
            return None
        level = deeper
    return None


def _nested_example(owner: str, moved: dict[str, object]) -> str | None:
    """Return JSON of the `moved` keys put under `owner`, or None when too long."""
    example: object = dict(sorted(moved.items()))
    for part in reversed(owner.split(".")):
        example = {part: example}
    text = json.dumps(example, ensure_ascii=False, default=str)
    return text if len(text) <= _EXAMPLE_LENGTH else None


def _matches_any_pattern(key: str, patterns: Any) -> bool:
    if not isinstance(patterns, dict):
        return False
    return any(re.search(pattern, key) for pattern in patterns)


def _type_text(declared: Any) -> str:
    if isinstance(declared, list):
        return " or ".join(str(name) for name in declared)
    return str(declared)


def _wrong_type(path: str, instance: Any, declared: Any) -> Problem:
    expected = _type_text(declared)
    message = f"expected {expected}, got {_describe(instance)}"
    hint = _type_hint(instance, expected)
    if hint:
        message += f"; {hint}"
    return Problem(
        path=path, message=message, value=problem_value(instance), expected=expected
    )


def _describe(value: object) -> str:
    """Return the JSON type and a preview of `value`: "string 'abc'", "null"."""
    if value is None:
        return "null"
    return f"{json_type(value)} {show(value)}"


def _type_hint(instance: Any, expected: str) -> str | None:
    """Return advice for the commonest wrong types, or None."""
    if instance is None:
        return "leave an optional key out instead of sending null"
    if isinstance(instance, bool):
        return "booleans are not converted to other types"
    if isinstance(instance, float) and expected == "string":
        return f"send the number as text, such as {json.dumps(repr(instance))}"
    if isinstance(instance, str) and expected == "boolean":
        return "send true or false without quotes"
    if isinstance(instance, str) and expected in ("object", "array"):
        return f"send the {expected} itself, not text"
    return None


def _not_in_enum(path: str, instance: Any, allowed_values: Any) -> Problem:
    allowed = (
        [str(choice) for choice in allowed_values]
        if isinstance(allowed_values, list)
        else []
    )
    closest = closest_match(instance, allowed) if isinstance(instance, str) else None
    message = f"{show(instance)} is not one of {', '.join(allowed)}"
    if closest is not None:
        message += f"; did you mean {closest!r}?"
    return Problem(
        path=path,
        message=message,
        value=problem_value(instance),
        expected=f"one of: {', '.join(allowed)}",
        allowed=allowed,
        closest=closest,
    )


def _bounds_problem(
    path: str, keyword: str, instance: Any, rule: Any, subschema: dict[str, Any]
) -> Problem:
    """Return the problem of a length, range, pattern or other keyword error."""
    value = problem_value(instance)
    preview = show(instance)
    kind = json_type(instance)
    if keyword in ("minLength", "maxLength") and isinstance(instance, str):
        bound = "at least" if keyword == "minLength" else "at most"
        expected = f"string of {bound} {_plural(rule, 'character')}"
        message = f"{preview} has {len(instance)} characters; expected {bound} {rule}"
    elif keyword in ("minItems", "maxItems") and isinstance(instance, list):
        bound = "at least" if keyword == "minItems" else "at most"
        expected = f"array of {bound} {_plural(rule, 'item')}"
        message = f"array has {len(instance)} items; expected {bound} {rule}"
    elif keyword in _COMPARISONS:
        symbol = _COMPARISONS[keyword]
        expected = f"{kind} {symbol} {rule}"
        message = f"{preview} is out of range; expected {expected}"
    elif keyword == "pattern" and isinstance(instance, str):
        expected = f"string matching {rule}"
        message = (
            f"{preview} ({len(instance)} characters) does not match the pattern {rule}"
        )
    elif keyword == "const":
        expected = show(rule)
        message = f"{preview} is not the required value {expected}"
    else:
        expected = f"{keyword}: {cut(json.dumps(rule, default=str), 60)}"
        message = f"{preview} does not satisfy the schema keyword {expected}"
    description = subschema.get("description")
    if keyword in ("pattern", "minLength", "maxLength") and isinstance(
        description, str
    ):
        message += f" ({cut(description, _DESCRIPTION_LENGTH).rstrip('.')})"
    return Problem(path=path, message=message, value=value, expected=expected)


def _plural(count: object, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


_COMPARISONS = {
    "minimum": ">=",
    "maximum": "<=",
    "exclusiveMinimum": ">",
    "exclusiveMaximum": "<",
}


def _model_problems(error: ModelError) -> Iterator[Problem]:
    """Yield one problem per pydantic error, with the path from its `loc`."""
    for detail in error.errors(include_url=False):
        path = format_path(
            part for part in detail["loc"] if isinstance(part, str | int)
        )
        message = str(detail["msg"])
        for prefix in _PYDANTIC_PREFIXES:
            message = message.removeprefix(prefix)
        received = detail.get("input")
        if isinstance(received, str) and len(received) > PREVIEW_LENGTH:
            message = message.replace(repr(received), show(received))
        message = cut(message, _MESSAGE_LENGTH)
        scalar = received is None or isinstance(received, str | int | float | bool)
        value = problem_value(received) if scalar else None
        if detail["type"] in ("enum", "literal_error"):
            yield _model_enum_problem(path, message, received, detail.get("ctx"))
            continue
        yield Problem(path=path, message=message, value=value)


def _model_enum_problem(
    path: str, message: str, received: object, context: Any
) -> Problem:
    """Return the problem of a value outside a model's enum, with the closest member."""
    expected = context.get("expected") if isinstance(context, dict) else None
    allowed = _QUOTED.findall(expected) if isinstance(expected, str) else []
    closest = None
    if isinstance(received, str) and allowed:
        closest = closest_match(received, allowed)
    if closest is not None:
        message += f"; did you mean {closest!r}?"
    return Problem(
        path=path,
        message=message,
        value=problem_value(received),
        expected=f"one of: {', '.join(allowed)}" if allowed else None,
        allowed=allowed or None,
        closest=closest,
    )


# A quoted member in pydantic's list of expected enum values.
_QUOTED = re.compile(r"'([^']*)'")
