"""Sending one Open API call: the request, its retries and the error it raises.

Reads (detail, list, progress) are retried on connection errors, timeouts,
HTTP 5xx and 429. Writes are retried only when the connection failed before any
byte was sent. Any later failure of a write raises `TAWriteUncertainError`,
because sending a write twice could apply it twice.
"""

import json
import logging
import re
import time
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote, quote_plus

import anyio
import httpx
from pydantic import SecretStr, ValidationError

from ta_cohort_mcp import __version__
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
    api_error,
)
from ta_cohort_mcp.client.retry import backoff_wait, parse_retry_after
from ta_cohort_mcp.client.upload import IdSource, UploadStream
from ta_cohort_mcp.models import Envelope

# The package's logger, not this module's, so the call lines have one stable name.
logger = logging.getLogger("ta_cohort_mcp.client")

# Characters of a response body quoted in an error message.
SNIPPET_LENGTH = 120

Method = Literal["GET", "POST"]

_PERCENT_ESCAPE = re.compile(r"(%[0-9A-Fa-f]{2})")


@dataclass
class Call:
    """One endpoint call: what to send, how to log it, and how to check a write."""

    endpoint: str
    method: Method
    is_write: bool
    params: dict[str, str | int]
    log_target: str
    json_body: dict[str, Any] | None = None
    upload: IdSource | None = None
    check_hint: str = ""

    @property
    def path(self) -> str:
        return f"/open/{self.endpoint}"


@dataclass
class Failure:
    """A failed attempt and what it allows: a retry, or which error to raise."""

    error: TAError
    # No byte of the request was sent, because the connection never opened.
    before_send: bool = False
    # The server may have applied the request (it was sent, or it returned 5xx).
    may_have_applied: bool = False
    retryable: bool = False
    retry_after: float | None = None


@dataclass
class Reply:
    """The envelope's data of a successful call, and the upload stream it sent."""

    data: Any
    upload: UploadStream | None = None


class CallSender:
    """The HTTP side of `TAClient`: one `httpx.AsyncClient`, retries, error mapping.

    `TAClient` documents the arguments.
    """

    def __init__(
        self,
        base_url: str,
        token: str | SecretStr,
        *,
        timeout: float,
        read_retries: int,
        max_retry_wait: float,
        transport: httpx.AsyncBaseTransport | None,
    ) -> None:
        self.base_url = _check_base_url(base_url)
        self._token = token if isinstance(token, SecretStr) else SecretStr(token)
        if not self._token.get_secret_value().strip():
            raise TAUsageError("token is empty; give the Open API token of the project")
        self._token_pattern = _token_pattern(self._token.get_secret_value())
        if timeout <= 0:
            raise TAUsageError(f"timeout must be more than 0 seconds; got {timeout}")
        if read_retries < 0:
            raise TAUsageError(f"read_retries must be 0 or more; got {read_retries}")
        if max_retry_wait < 0:
            raise TAUsageError(
                f"max_retry_wait must be 0 or more seconds; got {max_retry_wait}"
            )
        self.timeout = timeout
        self.read_retries = read_retries
        self.max_retry_wait = max_retry_wait
        _silence_http_loggers()
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout),
            transport=transport,
            headers={
                "User-Agent": f"ta-cohort-mcp/{__version__}",
                "Accept": "application/json",
            },
        )

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}(base_url={self.base_url!r}, token={self._token!r})"

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._http.aclose()

    async def _run(self, call: Call) -> Reply:
        """Send a call with its retries and log one line with its outcome."""
        started = time.monotonic()
        status = "interrupted"
        try:
            reply = await self._send_with_retries(call)
            status = "return_code=0"
            return reply
        except TAAPIError as exc:
            status = f"return_code={exc.return_code}"
            raise
        except TAError as exc:
            status = f"failed with {type(exc).__name__}"
            raise
        finally:
            elapsed_ms = (time.monotonic() - started) * 1000
            logger.info(
                "%s %s %s in %.0f ms",
                call.endpoint,
                call.log_target,
                status,
                elapsed_ms,
            )

    async def _send_with_retries(self, call: Call) -> Reply:
        retry_index = 0
        while True:
            step = await self._attempt(call)
            if isinstance(step, Reply):
                return step
            wait = self._retry_wait(call, step, retry_index)
            if wait is None:
                raise self._final_error(call, step, attempts=retry_index + 1)
            logger.warning(
                "%s %s: %s; retry %d of %d in %.2f s",
                call.endpoint,
                call.log_target,
                type(step.error).__name__,
                retry_index + 1,
                self.read_retries,
                wait,
            )
            await self._sleep(wait)
            retry_index += 1

    def _retry_wait(
        self, call: Call, failure: Failure, retry_index: int
    ) -> float | None:
        """Return the wait before the next attempt, or None when none may follow."""
        allowed = failure.before_send if call.is_write else failure.retryable
        if not allowed or retry_index >= self.read_retries:
            return None
        if failure.retry_after is not None:
            if failure.retry_after > self.max_retry_wait:
                return None
            return failure.retry_after
        return backoff_wait(retry_index, self.max_retry_wait)

    def _final_error(self, call: Call, failure: Failure, *, attempts: int) -> TAError:
        error = failure.error
        if attempts > 1:
            error.message = f"{error.message} ({attempts} attempts failed)"
            error.args = (error.message,)
        if not (call.is_write and failure.may_have_applied):
            return error
        uncertain = TAWriteUncertainError(
            f"{call.endpoint} may or may not have been applied: {error.message}. "
            "It was not sent again, because a repeated write can apply twice. "
            f"To check, {call.check_hint}.",
            check_hint=call.check_hint,
            endpoint=call.endpoint,
        )
        uncertain.__cause__ = error
        return uncertain

    async def _sleep(self, seconds: float) -> None:
        """Wait before a retry; tests override it to record the waits."""
        await anyio.sleep(seconds)

    async def _attempt(self, call: Call) -> Reply | Failure:
        stream = UploadStream(call.upload) if call.upload is not None else None
        try:
            if stream is not None:
                await stream.start()
            request = self._build_request(call, stream)
            logger.debug("%s: sending %s", call.endpoint, _body_size(request, stream))
            result = await self._send(call, request)
            if isinstance(result, Failure):
                return result
            logger.debug(
                "%s: HTTP %d, %d bytes received%s",
                call.endpoint,
                result.status_code,
                len(result.content),
                f", {stream.bytes_sent} bytes sent" if stream is not None else "",
            )
            try:
                checked = self._check_response(call, result)
            except TAResponseFormatError as error:
                # A write may have been applied although its response is unreadable.
                return Failure(error, may_have_applied=True)
            if isinstance(checked, Failure):
                return checked
            return Reply(checked, stream)
        finally:
            if stream is not None:
                # Shielded, so a cancelled call still closes the id file.
                with anyio.CancelScope(shield=True):
                    await stream.aclose()

    def _build_request(self, call: Call, stream: UploadStream | None) -> httpx.Request:
        params = {"token": self._token.get_secret_value(), **call.params}
        if stream is not None:
            # NOTE: a streamed body goes out chunked, with no Content-Length. The
            # reference's curl example sends Content-Length; chunked uploads are
            # tested against the sandbox, not against a TA server.
            return self._http.build_request(
                call.method,
                call.path,
                params=params,
                content=stream.chunks(),
                headers={"Content-Type": "text/csv"},
            )
        if call.json_body is not None:
            content = json.dumps(call.json_body, ensure_ascii=False).encode("utf-8")
            return self._http.build_request(
                call.method,
                call.path,
                params=params,
                content=content,
                headers={"Content-Type": "application/json"},
            )
        return self._http.build_request(call.method, call.path, params=params)

    async def _send(
        self, call: Call, request: httpx.Request
    ) -> httpx.Response | Failure:
        """Send one request; a transport error becomes a `Failure` with no link to it.

        The httpx exception is not chained, because its request URL contains the
        token; its type and message (redacted) go into the error message.
        """
        where = f"{call.endpoint} at {self.base_url}"
        try:
            return await self._http.send(request)
        except (httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            failure = Failure(
                TATimeoutError(
                    f"{where}: could not connect within {self.timeout:g} s "
                    f"({self._describe(exc)}). Check the base URL, the network and "
                    "that the server is running, or raise the timeout.",
                    endpoint=call.endpoint,
                ),
                before_send=True,
                retryable=True,
            )
        except httpx.TimeoutException as exc:
            failure = Failure(
                TATimeoutError(
                    f"{where}: timed out after {self.timeout:g} s "
                    f"({self._describe(exc)}). Check the network and the server's "
                    "load, or raise the timeout.",
                    endpoint=call.endpoint,
                ),
                may_have_applied=True,
                retryable=True,
            )
        except (httpx.ConnectError, httpx.ProxyError) as exc:
            failure = Failure(
                TAConnectionError(
                    f"{where}: could not connect ({self._describe(exc)}). Check the "
                    "base URL (host and port) and that the server is running and "
                    "reachable from this machine.",
                    endpoint=call.endpoint,
                ),
                before_send=True,
                retryable=True,
            )
        except httpx.TransportError as exc:
            failure = Failure(
                TAConnectionError(
                    f"{where}: the connection failed during the request "
                    f"({self._describe(exc)}). Check the network and the server.",
                    endpoint=call.endpoint,
                ),
                may_have_applied=True,
                retryable=True,
            )
        except httpx.DecodingError as exc:
            failure = Failure(
                TAResponseFormatError(
                    f"{where}: the response body could not be decoded "
                    f"({self._describe(exc)}). Check for a proxy that rewrites "
                    "responses.",
                    endpoint=call.endpoint,
                ),
                may_have_applied=True,
            )
        return failure

    def _check_response(self, call: Call, response: httpx.Response) -> Any:
        """Return the envelope's data, or a `Failure` for an HTTP error status.

        Raises:
            TAResponseFormatError: a 2xx body that is not the JSON envelope.
            TAAPIError: the envelope's return_code is not 0.
        """
        status = response.status_code
        if status == 429:
            return self._rate_limited(call, response)
        if status >= 500:
            return self._server_error(call, response)
        if not 200 <= status < 300:
            return Failure(self._http_error(call, response))
        envelope = self._read_envelope(call, response)
        if envelope.return_code != 0:
            message = self._redact(envelope.return_message)
            raise api_error(envelope.return_code, message, call.endpoint)
        return envelope.data

    def _rate_limited(self, call: Call, response: httpx.Response) -> Failure:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        wait_text = "no Retry-After" if retry_after is None else f"{retry_after:g} s"
        message = f"{call.endpoint}: rate limited (HTTP 429, wait asked: {wait_text})."
        if call.is_write:
            message += " The request was not applied and was not sent again."
        elif retry_after is not None and retry_after > self.max_retry_wait:
            message += (
                f" Not retried, because the wait exceeds max_retry_wait "
                f"({self.max_retry_wait:g} s)."
            )
        if retry_after is not None:
            message += f" Call again after {retry_after:g} s."
        else:
            message += " Call again later."
        error = TARateLimitError(
            message, retry_after=retry_after, endpoint=call.endpoint
        )
        return Failure(error, retryable=True, retry_after=retry_after)

    def _server_error(self, call: Call, response: httpx.Response) -> Failure:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        message = (
            f"{call.endpoint}: server error HTTP {response.status_code}"
            f"{self._server_detail(response)}. Try again later; if it persists, "
            "check the TA server's logs."
        )
        if retry_after is not None and retry_after > self.max_retry_wait:
            message += f" The server asks to wait {retry_after:g} s."
        error = TAHTTPError(
            message, status_code=response.status_code, endpoint=call.endpoint
        )
        return Failure(
            error, may_have_applied=True, retryable=True, retry_after=retry_after
        )

    def _http_error(self, call: Call, response: httpx.Response) -> TAHTTPError:
        status = response.status_code
        if status in (401, 403):
            hint = "Check the token: it must be the Open API token of the project."
        elif status == 404:
            hint = (
                f"Check the base URL {self.base_url}: the server has no "
                f"{call.path}. Give the Open API address (such as "
                "http://host:8992), without /open."
            )
        elif 300 <= status < 400:
            location = httpx.URL(response.headers.get("Location", "")).copy_with(
                query=None
            )
            hint = (
                f"The server redirects to {str(location)!r}. Check the base URL "
                "(http or https, host, port)."
            )
        else:
            hint = "Check the request values and the TA version."
        message = (
            f"{call.endpoint}: HTTP {status}{self._server_detail(response)}. {hint}"
        )
        return TAHTTPError(message, status_code=status, endpoint=call.endpoint)

    def _read_envelope(self, call: Call, response: httpx.Response) -> Envelope:
        """Parse the envelope of a 2xx response.

        The error is raised outside the except block, so no parser exception
        (which may quote the body) is chained to it.
        """
        problem = _envelope_problem(response)
        envelope: Envelope | None = None
        if problem is None:
            try:
                envelope = Envelope.model_validate(response.json())
            except ValidationError:
                problem = (
                    "envelope fields of the wrong type (return_code must be an integer)"
                )
        if envelope is not None:
            return envelope
        raise TAResponseFormatError(
            f"{call.endpoint}: the response (HTTP {response.status_code}) has "
            f"{problem}, so it is not from the TA Open API. Check that the base "
            f"URL {self.base_url} is the Open API address (often port 8992), not "
            f"the web console or a proxy. Body starts: {self._snippet(response)!r}",
            endpoint=call.endpoint,
        )

    def _server_detail(self, response: httpx.Response) -> str:
        """Return ", return_code …: message" when an error status carries an envelope."""
        if _envelope_problem(response) is not None:
            return ""
        payload = response.json()
        code = payload.get("return_code")
        text = self._redact(str(payload.get("return_message", "")))
        return f", return_code {code}: {text}"

    def _snippet(self, response: httpx.Response) -> str:
        # The whole body is redacted before the cut, so a token that straddles
        # the cut is never left half-visible.
        text = response.content.decode("utf-8", "replace")
        return self._redact(text)[:SNIPPET_LENGTH]

    def _describe(self, exc: Exception) -> str:
        detail = self._redact(str(exc))
        return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__

    def _redact(self, text: str) -> str:
        """Return `text` with every encoded form of the token replaced by ***."""
        return self._token_pattern.sub("***", text)


def _token_pattern(secret: str) -> re.Pattern[str]:
    """Compile a pattern that matches the token in each form a server may echo.

    The forms are the raw token, `quote` with and without "/" kept, `quote_plus`,
    the form httpx sends in the query string, and the JSON string escape. Each
    percent-escape matches in either case, because servers may echo "%2b" for
    "%2B".
    """
    wire = str(httpx.QueryParams({"token": secret})).removeprefix("token=")
    json_escaped = json.dumps(secret)[1:-1]
    forms = {
        secret,
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
        quote_plus(secret, safe="/"),
        wire,
        json_escaped,
    }
    # Longest first, so a longer form is replaced whole before a shorter one
    # that it contains.
    alternatives = [
        _form_pattern(form) for form in sorted(forms, key=len, reverse=True)
    ]
    return re.compile("|".join(alternatives))


def _form_pattern(form: str) -> str:
    """Escape `form` for a regex in which each "%XX" escape matches either case."""
    parts = _PERCENT_ESCAPE.split(form)
    return "".join(
        f"(?i:{part})" if _PERCENT_ESCAPE.fullmatch(part) else re.escape(part)
        for part in parts
    )


def _envelope_problem(response: httpx.Response) -> str | None:
    """Describe why a body is not a JSON envelope, or return None when it is one."""
    content_type = response.headers.get("Content-Type", "").lower()
    if "html" in content_type or response.content.lstrip()[:1] == b"<":
        return "an HTML page instead of JSON"
    try:
        payload = json.loads(response.content)
    except ValueError:
        return "a body that is not JSON"
    if not isinstance(payload, dict):
        return f"JSON of type {type(payload).__name__} instead of an object"
    if "return_code" not in payload:
        return "JSON without return_code"
    return None


def _check_base_url(base_url: str) -> str:
    try:
        url = httpx.URL(base_url)
    except httpx.InvalidURL:
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise TAUsageError(
            f"base_url {base_url!r} is not an http or https URL; give the Open API "
            "address such as http://127.0.0.1:8992"
        )
    if url.query or url.fragment or url.userinfo:
        raise TAUsageError(
            "base_url must not contain a query, a fragment or a user name; give the "
            "token separately and the address only, such as http://127.0.0.1:8992"
        )
    return str(url).rstrip("/")


def _silence_http_loggers() -> None:
    # httpx logs each request URL at INFO, and the URL carries the token.
    for name in ("httpx", "httpcore"):
        http_logger = logging.getLogger(name)
        if http_logger.level < logging.WARNING:
            http_logger.setLevel(logging.WARNING)


def _body_size(request: httpx.Request, stream: UploadStream | None) -> str:
    if stream is not None:
        return "a streamed text/csv body"
    return f"{len(request.content)} bytes"
