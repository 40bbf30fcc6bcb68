"""A minimal HTTP/1.1 keep-alive client over asyncio streams, for load generation.

The load generator shares two cores with the servers it measures, so its own CPU
time lowers every figure. This client sends prepared request bytes and parses only
the status line, the headers and a Content-Length or chunked body. Switching the
load benchmark from httpx to this client raised the direct sandbox GETs it
drives from about 100 to about 340 per second on a busy 2-core machine.
It speaks plain HTTP to 127.0.0.1 and nothing else.
"""

import asyncio
import contextlib
from dataclasses import dataclass


class HttpError(Exception):
    """The server closed the connection or sent a response this client cannot parse."""


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


def build_request(
    method: str,
    host: str,
    port: int,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
) -> bytes:
    """Return the bytes of one HTTP/1.1 request with a keep-alive connection."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class Connection:
    """One keep-alive connection; reconnects when the server closed the last one."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> Response:
        """Send prepared request bytes and read the whole response.

        Raises:
            HttpError: the connection closed early or the response is malformed.
            OSError: connecting failed.
        """
        if self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.open_connection(
                self.host, self.port
            )
        assert self._reader is not None
        self._writer.write(raw)
        try:
            response = await _read_response(self._reader)
        except (asyncio.IncompleteReadError, ValueError) as error:
            await self.close()
            raise HttpError(f"malformed or truncated response: {error}") from error
        if response.headers.get("connection", "").lower() == "close":
            await self.close()
        return response

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
        self._reader = self._writer = None


async def _read_response(reader: asyncio.StreamReader) -> Response:
    status_line = await reader.readline()
    if not status_line:
        raise HttpError("the server closed the connection before responding")
    parts = status_line.split(b" ", 2)
    status = int(parts[1])
    headers: dict[str, str] = {}
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        body = await _read_chunked(reader)
    else:
        body = await reader.read()
    return Response(status, headers, body)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    while True:
        size_line = await reader.readline()
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            # Trailer lines, if any, end with an empty line.
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(chunks)
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)
