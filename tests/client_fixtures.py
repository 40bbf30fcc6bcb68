"""A programmable Open API server for the client tests, on raw asyncio sockets.

`FakeTA` implements just enough HTTP/1.1 (Content-Length and chunked bodies,
keep-alive) to record every request byte for byte. Each endpoint replies with
its queued replies in order. A reply is a status, headers and body, a hang until
the server stops, or a connection closed with no response. An endpoint with no
queued reply returns the reference's success example.
"""

import asyncio
import contextlib
import json
import socket
from collections import defaultdict, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from reference_examples import load_example

SUCCESS_EXAMPLES = {
    "user-cluster-add": "add.response",
    "user-cluster-detail": "detail.response",
    "user-cluster-list": "list.response",
    "user-cluster-refresh-progress": "progress.response",
    "user-cluster-refresh-progress-by-name": "progress.response",
    "import-id-cluster-add": "import-add.response",
    "import-id-cluster-modify": "import-modify.response",
    "import-id-cluster-modify-by-name": "import-modify.response",
}

REASONS = {
    200: "OK",
    302: "Found",
    401: "Unauthorized",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


@dataclass
class Reply:
    """One programmed response. `hang` sends nothing; `drop` closes the socket."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False
    drop: bool = False

    def encode(self) -> bytes:
        if isinstance(self.body, bytes):
            payload = self.body
            content_type = "application/octet-stream"
        elif isinstance(self.body, str):
            payload = self.body.encode("utf-8")
            content_type = "text/plain; charset=utf-8"
        else:
            payload = json.dumps(self.body).encode("utf-8")
            content_type = "application/json;charset=utf-8"
        headers = {"Content-Type": content_type, **self.headers}
        headers["Content-Length"] = str(len(payload))
        reason = REASONS.get(self.status, "Status")
        lines = [f"HTTP/1.1 {self.status} {reason}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        head = "\r\n".join(lines) + "\r\n\r\n"
        return head.encode("latin-1") + payload


def envelope(data: Any = None, code: int = 0, message: str = "success") -> Reply:
    """Return a 200 reply carrying the Open API envelope."""
    body: dict[str, Any] = {"return_code": code, "return_message": message}
    if data is not None:
        body["data"] = data
    return Reply(body=body)


@dataclass
class Received:
    """One complete request as it arrived."""

    request_line: bytes
    method: str
    target: bytes
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    @property
    def endpoint(self) -> str:
        return self.path.removeprefix("/open/")

    def param(self, name: str) -> str:
        values = self.query[name]
        assert len(values) == 1, f"{name} sent {len(values)} times"
        return values[0]

    def json(self) -> Any:
        return json.loads(self.body)


class FakeTA:
    """The server. Use `program` to queue replies and `received` to inspect."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.incomplete = 0
        # Endpoints whose request bodies are never read, so the client stalls
        # while sending; `stalled` counts those requests.
        self.stall_bodies: set[str] = set()
        self.stalled = 0
        self._queues: dict[str, deque[Reply]] = defaultdict(deque)
        self._stopping = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.base_url = ""

    async def start(self, port: int = 0) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        port = self._server.sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        self._stopping.set()
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._server.wait_closed()

    def program(self, endpoint: str, *replies: Reply) -> None:
        """Queue replies for `endpoint`, used in order, one per request."""
        self._queues[endpoint].extend(replies)

    def count(self, endpoint: str) -> int:
        """Return how many complete requests reached `endpoint`."""
        return sum(1 for request in self.received if request.endpoint == endpoint)

    def last(self) -> Received:
        return self.received[-1]

    def _reply_for(self, endpoint: str) -> Reply:
        queue = self._queues[endpoint]
        if queue:
            return queue.popleft()
        example = SUCCESS_EXAMPLES.get(endpoint)
        if example is None:
            return envelope()
        return Reply(body=load_example(example))

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while not self._stopping.is_set():
                request = await self._read_request(reader)
                if request is None:
                    return
                self.received.append(request)
                reply = self._reply_for(request.endpoint)
                if reply.hang:
                    await self._stopping.wait()
                    return
                if reply.drop:
                    return
                writer.write(reply.encode())
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            self.incomplete += 1
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _read_request(self, reader: asyncio.StreamReader) -> Received | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                self.incomplete += 1
            return None
        request_line, *header_lines = head[:-4].split(b"\r\n")
        headers = {}
        for line in header_lines:
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        method, target, _version = request_line.split(b" ")
        parts = urlsplit(target.decode("ascii"))
        if parts.path.removeprefix("/open/") in self.stall_bodies:
            self.stalled += 1
            await self._stopping.wait()
            return None
        body = await self._read_body(reader, headers)
        return Received(
            request_line=request_line,
            method=method.decode("ascii"),
            target=target,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers=headers,
            body=body,
        )

    async def _read_body(
        self, reader: asyncio.StreamReader, headers: dict[str, str]
    ) -> bytes:
        if headers.get("transfer-encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size_line = await reader.readuntil(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                data = await reader.readexactly(size + 2)
                if size == 0:
                    return b"".join(chunks)
                chunks.append(data[:-2])
        length = int(headers.get("content-length", "0"))
        return await reader.readexactly(length)


@pytest.fixture
async def fake_ta() -> AsyncIterator[FakeTA]:
    """Run a `FakeTA` on 127.0.0.1 with a free port for one test."""
    server = FakeTA()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def refused_url() -> str:
    """Return a loopback URL whose port has no listener, so connecting is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"
