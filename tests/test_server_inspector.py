"""The MCP Inspector CLI lists and calls the tools.

The tests skip where `npx` is missing, except in CI (CI set), where a missing
`npx` fails them, so the Inspector check cannot silently drop out of CI.

Inspector 0.15.0 is the newest release that runs on Node 20. Its first run
downloads it, which took about 15 s on a 2-core machine, hence the long timeout.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("npx") is None and not os.environ.get("CI"),
        reason="npx (Node.js) is not installed",
    ),
]

INSPECTOR = "@modelcontextprotocol/inspector@0.15.0"
TIMEOUT = 120


def inspect(*method: str) -> dict[str, object]:
    npx = shutil.which("npx")
    assert npx is not None, "npx (Node.js 20 or newer) is needed in CI"
    command = [
        npx,
        "-y",
        INSPECTOR,
        "--cli",
        sys.executable,
        "-m",
        "ta_cohort_mcp",
        "serve",
        "--sandbox",
        *method,
    ]
    completed = subprocess.run(
        command, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    output: dict[str, object] = json.loads(completed.stdout)
    return output


def test_inspector_lists_tools() -> None:
    output = inspect("--method", "tools/list")
    tools = output["tools"]
    assert isinstance(tools, list)
    names = {tool["name"] for tool in tools}
    assert {"user_cluster_add", "user_cluster_detail", "refresh_and_wait"} <= names


def test_inspector_calls_tool() -> None:
    output = inspect(
        "--method",
        "tools/call",
        "--tool-name",
        "user_cluster_list",
        "--tool-arg",
        "projectId=102",
    )
    assert output.get("isError") is not True
    content = output["structuredContent"]
    assert isinstance(content, dict)
    assert "userClusters" in content
