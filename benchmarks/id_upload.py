"""Id upload: a file of 1M account ids through the server's `import_id_cluster_add`
tool (`path` under the upload directory), over stdio against the sandbox.

Measured: the server process's peak resident memory (VmHWM in /proc/<pid>/status)
before and after the upload, and the ids per second from the tool call to its
result. The throughput limit is the same file POSTed straight to the sandbox with
httpx, which is how fast the sandbox takes the ids. The memory limit of the
increase is the file size: a streaming upload needs less than the file, and
dropping repeated ids costs a set of every distinct id on top.
"""

import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks import definitions, services
from benchmarks.processes import child_environment, memory_kib
from benchmarks.report import Section, describe
from benchmarks.rpc import StdioRpc
from benchmarks.runner import RunContext

TITLE = "Id upload"


def write_ids(path: Path, count: int) -> int:
    """Write `count` account ids, one per line, and return the file size in bytes."""
    if not path.is_file() or path.stat().st_size == 0:
        with path.open("w") as handle:
            for start in range(1, count + 1, 100_000):
                stop = min(count + 1, start + 100_000)
                handle.write("".join(f"acc{i}\n" for i in range(start, stop)))
    return path.stat().st_size


def upload_direct(sandbox: services.Endpoint, path: Path) -> tuple[float, Any]:
    """POST the file to import-id-cluster-add; return seconds and `data`."""
    query: dict[str, str | int] = {
        "token": sandbox.token,
        "projectId": definitions.PROJECT_ID,
        "displayName": "bench direct upload",
        "mainColumnName": "#account_id",
    }

    def chunks() -> Any:
        with path.open("rb") as handle:
            while block := handle.read(64 * 1024):
                yield block

    with httpx.Client(base_url=sandbox.base_url, timeout=600) as http:
        started = time.perf_counter()
        response = http.post(
            "/open/import-id-cluster-add",
            params=query,
            content=chunks(),
            headers={"Content-Type": "text/csv"},
        )
        seconds = time.perf_counter() - started
    envelope = response.json()
    if envelope.get("return_code") != 0:
        raise RuntimeError(f"direct upload failed: {envelope}")
    return seconds, envelope.get("data")


def run(context: RunContext) -> Section:
    section = Section(name="upload", title=TITLE, description=describe(__doc__))
    count = context.pick(2_000, 200_000, 1_000_000)
    upload_dir = context.scratch_dir / "uploads"
    upload_dir.mkdir(exist_ok=True)
    ids_path = upload_dir / f"ids-{count}.txt"
    file_bytes = write_ids(ids_path, count)

    with services.sandbox(context) as sandbox:
        direct_seconds, direct_data = upload_direct(sandbox, ids_path)
        env = child_environment(
            {**services.server_environment(sandbox), "TA_UPLOAD_DIR": str(upload_dir)}
        )
        argv = [context.python, "-m", "ta_cohort_mcp", "serve"]
        stderr_path = context.scratch_dir / "upload-serve.log"
        with StdioRpc(
            argv, env=env, cwd=context.root, stderr_path=stderr_path, timeout=600
        ) as rpc:
            rpc.initialize()
            rpc.request("tools/list")
            before = memory_kib(rpc.process.pid)
            started = time.perf_counter()
            result = rpc.request(
                "tools/call",
                {
                    "name": "import_id_cluster_add",
                    "arguments": {
                        "displayName": "bench tool upload",
                        "mainColumnName": "#account_id",
                        "path": ids_path.name,
                    },
                },
            )
            tool_seconds = time.perf_counter() - started
            after = memory_kib(rpc.process.pid)

    mib = 1024.0
    section.add(
        f"tool upload of {count:,} ids",
        count / tool_seconds,
        "ids/s",
        count / direct_seconds,
        "direct httpx POST",
        higher_is_better=True,
    )
    section.add(
        f"tool upload of {count:,} ids, time",
        tool_seconds,
        "s",
        direct_seconds,
        "direct httpx POST",
    )
    section.add(
        "server peak RSS (VmHWM) after the upload",
        after["VmHWM"] / mib,
        "MiB",
        before["VmHWM"] / mib,
        "peak before the upload",
    )
    section.add(
        "increase of the peak during the upload",
        (after["VmHWM"] - before["VmHWM"]) / mib,
        "MiB",
        file_bytes / 1024 / mib,
        "file size",
    )
    structured = result.get("structuredContent") or {}
    section.checks["tool upload succeeded"] = not result.get("isError", False)
    section.checks["direct upload counted every id"] = (
        isinstance(direct_data, dict) and direct_data.get("uploadNum") == count
    )
    section.notes.append(
        f"The file is {file_bytes / 1024 / 1024:.1f} MiB ({count:,} ids `acc1` … "
        f"`acc{count}`); the sandbox has 1,000 users, so 1,000 ids match and the rest "
        "are counted as unmatched. Tool result: "
        + ", ".join(f"{key}={value}" for key, value in _flat(structured).items())
        + "."
    )
    section.parameters = {"ids": count}
    return section


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten the number fields of a nested result for a one-line note."""
    flat: dict[str, Any] = {}
    if isinstance(value, dict):
        for key, item in value.items():
            flat.update(_flat(item, f"{prefix}{key}."))
    elif isinstance(value, int | float) and not isinstance(value, bool):
        flat[prefix.rstrip(".")] = value
    return flat
