"""Tool results: structured content with a short text, and errors as isError results.

Every failure a caller can act on becomes a result with `isError`, a text that
says what failed and what to do, and `structuredContent` of the form
`{"error": {"kind": ..., "message": ..., ...}}`. Only protocol faults become
JSON-RPC errors.
"""

import dataclasses
import json
from typing import Any

from mcp import types

from ta_cohort_mcp.client.errors import (
    TAAPIError,
    TAConnectionError,
    TAError,
    TAHTTPError,
    TARateLimitError,
    TAResponseFormatError,
    TATimeoutError,
    TAUsageError,
    TAWriteUncertainError,
)
from ta_cohort_mcp.server.problems import Problem, format_problems

Structured = dict[str, Any]


def counted(count: int, singular: str, plural: str | None = None) -> str:
    """Return `count` with the noun in agreement: "1 row", "2 rows", "0 entries"."""
    noun = singular if count == 1 else (plural or f"{singular}s")
    return f"{count} {noun}"


def end_sentence(text: str) -> str:
    """Return `text` with a full stop, unless it already ends with . ? or !."""
    return text if text.endswith((".", "?", "!")) else text + "."


class ToolFailure(Exception):
    """A failure a tool reports as an isError result of `kind`, with `details`."""

    def __init__(self, kind: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.details = details


def compact(value: Any) -> Any:
    """Return `value` without None entries in its objects, for structured content."""
    if isinstance(value, dict):
        return {k: compact(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [compact(item) for item in value]
    return value


def repair_entries(repairs: list[Any]) -> list[Structured]:
    """Return repairs as JSON objects, whatever form the validator reports them in."""
    entries: list[Structured] = []
    for repair in repairs:
        if dataclasses.is_dataclass(repair) and not isinstance(repair, type):
            entries.append(compact(dataclasses.asdict(repair)))
        elif isinstance(repair, dict):
            entries.append(compact(repair))
        else:
            entries.append({"message": str(repair)})
    return entries


def _repair_text(entry: Structured) -> str:
    path = entry.get("path")
    message = str(entry.get("message") or entry.get("repair") or entry)
    return f"{path}: {message}" if path else message


def success(
    text: str, structured: Structured, repairs: list[Any] | None = None
) -> types.CallToolResult:
    """Build a successful result; `repairs` are listed in the text and in `repairs`."""
    content = compact(structured)
    lines = [text]
    if repairs:
        entries = repair_entries(repairs)
        content["repairs"] = entries
        lines.append(
            "Repaired arguments: " + "; ".join(_repair_text(e) for e in entries)
        )
    return types.CallToolResult(
        content=[types.TextContent(type="text", text="\n".join(lines))],
        structured_content=content,
    )


def failure(kind: str, message: str, **details: Any) -> types.CallToolResult:
    """Build an isError result of `kind` whose text is `message`."""
    error = compact({"kind": kind, "message": message, **details})
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=message)],
        structured_content={"error": error},
        is_error=True,
    )


def invalid_arguments(
    problems: list[Problem], *, truncated: bool = False
) -> types.CallToolResult:
    """Build the isError result for arguments that failed validation."""
    entries = [compact(dataclasses.asdict(problem)) for problem in problems]
    text = format_problems(problems, truncated=truncated)
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)],
        structured_content={
            "error": {"kind": "invalid_arguments", "problems": entries}
        },
        is_error=True,
    )


def from_failure(error: ToolFailure) -> types.CallToolResult:
    """Build the isError result of a ToolFailure."""
    return failure(error.kind, error.message, **error.details)


def from_client_error(error: TAError, tool: str) -> types.CallToolResult:
    """Build the isError result for an error of the TA client, with the next step."""
    endpoint = error.endpoint
    if isinstance(error, TAAPIError):
        text = (
            f"{tool}: TA returned error {error.return_code}: "
            f"{end_sentence(error.server_message or '(no message)')} "
            "Check the arguments against the message, or look the cluster up with "
            "user_cluster_list or user_cluster_detail."
        )
        return failure(
            "api_error",
            text,
            returnCode=error.return_code,
            serverMessage=error.server_message,
            endpoint=endpoint,
        )
    if isinstance(error, TAWriteUncertainError):
        text = (
            f"{tool}: the request may or may not have reached TA: "
            f"{end_sentence(error.message)} Do not repeat it blindly; {error.check_hint}"
        )
        return failure(
            "write_uncertain", text, endpoint=endpoint, check=error.check_hint
        )
    if isinstance(error, TARateLimitError):
        wait = (
            f" after {error.retry_after:g} seconds" if error.retry_after else " later"
        )
        text = f"{tool}: TA is rate limiting requests (HTTP 429); try again{wait}."
        return failure(
            "rate_limited", text, endpoint=endpoint, retryAfterSeconds=error.retry_after
        )
    return failure(*_transport_problem(error, tool), endpoint=endpoint)


def _transport_problem(error: TAError, tool: str) -> tuple[str, str]:
    if isinstance(error, TATimeoutError):
        return (
            "timeout",
            f"{tool}: TA did not answer in time ({error.message}). Check that TA is "
            "reachable and not overloaded, or raise TA_TIMEOUT; then try again.",
        )
    if isinstance(error, TAConnectionError):
        return (
            "connection_error",
            f"{tool}: could not reach TA ({error.message}). Check TA_BASE_URL and "
            "the network, then try again.",
        )
    if isinstance(error, TAHTTPError):
        return (
            "http_error",
            f"{tool}: TA answered HTTP {error.status_code} ({error.message}). Check "
            "TA_BASE_URL and that the token is valid for this deployment.",
        )
    if isinstance(error, TAResponseFormatError):
        return (
            "bad_response",
            f"{tool}: TA's answer was not the Open API's JSON ({error.message}). "
            "Check that TA_BASE_URL points at the Open API.",
        )
    if isinstance(error, TAUsageError):
        return ("invalid_input", f"{tool}: {error.message}")
    return ("client_error", f"{tool}: {error.message}")


def as_json(value: Any) -> str:
    """Return compact JSON text of `value`, for short summaries in text content."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
