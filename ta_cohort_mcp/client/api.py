"""The async client of TA's Open API for user clusters and tags.

`TAClient` has one method per endpoint. It sends the token as the ``token``
query parameter, reads the ``{"return_code", "return_message", "data"}``
envelope, and raises the errors of `ta_cohort_mcp.client.errors`.

Retries: reads (detail, list, progress) are retried on connection errors,
timeouts, HTTP 5xx and 429. Writes are retried only when the connection failed
before any byte was sent. Any later failure of a write raises
`TAWriteUncertainError`, because sending a write twice could apply it twice.
"""

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Self, TypeVar
from urllib.parse import quote

import anyio
import httpx
from pydantic import BaseModel, SecretStr, ValidationError

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
from ta_cohort_mcp.client.upload import IdSource, UploadOutcome, UploadStream
from ta_cohort_mcp.models import (
    ClusterAddRequest,
    ClusterCatalog,
    ClusterDetail,
    ClusterList,
    ClusterListRequest,
    ClusterUpdateRequest,
    Envelope,
    ImportAddQuery,
    ImportModifyByNameQuery,
    ImportModifyQuery,
    ImportResult,
    RefreshProgress,
)

# The package's logger, not this module's, so the call lines have one stable name.
logger = logging.getLogger("ta_cohort_mcp.client")

# Characters of a response body quoted in an error message.
SNIPPET_LENGTH = 120

Method = Literal["GET", "POST"]
ModelT = TypeVar("ModelT", bound=BaseModel)


@dataclass
class _Call:
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
class _Failure:
    """A failed attempt and what it allows: a retry, or which error to raise."""

    error: TAError
    # Nothing of the request reached the server (the connection never opened).
    before_send: bool = False
    # The server may have applied the request (it was sent, or it returned 5xx).
    may_have_applied: bool = False
    retryable: bool = False
    retry_after: float | None = None


@dataclass
class _Reply:
    data: Any
    upload: UploadStream | None = None


class TAClient:
    """Async client of the cluster and tag endpoints of TA's Open API.

    One `httpx.AsyncClient` is opened per instance; close it with `aclose()` or
    use the instance as an async context manager.

    Args:
        base_url: Open API address such as ``http://127.0.0.1:8992``, with no
            query string; endpoints are ``/open/<endpoint-name>`` below it.
        token: Open API token of the project, sent as the ``token`` parameter.
        timeout: Seconds allowed for each of connect, read, write and pool wait.
        read_retries: Retries of a read after a failure; writes use it only for
            connections that failed before anything was sent.
        max_retry_wait: Maximum wait in seconds before a retry. A Retry-After
            asking for more is not waited for: the error is raised at once.
        transport: httpx transport to use instead of the network (tests, proxies).

    Raises:
        TAUsageError: the base URL or token is invalid, or a number is negative.
    """

    def __init__(
        self,
        base_url: str,
        token: str | SecretStr,
        *,
        timeout: float = 30.0,
        read_retries: int = 3,
        max_retry_wait: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = _check_base_url(base_url)
        self._token = token if isinstance(token, SecretStr) else SecretStr(token)
        if not self._token.get_secret_value().strip():
            raise TAUsageError("token is empty; give the Open API token of the project")
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
        return f"TAClient(base_url={self.base_url!r}, token={self._token!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._http.aclose()

    # Endpoints, in the order of the API reference.

    async def user_cluster_add(self, body: ClusterAddRequest) -> int:
        """Create a conditional cluster or tag and return its id.

        Raises:
            TAAPIError: TA rejected the definition or the name.
            TAWriteUncertainError: the request failed after it was sent.
        """
        _check_model(body, ClusterAddRequest, "body")
        call = _Call(
            endpoint="user-cluster-add",
            method="POST",
            is_write=True,
            params={},
            json_body=_dump(body),
            log_target=_target(body.projectId, name=body.clusterName),
            check_hint=_detail_hint(body.projectId, name=body.clusterName, add=True),
        )
        reply = await self._run(call)
        return _as_cluster_id(reply.data, call.endpoint)

    async def user_cluster_detail(
        self,
        project_id: int,
        *,
        cluster_id: int | None = None,
        cluster_name: str | None = None,
    ) -> ClusterDetail:
        """Return a cluster or tag, found by id or by name (give exactly one).

        Raises:
            TAUsageError: neither or both of cluster_id and cluster_name are given.
            TAAPIError: TA has no such cluster in the project.
        """
        if (cluster_id is None) == (cluster_name is None):
            raise TAUsageError(
                "user_cluster_detail needs exactly one of cluster_id or cluster_name"
            )
        params = _key_params(project_id, cluster_id, cluster_name)
        call = _Call(
            endpoint="user-cluster-detail",
            method="GET",
            is_write=False,
            params=params,
            log_target=_target(project_id, cluster_id, cluster_name),
        )
        reply = await self._run(call)
        return _parse_data(ClusterDetail, reply.data, call.endpoint)

    async def user_cluster_update(
        self, cluster_id: int, body: ClusterUpdateRequest
    ) -> None:
        """Replace the definition of a cluster or tag, found by id.

        Raises:
            TAAPIError: TA rejected the update.
            TAWriteUncertainError: the request failed after it was sent.
        """
        _check_model(body, ClusterUpdateRequest, "body")
        call = _Call(
            endpoint="user-cluster-update",
            method="POST",
            is_write=True,
            params={"clusterId": _check_id(cluster_id, "cluster_id")},
            json_body=_dump(body),
            log_target=_target(body.projectId, cluster_id),
            check_hint=_detail_hint(body.projectId, cluster_id=cluster_id),
        )
        await self._run(call)

    async def user_cluster_update_by_name(
        self, project_id: int, cluster_name: str, body: ClusterUpdateRequest
    ) -> None:
        """Replace the definition of a cluster or tag, found by name.

        Raises:
            TAUsageError: project_id differs from body.projectId.
            TAAPIError: TA rejected the update.
            TAWriteUncertainError: the request failed after it was sent.
        """
        _check_model(body, ClusterUpdateRequest, "body")
        params = _key_params(project_id, None, cluster_name)
        if body.projectId != project_id:
            raise TAUsageError(
                f"project_id {project_id} differs from body.projectId "
                f"{body.projectId}; both name the project of the cluster"
            )
        call = _Call(
            endpoint="user-cluster-update-by-name",
            method="POST",
            is_write=True,
            params=params,
            json_body=_dump(body),
            log_target=_target(project_id, name=cluster_name),
            check_hint=_detail_hint(project_id, name=cluster_name),
        )
        await self._run(call)

    async def user_cluster_delete(self, project_id: int, cluster_id: int) -> None:
        """Delete a cluster or tag, found by id.

        Raises:
            TAAPIError: TA has no such cluster, or refused to delete it.
            TAWriteUncertainError: the request failed after it was sent.
        """
        call = _Call(
            endpoint="user-cluster-delete",
            method="POST",
            is_write=True,
            params=_key_params(project_id, cluster_id, None),
            log_target=_target(project_id, cluster_id),
            check_hint=_detail_hint(project_id, cluster_id=cluster_id, delete=True),
        )
        await self._run(call)

    async def delete_user_cluster_by_name(
        self, project_id: int, cluster_name: str
    ) -> None:
        """Delete a cluster or tag, found by name.

        Raises:
            TAAPIError: TA has no such cluster, or refused to delete it.
            TAWriteUncertainError: the request failed after it was sent.
        """
        call = _Call(
            endpoint="delete-user-cluster-by-name",
            method="POST",
            is_write=True,
            params=_key_params(project_id, None, cluster_name),
            log_target=_target(project_id, name=cluster_name),
            check_hint=_detail_hint(project_id, name=cluster_name, delete=True),
        )
        await self._run(call)

    async def user_cluster_list(self, body: ClusterListRequest) -> ClusterList:
        """Return one page of the clusters or tags of the given types.

        Raises:
            TAAPIError: TA rejected the request.
        """
        _check_model(body, ClusterListRequest, "body")
        call = _Call(
            endpoint="user-cluster-list",
            method="POST",
            is_write=False,
            params={},
            json_body=_dump(body),
            log_target=_target(body.projectId),
        )
        reply = await self._run(call)
        return _parse_data(ClusterList, reply.data, call.endpoint)

    async def user_cluster_refresh(self, project_id: int, cluster_id: int) -> None:
        """Start recomputing a cluster or tag, found by id; returns at once.

        Raises:
            TAAPIError: TA has no such cluster, or cannot refresh it.
            TAWriteUncertainError: the request failed after it was sent.
        """
        call = _Call(
            endpoint="user-cluster-refresh",
            method="POST",
            is_write=True,
            params=_key_params(project_id, cluster_id, None),
            log_target=_target(project_id, cluster_id),
            check_hint=_progress_hint(project_id, cluster_id=cluster_id),
        )
        await self._run(call)

    async def user_cluster_refresh_by_name(
        self, project_id: int, cluster_name: str
    ) -> None:
        """Start recomputing a cluster or tag, found by name; returns at once.

        Raises:
            TAAPIError: TA has no such cluster, or cannot refresh it.
            TAWriteUncertainError: the request failed after it was sent.
        """
        call = _Call(
            endpoint="user-cluster-refresh-by-name",
            method="POST",
            is_write=True,
            params=_key_params(project_id, None, cluster_name),
            log_target=_target(project_id, name=cluster_name),
            check_hint=_progress_hint(project_id, name=cluster_name),
        )
        await self._run(call)

    async def user_cluster_refresh_progress(
        self, project_id: int, cluster_id: int
    ) -> RefreshProgress:
        """Return the refresh progress of a cluster or tag, found by id.

        Raises:
            TAAPIError: TA has no such cluster.
        """
        return await self._progress(
            "user-cluster-refresh-progress", project_id, cluster_id, None
        )

    async def user_cluster_refresh_progress_by_name(
        self, project_id: int, cluster_name: str
    ) -> RefreshProgress:
        """Return the refresh progress of a cluster or tag, found by name.

        Raises:
            TAAPIError: TA has no such cluster.
        """
        return await self._progress(
            "user-cluster-refresh-progress-by-name", project_id, None, cluster_name
        )

    async def import_id_cluster_add(
        self, query: ImportAddQuery, ids: IdSource
    ) -> UploadOutcome:
        """Create a cluster (or tag) from uploaded ids.

        A cluster takes `IdSource.from_ids` or a one-column file; a tag
        (clusterCatalog catalog_tag) takes `IdSource.from_pairs` or a file read
        `with_values`.

        Raises:
            TAUsageError: no id is left after cleaning, or the source does not fit
                the catalog; raised before any request.
            TAAPIError: TA rejected the upload.
            TAWriteUncertainError: the request failed after it was sent.
        """
        _check_model(query, ImportAddQuery, "query")
        _check_source_fits(query.clusterCatalog, ids)
        if query.clusterName is not None:
            hint = _detail_hint(query.projectId, name=query.clusterName, add=True)
        else:
            hint = (
                f"call user_cluster_list for project {query.projectId} with "
                "clusterTypes [cluster_by_import] (or [tag_by_import] for a tag) "
                f"and look for displayName {query.displayName!r}"
            )
        call = _Call(
            endpoint="import-id-cluster-add",
            method="POST",
            is_write=True,
            params=_dump(query),
            upload=ids,
            log_target=_target(query.projectId, name=query.clusterName),
            check_hint=hint,
        )
        return await self._upload(call)

    async def import_id_cluster_modify(
        self, query: ImportModifyQuery, ids: IdSource
    ) -> UploadOutcome:
        """Replace the ids of an uploaded cluster or tag, found by id.

        Raises:
            TAUsageError: no id is left after cleaning; raised before any request.
            TAAPIError: TA rejected the upload.
            TAWriteUncertainError: the request failed after it was sent.
        """
        _check_model(query, ImportModifyQuery, "query")
        call = _Call(
            endpoint="import-id-cluster-modify",
            method="POST",
            is_write=True,
            params=_dump(query),
            upload=ids,
            log_target=_target(query.projectId, query.clusterId),
            check_hint=_detail_hint(query.projectId, cluster_id=query.clusterId),
        )
        return await self._upload(call)

    async def import_id_cluster_modify_by_name(
        self, query: ImportModifyByNameQuery, ids: IdSource
    ) -> UploadOutcome:
        """Replace the ids of an uploaded cluster or tag, found by name.

        Raises:
            TAUsageError: no id is left after cleaning; raised before any request.
            TAAPIError: TA rejected the upload.
            TAWriteUncertainError: the request failed after it was sent.
        """
        _check_model(query, ImportModifyByNameQuery, "query")
        call = _Call(
            endpoint="import-id-cluster-modify-by-name",
            method="POST",
            is_write=True,
            params=_dump(query),
            upload=ids,
            log_target=_target(query.projectId, name=query.clusterName),
            check_hint=_detail_hint(query.projectId, name=query.clusterName),
        )
        return await self._upload(call)

    # Shared steps of the endpoint methods.

    async def _progress(
        self,
        endpoint: str,
        project_id: int,
        cluster_id: int | None,
        cluster_name: str | None,
    ) -> RefreshProgress:
        # The reference lists GET in the URL lines and POST as the method; GET
        # is used because the call only reads.
        call = _Call(
            endpoint=endpoint,
            method="GET",
            is_write=False,
            params=_key_params(project_id, cluster_id, cluster_name),
            log_target=_target(project_id, cluster_id, cluster_name),
        )
        reply = await self._run(call)
        return _parse_data(RefreshProgress, reply.data, call.endpoint)

    async def _upload(self, call: _Call) -> UploadOutcome:
        reply = await self._run(call)
        assert reply.upload is not None
        result = None
        if isinstance(reply.data, Mapping):
            result = _parse_data(ImportResult, reply.data, call.endpoint)
        elif reply.data not in (None, ""):
            raise TAResponseFormatError(
                f"{call.endpoint} returned data of type {type(reply.data).__name__}; "
                "expected an object with the upload counts, or an empty string",
                endpoint=call.endpoint,
            )
        return reply.upload.outcome(result)

    async def _run(self, call: _Call) -> _Reply:
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

    async def _send_with_retries(self, call: _Call) -> _Reply:
        retry_index = 0
        while True:
            step = await self._attempt(call)
            if isinstance(step, _Reply):
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
        self, call: _Call, failure: _Failure, retry_index: int
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

    def _final_error(self, call: _Call, failure: _Failure, *, attempts: int) -> TAError:
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

    async def _attempt(self, call: _Call) -> _Reply | _Failure:
        stream = UploadStream(call.upload) if call.upload is not None else None
        try:
            if stream is not None:
                await stream.start()
            request = self._build_request(call, stream)
            logger.debug("%s: sending %s", call.endpoint, _body_size(request, stream))
            result = await self._send(call, request)
            if isinstance(result, _Failure):
                return result
            logger.debug(
                "%s: HTTP %d, %d bytes received%s",
                call.endpoint,
                result.status_code,
                len(result.content),
                f", {stream.bytes_sent} bytes sent" if stream is not None else "",
            )
            checked = self._check_response(call, result)
            if isinstance(checked, _Failure):
                return checked
            return _Reply(checked, stream)
        finally:
            if stream is not None:
                await stream.aclose()

    def _build_request(self, call: _Call, stream: UploadStream | None) -> httpx.Request:
        params = {"token": self._token.get_secret_value(), **call.params}
        if stream is not None:
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
        self, call: _Call, request: httpx.Request
    ) -> httpx.Response | _Failure:
        """Send one request; a transport error becomes a `_Failure` with no link to it.

        The httpx exception is not chained, because its request URL contains the
        token; its type and message (redacted) go into the error message.
        """
        where = f"{call.endpoint} at {self.base_url}"
        try:
            return await self._http.send(request)
        except (httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            failure = _Failure(
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
            failure = _Failure(
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
            failure = _Failure(
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
            failure = _Failure(
                TAConnectionError(
                    f"{where}: the connection failed during the request "
                    f"({self._describe(exc)}). Check the network and the server.",
                    endpoint=call.endpoint,
                ),
                may_have_applied=True,
                retryable=True,
            )
        except httpx.DecodingError as exc:
            failure = _Failure(
                TAResponseFormatError(
                    f"{where}: the response body could not be decoded "
                    f"({self._describe(exc)}). Check for a proxy that rewrites "
                    "responses.",
                    endpoint=call.endpoint,
                ),
                may_have_applied=True,
            )
        return failure

    def _check_response(self, call: _Call, response: httpx.Response) -> Any:
        """Return the envelope's data, or a `_Failure` for an HTTP error status.

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
            return _Failure(self._http_error(call, response))
        envelope = self._read_envelope(call, response)
        if envelope.return_code != 0:
            message = self._redact(envelope.return_message)
            raise api_error(envelope.return_code, message, call.endpoint)
        return envelope.data

    def _rate_limited(self, call: _Call, response: httpx.Response) -> _Failure:
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
        return _Failure(error, retryable=True, retry_after=retry_after)

    def _server_error(self, call: _Call, response: httpx.Response) -> _Failure:
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
        return _Failure(
            error, may_have_applied=True, retryable=True, retry_after=retry_after
        )

    def _http_error(self, call: _Call, response: httpx.Response) -> TAHTTPError:
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

    def _read_envelope(self, call: _Call, response: httpx.Response) -> Envelope:
        """Parse the envelope, raising `TAResponseFormatError` outside any handler."""
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
        text = response.content[: SNIPPET_LENGTH * 4].decode("utf-8", "replace")
        return self._redact(text)[:SNIPPET_LENGTH]

    def _describe(self, exc: Exception) -> str:
        detail = self._redact(str(exc))
        return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__

    def _redact(self, text: str) -> str:
        """Return `text` with the token, raw or URL-encoded, replaced by ***."""
        secret = self._token.get_secret_value()
        for form in {secret, quote(secret, safe=""), quote(secret)}:
            text = text.replace(form, "***")
        return text


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


def _check_model(value: object, model: type[BaseModel], name: str) -> None:
    if not isinstance(value, model):
        raise TAUsageError(
            f"{name} must be a {model.__name__}; got {type(value).__name__}. "
            f"Build it with {model.__name__}.model_validate(...)"
        )


def _check_id(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TAUsageError(f"{name} must be an integer of 0 or more; got {value!r}")
    return value


def _key_params(
    project_id: int, cluster_id: int | None, cluster_name: str | None
) -> dict[str, str | int]:
    """Return projectId plus clusterId or clusterName as query parameters."""
    params: dict[str, str | int] = {"projectId": _check_id(project_id, "project_id")}
    if cluster_id is not None:
        params["clusterId"] = _check_id(cluster_id, "cluster_id")
    if cluster_name is not None:
        # Names are not matched against the creation pattern, because TA may hold
        # clusters named in its web console.
        if not isinstance(cluster_name, str) or not cluster_name.strip():
            raise TAUsageError(
                f"cluster_name must be a non-empty string; got {cluster_name!r}"
            )
        params["clusterName"] = cluster_name
    return params


def _check_source_fits(catalog: ClusterCatalog | None, ids: IdSource) -> None:
    if not isinstance(ids, IdSource):
        raise TAUsageError(
            f"ids must be an IdSource; got {type(ids).__name__}. Build it with "
            "IdSource.from_ids, IdSource.from_pairs or IdSource.from_file"
        )
    is_tag = catalog is ClusterCatalog.TAG
    if is_tag and not ids.with_values:
        raise TAUsageError(
            "a tag upload (clusterCatalog catalog_tag) needs id,value rows; use "
            "IdSource.from_pairs or IdSource.from_file(path, with_values=True)"
        )
    if not is_tag and ids.with_values:
        raise TAUsageError(
            "a cluster upload takes one id per row, but the source has id,value "
            "rows; set clusterCatalog to catalog_tag for a tag"
        )


def _dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def _target(
    project_id: int, cluster_id: int | None = None, name: str | None = None
) -> str:
    """Format the ids of a call for its log line."""
    parts = [f"projectId={project_id}"]
    if cluster_id is not None:
        parts.append(f"clusterId={cluster_id}")
    if name is not None:
        parts.append(f"clusterName={name!r}")
    return " ".join(parts)


def _detail_hint(
    project_id: int,
    *,
    cluster_id: int | None = None,
    name: str | None = None,
    add: bool = False,
    delete: bool = False,
) -> str:
    key = (
        f"cluster_id={cluster_id}"
        if cluster_id is not None
        else f"cluster_name={name!r}"
    )
    hint = f"call user_cluster_detail({project_id}, {key})"
    if add:
        return f"{hint}: if it returns the cluster, it was created"
    if delete:
        return f"{hint}: an error that it does not exist means it was deleted"
    return f"{hint} and compare its definition and refreshTime"


def _progress_hint(
    project_id: int, *, cluster_id: int | None = None, name: str | None = None
) -> str:
    if cluster_id is not None:
        call = f"user_cluster_refresh_progress({project_id}, {cluster_id})"
    else:
        call = f"user_cluster_refresh_progress_by_name({project_id}, {name!r})"
    return (
        f"call {call}: a value below 100 means a refresh is running; starting "
        "another refresh only recomputes the same cluster"
    )


def _parse_data(model: type[ModelT], data: Any, endpoint: str) -> ModelT:
    """Validate `data` as `model`, raising `TAResponseFormatError` outside any handler."""
    problems = ""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        # include_input=False keeps server values, which may echo the token, out.
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'data'}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)[:5]
        )
    raise TAResponseFormatError(
        f"{endpoint} returned data that does not match {model.__name__}: {problems}. "
        "Check that the server is the TA Open API and its version.",
        endpoint=endpoint,
    )


def _as_cluster_id(data: Any, endpoint: str) -> int:
    if isinstance(data, int) and not isinstance(data, bool):
        return data
    if isinstance(data, str) and data.isdigit():
        return int(data)
    raise TAResponseFormatError(
        f"{endpoint} returned data of type {type(data).__name__}; expected the new "
        "cluster id as an integer",
        endpoint=endpoint,
    )


def _body_size(request: httpx.Request, stream: UploadStream | None) -> str:
    if stream is not None:
        return "a streamed text/csv body"
    return f"{len(request.content)} bytes"
