"""Serving the MCP server over stdio or streamable HTTP.

HTTP binds 127.0.0.1 by default. The SDK's DNS-rebinding protection rejects a
foreign Host (421) or Origin (403) header, the SDK rejects bodies larger than
`Settings.max_body_bytes`, and with a bearer token set, `BearerAuth` answers
401 to a request without `Authorization: Bearer <token>`.
"""

import hmac
import logging
import socket
from collections.abc import Callable
from typing import Any

from mcp.server.lowlevel import Server
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import SecretStr
from starlette.types import ASGIApp, Receive, Scope, Send

from ta_cohort_mcp.config import Settings, SettingsError, is_loopback

logger = logging.getLogger(__name__)

MCP_PATH = "/mcp"
_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


async def serve_stdio(server: Server[Any]) -> None:
    """Serve one client over this process's stdin and stdout until it closes."""
    from mcp.server.stdio import stdio_server

    logger.info("serving MCP over stdio")
    async with stdio_server() as (read_stream, write_stream):
        await server.run(
            read_stream, write_stream, server.create_initialization_options()
        )
    logger.info("stdio client closed the connection; stopping")


def security_settings(settings: Settings) -> TransportSecuritySettings:
    """Return the Host and Origin values HTTP accepts: loopback, the bound host, extras."""
    names = list(_LOOPBACK_NAMES)
    if not is_loopback(settings.host) and settings.host not in ("0.0.0.0", "::"):
        names.append(f"[{settings.host}]" if ":" in settings.host else settings.host)
    names += list(settings.allowed_hosts)
    hosts = [name if _has_port(name) else f"{name}:*" for name in names]
    origins = [f"{scheme}://{host}" for host in hosts for scheme in ("http", "https")]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=hosts,
        allowed_origins=origins,
    )


def _has_port(name: str) -> bool:
    return (
        name.rsplit("]", 1)[-1].count(":") == 1 if name.startswith("[") else ":" in name
    )


class BearerAuth:
    """ASGI middleware: HTTP requests need `Authorization: Bearer <token>`, or get 401."""

    def __init__(self, app: ASGIApp, token: SecretStr) -> None:
        self.app = app
        self._expected = token.get_secret_value().encode()

    def _accepts(self, header: bytes) -> bool:
        # RFC 7235 section 2.1: the auth scheme is case-insensitive, and one or
        # more spaces separate it from the credentials.
        scheme, _, credentials = header.partition(b" ")
        if scheme.lower() != b"bearer":
            return False
        return hmac.compare_digest(credentials.lstrip(b" "), self._expected)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = b""
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                given = value
                break
        if self._accepts(given):
            await self.app(scope, receive, send)
            return
        logger.warning(
            "rejected an HTTP request to %s: %s bearer token",
            scope.get("path", "?"),
            "wrong" if given else "no",
        )
        body = (
            b'{"error":"unauthorized","error_description":"send the header '
            b'Authorization: Bearer <TA_MCP_AUTH_TOKEN>"}'
        )
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"www-authenticate", b'Bearer realm="ta-cohort-mcp"'),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def http_app(server: Server[Any], settings: Settings) -> ASGIApp:
    """Return the ASGI app of the streamable HTTP transport, at `/mcp`.

    Raises:
        SettingsError: the host is not a loopback address and no bearer token
            is set.
    """
    if not is_loopback(settings.host) and settings.auth_token is None:
        raise SettingsError(
            f"HTTP on {settings.host} is reachable from other machines, so it needs "
            "a bearer token: set TA_MCP_AUTH_TOKEN or --auth-token, or bind 127.0.0.1"
        )
    app: ASGIApp = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        stateless_http=settings.stateless,
        max_request_body_size=settings.max_body_bytes,
        transport_security=security_settings(settings),
        host=settings.host,
    )
    if settings.auth_token is not None:
        app = BearerAuth(app, settings.auth_token)
    return app


def bind_socket(host: str, port: int) -> socket.socket:
    """Return a listening-ready TCP socket bound to `host` and `port` (0: a free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on accepted sockets whose
    # proto is IPPROTO_TCP, and with proto 0 each keep-alive response waits ~40 ms.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError:
        sock.close()
        raise
    return sock


def listening_url(sock: socket.socket) -> str:
    """Return the MCP URL of a bound socket, such as http://127.0.0.1:8765/mcp."""
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}{MCP_PATH}"


def uvicorn_server(
    server: Server[Any],
    settings: Settings,
    sock: socket.socket,
    on_listening: Callable[[str], None] | None = None,
) -> Any:
    """Return a `uvicorn.Server` of the HTTP app; serve it with `.serve([sock])`.

    `on_listening` is called with the MCP URL once uvicorn accepts connections.
    """
    import uvicorn

    config = uvicorn.Config(
        http_app(server, settings),
        log_level="warning",
        lifespan="on",
        access_log=False,
    )
    url = listening_url(sock)
    mode = "stateless" if settings.stateless else "with sessions"
    auth = "bearer token required" if settings.auth_token else "no bearer token"
    logger.info("serving MCP over HTTP on %s (%s, %s)", url, mode, auth)
    if on_listening is None:
        return uvicorn.Server(config)
    announce = on_listening

    class AnnouncingServer(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                announce(url)

    return AnnouncingServer(config)


async def serve_http(
    server: Server[Any],
    settings: Settings,
    sock: socket.socket | None = None,
    on_listening: Callable[[str], None] | None = None,
) -> None:
    """Serve streamable HTTP on `sock`, or on the settings' host and port.

    `on_listening` is called with the MCP URL once uvicorn accepts connections.
    """
    sock = sock or bind_socket(settings.host, settings.port)
    await uvicorn_server(server, settings, sock, on_listening).serve(sockets=[sock])
    logger.info("HTTP server stopped")
