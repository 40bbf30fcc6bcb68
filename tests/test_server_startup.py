"""`ta-cohort-mcp serve` start-up as a subprocess: bad settings and the HTTP line."""

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).parent.parent
# Nothing listens here; start-up must fail before any request is sent.
UNUSED_BASE_URL = "http://127.0.0.1:9"


def environment(**extra: str) -> dict[str, str]:
    environ = {
        key: value for key, value in os.environ.items() if not key.startswith("TA_")
    }
    return {
        **environ,
        "TA_BASE_URL": UNUSED_BASE_URL,
        "TA_TOKEN": "secret-token",
        **extra,
    }


def serve(*flags: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ta_cohort_mcp", "serve", *flags],
        env=environment(**extra),
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
    )


def catalog_cases(tmp_path: Path) -> list[tuple[str, Path, str]]:
    not_json = tmp_path / "not-json.json"
    not_json.write_text("{", encoding="utf-8")
    invalid = tmp_path / "invalid.json"
    invalid.write_text('{"events": [{"nme": "x"}]}', encoding="utf-8")
    return [
        ("missing", tmp_path / "absent.json", "does not exist"),
        ("directory", tmp_path, "not a regular file"),
        ("not JSON", not_json, "not valid JSON"),
        ("invalid", invalid, "nme"),
    ]


def test_bad_catalog_file_one_line(tmp_path: Path) -> None:
    for label, path, fragment in catalog_cases(tmp_path):
        result = serve("--catalog-file", str(path))
        lines = result.stderr.splitlines()
        assert result.returncode == 2, label
        assert len(lines) == 1, (label, result.stderr)
        assert "Traceback" not in result.stderr, label
        assert fragment in lines[0], label
        assert "--catalog-file" in lines[0], label
        assert result.stdout == "", label


def test_bad_catalog_env_named(tmp_path: Path) -> None:
    result = serve(TA_CATALOG_FILE=str(tmp_path / "absent.json"))
    lines = result.stderr.splitlines()
    assert result.returncode == 2
    assert len(lines) == 1
    assert lines[0].startswith("ta-cohort-mcp serve: TA_CATALOG_FILE ")


def test_bad_upload_dir_one_line(tmp_path: Path) -> None:
    regular = tmp_path / "ids.txt"
    regular.write_text("a1\n", encoding="utf-8")
    cases = [
        ("missing", tmp_path / "absent", "does not exist"),
        ("regular file", regular, "not a directory"),
    ]
    for label, path, fragment in cases:
        result = serve("--upload-dir", str(path))
        lines = result.stderr.splitlines()
        assert result.returncode == 2, label
        assert len(lines) == 1, (label, result.stderr)
        assert fragment in lines[0], label
        assert "--upload-dir" in lines[0], label


def test_bad_upload_dir_env_named(tmp_path: Path) -> None:
    result = serve(TA_UPLOAD_DIR=str(tmp_path / "absent"))
    lines = result.stderr.splitlines()
    assert result.returncode == 2
    assert len(lines) == 1
    assert lines[0].startswith("ta-cohort-mcp serve: TA_UPLOAD_DIR ")


def test_base_url_other_scheme_named() -> None:
    result = serve(TA_BASE_URL="ftp://x")
    lines = result.stderr.splitlines()
    assert result.returncode == 2
    assert len(lines) == 1
    assert "TA_BASE_URL" in lines[0]
    assert "http:// or https://" in lines[0]
    assert "ftp://" in lines[0]
    assert "without" not in lines[0]


def test_http_prints_url_at_warning() -> None:
    command = [
        sys.executable,
        "-m",
        "ta_cohort_mcp",
        "serve",
        "--transport",
        "http",
        "--port",
        "0",
        "--log-level",
        "WARNING",
    ]
    with subprocess.Popen(
        command,
        env=environment(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    ) as process:
        try:
            assert process.stderr is not None
            line = process.stderr.readline()
            found = re.fullmatch(
                r"ta-cohort-mcp: serving MCP on (http://127\.0\.0\.1:(\d+)/mcp)\n",
                line,
            )
            assert found is not None, line
            assert int(found.group(2)) > 0
            response = httpx.get(found.group(1), timeout=10)
            assert response.status_code < 500
        finally:
            process.terminate()
            process.wait(timeout=10)


def test_http_busy_port_one_line() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = serve("--transport", "http", "--port", str(port))
    lines = result.stderr.splitlines()
    assert result.returncode == 2
    assert len(lines) == 1
    assert f"port {port} " in lines[0]
    assert "already in use" in lines[0]


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("TA_TOKEN", " ", "blank"),
        ("TA_MCP_AUTH_TOKEN", "\t", "blank"),
        ("TA_TIMEOUT", "inf", "finite"),
        ("TA_TIMEOUT", "nan", "finite"),
        ("TA_TIMEOUT", "601", "at most 600"),
        ("TA_POLL_INTERVAL", "inf", "finite"),
        ("TA_WAIT_SECONDS", "nan", "finite"),
    ],
)
def test_bad_setting_one_line(variable: str, value: str, fragment: str) -> None:
    result = serve(**{variable: value})
    lines = result.stderr.splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[0].startswith(f"ta-cohort-mcp serve: {variable} "), lines[0]
    assert fragment in lines[0]
