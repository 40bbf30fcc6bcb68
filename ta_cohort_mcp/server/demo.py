"""`ta-cohort-mcp demo`: the API reference's scenarios, played through MCP tool calls.

The demo starts the sandbox in this process, launches `ta-cohort-mcp serve` as a
subprocess over stdio, and drives it with the MCP SDK's client as a chat client
would: it creates the reference's cohort, refreshes it with progress, reads its
user count, creates the reference's three tags, uploads ids, lists, and deletes
with the user's confirmation. Every call and its result are printed. The exit
status is 0 only when every step succeeded.
"""

import argparse
import json
import os
import sys
from dataclasses import dataclass
from typing import Any

EXIT_FAILED = 1

# The reference's request examples (its typos mended, its `uceCalcuSymbol`
# spelling kept, since the server accepts it).
REFERENCE_COHORT: dict[str, Any] = {
    "projectId": 102,
    "clusterName": "recent_7_days_consume",
    "clusterCatalog": "catalog_cluster",
    "clusterType": "cluster_by_static_condition",
    "displayName": "recent_7_days_consume",
    "qp": {
        "events": [
            {
                "comparator": "greater",
                "eventName": "consume_item",
                "num": "4",
                "recentDay": "1-7",
                "taPropQuota": {"analysis": "TIMES"},
            }
        ],
        "event_relation": "and",
        "filts": [
            {
                "columnName": "user_level",
                "comparator": "equal",
                "ftv": ["3"],
                "tableType": "user",
            }
        ],
        "relation": "and",
        "event_user_relation": "and",
    },
}


def _tag_value(value: str, event: str, num: str, comparator_key: str) -> dict[str, Any]:
    return {
        "tagRemark": "",
        "tagValue": value,
        "userClusterDef": {
            "event_relation": "and",
            "event_user_relation": "and",
            "events": [
                {
                    "eventName": event,
                    "num": num,
                    "recentDay": "1-30",
                    "relation": "and",
                    "taPropQuota": {"analysis": "TIMES"},
                    comparator_key: "greater",
                }
            ],
            "filts": [],
            "relation": "and",
        },
    }


_ANDROID = [
    {
        "columnName": "#os",
        "comparator": "equal",
        "ftv": ["android"],
        "tableType": "event",
    }
]

CUSTOM_TAG: dict[str, Any] = {
    "projectId": 102,
    "clusterName": "tag_20200615_1",
    "clusterCatalog": "catalog_tag",
    "clusterType": "tag_by_static_condition",
    "subConditionTabType": "tag_condition_default",
    "displayName": "tag_20200615_1",
    "tagQp": {
        "userTagValueDefs": [
            _tag_value("tag value 1", "player_register", "4", "comparator"),
            _tag_value("tag vaule 2", "fight_success", "0", "uceCalcuSymbol"),
        ]
    },
}
FIRST_LAST_TAG: dict[str, Any] = {
    "projectId": 2,
    "clusterName": "tag_test_20200615_1",
    "clusterCatalog": "catalog_tag",
    "clusterType": "tag_by_static_condition",
    "subConditionTabType": "tag_condition_by_firstlast_event",
    "displayName": "tag_test",
    "tagQp": {
        "userTagConFirstLastEventDef": {
            "userTagConFirstLastEvent": {
                "calcPropVo": {
                    "isCalc": False,
                    "property": {"columnName": "#vp@test_num", "tableType": "event"},
                },
                "eventName": "pay",
                "isFirstEvent": True,
                "recentDay": "0-1",
                "filts": _ANDROID,
                "relation": "and",
            }
        }
    },
}
# The reference gives this example the clusterName of the previous one, in the
# same project. Names are unique per project, so the demo numbers it 2.
QUOTA_TAG: dict[str, Any] = {
    "projectId": 2,
    "clusterName": "tag_test_20200615_2",
    "clusterCatalog": "catalog_tag",
    "clusterType": "tag_by_static_condition",
    "subConditionTabType": "tag_condition_by_quotation",
    "displayName": "Tag_test",
    "tagQp": {
        "userTagConQuotaDef": {
            "userTagConQuotaEvent": {
                "type": "normal",
                "quota": "activity_reward",
                "analysis": "DISTINCT",
                "eventName": "activity_attend",
                "recentDay": "0-1",
                "filts": _ANDROID,
                "relation": "and",
            }
        }
    },
}


class DemoFailed(Exception):
    """A step of the demo did not succeed."""


@dataclass
class _Printer:
    """Prints each call and its result, shortened to stay readable."""

    width: int = 100

    def step(self, title: str) -> None:
        print(f"\n== {title}", flush=True)

    def call(self, name: str, arguments: dict[str, Any]) -> None:
        shown = json.dumps(arguments, ensure_ascii=False, separators=(",", ":"))
        if len(shown) > 2 * self.width:
            shown = shown[: 2 * self.width - 1] + "…"
        print(f"-> {name} {shown}", flush=True)

    def result(self, text: str, is_error: bool) -> None:
        marker = "<- ERROR" if is_error else "<-"
        lines = text.splitlines() or [""]
        for index, line in enumerate(lines[:12]):
            if len(line) > 2 * self.width:
                line = line[: 2 * self.width - 1] + "…"
            print(f"{marker if index == 0 else '  '} {line}", flush=True)
        if len(lines) > 12:
            print(f"   ({len(lines) - 12} more lines)", flush=True)

    def note(self, text: str) -> None:
        print(f"   {text}", flush=True)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of `ta-cohort-mcp demo`."""
    parser.add_argument(
        "--refresh-seconds",
        type=float,
        default=2.0,
        help="how long the sandbox takes for the first refresh, to show progress",
    )


def run(args: argparse.Namespace) -> int:
    """Run the demo; return 0 when every step succeeded."""
    import anyio

    from ta_cohort_mcp.config import configure_logging

    configure_logging("WARNING")
    try:
        anyio.run(_demo, float(args.refresh_seconds))
    except DemoFailed as error:
        print(f"\ndemo failed: {error}", file=sys.stderr)
        return EXIT_FAILED
    print("\nEvery step succeeded.")
    return 0


async def _demo(refresh_seconds: float) -> None:
    from ta_cohort_mcp.sandbox import SandboxConfig, SandboxServer

    printer = _Printer()
    printer.step("Starting the sandbox (a TA-compatible Open API over DuckDB)")
    async with SandboxServer(SandboxConfig()) as sandbox:
        printer.note(f"sandbox at {sandbox.base_url}, projects 102 and 2")
        sandbox.faults.add(
            "slow_refresh", "user-cluster-refresh", count=1, seconds=refresh_seconds
        )
        await _session(sandbox.base_url, sandbox.token, printer)


async def _session(base_url: str, token: str, printer: _Printer) -> None:
    from mcp import StdioServerParameters, types
    from mcp.client import Client

    environ = {k: v for k, v in os.environ.items() if not k.startswith("TA_")}
    environ.update({"TA_TOKEN": token, "TA_LOG_LEVEL": "WARNING"})
    parameters = StdioServerParameters(
        command=sys.executable,
        args=["-m", "ta_cohort_mcp", "serve", "--base-url", base_url],
        env=environ,
    )

    async def confirm(
        context: Any, params: types.ElicitRequestParams
    ) -> types.ElicitResult:
        printer.note(f"the server asks the user: {params.message}")
        printer.note("the user answers: yes")
        return types.ElicitResult(action="accept", content={"confirm": True})

    printer.step("Launching `ta-cohort-mcp serve` over stdio (protocol 2025-11-25)")
    async with Client(
        parameters, mode="legacy", elicitation_callback=confirm
    ) as client:
        tools = (await client.list_tools()).tools
        size = sum(
            len(
                json.dumps(
                    t.model_dump(by_alias=True, exclude_none=True, mode="json"),
                    separators=(",", ":"),
                )
            )
            for t in tools
        )
        printer.note(f"{len(tools)} tools, {size:,} characters of tools/list")
        # A failure is raised after the session closes, so that it is not wrapped
        # in the task group's ExceptionGroup.
        failure: DemoFailed | None = None
        try:
            await _scenarios(_Caller(client, printer), printer)
        except DemoFailed as error:
            failure = error
    if failure is not None:
        raise failure


class _Caller:
    """Calls tools, prints each call and result, and fails the demo on an error."""

    def __init__(self, client: Any, printer: _Printer) -> None:
        self.client = client
        self.printer = printer

    async def __call__(
        self, name: str, arguments: dict[str, Any], **options: Any
    ) -> dict[str, Any]:
        self.printer.call(name, arguments)
        result = await self.client.call_tool(name, arguments, **options)
        text = "\n".join(
            block.text
            for block in result.content
            if getattr(block, "type", "") == "text"
        )
        self.printer.result(text, bool(result.is_error))
        if result.is_error:
            raise DemoFailed(f"{name} returned an error: {text.splitlines()[0]}")
        structured: dict[str, Any] = result.structured_content or {}
        return structured


async def _scenarios(call: _Caller, printer: _Printer) -> None:
    printer.step("Check the reference cohort's definition without sending it")
    qp_text = json.dumps(REFERENCE_COHORT["qp"])
    checked = await call("validate_definition", {"qp": qp_text})
    _expect(checked.get("valid") is True, "the reference qp is not valid")

    printer.step(
        "Create the reference cohort: level-3 users who consumed items > 4 times"
    )
    created = await call("user_cluster_add", REFERENCE_COHORT)
    cluster_id = created["clusterId"]

    printer.step("Refresh it and wait, with progress notifications")

    async def on_progress(
        progress: float, total: float | None, message: str | None
    ) -> None:
        printer.note(f"progress {progress:.0f}/{total or 100:.0f}: {message or ''}")

    waited = await call(
        "refresh_and_wait",
        {"projectId": 102, "clusterId": cluster_id},
        progress_callback=on_progress,
    )
    _expect(waited.get("done") is True, "the refresh did not finish in time")

    printer.step("Read its detail: usersNum")
    detail = await call(
        "user_cluster_detail", {"projectId": 102, "clusterId": cluster_id}
    )
    printer.note(f"usersNum = {detail['cluster'].get('usersNum')}")

    for title, body in (
        ("custom condition tag (project 102)", CUSTOM_TAG),
        ("first/last event tag (project 2)", FIRST_LAST_TAG),
        ("indicator value tag (project 2)", QUOTA_TAG),
    ):
        printer.step(f"Create the reference's {title}, then count its users")
        tag = await call("user_cluster_add", body)
        await call(
            "refresh_and_wait",
            {"projectId": body["projectId"], "clusterId": tag["clusterId"]},
        )

    printer.step("Upload ids as a cluster (one unknown id)")
    ids = [f"acc{number}" for number in range(1, 21)] + ["no_such_account"]
    await call(
        "import_id_cluster_add",
        {
            "projectId": 102,
            "displayName": "demo upload",
            "clusterName": "demo_upload",
            "mainColumnName": "#account_id",
            "ids": ids,
        },
    )

    printer.step("List the clusters of project 102")
    await call("user_cluster_list", {"projectId": 102})

    printer.step("Delete the reference cohort; the server asks the user first")
    deleted = await call(
        "delete_user_cluster_by_name",
        {"projectId": 102, "clusterName": REFERENCE_COHORT["clusterName"]},
    )
    _expect(deleted.get("deleted") is True, "the cohort was not deleted")


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise DemoFailed(message)
