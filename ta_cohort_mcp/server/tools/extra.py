"""Tools that no endpoint has: validate_definition and refresh_and_wait."""

import dataclasses
import json
import logging
import time
import weakref
from dataclasses import dataclass
from typing import Any

import anyio
from pydantic import BaseModel

from ta_cohort_mcp.client import TAClient, TAError
from ta_cohort_mcp.models import (
    ClusterDefinition,
    ClusterDetail,
    EventCondition,
    Filter,
    TagDefinition,
)
from ta_cohort_mcp.models.tools import (
    RefreshAndWaitArguments,
    UserClusterAddArguments,
    ValidateDefinitionArguments,
)
from ta_cohort_mcp.schemas import load_schema
from ta_cohort_mcp.server.confirm import ClusterKey, cluster_key
from ta_cohort_mcp.server.problems import Problem
from ta_cohort_mcp.server.results import ToolFailure
from ta_cohort_mcp.server.tools.base import (
    BOOLEAN,
    INTEGER,
    STRING,
    Call,
    Outcome,
    ToolSpec,
    output_schema,
    require_allowed_project,
)
from ta_cohort_mcp.server.tools.clusters import (
    cluster_data,
    describe_cluster,
    progress_text,
)
from ta_cohort_mcp.server.validation import ArgumentError, validate_arguments

logger = logging.getLogger(__name__)


def summarize_cluster(definition: ClusterDefinition) -> str:
    """Return a one-sentence summary of a cluster definition."""
    parts = []
    events = definition.events or []
    if events:
        joiner = f" {(definition.event_relation or 'and')} "
        parts.append("did " + joiner.join(_event_text(e) for e in events))
    filts = definition.filts or []
    if filts:
        joiner = f" {(definition.relation or 'and')} "
        parts.append("have " + joiner.join(_filter_text(f) for f in filts))
    relation = definition.event_user_relation or "and"
    return f"users who {f' {relation} '.join(parts)}"


def _event_text(event: EventCondition) -> str:
    measure = event.taPropQuota.analysis.value
    if event.taPropQuota.quota:
        measure += f"({event.taPropQuota.quota})"
    window = (
        f"in recentDay {event.recentDay}"
        if event.recentDay
        else f"from {event.startTime} to {event.endTime}"
    )
    text = f"{event.eventName} with {measure} {event.comparator.value} {event.num} {window}"
    if event.filts:
        text += " where " + " and ".join(_filter_text(f) for f in event.filts)
    return text


def _filter_text(item: Filter) -> str:
    values = ",".join(item.ftv or [])
    text = f"{item.tableType.value} property {item.columnName} {item.comparator.value}"
    return f"{text} {values}" if values else text


def summarize_tag(definition: TagDefinition) -> str:
    """Return a one-sentence summary of a tag definition."""
    if definition.userTagValueDefs:
        values = [
            f"{d.tagValue!r} for {summarize_cluster(d.userClusterDef)}"
            for d in definition.userTagValueDefs
        ]
        return "custom condition tag: " + "; then ".join(values)
    if definition.userTagConFirstLastEventDef:
        event = definition.userTagConFirstLastEventDef.userTagConFirstLastEvent
        which = "first" if event.isFirstEvent else "last"
        column = event.calcPropVo.property.columnName
        return f"first/last event tag: {column} of the {which} {event.eventName}"
    assert definition.userTagConQuotaDef is not None
    quota = definition.userTagConQuotaDef.userTagConQuotaEvent
    measure = quota.analysis.value + (f"({quota.quota})" if quota.quota else "")
    return f"indicator value tag: {measure} of {quota.eventName}"


# Part of the arguments -> (schema stem, model) it is checked against.
_PARTS: dict[str, tuple[str, type[BaseModel]]] = {
    "qp": ("qp", ClusterDefinition),
    "tagQp": ("tagQp", TagDefinition),
    "body": ("tools/user_cluster_add", UserClusterAddArguments),
}


def _prefixed(problem: Problem, prefix: str) -> Problem:
    path = problem.path
    if not path:
        joined = prefix
    elif path.startswith("["):
        joined = prefix + path
    else:
        joined = f"{prefix}.{path}"
    return dataclasses.replace(problem, path=joined)


def _decode(name: str, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        reason = f"{error.msg} at line {error.lineno}, column {error.colno}"
    except RecursionError:
        # json.loads raises RecursionError for arrays and objects nested deeper
        # than the interpreter's recursion limit.
        reason = "nested too deep to decode"
    raise ArgumentError(
        [
            Problem(
                path=name,
                message=f"{name} is not valid JSON text ({reason})",
                expected="JSON text of an object",
            )
        ]
    )


def _check_part(
    call: Call[ValidateDefinitionArguments], name: str, text: str
) -> tuple[BaseModel | None, list[Problem]]:
    """Decode and check one part; return its model (None if invalid) and problems."""
    stem, model = _PARTS[name]
    try:
        value = _decode(name, text)
    except ArgumentError as error:
        return None, error.problems
    if name == "body" and isinstance(value, dict) and "projectId" not in value:
        default = call.state.settings.project_id
        if default is not None:
            value["projectId"] = default
    try:
        validated = validate_arguments(
            load_schema(stem), value, model, cache_key=f"validate_definition {stem}"
        )
    except ArgumentError as error:
        return None, [_prefixed(problem, name) for problem in error.problems]
    call.repairs.extend(f"{name}.{repair}" for repair in validated.repairs)
    return validated.model, []


async def _catalog_problems(
    call: Call[ValidateDefinitionArguments], parsed: BaseModel, name: str
) -> list[Problem]:
    """Return what the registered definition checker finds, if there is one.

    Raises:
        ToolFailure: a body names a project outside the project allowlist.
    """
    project_id = getattr(parsed, "projectId", None) or call.state.settings.project_id
    require_allowed_project(call.state, project_id)
    checker = call.state.definition_checker
    if checker is None:
        return []
    found: list[Problem] = []
    if isinstance(parsed, ClusterDefinition | TagDefinition):
        found += await checker(call.ctx, project_id, parsed, name)
    for part in ("qp", "tagQp"):
        definition = getattr(parsed, part, None)
        if isinstance(definition, ClusterDefinition | TagDefinition):
            found += await checker(call.ctx, project_id, definition, f"{name}.{part}")
    return found


def _summary(parsed: BaseModel) -> str:
    if isinstance(parsed, ClusterDefinition):
        return "qp: " + summarize_cluster(parsed)
    if isinstance(parsed, TagDefinition):
        return "tagQp: " + summarize_tag(parsed)
    assert isinstance(parsed, UserClusterAddArguments)
    if parsed.tagQp is not None:
        definition = "tag, " + summarize_tag(parsed.tagQp)
    else:
        assert parsed.qp is not None
        definition = "cluster of " + summarize_cluster(parsed.qp)
    return f"body: {parsed.clusterName!r} in project {parsed.projectId}, {definition}"


async def _validate_definition(call: Call[ValidateDefinitionArguments]) -> Outcome:
    problems: list[Problem] = []
    summaries: list[str] = []
    for name in _PARTS:
        text = getattr(call.arguments, name)
        if text is None:
            continue
        parsed, found = _check_part(call, name, text)
        problems += found
        if parsed is not None:
            problems += await _catalog_problems(call, parsed, name)
            summaries.append(_summary(parsed))
    if problems:
        raise ArgumentError(problems)
    summary = "; ".join(summaries)
    return Outcome(
        f"Valid; nothing was sent. {summary}", {"valid": True, "summary": summary}
    )


async def _refresh_and_wait(call: Call[RefreshAndWaitArguments]) -> Outcome:
    arguments = call.arguments
    settings = call.state.settings
    budget = min(arguments.waitSeconds or settings.wait_seconds, settings.wait_seconds)
    label = (
        f"cluster {arguments.clusterId}"
        if arguments.clusterId is not None
        else f"cluster {arguments.clusterName!r}"
    )
    waiter = _Waiter(call, label)
    try:
        with anyio.move_on_after(budget):
            if arguments.startRefresh:
                await waiter.start()
            return await waiter.wait_until_done()
    except anyio.get_cancelled_exc_class():
        logger.warning(
            "refresh_and_wait for %s in project %s was cancelled; the refresh may "
            "still run on the server",
            label,
            arguments.projectId,
        )
        raise
    return waiter.timed_out(budget)


@dataclass
class _RefreshRequest:
    """A refresh that refresh_and_wait requested, as later calls check it.

    `previous_time` is the cluster's refreshTime read just before the request.
    Comparing TA's refreshTime with it, rather than with this machine's clock,
    needs no knowledge of TA's time zone.
    """

    previous_time: str | None
    confirmed: bool = False


# Refresh requests of each TA client by cluster key. A TA client lives as long
# as one stdio process, HTTP session manager or in-memory connection.
_REQUESTS: weakref.WeakKeyDictionary[TAClient, dict[ClusterKey, _RefreshRequest]] = (
    weakref.WeakKeyDictionary()
)
# Refresh requests remembered per TA client; the oldest are dropped first.
MAX_REMEMBERED_REQUESTS = 1000


def _requests_of(client: TAClient) -> dict[ClusterKey, _RefreshRequest]:
    requests = _REQUESTS.get(client)
    if requests is None:
        requests = _REQUESTS[client] = {}
    return requests


class _Waiter:
    """Starts a refresh, then polls its progress and reports it to the caller.

    A result counts as fresh when this call's refresh request was confirmed, or
    when an earlier call requested a refresh and TA either confirmed it or now
    shows another refreshTime than before. After an unconfirmed request,
    progress 100 with the old refreshTime means the request may not have
    reached TA yet, so the wait goes on.
    """

    def __init__(self, call: Call[RefreshAndWaitArguments], label: str) -> None:
        self.call = call
        self.arguments = call.arguments
        self.label = label
        self.progress: int | None = None
        self.started = time.monotonic()
        self.reported = -1.0
        self.key = cluster_key(
            self.arguments.projectId,
            cluster_id=self.arguments.clusterId,
            name=self.arguments.clusterName,
        )
        self.requests = _requests_of(call.client)
        # The refresh this call or an earlier one requested, if any.
        self.request = self.requests.get(self.key)
        self.own_request = False
        # The detail that showed progress 100 with the refreshTime from before an
        # unconfirmed request.
        self.stale: ClusterDetail | None = None

    async def detail(self) -> ClusterDetail:
        arguments = self.arguments
        return await self.call.client.user_cluster_detail(
            arguments.projectId,
            cluster_id=arguments.clusterId,
            cluster_name=arguments.clusterName,
        )

    async def start(self) -> None:
        client, arguments = self.call.client, self.arguments
        before = await self.detail()
        self.request = _RefreshRequest(before.refreshTime)
        self.own_request = True
        self.remember(before, self.request)
        if arguments.clusterId is not None:
            await client.user_cluster_refresh(arguments.projectId, arguments.clusterId)
        else:
            assert arguments.clusterName is not None
            await client.user_cluster_refresh_by_name(
                arguments.projectId, arguments.clusterName
            )
        self.request.confirmed = True

    def remember(self, cluster: ClusterDetail, request: _RefreshRequest) -> None:
        """Store `request` under the cluster's id and name, for later calls."""
        project_id = self.arguments.projectId
        keys = {
            self.key,
            cluster_key(project_id, cluster_id=cluster.id, name=None),
            cluster_key(project_id, cluster_id=None, name=cluster.clusterName),
        }
        for key in keys:
            self.requests.pop(key, None)
            self.requests[key] = request
        while len(self.requests) > MAX_REMEMBERED_REQUESTS:
            del self.requests[next(iter(self.requests))]

    def forget(self, request: _RefreshRequest) -> None:
        for key in [k for k, v in self.requests.items() if v is request]:
            del self.requests[key]

    async def poll(self) -> int:
        client, arguments = self.call.client, self.arguments
        if arguments.clusterId is not None:
            result = await client.user_cluster_refresh_progress(
                arguments.projectId, arguments.clusterId
            )
        else:
            assert arguments.clusterName is not None
            result = await client.user_cluster_refresh_progress_by_name(
                arguments.projectId, arguments.clusterName
            )
        return result.progress

    async def report(self, progress: int) -> None:
        # Progress values must increase. The SDK sends a notification only when
        # the request asked for progress (a progressToken, or an in-memory
        # callback), and does nothing otherwise.
        value = float(max(progress, 0))
        if value <= self.reported:
            return
        self.reported = value
        await self.call.ctx.session.report_progress(
            value, 100.0, f"{self.label}: {progress_text(progress)}"
        )

    def is_stale(self, cluster: ClusterDetail) -> bool:
        request = self.request
        if request is None or request.confirmed:
            return False
        return cluster.refreshTime == request.previous_time

    async def wait_until_done(self) -> Outcome:
        interval = self.call.state.settings.poll_interval
        while True:
            self.progress = await self.poll()
            if self.progress < 0:
                await self.report(self.progress)
                raise await self.failed(self.progress)
            if self.progress >= 100:
                cluster = await self.detail()
                if not self.is_stale(cluster):
                    await self.report(self.progress)
                    return self.finished(cluster)
                self.stale = cluster
            else:
                self.stale = None
                await self.report(self.progress)
            await anyio.sleep(interval)

    async def failed(self, progress: int) -> ToolFailure:
        """Return the failure of a refresh, with TA's error message if it has one."""
        details: dict[str, Any] = {"progress": progress}
        try:
            cluster = await self.detail()
        except TAError as error:
            logger.warning(
                "refresh of %s failed; reading its detail for the error message "
                "failed too: %s",
                self.label,
                error,
            )
            cluster = None
        # NOTE: the sandbox stores the reason as errorMessage; which field a TA
        # server uses for it is not in the Open API reference.
        reason = (cluster.model_extra or {}).get("errorMessage") if cluster else None
        if reason:
            details["errorMessage"] = reason
            because = f": {reason}"
        else:
            because = ", and its detail gives no reason"
        if self.request is not None:
            self.forget(self.request)
        return ToolFailure(
            "refresh_failed",
            f"The refresh of {self.label} failed on the TA server (progress "
            f"{progress}){because}. Fix its definition (see user_cluster_detail, "
            "and check the fix with validate_definition), then refresh again.",
            **details,
        )

    def finished(self, cluster: ClusterDetail) -> Outcome:
        request = self.request
        fresh = request is not None
        if request is not None:
            self.forget(request)
        if self.own_request:
            elapsed = time.monotonic() - self.started
            text = f"Refresh done in {elapsed:.1f} s: {describe_cluster(cluster)}."
        elif fresh:
            text = (
                "Refresh done (the one an earlier refresh_and_wait call started): "
                f"{describe_cluster(cluster)}."
            )
        else:
            when = cluster.refreshTime or "an unknown time"
            text = (
                "No refresh is running (progress 100), so this is the result of "
                f"the last completed refresh, at {when}: {describe_cluster(cluster)}. "
                "No earlier refresh_and_wait call through this server started a "
                "refresh of it, so if that time is older than the refresh you "
                "expect, call refresh_and_wait with startRefresh true."
            )
        structured = {
            "done": True,
            "fresh": fresh,
            "progress": 100,
            "usersNum": cluster.usersNum,
            "refreshTime": cluster.refreshTime,
            "cluster": cluster_data(cluster),
        }
        return Outcome(text, structured)

    def timed_out(self, budget: float) -> Outcome:
        progress = self.progress
        shown = progress_text(progress) if progress is not None else "no progress yet"
        following = (
            "user_cluster_refresh_progress"
            if self.arguments.clusterId is not None
            else "user_cluster_refresh_progress_by_name"
        )
        request = self.request
        previous = (
            f"refreshTime {request.previous_time}"
            if request is not None and request.previous_time
            else "no refreshTime"
        )
        if self.own_request and request is not None and not request.confirmed:
            next_step = (
                "TA did not confirm the start of the refresh within the budget, so "
                "the refresh may or may not have started. Before the request the "
                f"cluster had {previous}. Call refresh_and_wait again with "
                "startRefresh false to wait: it counts the refresh as done only "
                f"when the refreshTime changes. Or check with {following} and "
                "user_cluster_detail: progress 100 with the same refreshTime means "
                "no refresh ran, so call refresh_and_wait again to start one."
            )
        elif self.stale is not None:
            next_step = (
                f"Progress is 100, but the cluster still has {previous}, as before "
                "the refresh an earlier refresh_and_wait call requested. TA never "
                "confirmed that request, so the refresh may not have started. "
                "Call refresh_and_wait again with startRefresh false to keep "
                "waiting, or with startRefresh true to request a new refresh."
            )
        else:
            next_step = (
                "The refresh is still running on the server. Follow it with "
                f"{following}, or call refresh_and_wait again with startRefresh "
                "false to keep waiting without starting another refresh."
            )
        text = f"Not done after {budget:g} s ({self.label}: {shown}). {next_step}"
        structured = {"done": False, "progress": progress, "next": next_step}
        return Outcome(text, structured)


EXTRA_TOOLS = [
    ToolSpec(
        name="validate_definition",
        title="Check a definition",
        description=(
            "Check a qp, a tagQp or whole user_cluster_add arguments (body), each "
            "as JSON text, without sending anything: the problems, or a summary. "
            'Example: {"qp":{"filts":[{"columnName":"user_level","comparator":'
            '"equal","ftv":["3"],"tableType":"user"}]}}'
        ),
        handler=_validate_definition,
        output_schema=output_schema({"valid": BOOLEAN, "summary": STRING}, ["valid"]),
        read_only=True,
        destructive=False,
        idempotent=True,
        open_world=False,
        json_text_fields=frozenset({"qp", "tagQp", "body"}),
    ),
    ToolSpec(
        name="refresh_and_wait",
        title="Refresh and wait for the count",
        description=(
            "Refresh a cluster or tag by clusterId or clusterName and wait for its "
            "usersNum; returns in under 50 s with the progress so far if TA is "
            'slower. Example: {"projectId":102,"clusterId":970}'
        ),
        handler=_refresh_and_wait,
        output_schema=output_schema(
            {
                "done": BOOLEAN,
                "fresh": BOOLEAN,
                "progress": INTEGER,
                "usersNum": INTEGER,
                "refreshTime": STRING,
            },
            ["done"],
        ),
        read_only=False,
        destructive=False,
        idempotent=True,
    ),
]
