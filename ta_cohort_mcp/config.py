"""Settings of the MCP server, read from command-line flags and the environment.

Every setting has an environment variable with the prefix `TA_`; most also have a
flag. A flag wins over the environment, and the environment over the default.
The TA token has no flag, because a flag is visible to every user in the process
list. The token and the HTTP bearer token are `SecretStr`, so they never appear
in a `repr`, a log line or an error message.
"""

import argparse
import ipaddress
import logging
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import SecretStr

ENV_PREFIX = "TA_"
DEFAULT_TIMEOUT = 30.0
DEFAULT_WAIT_SECONDS = 45.0
# Chat clients drop a tool call that runs for about 60 seconds, so a waiting
# tool must return well before that.
MAX_WAIT_SECONDS = 50.0
DEFAULT_POLL_INTERVAL = 1.0
# Max value of a setting in seconds (timeout, wait budget, poll interval). A
# request timeout or poll interval above ten minutes is taken as a mistake.
MAX_SECONDS = 600.0
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

Transport = Literal["stdio", "http"]


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names its flag or variable."""


@dataclass(frozen=True)
class Settings:
    """Everything the server needs to run, after flags and environment are merged."""

    base_url: str | None = None
    token: SecretStr | None = None
    project_id: int | None = None
    timeout: float = DEFAULT_TIMEOUT
    read_only: bool = False
    tools: frozenset[str] | None = None
    projects: frozenset[int] | None = None
    upload_dir: Path | None = None
    catalog_file: Path | None = None
    auth_token: SecretStr | None = None
    log_level: str = "INFO"
    transport: Transport = "stdio"
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    stateless: bool = False
    allowed_hosts: tuple[str, ...] = ()
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    wait_seconds: float = DEFAULT_WAIT_SECONDS
    poll_interval: float = DEFAULT_POLL_INTERVAL
    sandbox: bool = field(default=False)

    def with_backend(self, base_url: str, token: str) -> "Settings":
        """Return a copy pointed at another API, such as an in-process sandbox."""
        return replace(self, base_url=base_url, token=SecretStr(token))

    def require_backend(self) -> tuple[str, SecretStr]:
        """Return the base URL and token, or raise SettingsError naming what is missing."""
        if not self.base_url:
            raise SettingsError(
                "missing setting: the TA Open API base URL; set TA_BASE_URL or "
                "--base-url (such as http://ta.example.com:8992), or use --sandbox"
            )
        if self.token is None or not self.token.get_secret_value():
            raise SettingsError(
                "missing setting: the TA Open API token; set TA_TOKEN in the "
                "environment, or use --sandbox"
            )
        return self.base_url, self.token


@dataclass(frozen=True)
class _Spec:
    """One setting: its field, flag, environment variable, parser and help text."""

    name: str
    flag: str | None
    parse: Callable[[str, str], Any]
    help: str
    is_switch: bool = False

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()


def _text(value: str, source: str) -> str:
    if not value.strip():
        raise SettingsError(f"{source} is empty; give a value or unset it")
    return value.strip()


def _secret(value: str, source: str) -> SecretStr:
    if not value:
        raise SettingsError(f"{source} is empty; give a value or unset it")
    if not value.strip():
        # The value itself is not shown, though only whitespace: it is a secret.
        raise SettingsError(
            f"{source} is blank (only whitespace); give the token or unset it"
        )
    return SecretStr(value)


def _url(value: str, source: str) -> str:
    text = _text(value, source).rstrip("/")
    if not text.lower().startswith(("http://", "https://")):
        scheme = urlsplit(text).scheme if "://" in text else ""
        got = f"got the scheme {scheme}://" if scheme else "got a value without one"
        raise SettingsError(
            f"{source} must start with http:// or https://, such as "
            f"http://ta.example.com:8992; {got}"
        )
    parts = urlsplit(text)
    if parts.query or parts.fragment or "@" in parts.netloc:
        # The value is not quoted, because a query or user part may carry the token.
        raise SettingsError(
            f"{source} must be the address only, without a query, a fragment or "
            "a user name, such as http://ta.example.com:8992; give the token in "
            "TA_TOKEN"
        )
    return text


def _integer(value: str, source: str) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        raise SettingsError(f"{source} must be a whole number; got {value!r}") from None
    if number < 0:
        raise SettingsError(f"{source} must be 0 or more; got {number}")
    return number


def _port(value: str, source: str) -> int:
    number = _integer(value, source)
    if number > 65535:
        raise SettingsError(f"{source} must be a port from 0 to 65535; got {number}")
    return number


def _seconds(value: str, source: str) -> float:
    try:
        number = float(value.strip())
    except ValueError:
        raise SettingsError(
            f"{source} must be a number of seconds, such as 30; got {value!r}"
        ) from None
    if not math.isfinite(number):
        raise SettingsError(
            f"{source} must be a finite number of seconds, such as 30; got {value!r}"
        )
    if not number > 0:
        raise SettingsError(f"{source} must be more than 0 seconds; got {value!r}")
    if number > MAX_SECONDS:
        raise SettingsError(
            f"{source} must be at most {MAX_SECONDS:g} seconds; got {value!r}"
        )
    return number


def _wait_seconds(value: str, source: str) -> float:
    number = _seconds(value, source)
    if number > MAX_WAIT_SECONDS:
        raise SettingsError(
            f"{source} must be at most {MAX_WAIT_SECONDS:g} seconds, because chat "
            f"clients drop calls that run for about 60 seconds; got {value!r}"
        )
    return number


def _boolean(value: str, source: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise SettingsError(f"{source} must be true or false (or 1 or 0); got {value!r}")


def _names(value: str, source: str) -> frozenset[str]:
    names = frozenset(part.strip() for part in value.split(",") if part.strip())
    if not names:
        raise SettingsError(f"{source} lists no names; give comma-separated names")
    return names


def _projects(value: str, source: str) -> frozenset[int]:
    parts = [part.strip() for part in value.split(",") if part.strip()]
    if not parts:
        raise SettingsError(f"{source} lists no project ids; give comma-separated ids")
    return frozenset(_integer(part, source) for part in parts)


def _hosts(value: str, source: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _path(value: str, source: str) -> Path:
    return Path(_text(value, source)).expanduser()


def _directory(value: str, source: str) -> Path:
    path = _path(value, source)
    if not path.exists():
        raise SettingsError(
            f"{source} {str(path)!r} does not exist; create the directory or "
            "give an existing one"
        )
    if not path.is_dir():
        raise SettingsError(
            f"{source} {str(path)!r} is not a directory; give the directory "
            "that contains the id files"
        )
    return path


def _file(value: str, source: str) -> Path:
    path = _path(value, source)
    if not path.exists():
        raise SettingsError(
            f"{source} {str(path)!r} does not exist; give the path of an existing "
            "catalog JSON file"
        )
    if not path.is_file():
        raise SettingsError(
            f"{source} {str(path)!r} is not a regular file; give the path of a "
            "catalog JSON file"
        )
    return path


def _log_level(value: str, source: str) -> str:
    level = value.strip().upper()
    if level not in LOG_LEVELS:
        raise SettingsError(
            f"{source} must be one of {', '.join(LOG_LEVELS)}; got {value!r}"
        )
    return level


def _transport(value: str, source: str) -> str:
    lowered = value.strip().lower()
    if lowered not in ("stdio", "http"):
        raise SettingsError(f"{source} must be stdio or http; got {value!r}")
    return lowered


def _byte_count(value: str, source: str) -> int:
    number = _integer(value, source)
    if number < 1024:
        raise SettingsError(f"{source} must be at least 1024 bytes; got {number}")
    return number


_SPECS = (
    _Spec(
        "base_url", "--base-url", _url, "TA Open API base URL, such as http://ta:8992"
    ),
    _Spec("token", None, _secret, "TA Open API token (environment only)"),
    _Spec("project_id", "--project-id", _integer, "default projectId of every tool"),
    _Spec(
        "timeout",
        "--timeout",
        _seconds,
        "seconds to wait for each API request (default 30)",
    ),
    _Spec("read_only", "--read-only", _boolean, "remove every write tool", True),
    _Spec(
        "tools", "--tools", _names, "comma-separated tool names to offer (default all)"
    ),
    _Spec("projects", "--projects", _projects, "comma-separated projectIds allowed"),
    _Spec(
        "upload_dir",
        "--upload-dir",
        _directory,
        "directory id-upload files may be read from (default none)",
    ),
    _Spec(
        "catalog_file",
        "--catalog-file",
        _file,
        "event catalog JSON file (format: schemas/catalog.json)",
    ),
    _Spec(
        "mcp_auth_token", "--auth-token", _secret, "bearer token HTTP clients must send"
    ),
    _Spec(
        "log_level",
        "--log-level",
        _log_level,
        "DEBUG, INFO, WARNING or ERROR, on stderr (default INFO)",
    ),
    _Spec("transport", "--transport", _transport, "stdio (default) or http"),
    _Spec("host", "--host", _text, "HTTP address to bind (default 127.0.0.1)"),
    _Spec("port", "--port", _port, "HTTP port (default 8765; 0 picks a free port)"),
    _Spec("stateless", "--stateless", _boolean, "HTTP without sessions", True),
    _Spec(
        "allowed_hosts",
        "--allowed-hosts",
        _hosts,
        "comma-separated extra Host names HTTP accepts",
    ),
    _Spec(
        "max_body_bytes",
        "--max-body-bytes",
        _byte_count,
        "largest HTTP request body in bytes (default 4 MiB)",
    ),
    _Spec(
        "wait_seconds",
        "--wait-seconds",
        _wait_seconds,
        "refresh_and_wait budget in seconds (default 45, max 50)",
    ),
    _Spec(
        "poll_interval",
        "--poll-interval",
        _seconds,
        "seconds between progress polls (default 1)",
    ),
)

# Settings field of each spec whose name differs from the field.
_FIELD_OF = {"mcp_auth_token": "auth_token"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add a flag for every setting that has one; each defaults to "not given"."""
    for spec in _SPECS:
        if spec.flag is None:
            continue
        text = f"{spec.help} [env {spec.env}]"
        if spec.is_switch:
            parser.add_argument(
                spec.flag, action="store_const", const="true", help=text
            )
        else:
            parser.add_argument(spec.flag, help=text)
    parser.add_argument(
        "--sandbox",
        action="store_true",
        help="start the bundled sandbox in-process and serve against it",
    )


def load_settings(
    args: argparse.Namespace | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Merge flags, environment and defaults into Settings.

    Raises:
        SettingsError: a value is invalid, or a rule between settings is broken
            (such as a non-loopback HTTP address without a bearer token).
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for spec in _SPECS:
        raw, source = _raw_value(spec, args, environ)
        if raw is not None:
            values[_FIELD_OF.get(spec.name, spec.name)] = spec.parse(raw, source)
    values["sandbox"] = bool(getattr(args, "sandbox", False))
    known = {item.name for item in fields(Settings)}
    settings = Settings(**{key: value for key, value in values.items() if key in known})
    _check_rules(settings)
    return settings


def _raw_value(
    spec: _Spec, args: argparse.Namespace | None, environ: Mapping[str, str]
) -> tuple[str | None, str]:
    if args is not None and spec.flag is not None:
        flag_value = getattr(args, spec.flag.removeprefix("--").replace("-", "_"), None)
        if flag_value is not None:
            return str(flag_value), spec.flag
    if spec.env in environ:
        return environ[spec.env], spec.env
    return None, spec.env


def is_loopback(host: str) -> bool:
    """Return whether `host` names only this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_rules(settings: Settings) -> None:
    if (
        settings.transport == "http"
        and not is_loopback(settings.host)
        and settings.auth_token is None
    ):
        raise SettingsError(
            f"HTTP on {settings.host} is reachable from other machines, so it needs a "
            "bearer token: set TA_MCP_AUTH_TOKEN or --auth-token, or bind 127.0.0.1"
        )
    default = settings.project_id
    if default is not None and settings.projects and default not in settings.projects:
        allowed = ", ".join(str(p) for p in sorted(settings.projects))
        raise SettingsError(
            f"TA_PROJECT_ID {default} is not in TA_PROJECTS ({allowed}); "
            "add it to TA_PROJECTS or choose another default project"
        )


def configure_logging(level: str) -> None:
    """Send log records to stderr at `level`, and keep httpx's request lines out.

    httpx logs every request with its full URL at INFO, and the URL carries the
    TA token in its query string, so httpx and httpcore are held at WARNING.
    """
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    for name in ("httpx", "httpcore", "httpx2"):
        logging.getLogger(name).setLevel(logging.WARNING)


def setting_rows() -> list[tuple[str, str, str]]:
    """Return (flag, environment variable, help) for every setting, for docs."""
    return [(spec.flag or "", spec.env, spec.help) for spec in _SPECS]
