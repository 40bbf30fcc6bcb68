"""Child processes of the benchmarks: start, wait for a port, read memory, stop."""

import contextlib
import logging
import os
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(
    port: int, timeout: float, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Wait until 127.0.0.1:port accepts a connection.

    Raises:
        TimeoutError: nothing accepted within `timeout` seconds.
        RuntimeError: `process` exited before the port opened.
    """
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"process {process.args!r} exited with {process.returncode} "
                f"before port {port} opened"
            )
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"nothing listens on {HOST}:{port} after {timeout:.0f} s"
                ) from None
            time.sleep(0.02)


def wait_for_file(
    path: Path, timeout: float, process: subprocess.Popen[bytes] | None = None
) -> str:
    """Wait until `path` exists and is not empty, and return its text."""
    deadline = time.monotonic() + timeout
    while True:
        if path.is_file():
            text = path.read_text().strip()
            if text:
                return text
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"process {process.args!r} exited with {process.returncode} "
                f"before writing {path}"
            )
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} was not written within {timeout:.0f} s")
        time.sleep(0.02)


def child_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return this process's environment without TA_ settings, plus `extra`."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TA_")}
    environment.update(extra or {})
    return environment


@contextlib.contextmanager
def running(
    argv: Sequence[str],
    *,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a process with stderr and stdout in `log_path`, and stop it on exit."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=dict(env) if env is not None else None,
            cwd=cwd,
        )
        try:
            yield process
        finally:
            stop(process)


def stop(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Terminate a child process (kill it if it does not exit) and close its pipes."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            logger.warning("process %s ignored SIGTERM; killing it", process.pid)
            process.kill()
            process.wait(timeout=timeout)
    for pipe in (process.stdin, process.stdout, process.stderr):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()


def memory_kib(pid: int) -> dict[str, int]:
    """Return VmRSS and VmHWM (resident set and its high-water mark) in KiB.

    Raises:
        OSError: /proc/<pid>/status cannot be read (the process has exited).
    """
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values
