"""Start-up: time from process start to the `initialize` reply over stdio.

Our server (`python -m ta_cohort_mcp serve`) and the bare SDK echo server
(`python benchmarks/echo_server.py`, one MCPServer with one tool) are started the
same way, in alternating runs, each sent one `initialize` request on stdin the
moment it starts. The echo server is the limit: the cost of Python plus the MCP
SDK. A run of `python -X importtime` shows where our extra time goes and checks
that `serve` does not import DuckDB.
"""

import json
import os
import select
import subprocess
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

from benchmarks import services
from benchmarks.processes import child_environment, stop
from benchmarks.report import Section, describe
from benchmarks.runner import RunContext
from benchmarks.stats import median, percentile

TITLE = "Start-up"

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "ta-cohort-mcp-benchmarks", "version": "1"},
    },
}
REPLY_TIMEOUT = 60.0


def time_initialize(
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: Path,
    stderr_path: Path | None = None,
) -> float:
    """Start `argv`, send `initialize`, and return seconds until its reply.

    Raises:
        RuntimeError: the process exited, or its first stdout line is not the reply.
        TimeoutError: no reply within REPLY_TIMEOUT seconds.
    """
    request = (json.dumps(INITIALIZE) + "\n").encode()
    stderr_file = stderr_path.open("wb") if stderr_path else subprocess.DEVNULL
    started = time.perf_counter()
    process = subprocess.Popen(
        list(argv),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr_file,
        env=dict(env),
        cwd=cwd,
    )
    try:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(request)
        process.stdin.flush()
        line = _read_line(process, started + REPLY_TIMEOUT)
        elapsed = time.perf_counter() - started
        reply = json.loads(line)
        if reply.get("id") != 1 or "result" not in reply:
            raise RuntimeError(
                f"{argv[-1]}: first stdout line is not the reply: {line!r}"
            )
        process.stdin.close()
        return elapsed
    finally:
        stop(process)
        if stderr_path and not isinstance(stderr_file, int):
            stderr_file.close()


def _read_line(process: subprocess.Popen[bytes], deadline: float) -> bytes:
    assert process.stdout is not None
    descriptor = process.stdout.fileno()
    buffer = b""
    while b"\n" not in buffer:
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            raise TimeoutError(f"no initialize reply within {REPLY_TIMEOUT:.0f} s")
        readable, _, _ = select.select([descriptor], [], [], remaining)
        if not readable:
            continue
        chunk = os.read(descriptor, 65536)
        if not chunk:
            raise RuntimeError(
                f"process exited with {process.wait()} before replying to initialize"
            )
        buffer += chunk
    return buffer.split(b"\n", 1)[0]


def import_times(stderr_text: str) -> tuple[dict[str, float], set[str]]:
    """Sum `-X importtime` self times (seconds) per top-level package.

    Returns the sums and the set of every imported module name.
    """
    totals: dict[str, float] = defaultdict(float)
    modules: set[str] = set()
    for line in stderr_text.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        fields = line[len("import time:") :].split("|")
        try:
            self_us = int(fields[0])
        except ValueError:
            continue  # the header line
        name = fields[2].strip()
        modules.add(name)
        totals[name.split(".")[0]] += self_us / 1e6
    return dict(totals), modules


def run(context: RunContext) -> Section:
    section = Section(name="startup", title=TITLE, description=describe(__doc__))
    runs = context.pick(1, 8, 25)
    python = context.python
    echo_argv = [python, str(context.root / "benchmarks" / "echo_server.py")]
    with services.sandbox(context) as sandbox:
        env = child_environment(services.server_environment(sandbox))
        ours_argv = [python, "-m", "ta_cohort_mcp", "serve"]
        bare_argv = [python, "-c", "pass"]
        # An untimed start of each fills the file cache and byte-code files.
        for _ in range(context.pick(0, 1, 1)):
            for argv in (ours_argv, echo_argv):
                time_initialize(argv, env, context.root)
        ours: list[float] = []
        echo: list[float] = []
        for _ in range(runs):
            ours.append(time_initialize(ours_argv, env, context.root))
            echo.append(time_initialize(echo_argv, env, context.root))
        bare = [_time_process(bare_argv, env, context.root) for _ in range(runs)]

        stderr_path = context.scratch_dir / "startup-importtime.txt"
        time_initialize(
            [python, "-X", "importtime", "-m", "ta_cohort_mcp", "serve"],
            env,
            context.root,
            stderr_path=stderr_path,
        )
    sandbox_runs = context.pick(1, 3, 5)
    sandbox_env = child_environment({"TA_LOG_LEVEL": "WARNING"})
    with_sandbox = [
        time_initialize([*ours_argv, "--sandbox"], sandbox_env, context.root)
        for _ in range(sandbox_runs)
    ]

    echo_median = median(echo)
    section.add(
        "`serve`, median", median(ours), "s", echo_median, "bare SDK echo, median"
    )
    section.add("`serve`, fastest", min(ours), "s", min(echo), "bare SDK echo, fastest")
    section.add(
        "`serve`, p90",
        percentile(ours, 0.9),
        "s",
        percentile(echo, 0.9),
        "bare SDK echo, p90",
    )
    section.add(
        "`serve --sandbox`, median",
        median(with_sandbox),
        "s",
        echo_median,
        "bare SDK echo, median",
        note="builds the sample DuckDB in memory",
    )
    section.add("`python -c pass`, median", median(bare), "s")
    pair_ratios = [a / b for a, b in zip(ours, echo, strict=True)]
    section.notes.append(
        f"Median of the {runs} per-pair ratios (each `serve` run over the echo run "
        f"right after it): {median(pair_ratios):.2f}×."
    )

    totals, modules = import_times(stderr_path.read_text())
    top = sorted(totals.items(), key=lambda item: item[1], reverse=True)[:8]
    section.notes.append(
        "Import time of `serve` by top-level package (`-X importtime` self time, "
        "one run, inflated by the measurement): "
        + ", ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in top)
        + "."
    )
    section.checks["serve does not import duckdb"] = "duckdb" not in modules
    section.parameters = {
        "alternating runs": runs,
        "serve --sandbox runs": sandbox_runs,
    }
    return section


def _time_process(argv: Sequence[str], env: Mapping[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(list(argv), env=dict(env), cwd=cwd, check=True)
    return time.perf_counter() - started
