"""Size limits on tool arguments, and the safe repairs applied before validation.

A repair is applied only where the schema at that path expects a different type
or spelling and the intended value is certain:

1. JSON text where an object or array is expected is decoded once.
2. A string of ASCII digits where an integer or number is expected becomes the
   number; an integer where a string is expected becomes its decimal text.
3. An enum value in the wrong case or with surrounding spaces becomes the one
   allowed value that matches it case-insensitively.
4. A lone value where an array is expected is wrapped in an array (a string is
   never split into characters).
5. The key `uceCalcuSymbol`, a misspelling in TA's API reference, is renamed to
   `comparator` where the schema has `comparator` and the object has only the
   misspelling.

Booleans are never converted. Every repair is reported as one sentence.
"""

import json
import math
import re
from typing import Any

from ta_cohort_mcp.server.problems import (
    Problem,
    cut,
    join_path,
    json_type,
    problem_value,
    show,
)

# Deepest nesting of objects and arrays accepted; the top-level object is level 1.
MAX_DEPTH = 32
# Maximum length of a string (value or key), in characters.
MAX_STRING_LENGTH = 100_000
# Maximum size of the arguments, in characters of compact JSON (an estimate that
# ignores escapes).
MAX_ARGUMENTS_SIZE = 2_000_000
# Maximum size of an integer, in bits. Bigger integers are far beyond any TA id.
MAX_INTEGER_BITS = 256
# Maximum number of problems reported for one call.
MAX_PROBLEMS = 20

# Text that repair 2 turns into a number: optional sign, ASCII digits, and for
# numbers one decimal point. At most 40 digits, so no conversion is slow.
_INTEGER_TEXT = re.compile(r"[+-]?[0-9]{1,40}", re.ASCII)
_NUMBER_TEXT = re.compile(r"[+-]?[0-9]{1,40}(?:\.[0-9]{1,40})?", re.ASCII)

# Keywords under which no repair is attempted, because the type at the path
# depends on which alternative applies.
_COMBINATORS = ("anyOf", "oneOf", "allOf", "not", "if", "$ref", "$dynamicRef")

_TYPO_KEY = "uceCalcuSymbol"
_TYPO_FIXED = "comparator"


def check_limits(value: object, path: str = "", depth: int = 1) -> list[Problem]:
    """Return the problems of a value that is too deep, too large or not JSON.

    Walks the value without recursion, so hostile nesting cannot raise
    RecursionError. `depth` is the nesting level of `value` itself.
    """
    problems: list[Problem] = []
    if not isinstance(value, dict | list):
        problem, _ = _check_scalar(value, path, None)
        return [] if problem is None else [problem]
    size = 0
    stack: list[tuple[dict[Any, Any] | list[Any], str, int]] = [(value, path, depth)]
    while stack and len(problems) <= MAX_PROBLEMS:
        container, container_path, level = stack.pop()
        if level > MAX_DEPTH:
            problems.append(_too_deep(container_path))
            continue
        size += _check_children(container, container_path, level, stack, problems)
        if size > MAX_ARGUMENTS_SIZE:
            problems.append(_too_large(path))
            break
    return problems


def _check_children(
    container: dict[Any, Any] | list[Any],
    path: str,
    level: int,
    stack: list[tuple[dict[Any, Any] | list[Any], str, int]],
    problems: list[Problem],
) -> int:
    """Check the scalars in `container`, push its containers; return its JSON size.

    A path is formatted only for a container or a value with a problem, which
    keeps the walk over a large array of scalars fast.
    """
    size = 2
    nested: list[tuple[dict[Any, Any] | list[Any], str, int]] = []
    entries = container.items() if isinstance(container, dict) else enumerate(container)
    for key, item in entries:
        if isinstance(key, str):
            if len(key) > MAX_STRING_LENGTH:
                problems.append(_too_long(path, key, "key"))
                continue
            size += len(key) + 4
        elif isinstance(container, dict):
            problems.append(_key_not_string(path, key))
            continue
        if isinstance(item, dict | list):
            nested.append((item, join_path(path, key), level + 1))
            continue
        problem, item_size = _check_scalar(item, path, key)
        size += item_size + 1
        if problem is not None:
            problems.append(problem)
    stack.extend(reversed(nested))
    return size


def _key_not_string(path: str, key: object) -> Problem:
    return Problem(
        path=path,
        message=f"key {key!r} is not a string; object keys must be strings",
        value=problem_value(key),
        expected="string",
    )


def _check_scalar(
    value: object, parent: str, key: str | int | None
) -> tuple[Problem | None, int]:
    """Return the problem of one scalar, if any, and its estimated JSON size."""
    if isinstance(value, str):
        if len(value) <= MAX_STRING_LENGTH:
            return None, len(value) + 2
    elif value is None or isinstance(value, bool):
        return None, 5
    elif isinstance(value, int):
        if value.bit_length() <= MAX_INTEGER_BITS:
            return None, len(str(value))
    elif isinstance(value, float) and math.isfinite(value):
        return None, 24
    path = parent if key is None else join_path(parent, key)
    return _scalar_problem(value, path), 80


def _scalar_problem(value: object, path: str) -> Problem:
    """Return the problem of a scalar that is too large or not a JSON value."""
    if isinstance(value, str):
        return _too_long(path, value, "string")
    if isinstance(value, int):
        return Problem(
            path=path,
            message=(
                f"integer of {value.bit_length()} bits is larger than the "
                f"limit of {MAX_INTEGER_BITS} bits"
            ),
            value=problem_value(value),
            expected="integer",
        )
    if isinstance(value, float):
        return Problem(
            path=path,
            message=f"{value} is not a JSON number; send a finite number",
            value=str(value),
            expected="finite number",
        )
    return Problem(
        path=path,
        message=f"a {type(value).__name__} is not a JSON value",
        expected="JSON value",
    )


def _too_deep(path: str) -> Problem:
    return Problem(
        path=path,
        message=(
            f"objects and arrays are nested deeper than {MAX_DEPTH} levels; "
            "no valid argument nests that deep"
        ),
        expected=f"at most {MAX_DEPTH} levels of nesting",
    )


def _too_large(path: str) -> Problem:
    return Problem(
        path=path,
        message=(
            f"arguments are larger than the limit of {MAX_ARGUMENTS_SIZE:,} "
            "characters of JSON; send smaller arguments"
        ),
        expected=f"at most {MAX_ARGUMENTS_SIZE:,} characters of JSON",
    )


def _too_long(path: str, text: str, kind: str) -> Problem:
    return Problem(
        path=path,
        message=(
            f"{kind} of {len(text):,} characters is longer than the limit of "
            f"{MAX_STRING_LENGTH:,}"
        ),
        value=cut(text),
        expected=f"{kind} of at most {MAX_STRING_LENGTH:,} characters",
    )


def schema_types(schema: dict[str, Any]) -> frozenset[str] | None:
    """Return the JSON types that `schema` allows, or None when it has no `type`."""
    declared = schema.get("type")
    if isinstance(declared, str):
        return frozenset({declared})
    if isinstance(declared, list):
        return frozenset(name for name in declared if isinstance(name, str))
    return None


def matches_type(value: object, types: frozenset[str]) -> bool:
    """Return whether `value` has one of `types`, by JSON Schema 2020-12 rules."""
    kind = json_type(value)
    if kind in types:
        return True
    if kind == "integer" and "number" in types:
        return True
    if kind == "number" and "integer" in types:
        assert isinstance(value, float)
        return value.is_integer()
    return False


class Repairer:
    """Apply the safe repairs to arguments, guided by their JSON Schema.

    `repairs` collects one sentence per repair applied. `problems` collects the
    JSON text that a repair could not decode into the expected type. The schema
    check leaves out type errors at `failed_paths`, because they repeat these.
    """

    def __init__(self) -> None:
        self.repairs: list[str] = []
        self.problems: list[Problem] = []
        self.failed_paths: set[str] = set()

    def repair_arguments(
        self, arguments: dict[str, object], schema: object
    ) -> dict[str, object]:
        """Return the top-level `arguments` with the repairs applied."""
        if not isinstance(schema, dict) or any(key in schema for key in _COMBINATORS):
            return arguments
        return self._repair_object(arguments, schema, "", 1)

    def repair(self, value: object, schema: object, path: str, depth: int) -> object:
        """Return `value` with the repairs applied; the input is never changed."""
        if not isinstance(schema, dict) or any(key in schema for key in _COMBINATORS):
            return value
        value = self._repair_shape(value, schema, path, depth)
        if isinstance(value, dict):
            return self._repair_object(value, schema, path, depth)
        if isinstance(value, list):
            return self._repair_array(value, schema, path, depth)
        return value

    def _report(self, path: str, sentence: str) -> None:
        self.repairs.append(f"{path or 'arguments'}: {sentence}")

    def _repair_shape(
        self, value: object, schema: dict[str, Any], path: str, depth: int
    ) -> object:
        """Return `value` converted to the type or enum spelling the schema expects."""
        types = schema_types(schema)
        if types is None or matches_type(value, types):
            return self._repair_enum(value, schema, path)
        if isinstance(value, str):
            stripped = value.strip()
            if types & {"object", "array"} and stripped[:1] in ("{", "["):
                return self._decode(value, types, path, depth)
            number = _number_from_text(stripped, types)
            if number is not None:
                self._report(
                    path, f"converted the string {show(value)} to the number {number}"
                )
                return number
        elif (
            isinstance(value, int) and not isinstance(value, bool) and "string" in types
        ):
            text = str(value)
            self._report(path, f"converted the integer {text} to the string {text!r}")
            return self._repair_enum(text, schema, path)
        if "array" in types and value is not None and _fits_items(value, schema):
            self._report(path, "wrapped the single value in an array")
            return [value]
        return value

    def _repair_enum(self, value: object, schema: dict[str, Any], path: str) -> object:
        allowed = schema.get("enum")
        if (
            not isinstance(value, str)
            or not isinstance(allowed, list)
            or value in allowed
        ):
            return value
        target = value.strip().lower()
        matches = [
            choice
            for choice in allowed
            if isinstance(choice, str) and choice.lower() == target
        ]
        if len(matches) != 1:
            return value
        self._report(path, f"changed {show(value)} to the allowed value {matches[0]!r}")
        return matches[0]

    def _decode(
        self, text: str, types: frozenset[str], path: str, depth: int
    ) -> object:
        """Return the object or array `text` encodes, or `text` with a problem noted."""
        expected = " or ".join(sorted(types & {"object", "array"}))
        self.failed_paths.add(path)
        try:
            decoded = json.loads(text, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as error:
            self.problems.append(
                Problem(
                    path=path,
                    message=(
                        f"expected {expected}, got a string that is not valid JSON "
                        f"({_decode_error_text(error)}); send the {expected} itself"
                    ),
                    value=problem_value(text),
                    expected=expected,
                )
            )
            return text
        if not isinstance(decoded, dict | list) or not matches_type(decoded, types):
            self.problems.append(
                Problem(
                    path=path,
                    message=(
                        f"expected {expected}, got a string of JSON text that "
                        f"decodes to {_article(json_type(decoded))}"
                    ),
                    value=problem_value(text),
                    expected=expected,
                )
            )
            return text
        limit_problems = check_limits(decoded, path, depth)
        if limit_problems:
            self.problems.extend(limit_problems)
            return text
        self.failed_paths.discard(path)
        self._report(path, f"decoded JSON text into {_article(json_type(decoded))}")
        return decoded

    def _repair_object(
        self, value: dict[str, object], schema: dict[str, Any], path: str, depth: int
    ) -> dict[str, object]:
        properties = schema.get("properties")
        if not isinstance(properties, dict):
            properties = {}
        if (
            _TYPO_FIXED in properties
            and _TYPO_KEY not in properties
            and _TYPO_KEY in value
            and _TYPO_FIXED not in value
        ):
            value = {
                (_TYPO_FIXED if key == _TYPO_KEY else key): item
                for key, item in value.items()
            }
            self._report(path, f"renamed key {_TYPO_KEY!r} to {_TYPO_FIXED!r}")
        additional = schema.get("additionalProperties")
        repaired: dict[str, object] = {}
        for key, item in value.items():
            child_schema = properties.get(key, additional)
            repaired[key] = self.repair(
                item, child_schema, join_path(path, key), depth + 1
            )
        return repaired

    def _repair_array(
        self, value: list[object], schema: dict[str, Any], path: str, depth: int
    ) -> list[object]:
        items = schema.get("items")
        return [
            self.repair(item, items, join_path(path, index), depth + 1)
            for index, item in enumerate(value)
        ]


def _number_from_text(text: str, types: frozenset[str]) -> int | float | None:
    """Return the number that `text` spells exactly, if `types` include a number."""
    if "integer" in types and _INTEGER_TEXT.fullmatch(text):
        return int(text)
    if "number" in types and _NUMBER_TEXT.fullmatch(text):
        return float(text) if "." in text else int(text)
    return None


def _fits_items(value: object, schema: dict[str, Any]) -> bool:
    """Return whether a lone `value` is, or repairs to, an item of the array schema."""
    if isinstance(value, list):
        return False
    items = schema.get("items")
    if not isinstance(items, dict):
        return False
    types = schema_types(items)
    if types is None:
        return False
    if matches_type(value, types):
        return True
    if isinstance(value, bool):
        return False
    if isinstance(value, int) and "string" in types:
        return True
    return (
        isinstance(value, str) and _number_from_text(value.strip(), types) is not None
    )


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON number")


def _decode_error_text(error: Exception) -> str:
    if isinstance(error, json.JSONDecodeError):
        return f"{error.msg} at line {error.lineno}, column {error.colno}"
    if isinstance(error, RecursionError):
        return "nested too deep to decode"
    return str(error)


def _article(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"
