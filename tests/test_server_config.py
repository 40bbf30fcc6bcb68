"""Settings: flag over environment over default, and errors that name the setting."""

import argparse
import logging
from pathlib import Path

import pytest

from ta_cohort_mcp.config import (
    DEFAULT_TIMEOUT,
    Settings,
    SettingsError,
    add_arguments,
    configure_logging,
    load_settings,
)


def parse(*flags: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(flags))


def test_defaults_without_anything() -> None:
    settings = load_settings(parse(), {})
    assert settings == Settings()
    assert settings.timeout == DEFAULT_TIMEOUT
    assert settings.transport == "stdio"
    assert settings.host == "127.0.0.1"
    assert settings.upload_dir is None


def test_environment_read(tmp_path: Path) -> None:
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    catalog = tmp_path / "catalog.json"
    catalog.write_text("{}", encoding="utf-8")
    environ = {
        "TA_BASE_URL": "http://ta.example:8992/",
        "TA_TOKEN": "secret-token",
        "TA_PROJECT_ID": "102",
        "TA_TIMEOUT": "12.5",
        "TA_READ_ONLY": "yes",
        "TA_TOOLS": "user_cluster_list, user_cluster_detail",
        "TA_PROJECTS": "102,2",
        "TA_UPLOAD_DIR": str(uploads),
        "TA_CATALOG_FILE": str(catalog),
        "TA_MCP_AUTH_TOKEN": "bearer",
        "TA_LOG_LEVEL": "debug",
    }
    settings = load_settings(parse(), environ)
    assert settings.base_url == "http://ta.example:8992"
    assert settings.token is not None
    assert settings.token.get_secret_value() == "secret-token"
    assert settings.project_id == 102
    assert settings.timeout == 12.5
    assert settings.read_only is True
    assert settings.tools == frozenset({"user_cluster_list", "user_cluster_detail"})
    assert settings.projects == frozenset({102, 2})
    assert settings.upload_dir == uploads
    assert settings.catalog_file == catalog
    assert settings.auth_token is not None
    assert settings.log_level == "DEBUG"


def test_flag_beats_environment() -> None:
    environ = {"TA_TIMEOUT": "5", "TA_BASE_URL": "http://env:1", "TA_READ_ONLY": "0"}
    settings = load_settings(
        parse("--timeout", "7", "--base-url", "http://flag:2", "--read-only"), environ
    )
    assert settings.timeout == 7
    assert settings.base_url == "http://flag:2"
    assert settings.read_only is True


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"TA_TIMEOUT": "soon"}, "TA_TIMEOUT"),
        ({"TA_TIMEOUT": "0"}, "TA_TIMEOUT"),
        ({"TA_PROJECT_ID": "abc"}, "TA_PROJECT_ID"),
        ({"TA_READ_ONLY": "maybe"}, "TA_READ_ONLY"),
        ({"TA_BASE_URL": "ta.example:8992"}, "TA_BASE_URL"),
        ({"TA_LOG_LEVEL": "loud"}, "TA_LOG_LEVEL"),
        ({"TA_PROJECTS": "1,x"}, "TA_PROJECTS"),
        ({"TA_WAIT_SECONDS": "55"}, "TA_WAIT_SECONDS"),
        ({"TA_PORT": "70000"}, "TA_PORT"),
        ({"TA_TRANSPORT": "sse"}, "TA_TRANSPORT"),
    ],
)
def test_invalid_value_names_variable(environ: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        load_settings(parse(), environ)


def test_invalid_flag_names_flag() -> None:
    with pytest.raises(SettingsError, match="--timeout"):
        load_settings(parse("--timeout", "x"), {})


def test_missing_backend_names_variables() -> None:
    with pytest.raises(SettingsError, match="TA_BASE_URL"):
        Settings().require_backend()
    with pytest.raises(SettingsError, match="TA_TOKEN"):
        Settings(base_url="http://ta:1").require_backend()


def test_public_http_needs_bearer() -> None:
    with pytest.raises(SettingsError, match="TA_MCP_AUTH_TOKEN"):
        load_settings(parse("--transport", "http", "--host", "0.0.0.0"), {})


def test_public_http_with_bearer() -> None:
    environ = {"TA_MCP_AUTH_TOKEN": "bearer"}
    settings = load_settings(parse("--transport", "http", "--host", "0.0.0.0"), environ)
    assert settings.host == "0.0.0.0"


def test_default_project_must_be_allowed() -> None:
    with pytest.raises(SettingsError, match="TA_PROJECTS"):
        load_settings(parse(), {"TA_PROJECT_ID": "5", "TA_PROJECTS": "102"})


def test_tokens_hidden_in_repr() -> None:
    environ = {"TA_TOKEN": "canary-token-1", "TA_MCP_AUTH_TOKEN": "canary-bearer-2"}
    settings = load_settings(parse(), environ)
    assert "canary-token-1" not in repr(settings)
    assert "canary-bearer-2" not in repr(settings)
    assert "canary-token-1" not in str(settings)


def test_no_token_flag() -> None:
    with pytest.raises(SystemExit):
        parse("--token", "x")


def test_logging_silences_httpx() -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        configure_logging("DEBUG")
        assert logging.getLogger("httpx").level == logging.WARNING
        assert logging.getLogger("httpcore").level == logging.WARNING
        assert root.level == logging.DEBUG
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
