"""The async client of TA's Open API for user clusters and tags.

`TAClient` has one method per endpoint. It sends the token as the ``token``
query parameter, reads the ``{"return_code", "return_message", "data"}``
envelope, and raises the errors of `ta_cohort_mcp.client.errors`. The retry
rules are in `ta_cohort_mcp.client.sending`.
"""

from collections.abc import Mapping
from typing import Any, Self, TypeVar

import httpx
from pydantic import BaseModel, SecretStr, ValidationError

from ta_cohort_mcp.client.errors import TAResponseFormatError, TAUsageError
from ta_cohort_mcp.client.sending import Call, CallSender
from ta_cohort_mcp.client.upload import IdSource, UploadOutcome
from ta_cohort_mcp.models import (
    ClusterAddRequest,
    ClusterCatalog,
    ClusterDetail,
    ClusterList,
    ClusterListRequest,
    ClusterUpdateRequest,
    ImportAddQuery,
    ImportModifyByNameQuery,
    ImportModifyQuery,
    ImportResult,
    RefreshProgress,
)

ModelT = TypeVar("ModelT", bound=BaseModel)


class TAClient(CallSender):
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
        super().__init__(
            base_url,
            token,
            timeout=timeout,
            read_retries=read_retries,
            max_retry_wait=max_retry_wait,
            transport=transport,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # Endpoints, in the order of the API reference.

    async def user_cluster_add(self, body: ClusterAddRequest) -> int:
        """Create a conditional cluster or tag and return its id.

        Raises:
            TAAPIError: TA rejected the definition or the name.
            TAWriteUncertainError: the request failed after it was sent.
        """
        _check_model(body, ClusterAddRequest, "body")
        call = Call(
            endpoint="user-cluster-add",
            method="POST",
            is_write=True,
            params={},
            json_body=_dump(body),
            log_target=_target(body.projectId, name=body.clusterName),
            check_hint=_detail_hint(body.projectId, name=body.clusterName, add=True),
        )
        reply = await self._run(call)
        return _as_cluster_id(
            reply.data, call.endpoint, body.projectId, body.clusterName
        )

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
        call = Call(
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
        call = Call(
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
        call = Call(
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
        call = Call(
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
        call = Call(
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
        call = Call(
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
        call = Call(
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
        call = Call(
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
        call = Call(
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
        call = Call(
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
        call = Call(
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
        call = Call(
            endpoint=endpoint,
            method="GET",
            is_write=False,
            params=_key_params(project_id, cluster_id, cluster_name),
            log_target=_target(project_id, cluster_id, cluster_name),
        )
        reply = await self._run(call)
        return _parse_data(RefreshProgress, reply.data, call.endpoint)

    async def _upload(self, call: Call) -> UploadOutcome:
        reply = await self._run(call)
        assert reply.upload is not None
        result = None
        if isinstance(reply.data, Mapping):
            result = _parse_data(ImportResult, reply.data, call.endpoint)
        elif reply.data not in (None, ""):
            raise TAResponseFormatError(
                f"{call.endpoint} returned return_code 0, so the upload was applied, "
                f"but its data is of type {type(reply.data).__name__}, not the upload "
                "counts. Read the cluster with user_cluster_detail to see usersNum.",
                endpoint=call.endpoint,
            )
        return reply.upload.outcome(result)


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
    """Validate `data` as `model`, or raise `TAResponseFormatError` with no chained error."""
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


def _as_cluster_id(data: Any, endpoint: str, project_id: int, name: str) -> int:
    if isinstance(data, int) and not isinstance(data, bool):
        return data
    if isinstance(data, str) and data.isdigit():
        return int(data)
    raise TAResponseFormatError(
        f"{endpoint} returned return_code 0, so the cluster was created, but its "
        f"data is of type {type(data).__name__}, not the new cluster id. Find the "
        f"id with user_cluster_detail({project_id}, cluster_name={name!r}).",
        endpoint=endpoint,
    )
