"""`ta-cohort-mcp serve`: run the MCP server over stdio or streamable HTTP.

Settings come from flags and `TA_` environment variables (see
`ta_cohort_mcp.config`). With `--sandbox`, the bundled sandbox starts in this
process on a free loopback port and the server points at it; DuckDB is
imported only then.
"""

import argparse
import errno
import logging
import sys

from ta_cohort_mcp import config

logger = logging.getLogger(__name__)

EXIT_SETTINGS = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of `ta-cohort-mcp serve`: one flag per setting."""
    config.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run the server until the client disconnects or the process is interrupted."""
    try:
        settings = config.load_settings(args)
    except config.SettingsError as error:
        print(f"ta-cohort-mcp serve: {error}", file=sys.stderr)
        return EXIT_SETTINGS
    config.configure_logging(settings.log_level)
    try:
        if settings.sandbox:
            return _serve_on_sandbox(settings)
        return serve(settings)
    except KeyboardInterrupt:
        logger.info("interrupted; stopping")
        return 130


def serve(settings: config.Settings) -> int:
    """Build the server for `settings` and serve it on the configured transport."""
    import anyio

    from ta_cohort_mcp.server.app import build_server
    from ta_cohort_mcp.server.transports import bind_socket, serve_http, serve_stdio

    if settings.transport != "http":
        try:
            server = build_server(settings)
        except config.SettingsError as error:
            print(f"ta-cohort-mcp serve: {error}", file=sys.stderr)
            return EXIT_SETTINGS
        anyio.run(serve_stdio, server)
        return 0
    # Bind first, so a busy port fails before the server is built.
    try:
        sock = bind_socket(settings.host, settings.port)
    except OSError as error:
        print(f"ta-cohort-mcp serve: {_listen_error(settings, error)}", file=sys.stderr)
        return EXIT_SETTINGS
    with sock:
        try:
            server = build_server(settings)
        except config.SettingsError as error:
            print(f"ta-cohort-mcp serve: {error}", file=sys.stderr)
            return EXIT_SETTINGS
        anyio.run(serve_http, server, settings, sock, _announce)
    return 0


def _announce(url: str) -> None:
    # Printed whatever the log level, because with --port 0 the port is known
    # only now.
    print(f"ta-cohort-mcp: serving MCP on {url}", file=sys.stderr, flush=True)


def _listen_error(settings: config.Settings, error: OSError) -> str:
    source = "--port (TA_PORT)"
    if error.errno == errno.EADDRINUSE:
        return (
            f"port {settings.port} on {settings.host} is already in use; choose "
            f"another with {source}, or 0 for a free one"
        )
    reason = error.strerror or str(error)
    return (
        f"cannot listen on {settings.host} port {settings.port}: {reason}; "
        "check --host (TA_HOST) and --port (TA_PORT)"
    )


def _serve_on_sandbox(settings: config.Settings) -> int:
    from ta_cohort_mcp.sandbox import SandboxConfig, SandboxServer

    logger.info("starting the sandbox in-process")
    with SandboxServer(SandboxConfig()) as sandbox:
        logger.info("sandbox listening on %s", sandbox.base_url)
        return serve(settings.with_backend(sandbox.base_url, sandbox.token))
