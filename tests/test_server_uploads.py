"""Id uploads from files: only regular files under the upload directory are read."""

import os
from pathlib import Path

import pytest
from server_fixtures import call, connect, error_kind, structured, text, with_settings

from ta_cohort_mcp.config import Settings
from ta_cohort_mcp.sandbox import SandboxServer
from ta_cohort_mcp.server.results import ToolFailure
from ta_cohort_mcp.server.uploads import read_upload_file, resolve_upload_path

pytestmark = pytest.mark.anyio


@pytest.fixture
def upload_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "uploads"
    directory.mkdir()
    (directory / "ids.txt").write_text("acc1\nacc2\r\n\nacc3\n", encoding="utf-8")
    (directory / "tag.csv").write_text("acc1,vip\nacc2,gold,extra\n", encoding="utf-8")
    return directory


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "id_rsa"
    path.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n", encoding="utf-8")
    return path


def add_arguments(path: str) -> dict[str, object]:
    return {
        "projectId": 102,
        "displayName": "from file",
        "mainColumnName": "#account_id",
        "path": path,
    }


async def test_file_upload_cluster(server_settings: Settings, upload_dir: Path) -> None:
    settings = with_settings(server_settings, upload_dir=upload_dir)
    async with connect(settings) as client:
        result = await call(client, "import_id_cluster_add", add_arguments("ids.txt"))
    assert not result.is_error, text(result)
    upload = structured(result)["upload"]
    assert upload["rows_sent"] == 3
    assert upload["result"]["userNum"] == 3


async def test_file_upload_tag(server_settings: Settings, upload_dir: Path) -> None:
    settings = with_settings(server_settings, upload_dir=upload_dir)
    arguments = {
        **add_arguments(str(upload_dir / "tag.csv")),
        "clusterCatalog": "catalog_tag",
    }
    async with connect(settings) as client:
        result = await call(client, "import_id_cluster_add", arguments)
    assert not result.is_error, text(result)
    assert structured(result)["upload"]["rows_sent"] == 2


async def test_no_upload_dir_means_inline(
    server_settings: Settings, upload_dir: Path, sandbox: SandboxServer
) -> None:
    before = sandbox.stats.total
    async with connect(server_settings) as client:
        result = await call(
            client, "import_id_cluster_add", add_arguments(str(upload_dir / "ids.txt"))
        )
    assert error_kind(result) == "path_rejected"
    assert "TA_UPLOAD_DIR" in text(result)
    assert sandbox.stats.total == before


def rejected(path: str, upload_dir: Path) -> str:
    with pytest.raises(ToolFailure) as caught:
        resolve_upload_path(path, upload_dir)
    assert caught.value.kind == "path_rejected"
    return caught.value.message


def test_outside_path_rejected(upload_dir: Path, secret_file: Path) -> None:
    assert "outside the upload directory" in rejected(str(secret_file), upload_dir)


def test_dotdot_rejected(upload_dir: Path, secret_file: Path) -> None:
    assert "outside the upload directory" in rejected("../id_rsa", upload_dir)


def test_home_ssh_key_rejected(upload_dir: Path) -> None:
    message = rejected(os.path.expanduser("~/.ssh/id_rsa"), upload_dir)
    assert "outside the upload directory" in message


def test_symlink_out_rejected(upload_dir: Path, secret_file: Path) -> None:
    (upload_dir / "link.txt").symlink_to(secret_file)
    assert "outside the upload directory" in rejected("link.txt", upload_dir)


def test_symlinked_dir_out_rejected(upload_dir: Path, secret_file: Path) -> None:
    (upload_dir / "sub").symlink_to(secret_file.parent)
    assert "outside the upload directory" in rejected("sub/id_rsa", upload_dir)


def test_symlink_inside_allowed(upload_dir: Path) -> None:
    (upload_dir / "alias.txt").symlink_to(upload_dir / "ids.txt")
    assert (
        resolve_upload_path("alias.txt", upload_dir)
        == (upload_dir / "ids.txt").resolve()
    )


def test_directory_rejected(upload_dir: Path) -> None:
    (upload_dir / "folder").mkdir()
    assert "a directory" in rejected("folder", upload_dir)


def test_fifo_rejected(upload_dir: Path) -> None:
    os.mkfifo(upload_dir / "pipe")
    assert "a FIFO" in rejected("pipe", upload_dir)


def test_device_rejected(upload_dir: Path) -> None:
    (upload_dir / "null").symlink_to("/dev/null")
    assert "outside the upload directory" in rejected("null", upload_dir)


def test_device_in_dir_rejected(tmp_path: Path) -> None:
    # /dev itself as the upload directory: its devices are inside, but not files.
    assert "a device" in rejected("null", Path("/dev"))


def test_missing_file_rejected(upload_dir: Path) -> None:
    assert "does not exist" in rejected("nope.txt", upload_dir)


def test_nul_rejected(upload_dir: Path) -> None:
    assert "NUL" in rejected("ids\x00.txt", upload_dir)


def test_read_checks_opened_file(upload_dir: Path) -> None:
    real = resolve_upload_path("ids.txt", upload_dir)
    real.unlink()
    os.mkfifo(real)
    with pytest.raises(ToolFailure, match="not a regular file"):
        read_upload_file(real)


def test_read_rejects_swapped_symlink(upload_dir: Path, secret_file: Path) -> None:
    real = resolve_upload_path("ids.txt", upload_dir)
    real.unlink()
    real.symlink_to(secret_file)
    with pytest.raises(ToolFailure, match="cannot open"):
        read_upload_file(real)


def test_read_rejects_non_utf8(upload_dir: Path) -> None:
    (upload_dir / "latin1.txt").write_bytes(b"caf\xe9\n")
    real = resolve_upload_path("latin1.txt", upload_dir)
    with pytest.raises(ToolFailure, match="not valid UTF-8"):
        read_upload_file(real)
