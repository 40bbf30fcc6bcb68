"""Errors raised by the TA Open API client.

Every error carries `.endpoint`, the endpoint name such as ``user-cluster-add``,
where it is known. No message, attribute or chained exception contains the token
or a URL with its query string: messages name the endpoint path only.

::

    TAError                      base of every client error
    ├── TAUsageError             invalid local input: empty id list, missing file
    ├── TAConnectionError        connection refused, DNS failure, connection lost
    ├── TATimeoutError           connect, read, write or pool timeout
    ├── TAHTTPError              HTTP status outside 2xx (.status_code)
    │   └── TARateLimitError     HTTP 429 (.retry_after in seconds, or None)
    ├── TAResponseFormatError    body is not JSON, is an HTML page, or lacks
    │                            the envelope's return_code
    ├── TAAPIError               envelope with return_code != 0
    │                            (.return_code, .server_message)
    └── TAWriteUncertainError    a write failed after the request may have
                                 reached the server (.check_hint); its
                                 __cause__ is the TAConnectionError,
                                 TATimeoutError or TAHTTPError that ended it

Transport failures are raised with no link to the httpx exception, because
httpx exceptions carry the request, whose URL contains the token.
"""

API_ERROR_HINTS: dict[int, str] = {
    -1008: "The token was empty: configure the Open API token of the project.",
}


class TAError(Exception):
    """Base of every error raised by the TA Open API client."""

    def __init__(self, message: str, *, endpoint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.endpoint = endpoint

    def __str__(self) -> str:
        return self.message


class TAUsageError(TAError, ValueError):
    """Invalid local input, found before any request was sent."""


class TAConnectionError(TAError):
    """The server could not be reached, or the connection broke."""


class TATimeoutError(TAError):
    """A connect, read, write or pool timeout."""


class TAHTTPError(TAError):
    """A response with an HTTP status outside 2xx."""

    def __init__(
        self, message: str, *, status_code: int, endpoint: str | None = None
    ) -> None:
        super().__init__(message, endpoint=endpoint)
        self.status_code = status_code


class TARateLimitError(TAHTTPError):
    """HTTP 429: the server requests a wait of `retry_after` seconds before retrying."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None,
        endpoint: str | None = None,
        status_code: int = 429,
    ) -> None:
        super().__init__(message, status_code=status_code, endpoint=endpoint)
        self.retry_after = retry_after


class TAResponseFormatError(TAError):
    """A response body that is not the JSON envelope of the Open API."""


class TAAPIError(TAError):
    """An envelope whose return_code is not 0."""

    def __init__(
        self,
        message: str,
        *,
        return_code: int,
        server_message: str,
        endpoint: str | None = None,
    ) -> None:
        super().__init__(message, endpoint=endpoint)
        self.return_code = return_code
        self.server_message = server_message


class TAWriteUncertainError(TAError):
    """A write that failed in flight: the change may or may not have happened."""

    def __init__(
        self, message: str, *, check_hint: str, endpoint: str | None = None
    ) -> None:
        super().__init__(message, endpoint=endpoint)
        self.check_hint = check_hint


def api_error(return_code: int, server_message: str, endpoint: str) -> TAAPIError:
    """Build the error for an envelope with a non-zero return_code."""
    message = (
        f"{endpoint} failed with return_code {return_code}: "
        f"{server_message or '(no message)'}"
    )
    hint = API_ERROR_HINTS.get(return_code)
    if hint:
        message += f". {hint}"
    return TAAPIError(
        message,
        return_code=return_code,
        server_message=server_message,
        endpoint=endpoint,
    )
