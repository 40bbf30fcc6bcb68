"""Context cost: the characters a client puts in the model's context for our server.

Clients send the whole `tools/list` to the model on every turn, so its size is a
cost paid on every message. Sizes are of the compact JSON the server sends
(no spaces, non-ASCII as is), read over stdio from `ta-cohort-mcp serve`. Tokens
are estimated as characters / 4. The targets: the whole list about 32,000
characters, and no tool above 12,000 (some chat clients drop a tool definition of
about 16,000 characters).
"""

import copy
import time
from typing import Any

import httpx

from benchmarks import definitions, services
from benchmarks.processes import child_environment
from benchmarks.report import Section, describe
from benchmarks.rpc import StdioRpc, compact
from benchmarks.runner import RunContext

TITLE = "Context cost"
LIST_TARGET = 32_000
TOOL_LIMIT = 12_000


def tokens(chars: int) -> str:
    return f"≈ {round(chars / 4):,} tokens"


def wait_refreshed(
    http: httpx.Client, token: str, cluster_name: str, timeout: float = 600.0
) -> dict[str, Any]:
    """Poll a cluster's detail until its progress is 100 and return the detail.

    Raises:
        RuntimeError: the refresh failed (progress -1).
        TimeoutError: it did not finish within `timeout` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        detail: dict[str, Any] = definitions.call(
            http,
            "/open/user-cluster-detail",
            token,
            projectId=definitions.PROJECT_ID,
            clusterName=cluster_name,
        )
        progress = detail.get("progress")
        if progress == 100:
            return detail
        if progress == -1:
            raise RuntimeError(f"refresh of {cluster_name} failed: {detail}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"refresh of {cluster_name} not done in {timeout:.0f} s")
        time.sleep(0.05)


def invalid_cluster() -> dict[str, Any]:
    """The reference cluster with a misspelled comparator, as a model might send it."""
    body = copy.deepcopy(definitions.REFERENCE_CLUSTER)
    body["clusterName"] = "bench_invalid"
    body["qp"]["events"][0]["comparator"] = "greaterThan"
    return body


def run(context: RunContext) -> Section:
    section = Section(name="context", title=TITLE, description=describe(__doc__))
    with services.sandbox(context) as sandbox:
        with httpx.Client(base_url=sandbox.base_url, timeout=60) as http:
            definitions.add_cluster(http, sandbox.token, definitions.REFERENCE_CLUSTER)
            wait_refreshed(http, sandbox.token, "recent_7_days_consume")
        env = child_environment(services.server_environment(sandbox))
        argv = [context.python, "-m", "ta_cohort_mcp", "serve"]
        stderr_path = context.scratch_dir / "context-serve.log"
        with StdioRpc(argv, env=env, cwd=context.root, stderr_path=stderr_path) as rpc:
            initialized = rpc.initialize()
            capabilities = initialized.get("capabilities", {})
            tools = rpc.list_all("tools/list", "tools")
            listings: dict[str, list[dict[str, Any]]] = {}
            if "resources" in capabilities:
                listings["resources/list"] = rpc.list_all("resources/list", "resources")
                listings["resources/templates/list"] = rpc.list_all(
                    "resources/templates/list", "resourceTemplates"
                )
            if "prompts" in capabilities:
                listings["prompts/list"] = rpc.list_all("prompts/list", "prompts")
            detail = rpc.request(
                "tools/call",
                {
                    "name": "user_cluster_detail",
                    "arguments": {"clusterName": "recent_7_days_consume"},
                },
            )
            listing = rpc.request(
                "tools/call", {"name": "user_cluster_list", "arguments": {}}
            )
            invalid = rpc.request(
                "tools/call",
                {"name": "user_cluster_add", "arguments": invalid_cluster()},
            )

        read_only_env = {**env, "TA_READ_ONLY": "true"}
        stderr_path = context.scratch_dir / "context-serve-read-only.log"
        with StdioRpc(
            argv, env=read_only_env, cwd=context.root, stderr_path=stderr_path
        ) as rpc:
            rpc.initialize()
            read_only_tools = rpc.list_all("tools/list", "tools")

    whole = len(compact(tools))
    section.add(
        f"`tools/list`, all {len(tools)} tools",
        whole,
        "chars",
        LIST_TARGET,
        "target",
        note=tokens(whole),
    )
    read_only = len(compact(read_only_tools))
    section.add(
        f"`tools/list` in read-only mode, {len(read_only_tools)} tools",
        read_only,
        "chars",
        LIST_TARGET,
        "target",
        note=tokens(read_only),
    )
    sizes = sorted(((len(compact(tool)), tool["name"]) for tool in tools), reverse=True)
    for size, name in sizes:
        section.add(
            f"tool `{name}`", size, "chars", TOOL_LIMIT, "max", note=tokens(size)
        )
    instructions = initialized.get("instructions") or ""
    section.add("server instructions (`initialize`)", len(instructions), "chars")
    for method, items in listings.items():
        size = len(compact(items))
        section.add(f"`{method}`, {len(items)} items", size, "chars", note=tokens(size))
    for label, result in (
        ("`user_cluster_detail` result (reference cluster)", detail),
        ("`user_cluster_list` result", listing),
        ("`user_cluster_add` error result (invalid comparator)", invalid),
    ):
        size = len(compact(result))
        section.add(label, size, "chars", note=tokens(size))
        if "structuredContent" in result:
            structured = len(compact(result["structuredContent"]))
            section.add(label + ", structuredContent only", structured, "chars")

    section.checks["user_cluster_detail succeeded"] = not detail.get("isError", False)
    section.checks["user_cluster_list succeeded"] = not listing.get("isError", False)
    section.checks["invalid comparator rejected"] = invalid.get("isError") is True
    section.checks[f"every tool at most {TOOL_LIMIT:,} chars"] = all(
        size <= TOOL_LIMIT for size, _ in sizes
    )
    section.notes.append(
        "Tokens are estimated as characters / 4. Real tokenizers vary by model and "
        "count JSON punctuation and non-English text differently."
    )
    section.parameters = {"tools": len(tools)}
    return section
