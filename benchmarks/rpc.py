"""A raw JSON-RPC client for an MCP server over stdio, for byte-exact measurements.

The SDK client parses every message into models. This one keeps each reply as the
JSON the server sent, so sizes are those on the wire.
"""

import json
import os
import select
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks.processes import stop

PROTOCOL_VERSION = "2025-11-25"


class RpcError(Exception):
    """The server returned a JSON-RPC error for a request."""


class StdioRpc:
    """Talk JSON-RPC to an MCP server started as a child process over stdio."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path,
        stderr_path: Path,
        timeout: float = 60.0,
    ) -> None:
        self.timeout = timeout
        self._stderr = stderr_path.open("wb")
        self.process = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=dict(env),
            cwd=cwd,
        )
        self._next_id = 0
        self._buffer = b""

    def initialize(self) -> dict[str, Any]:
        """Run the 2025-11-25 handshake and return the initialize result."""
        result = self.request(
            "initialize",
            {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "ta-cohort-mcp-benchmarks", "version": "1"},
            },
        )
        self.notify("notifications/initialized")
        return result

    def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        self._send(message)

    def request(
        self, method: str, params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Send a request and return its result, skipping notifications on the way.

        Raises:
            RpcError: the reply is a JSON-RPC error.
            TimeoutError: no reply within the timeout.
        """
        self._next_id += 1
        request_id = self._next_id
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        self._send(message)
        deadline = time.monotonic() + self.timeout
        while True:
            reply = json.loads(self._read_line(deadline))
            if reply.get("id") != request_id:
                continue  # a notification or a request from the server
            if "error" in reply:
                raise RpcError(f"{method} failed: {reply['error']}")
            result: dict[str, Any] = reply["result"]
            return result

    def list_all(self, method: str, key: str) -> list[dict[str, Any]]:
        """Return every item of a paginated list method, following nextCursor."""
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            result = self.request(method, {"cursor": cursor} if cursor else None)
            items.extend(result.get(key, []))
            cursor = result.get("nextCursor")
            if not cursor:
                return items

    def close(self) -> None:
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()
        stop(self.process)
        self._stderr.close()

    def __enter__(self) -> "StdioRpc":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps(message) + "\n").encode())
        self.process.stdin.flush()

    def _read_line(self, deadline: float) -> bytes:
        assert self.process.stdout is not None
        descriptor = self.process.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"no reply from the server within {self.timeout:.0f} s"
                )
            readable, _, _ = select.select([descriptor], [], [], remaining)
            if not readable:
                continue
            chunk = os.read(descriptor, 1 << 20)
            if not chunk:
                raise RuntimeError(
                    f"server exited with {self.process.wait()} before replying"
                )
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line


def compact(value: Any) -> str:
    """Serialize JSON the way it is sent: no spaces, non-ASCII kept as is."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
