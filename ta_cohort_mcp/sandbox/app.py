"""The sandbox's HTTP app: TA's Open API for clusters and tags, over DuckDB.

Every endpoint of the reference is served at its own path under `/open/`, with the
same query parameters and bodies, and responds with TA's envelope
`{"return_code": 0, "return_message": "success", "data": ...}`. API errors use
HTTP 200 and a non-zero `return_code` from `ErrorCode`, as TA does.

Beside them, `/_sandbox/` serves controls for tests (fault rules, request counts)
and the event catalog of the sample data. They answer only clients on the loopback
interface.
"""

import datetime
import json
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, TypeVar

import anyio.to_thread
from pydantic import BaseModel, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ta_cohort_mcp.models import (
    ByIdQuery,
    ByNameQuery,
    ClusterAddRequest,
    ClusterCatalog,
    ClusterListRequest,
    ClusterType,
    ClusterUpdateRequest,
    DetailQuery,
    ImportAddQuery,
    ImportModifyByNameQuery,
    ImportModifyQuery,
    RequestModel,
    UpdateQuery,
)
from ta_cohort_mcp.sandbox import compiler
from ta_cohort_mcp.sandbox.faults import (
    FaultKind,
    FaultPlan,
    FaultRule,
    RequestStats,
)
from ta_cohort_mcp.sandbox.refresh import RefreshManager, compile_definition
from ta_cohort_mcp.sandbox.store import (
    ClusterRecord,
    DuplicateNameError,
    ImportCounts,
    NewCluster,
    Store,
)
from ta_cohort_mcp.sandbox.upload import UploadError, spool_upload

logger = logging.getLogger(__name__)

DEFAULT_TOKEN = "sandbox-token"
DEFAULT_PROJECTS = (102, 2)
# Largest JSON body accepted, in bytes.
MAX_JSON_BODY = 8 * 1024 * 1024
_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_RECENT_DAY = re.compile(r"^(\d+)-(\d+)$")
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
_UPLOAD_MEDIA_TYPES = frozenset({"text/csv", "text/plain"})
# Scope key under which the outermost wrapper keeps the server's transport.
_TRANSPORT_KEY = "ta_sandbox.transport"


class ErrorCode(IntEnum):
    """Non-zero `return_code` values the sandbox sends."""

    TOKEN_INVALID = -1001
    PROJECT_NOT_ALLOWED = -1002
    INVALID_PARAMETER = -1003
    TOKEN_EMPTY = -1008
    CLUSTER_NOT_FOUND = -2001
    DUPLICATE_NAME = -2002
    INVALID_DEFINITION = -2003
    OPERATION_NOT_ALLOWED = -2004
    INVALID_UPLOAD = -2005


class ApiError(Exception):
    """An API error, sent as the envelope with `code` and `message`."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _default_tokens() -> dict[str, set[int] | None]:
    return {DEFAULT_TOKEN: set(DEFAULT_PROJECTS)}


@dataclass(frozen=True)
class SandboxConfig:
    """Settings of a sandbox: database, sample data, tokens and projects.

    `tokens` maps each accepted token to the project ids it may use (None: all).
    `today` is day 0 of the sample data and of every recentDay window; None means
    the real date when the sandbox opens.
    """

    db_path: str | None = None
    today: datetime.date | None = None
    users: int = 1000
    seed: int = 7
    tokens: Mapping[str, set[int] | None] = field(default_factory=_default_tokens)
    projects: tuple[int, ...] = DEFAULT_PROJECTS
    events_per_user: float | None = None


class Sandbox:
    """The sandbox's state shared by its endpoints: store, refreshes, faults, counts."""

    def __init__(self, config: SandboxConfig) -> None:
        """Open the store, generate missing sample data and resume refreshes."""
        self.config = config
        self.today = config.today or datetime.date.today()
        self.faults = FaultPlan()
        self.stats = RequestStats()
        self.store = Store(config.db_path)
        try:
            self.store.load_sample_data(
                config.projects,
                users=config.users,
                seed=config.seed,
                today=self.today,
                events_per_user=config.events_per_user,
            )
        except BaseException:
            self.store.close()
            raise
        self.refresher = RefreshManager(
            self.store, today=self.today, faults=self.faults
        )
        self.refresher.resume_unfinished()

    def close(self) -> None:
        """Cancel running refreshes and close the store."""
        self.refresher.shutdown()
        self.store.close()


# Envelope and errors


def _envelope(data: Any = None, *, include_data: bool = True) -> JSONResponse:
    body: dict[str, Any] = {"return_code": 0, "return_message": "success"}
    if include_data:
        body["data"] = data
    return JSONResponse(body)


def _error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(
        {"return_code": int(error.code), "return_message": error.message}
    )


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


# A raw `#` in a URL starts the fragment, so `mainColumnName=#account_id` arrives
# as an empty value.
_RAW_HASH_HINT = "; a raw # in the URL ends the query, so send # as %23"


def _describe(error: ValidationError, *, where: str) -> str:
    """Turn a pydantic error into one message naming each failing field."""
    messages = []
    for detail in error.errors()[:3]:
        path = _location(tuple(detail["loc"]))
        message = str(detail["msg"]).removeprefix("Value error, ")
        value = detail.get("input")
        shown = isinstance(value, str | int | float) and len(repr(value)) <= 80
        if shown and "got " not in message:
            message += f" (got {value!r})"
        if where == "query" and path == "mainColumnName" and value == "":
            message += _RAW_HASH_HINT
        if where == "query" and detail["type"] == "missing":
            messages.append(f"The parameter ({path}) is empty")
        elif path:
            messages.append(f"The parameter ({path}) is invalid: {message}")
        else:
            messages.append(f"The {where} is invalid: {message}")
    if error.error_count() > 3:
        messages.append(f"and {error.error_count() - 3} more errors")
    return "; ".join(messages)


_Model = TypeVar("_Model", bound=BaseModel)
_T = TypeVar("_T")


def _validate(model: type[_Model], values: object, *, where: str) -> _Model:
    try:
        return model.model_validate(values)
    except ValidationError as error:
        raise ApiError(
            ErrorCode.INVALID_PARAMETER, _describe(error, where=where)
        ) from None


async def _blocking(function: Callable[..., _T], *args: Any) -> _T:
    return await anyio.to_thread.run_sync(function, *args)


# Calls


@dataclass
class _Call:
    """One authorized request to an /open/ endpoint."""

    request: Request
    endpoint: str
    sandbox: Sandbox
    allowed_projects: set[int] | None

    def query(self) -> dict[str, str]:
        """Return the query parameters except the token."""
        params = dict(self.request.query_params)
        params.pop("token", None)
        return params

    def check_project(self, project_id: int) -> None:
        """Raise -1002 unless the project exists and the token may use it."""
        projects = self.sandbox.config.projects
        if project_id not in projects:
            known = ", ".join(str(p) for p in projects)
            raise ApiError(
                ErrorCode.PROJECT_NOT_ALLOWED,
                f"project {project_id} does not exist; the sandbox has projects {known}",
            )
        if (
            self.allowed_projects is not None
            and project_id not in self.allowed_projects
        ):
            raise ApiError(
                ErrorCode.PROJECT_NOT_ALLOWED,
                f"project {project_id} is not allowed for this token",
            )

    async def json_body(self) -> dict[str, Any]:
        """Read the body as a JSON object, or raise -1003."""
        body = bytearray()
        async for chunk in self.request.stream():
            body += chunk
            if len(body) > MAX_JSON_BODY:
                raise ApiError(
                    ErrorCode.INVALID_PARAMETER,
                    f"The request body is larger than {MAX_JSON_BODY} bytes",
                )
        if not body.strip():
            raise ApiError(
                ErrorCode.INVALID_PARAMETER,
                "The request body is empty; send a JSON object",
            )
        try:
            value = json.loads(body)
        except ValueError as error:
            raise ApiError(
                ErrorCode.INVALID_PARAMETER,
                f"The request body is not valid JSON: {error}",
            ) from None
        except RecursionError:
            raise ApiError(
                ErrorCode.INVALID_PARAMETER,
                "The request body is nested too deeply to decode; send a JSON "
                "object whose arrays and objects nest a few levels deep",
            ) from None
        if not isinstance(value, dict):
            raise ApiError(
                ErrorCode.INVALID_PARAMETER,
                f"The request body must be a JSON object; got {type(value).__name__}",
            )
        return value

    async def find(
        self, project_id: int, *, cluster_id: int | None = None, name: str | None = None
    ) -> ClusterRecord:
        """Return a cluster by id or name, or raise -2001."""
        self.check_project(project_id)
        store = self.sandbox.store
        if cluster_id is not None:
            record = await _blocking(store.get, project_id, cluster_id)
            what = f"clusterId {cluster_id}"
        else:
            assert name is not None
            record = await _blocking(store.get_by_name, project_id, name)
            what = f"clusterName {name!r}"
        if record is None:
            raise ApiError(
                ErrorCode.CLUSTER_NOT_FOUND,
                f"cluster not found: {what} in project {project_id}; "
                "list the project's clusters with user-cluster-list",
            )
        return record


_Handler = Callable[[_Call], Awaitable[Response]]


class _OpenEndpoint:
    """ASGI app of one /open/ endpoint: count, apply faults, authorize, handle."""

    def __init__(self, name: str, handler: _Handler, sandbox: Sandbox) -> None:
        self.name = name
        self._handler = handler
        self._sandbox = sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._sandbox.stats.record(self.name)
        for rule in self._sandbox.faults.take_request_faults(self.name):
            logger.info("fault %s applied to %s", rule.kind.value, self.name)
            if rule.kind is FaultKind.LATENCY:
                await anyio.sleep(rule.seconds)
                continue
            if rule.kind is FaultKind.DROP:
                await _drop_connection(scope, receive)
                return
            response = _fault_response(rule)
            await response(scope, receive, send)
            return
        response = await self._respond(Request(scope, receive))
        await response(scope, receive, send)

    async def _respond(self, request: Request) -> Response:
        try:
            allowed = self._authorize(request)
            call = _Call(request, self.name, self._sandbox, allowed)
            return await self._handler(call)
        except ApiError as error:
            logger.info(
                "%s: return_code %s: %s", self.name, int(error.code), error.message
            )
            return _error_response(error)
        except Exception as error:
            logger.exception("%s failed", self.name)
            return JSONResponse(
                {
                    "return_code": -1,
                    "return_message": (
                        f"internal sandbox error in {self.name}: "
                        f"{type(error).__name__}: {error}"
                    ),
                },
                status_code=500,
            )

    def _authorize(self, request: Request) -> set[int] | None:
        token = request.query_params.get("token")
        if not token:
            raise ApiError(ErrorCode.TOKEN_EMPTY, "The parameter (token) is empty")
        tokens = self._sandbox.config.tokens
        if token not in tokens:
            raise ApiError(
                ErrorCode.TOKEN_INVALID,
                "The token is invalid; use the token that `ta-cohort-mcp sandbox` "
                "printed when it started",
            )
        return tokens[token]


async def _drop_connection(scope: Scope, receive: Receive) -> None:
    """Close the connection without sending a response."""
    transport = scope.get(_TRANSPORT_KEY)
    if transport is None:
        # Not served by uvicorn's h11 protocol: fail the request instead.
        raise ConnectionAbortedError("connection dropped by a sandbox fault rule")
    transport.close()
    # Wait for uvicorn to register the disconnect, so it does not send a 500 itself.
    with anyio.move_on_after(1.0):
        while (await receive())["type"] != "http.disconnect":
            pass


def _fault_response(rule: FaultRule) -> Response:
    kind = rule.kind
    if kind is FaultKind.HTTP_500:
        return Response(
            "Internal Server Error", status_code=500, media_type="text/plain"
        )
    if kind is FaultKind.HTTP_429:
        return Response(
            "Too Many Requests",
            status_code=429,
            media_type="text/plain",
            headers={"Retry-After": str(rule.retry_after)},
        )
    if kind is FaultKind.MALFORMED:
        return Response(
            '{"return_code": 0, "return_message": "succ',
            status_code=200,
            media_type="application/json",
        )
    if kind is FaultKind.HTML:
        return Response(_BAD_GATEWAY_PAGE, status_code=502, media_type="text/html")
    if kind is FaultKind.RETURN_CODE:
        return JSONResponse(
            {"return_code": rule.return_code, "return_message": rule.return_message}
        )
    raise ValueError(f"fault kind {kind.value} does not replace a response")


_BAD_GATEWAY_PAGE = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


# Response data


def _format_time(value: datetime.datetime | None) -> str | None:
    return value.strftime(_TIME_FORMAT) if value is not None else None


def _window(recent_day: str, today: datetime.date) -> tuple[str, str] | None:
    match = _RECENT_DAY.match(recent_day)
    if match is None:
        return None
    nearest, farthest = int(match.group(1)), int(match.group(2))
    start = today - datetime.timedelta(days=farthest)
    end = today - datetime.timedelta(days=nearest)
    return f"{start.isoformat()} 00:00:00", f"{end.isoformat()} 00:00:00"


def with_windows(definition: Any, today: datetime.date) -> Any:
    """Copy a definition, setting startTime/endTime of each recentDay condition.

    The bounds follow the reference's detail example: computed on 2020-01-10,
    recentDay "1-7" shows startTime 2020-01-03 00:00:00 and endTime
    2020-01-09 00:00:00, the first instant of the window's first and last days.
    """
    if isinstance(definition, list):
        return [with_windows(item, today) for item in definition]
    if not isinstance(definition, dict):
        return definition
    copy = {key: with_windows(value, today) for key, value in definition.items()}
    recent_day = copy.get("recentDay")
    if isinstance(recent_day, str):
        window = _window(recent_day, today)
        if window is not None:
            copy["startTime"], copy["endTime"] = window
    return copy


def cluster_detail(record: ClusterRecord, today: datetime.date) -> dict[str, Any]:
    """Build the data of user-cluster-detail for a cluster."""
    data: dict[str, Any] = {
        "id": record.id,
        "projectId": record.project_id,
        "clusterName": record.cluster_name,
        "displayName": record.display_name,
        "clusterCatalog": record.catalog.value,
        "clusterType": record.cluster_type.value,
        "progress": record.progress,
        "refreshTime": _format_time(record.refresh_time),
        "userId": record.user_id,
        "usersNum": record.users_num,
        "mainColumnName": record.main_column_name,
        "remarks": record.remarks,
    }
    if record.sub_condition_tab_type is not None:
        data["subConditionTabType"] = record.sub_condition_tab_type
    if record.definition is not None:
        key = "userTagDef" if record.is_tag else "userClusterDef"
        data[key] = with_windows(record.definition, today)
    if record.error_message is not None:
        data["errorMessage"] = record.error_message
    return data


def cluster_summary(record: ClusterRecord) -> dict[str, Any]:
    """Build one entry of user-cluster-list for a cluster."""
    return {
        "clusterCatalog": record.catalog.value,
        "clusterName": record.cluster_name,
        "clusterType": record.cluster_type.value,
        "displayName": record.display_name,
        "historyDataStatus": 0,
        "id": record.id,
        "mainColumnName": record.main_column_name,
        "progress": record.progress,
        "projectId": record.project_id,
        "refreshDelay": 0,
        "refreshTime": _format_time(record.refresh_time),
        "remarks": record.remarks,
        "selectType": "string",
        "status": 1,
        "uploadFileName": record.upload_file_name,
        "userId": record.user_id,
        "userName": record.user_name,
        "usersNum": record.users_num,
    }


def _import_result(record: ClusterRecord, counts: ImportCounts) -> dict[str, int]:
    return {
        "clusterId": record.id,
        "tagValueNullNum": counts.tag_value_null_num,
        "unmatchedNum": counts.unmatched_num,
        "uploadNum": counts.upload_num,
        "userNum": counts.user_num,
    }


# Conditional clusters: add, update, delete, list, detail


def _check_definition(
    call: _Call,
    catalog_value: ClusterCatalog,
    definition: dict[str, Any],
    project_id: int,
) -> None:
    try:
        compile_definition(
            catalog_value, definition, project_id=project_id, today=call.sandbox.today
        )
    except compiler.DefinitionError as error:
        raise ApiError(
            ErrorCode.INVALID_DEFINITION,
            f"invalid definition: {error}",
        ) from None


def _definition_of(body: ClusterAddRequest | ClusterUpdateRequest) -> dict[str, Any]:
    model = body.qp if body.qp is not None else body.tagQp
    assert model is not None
    return model.model_dump(mode="json", exclude_none=True)


def _default_type(catalog_value: ClusterCatalog) -> ClusterType:
    if catalog_value is ClusterCatalog.TAG:
        return ClusterType.TAG_BY_STATIC_CONDITION
    return ClusterType.CLUSTER_BY_STATIC_CONDITION


async def _add(call: _Call) -> Response:
    body = _validate(ClusterAddRequest, await call.json_body(), where="request body")
    call.check_project(body.projectId)
    catalog_value = body.catalog()
    definition = _definition_of(body)
    _check_definition(call, catalog_value, definition, body.projectId)
    new = NewCluster(
        project_id=body.projectId,
        cluster_name=body.clusterName,
        display_name=body.displayName,
        catalog=catalog_value,
        cluster_type=body.cluster_type() or _default_type(catalog_value),
        sub_condition_tab_type=(
            body.subConditionTabType.value if body.subConditionTabType else None
        ),
        definition=definition,
    )
    try:
        record = await _blocking(call.sandbox.store.create, new)
    except DuplicateNameError as error:
        raise ApiError(ErrorCode.DUPLICATE_NAME, str(error)) from None
    await _blocking(_start_refresh, call, record)
    return _envelope(record.id)


def _start_refresh(call: _Call, record: ClusterRecord) -> None:
    call.sandbox.refresher.start(record, trigger=call.endpoint)


async def _update(
    call: _Call, record: ClusterRecord, body: ClusterUpdateRequest
) -> Response:
    if record.is_import:
        raise ApiError(
            ErrorCode.OPERATION_NOT_ALLOWED,
            f"cluster {record.id} is an id-upload cluster "
            f"({record.cluster_type.value}); change its ids with "
            "import-id-cluster-modify",
        )
    catalog_value = body.catalog()
    if catalog_value is not record.catalog:
        raise ApiError(
            ErrorCode.OPERATION_NOT_ALLOWED,
            f"cluster {record.id} is {record.catalog.value} and cannot become "
            f"{catalog_value.value}; create a new one with user-cluster-add",
        )
    definition = _definition_of(body)
    _check_definition(call, catalog_value, definition, record.project_id)
    sandbox = call.sandbox

    def save() -> ClusterRecord:
        sandbox.refresher.cancel(record.id)
        updated = sandbox.store.update_definition(
            record.id,
            display_name=body.displayName,
            cluster_type=body.cluster_type() or record.cluster_type,
            sub_condition_tab_type=(
                body.subConditionTabType.value if body.subConditionTabType else None
            ),
            definition=definition,
        )
        sandbox.refresher.start(updated, trigger=call.endpoint)
        return updated

    await _blocking(save)
    return _envelope(include_data=False)


async def _update_by_id(call: _Call) -> Response:
    query = _validate(UpdateQuery, call.query(), where="query")
    body = _validate(ClusterUpdateRequest, await call.json_body(), where="request body")
    record = await call.find(body.projectId, cluster_id=query.clusterId)
    return await _update(call, record, body)


async def _update_by_name(call: _Call) -> Response:
    query = _validate(ByNameQuery, call.query(), where="query")
    body = _validate(ClusterUpdateRequest, await call.json_body(), where="request body")
    if body.projectId != query.projectId:
        raise ApiError(
            ErrorCode.INVALID_PARAMETER,
            f"The parameter (projectId) is invalid: {body.projectId} in the body "
            f"differs from {query.projectId} in the query",
        )
    record = await call.find(query.projectId, name=query.clusterName)
    return await _update(call, record, body)


async def _delete(call: _Call, record: ClusterRecord) -> Response:
    sandbox = call.sandbox

    def remove() -> None:
        sandbox.refresher.cancel(record.id)
        sandbox.store.delete(record.id)

    await _blocking(remove)
    logger.info("cluster deleted: %s (project %s)", record.id, record.project_id)
    return _envelope(include_data=False)


async def _delete_by_id(call: _Call) -> Response:
    query = _validate(ByIdQuery, call.query(), where="query")
    return await _delete(
        call, await call.find(query.projectId, cluster_id=query.clusterId)
    )


async def _delete_by_name(call: _Call) -> Response:
    query = _validate(ByNameQuery, call.query(), where="query")
    return await _delete(call, await call.find(query.projectId, name=query.clusterName))


async def _list(call: _Call) -> Response:
    body = _validate(ClusterListRequest, await call.json_body(), where="request body")
    call.check_project(body.projectId)
    page_num = body.pagerHeader.pageNum if body.pagerHeader else 1
    page_size = body.pagerHeader.pageSize if body.pagerHeader else 10
    total, records = await _blocking(
        lambda: call.sandbox.store.list_clusters(
            body.projectId,
            body.clusterCatalog,
            body.clusterTypes,
            page_num=page_num,
            page_size=page_size,
        )
    )
    return _envelope(
        {
            "pagerResult": {
                "pageNum": page_num,
                "pageSize": page_size,
                "totalNum": total,
            },
            "userClusters": [cluster_summary(record) for record in records],
        }
    )


async def _detail(call: _Call) -> Response:
    query = _validate(DetailQuery, call.query(), where="query")
    record = await call.find(
        query.projectId, cluster_id=query.clusterId, name=query.clusterName
    )
    return _envelope(cluster_detail(record, call.sandbox.today))


# Refresh and progress


async def _refresh(call: _Call, record: ClusterRecord) -> Response:
    if record.is_import:
        raise ApiError(
            ErrorCode.OPERATION_NOT_ALLOWED,
            f"cluster {record.id} is an id-upload cluster "
            f"({record.cluster_type.value}) and has no definition to refresh; "
            "change its ids with import-id-cluster-modify",
        )
    await _blocking(_start_refresh, call, record)
    return _envelope(include_data=False)


async def _refresh_by_id(call: _Call) -> Response:
    query = _validate(ByIdQuery, call.query(), where="query")
    return await _refresh(
        call, await call.find(query.projectId, cluster_id=query.clusterId)
    )


async def _refresh_by_name(call: _Call) -> Response:
    query = _validate(ByNameQuery, call.query(), where="query")
    return await _refresh(
        call, await call.find(query.projectId, name=query.clusterName)
    )


async def _progress_by_id(call: _Call) -> Response:
    query = _validate(ByIdQuery, call.query(), where="query")
    record = await call.find(query.projectId, cluster_id=query.clusterId)
    return _envelope({"progress": record.progress})


async def _progress_by_name(call: _Call) -> Response:
    query = _validate(ByNameQuery, call.query(), where="query")
    record = await call.find(query.projectId, name=query.clusterName)
    return _envelope({"progress": record.progress})


# Id uploads


async def _check_upload_request(call: _Call, main_column_name: str | None) -> None:
    media_type = call.request.headers.get("content-type", "").split(";")[0]
    media_type = media_type.strip().lower()
    if media_type not in _UPLOAD_MEDIA_TYPES:
        raise ApiError(
            ErrorCode.INVALID_UPLOAD,
            f"Content-Type must be text/csv; got {media_type or 'none'!r} "
            "(with curl, add --header 'Content-Type: text/csv')",
        )
    if main_column_name is None:
        return
    columns = await _blocking(call.sandbox.store.user_columns)
    if main_column_name not in columns:
        message = (
            f"The parameter (mainColumnName) is invalid: {main_column_name!r} is "
            f"not a user property; use one of {', '.join(columns)}"
        )
        raise ApiError(ErrorCode.INVALID_PARAMETER, message)


async def _save_upload(
    call: _Call,
    *,
    is_tag: bool,
    new: NewCluster | None = None,
    existing: ClusterRecord | None = None,
    display_name: str | None = None,
    main_column_name: str | None = None,
    remarks: str | None = None,
) -> Response:
    try:
        spooled = await spool_upload(call.request.stream(), is_tag=is_tag)
    except UploadError as error:
        raise ApiError(ErrorCode.INVALID_UPLOAD, str(error)) from None
    try:
        record, counts = await _blocking(
            lambda: call.sandbox.store.save_import(
                spooled.path,
                new=new,
                existing=existing,
                display_name=display_name,
                main_column_name=main_column_name,
                remarks=remarks,
            )
        )
    except DuplicateNameError as error:
        raise ApiError(ErrorCode.DUPLICATE_NAME, str(error)) from None
    finally:
        spooled.path.unlink(missing_ok=True)
    logger.info(
        "id upload saved: cluster %s, %s rows, %s users",
        record.id,
        counts.upload_num,
        counts.user_num,
    )
    return _envelope(_import_result(record, counts))


def _generated_name() -> str:
    return f"import_{secrets.token_hex(6)}"


async def _import_add(call: _Call) -> Response:
    query = _validate(ImportAddQuery, call.query(), where="query")
    call.check_project(query.projectId)
    await _check_upload_request(call, query.mainColumnName)
    catalog_value = query.clusterCatalog or ClusterCatalog.CLUSTER
    is_tag = catalog_value is ClusterCatalog.TAG
    name = query.clusterName or _generated_name()
    existing = await _blocking(call.sandbox.store.get_by_name, query.projectId, name)
    if existing is not None:
        raise ApiError(
            ErrorCode.DUPLICATE_NAME,
            str(DuplicateNameError(query.projectId, name, existing.id)),
        )
    new = NewCluster(
        project_id=query.projectId,
        cluster_name=name,
        display_name=query.displayName,
        catalog=catalog_value,
        cluster_type=(
            ClusterType.TAG_BY_IMPORT if is_tag else ClusterType.CLUSTER_BY_IMPORT
        ),
        main_column_name=query.mainColumnName,
        remarks=query.remarks or "",
        progress=100,
    )
    return await _save_upload(call, is_tag=is_tag, new=new)


async def _import_modify(
    call: _Call,
    record: ClusterRecord,
    query: ImportModifyQuery | ImportModifyByNameQuery,
) -> Response:
    if not record.is_import:
        raise ApiError(
            ErrorCode.OPERATION_NOT_ALLOWED,
            f"cluster {record.id} is a conditional cluster "
            f"({record.cluster_type.value}), not an id upload; change its "
            "definition with user-cluster-update",
        )
    await _check_upload_request(call, query.mainColumnName)
    return await _save_upload(
        call,
        is_tag=record.is_tag,
        existing=record,
        display_name=query.displayName,
        main_column_name=query.mainColumnName,
        remarks=query.remarks,
    )


async def _import_modify_by_id(call: _Call) -> Response:
    query = _validate(ImportModifyQuery, call.query(), where="query")
    record = await call.find(query.projectId, cluster_id=query.clusterId)
    return await _import_modify(call, record, query)


async def _import_modify_by_name(call: _Call) -> Response:
    query = _validate(ImportModifyByNameQuery, call.query(), where="query")
    record = await call.find(query.projectId, name=query.clusterName)
    return await _import_modify(call, record, query)


# Endpoint name -> (handler, HTTP methods).
_ENDPOINTS: dict[str, tuple[_Handler, tuple[str, ...]]] = {
    "user-cluster-add": (_add, ("POST",)),
    "user-cluster-detail": (_detail, ("GET",)),
    "user-cluster-update": (_update_by_id, ("POST",)),
    "user-cluster-update-by-name": (_update_by_name, ("POST",)),
    "user-cluster-delete": (_delete_by_id, ("POST",)),
    "delete-user-cluster-by-name": (_delete_by_name, ("POST",)),
    "user-cluster-list": (_list, ("POST",)),
    "user-cluster-refresh": (_refresh_by_id, ("POST",)),
    "user-cluster-refresh-by-name": (_refresh_by_name, ("POST",)),
    "user-cluster-refresh-progress": (_progress_by_id, ("GET", "POST")),
    "user-cluster-refresh-progress-by-name": (_progress_by_name, ("GET", "POST")),
    "import-id-cluster-add": (_import_add, ("POST",)),
    "import-id-cluster-modify": (_import_modify_by_id, ("POST",)),
    "import-id-cluster-modify-by-name": (_import_modify_by_name, ("POST",)),
}


# Controls under /_sandbox/


def _loopback_only(
    handler: Callable[[Request, Sandbox], Awaitable[Response]], sandbox: Sandbox
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        client = request.client
        if client is None or client.host not in _LOOPBACK_HOSTS:
            return Response("Not Found", status_code=404, media_type="text/plain")
        return await handler(request, sandbox)

    return endpoint


async def _faults_endpoint(request: Request, sandbox: Sandbox) -> Response:
    if request.method == "DELETE":
        sandbox.faults.clear()
        return _envelope(include_data=False)
    if request.method == "POST":
        try:
            value = await request.json()
        except ValueError as error:
            return _error_response(
                ApiError(ErrorCode.INVALID_PARAMETER, f"The body is not JSON: {error}")
            )
        items = value if isinstance(value, list) else [value]
        try:
            rules = [FaultRule.model_validate(item) for item in items]
        except ValidationError as error:
            return _error_response(
                ApiError(ErrorCode.INVALID_PARAMETER, _describe(error, where="rule"))
            )
        sandbox.faults.add_rules(rules)
    rules_data = [rule.model_dump(mode="json") for rule in sandbox.faults.rules()]
    return _envelope(rules_data)


async def _stats_endpoint(request: Request, sandbox: Sandbox) -> Response:
    return _envelope({"requests": sandbox.stats.counts(), "total": sandbox.stats.total})


async def _stats_reset_endpoint(request: Request, sandbox: Sandbox) -> Response:
    sandbox.stats.reset()
    return _envelope(include_data=False)


async def _catalog_endpoint(request: Request, sandbox: Sandbox) -> Response:
    endpoint = _OpenEndpoint("catalog", _catalog_handler, sandbox)
    return await endpoint._respond(request)


class _CatalogQuery(RequestModel):
    projectId: int = Field(ge=0)


async def _catalog_handler(call: _Call) -> Response:
    query = _validate(_CatalogQuery, call.query(), where="query")
    call.check_project(query.projectId)
    data = await _blocking(call.sandbox.store.catalog, query.projectId)
    return _envelope(data)


class _TransportCapture:
    """Outermost ASGI wrapper: keeps uvicorn's transport in the scope for `drop`."""

    def __init__(self, app: Starlette) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            cycle = getattr(send, "__self__", None)
            scope[_TRANSPORT_KEY] = getattr(cycle, "transport", None)
        await self.app(scope, receive, send)


def create_app(sandbox: Sandbox) -> _TransportCapture:
    """Build the ASGI app serving the Open API endpoints and the controls."""
    routes = [
        Route(f"/open/{name}", _OpenEndpoint(name, handler, sandbox), methods=methods)
        for name, (handler, methods) in _ENDPOINTS.items()
    ]
    routes += [
        Route(
            "/_sandbox/faults",
            _loopback_only(_faults_endpoint, sandbox),
            methods=["GET", "POST", "DELETE"],
        ),
        Route("/_sandbox/stats", _loopback_only(_stats_endpoint, sandbox)),
        Route(
            "/_sandbox/stats/reset",
            _loopback_only(_stats_reset_endpoint, sandbox),
            methods=["POST"],
        ),
        Route("/_sandbox/catalog", _loopback_only(_catalog_endpoint, sandbox)),
    ]
    return _TransportCapture(Starlette(routes=routes))
