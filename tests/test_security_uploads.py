"""The upload tools read only regular files under the configured upload directory.

Every path kind that must be rejected is sent to each of the three upload tools
through an MCP session: outside the directory, `..`, a symlink leading out, a
device, a FIFO, a directory, and a fake `~/.ssh/id_rsa`. Each call must end in
a path_rejected result before anything is read or sent (the sandbox's request
counter is unchanged, and a FIFO without a writer does not block the call).
"""

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.client import Client
from server_fixtures import connect, error_kind, structured, text, with_settings

from ta_cohort_mcp.config import Settings
from ta_cohort_mcp.sandbox import SandboxServer

pytestmark = pytest.mark.anyio

UPLOAD_TOOLS = (
    "import_id_cluster_add",
    "import_id_cluster_modify",
    "import_id_cluster_modify_by_name",
)
PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nnot a real key\n"
# A call that read a FIFO with no writer would block, so this bounds the wait.
CALL_TIMEOUT = 10.0


def upload_arguments(tool: str, path: str) -> dict[str, Any]:
    if tool == "import_id_cluster_add":
        return {
            "projectId": 102,
            "displayName": "from a file",
            "mainColumnName": "#account_id",
            "path": path,
        }
    if tool == "import_id_cluster_modify":
        return {"projectId": 102, "clusterId": 1, "path": path}
    return {"projectId": 102, "clusterName": "c1", "path": path}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake home directory with ~/.ssh/id_rsa, set as HOME."""
    directory = tmp_path / "home"
    ssh = directory / ".ssh"
    ssh.mkdir(parents=True)
    (ssh / "id_rsa").write_text(PRIVATE_KEY, encoding="utf-8")
    monkeypatch.setenv("HOME", str(directory))
    return directory


@pytest.fixture
def upload_dir(tmp_path: Path, home: Path) -> Path:
    directory = tmp_path / "uploads"
    directory.mkdir()
    (directory / "ids.txt").write_text("acc1\nacc2\n", encoding="utf-8")
    (directory / "folder").mkdir()
    os.mkfifo(directory / "pipe")
    (directory / "key_link").symlink_to(home / ".ssh" / "id_rsa")
    (directory / "ssh_dir").symlink_to(home / ".ssh")
    (directory / "zero").symlink_to("/dev/zero")
    return directory


@pytest.fixture
async def upload_client(
    server_settings: Settings, upload_dir: Path
) -> AsyncIterator[Client]:
    settings = with_settings(server_settings, upload_dir=upload_dir)
    async with connect(settings, mode="legacy") as client:
        yield client


def bad_paths(upload_dir: Path, home: Path) -> list[tuple[str, str]]:
    """Return (label, path) of every path an upload must reject."""
    key = home / ".ssh" / "id_rsa"
    return [
        ("absolute outside", str(key)),
        ("tilde", "~/.ssh/id_rsa"),
        ("dotdot", "../home/.ssh/id_rsa"),
        ("dotdot inside", "folder/../../home/.ssh/id_rsa"),
        ("symlink out", "key_link"),
        ("symlinked dir out", "ssh_dir/id_rsa"),
        ("device", "/dev/zero"),
        ("symlink to device", "zero"),
        ("fifo", "pipe"),
        ("directory", "folder"),
        ("upload dir itself", "."),
        ("missing", "nope.txt"),
        ("nul", "ids.txt\x00.png"),
        ("etc passwd", "/etc/passwd"),
    ]


async def call_bounded(client: Client, tool: str, arguments: dict[str, Any]) -> Any:
    with anyio.fail_after(CALL_TIMEOUT):
        return await client.call_tool(tool, arguments)


@pytest.mark.parametrize("tool", UPLOAD_TOOLS)
async def test_bad_paths_rejected_unsent(
    tool: str,
    upload_client: Client,
    upload_dir: Path,
    home: Path,
    sandbox: SandboxServer,
) -> None:
    for label, path in bad_paths(upload_dir, home):
        before = sandbox.stats.total
        result = await call_bounded(upload_client, tool, upload_arguments(tool, path))
        assert result.is_error, f"{label}: {text(result)}"
        assert error_kind(result) == "path_rejected", f"{label}: {text(result)}"
        assert sandbox.stats.total == before, f"{label} reached the sandbox"
        assert "BEGIN OPENSSH" not in text(result), label


@pytest.mark.parametrize("tool", UPLOAD_TOOLS)
async def test_no_upload_dir_rejects_all(
    tool: str,
    server_settings: Settings,
    upload_dir: Path,
    home: Path,
    sandbox: SandboxServer,
) -> None:
    paths = [str(upload_dir / "ids.txt"), "ids.txt", str(home / ".ssh" / "id_rsa")]
    async with connect(server_settings) as client:
        for path in paths:
            before = sandbox.stats.total
            result = await call_bounded(client, tool, upload_arguments(tool, path))
            assert error_kind(result) == "path_rejected", text(result)
            assert "TA_UPLOAD_DIR" in text(result)
            assert sandbox.stats.total == before


async def test_upload_dir_file_accepted(upload_client: Client) -> None:
    tool = "import_id_cluster_add"
    result = await call_bounded(upload_client, tool, upload_arguments(tool, "ids.txt"))
    assert not result.is_error, text(result)
    assert structured(result)["upload"]["rows_sent"] == 2


async def test_dev_upload_dir_rejects_devices(
    server_settings: Settings, home: Path, sandbox: SandboxServer
) -> None:
    # Even with /dev as the upload directory, no device is read.
    settings = with_settings(server_settings, upload_dir=Path("/dev"))
    async with connect(settings) as client:
        for path in ("zero", "null", "/dev/zero", "stdin"):
            before = sandbox.stats.total
            tool = "import_id_cluster_add"
            result = await call_bounded(client, tool, upload_arguments(tool, path))
            assert error_kind(result) == "path_rejected", f"{path}: {text(result)}"
            assert sandbox.stats.total == before
