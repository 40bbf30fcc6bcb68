"""Run the sandbox app under uvicorn in a background thread, on a loopback port.

    with SandboxServer(SandboxConfig(today=datetime.date(2020, 1, 10))) as server:
        httpx.get(f"{server.base_url}/open/user-cluster-detail",
                  params={"token": server.token, "projectId": 102, "clusterId": 1})

`async with` works too: start and stop then run in a worker thread.
"""

import datetime
import ipaddress
import logging
import socket
import threading
import time
from types import TracebackType
from typing import Self

import anyio.to_thread
import uvicorn

from ta_cohort_mcp.sandbox.app import (
    DEFAULT_TOKEN,
    Sandbox,
    SandboxConfig,
    create_app,
)
from ta_cohort_mcp.sandbox.faults import FaultPlan, RequestStats
from ta_cohort_mcp.sandbox.store import Store

logger = logging.getLogger(__name__)

# How long start() waits for uvicorn to accept connections, in seconds.
START_TIMEOUT = 30.0
# How long stop() waits for uvicorn's thread to end, in seconds.
STOP_TIMEOUT = 5.0


def check_loopback(host: str) -> None:
    """Raise ValueError unless `host` is a loopback address or localhost."""
    if host == "localhost":
        return
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f"host {host!r} is not an IP address; the sandbox listens on loopback "
            "only: use 127.0.0.1, ::1 or localhost"
        ) from None
    if not address.is_loopback:
        raise ValueError(
            f"host {host} is not a loopback address; the sandbox listens on "
            "loopback only: use 127.0.0.1, ::1 or localhost"
        )


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    address = "127.0.0.1" if host == "localhost" else host
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on accepted sockets whose
    # proto is IPPROTO_TCP, and with proto 0 each keep-alive response waits ~40 ms.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((address, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


class SandboxServer:
    """A running sandbox: the app on `base_url`, with its store, faults and counts."""

    def __init__(
        self,
        config: SandboxConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        """Prepare a sandbox on `host`:`port` (0: a free port); start() runs it.

        Raises:
            ValueError: `host` is not a loopback address.
        """
        check_loopback(host)
        self.config = config or SandboxConfig()
        self.host = host
        self._requested_port = port
        self._sandbox: Sandbox | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None
        self._socket: socket.socket | None = None

    @property
    def port(self) -> int:
        """The bound TCP port."""
        if self._port is None:
            raise RuntimeError("the sandbox is not running; call start() first")
        return self._port

    @property
    def base_url(self) -> str:
        """URL of the running app, such as http://127.0.0.1:8992."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def token(self) -> str:
        """A token the sandbox accepts: the first configured one."""
        return next(iter(self.config.tokens), DEFAULT_TOKEN)

    @property
    def sandbox(self) -> Sandbox:
        """The app's state; available while running."""
        if self._sandbox is None:
            raise RuntimeError("the sandbox is not running; call start() first")
        return self._sandbox

    @property
    def faults(self) -> FaultPlan:
        """Fault rules applied to requests and refreshes."""
        return self.sandbox.faults

    @property
    def stats(self) -> RequestStats:
        """Request counts per endpoint."""
        return self.sandbox.stats

    @property
    def store(self) -> Store:
        """The sandbox's database."""
        return self.sandbox.store

    @property
    def today(self) -> datetime.date:
        """Day 0 of the sample data and of recentDay windows."""
        return self.sandbox.today

    def start(self) -> None:
        """Open the store, start uvicorn in a thread and wait until it accepts.

        Raises:
            OSError: the port cannot be bound.
            RuntimeError: uvicorn did not start within START_TIMEOUT seconds.
        """
        if self._server is not None:
            raise RuntimeError("the sandbox is already running")
        # Bind before building the sample data, so a busy port fails at once.
        sock = _bind(self.host, self._requested_port)
        try:
            sandbox = Sandbox(self.config)
        except BaseException:
            sock.close()
            raise
        uvicorn_config = uvicorn.Config(
            create_app(sandbox),
            http="h11",
            ws="none",
            lifespan="off",
            log_config=None,
            log_level="warning",
            access_log=False,
            # stop() cancels requests still running instead of waiting for them.
            timeout_graceful_shutdown=0,
        )
        server = uvicorn.Server(uvicorn_config)
        thread = threading.Thread(
            target=server.run,
            kwargs={"sockets": [sock]},
            name="sandbox-uvicorn",
            daemon=True,
        )
        self._sandbox, self._server, self._thread = sandbox, server, thread
        self._socket = sock
        self._port = int(sock.getsockname()[1])
        thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"the sandbox did not start on {self.host}:{self._port}; "
                    "see the log of uvicorn.error"
                )
            time.sleep(0.01)
        logger.info("sandbox started on %s", self.base_url)

    def stop(self) -> None:
        """Stop uvicorn, cancel running refreshes and close the store."""
        server, thread, sandbox = self._server, self._thread, self._sandbox
        if server is not None:
            server.should_exit = True
        if thread is not None:
            thread.join(STOP_TIMEOUT)
            if thread.is_alive():
                logger.warning("uvicorn did not stop within %.1f s", STOP_TIMEOUT)
        if self._socket is not None:
            self._socket.close()
        if sandbox is not None:
            sandbox.close()
        self._server = self._thread = self._sandbox = self._socket = None
        self._port = None
        logger.info("sandbox stopped")

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        await anyio.to_thread.run_sync(self.start)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await anyio.to_thread.run_sync(self.stop)
