"""Smoke tests of the benchmarks: each runs at its tiny `smoke` size and must finish
without an error, with every correctness check passed. No timing is asserted.
"""

import asyncio
import sys
from pathlib import Path

import pytest

# The benchmarks package lives at the repository root, outside the installed package.
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import http_load, report, runner, stats  # noqa: E402


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> runner.RunContext:
    return runner.RunContext(size="smoke", data_dir=tmp_path_factory.mktemp("bench"))


@pytest.mark.slow
@pytest.mark.parametrize("name", list(runner.BENCHMARKS))
def test_benchmark_smoke(name: str, context: runner.RunContext) -> None:
    section = runner.run_one(name, context, f"smoke {name}")
    assert section.error is None
    assert section.rows
    failed = [check for check, passed in section.checks.items() if not passed]
    assert failed == []
    report.save_section(section, context.data_dir / "results")


def test_page_lists_every_benchmark(context: runner.RunContext, tmp_path: Path) -> None:
    output = tmp_path / "benchmarks.md"
    runner.write_page(context.data_dir / "results", output)
    page = output.read_text()
    for name in runner.BENCHMARKS:
        assert f"## {runner.benchmark_title(name)}" in page
    assert "| CPU |" in page


def test_ratio_of_time_and_throughput() -> None:
    time_row = report.Row("call", 3.0, "ms", limit=1.5)
    throughput_row = report.Row("calls", 50.0, "calls/s", 100.0, higher_is_better=True)
    no_limit = report.Row("size", 10.0, "chars")
    assert time_row.ratio == 2.0
    assert throughput_row.ratio == 2.0
    assert no_limit.ratio is None


def test_section_json_round_trip() -> None:
    section = report.Section("startup", "Start-up", "text")
    section.add("serve", 1.0, "s", 0.5, "echo", higher_is_better=False)
    section.checks["ok"] = True
    copy = report.Section.from_json(section.to_json())
    assert copy == section


def test_percentile_nearest_rank() -> None:
    samples = [float(value) for value in range(1, 101)]
    assert stats.percentile(samples, 0.99) == 99.0
    assert stats.percentile(samples, 0.5) == 50.0
    assert stats.percentile([7.0], 0.99) == 7.0
    assert stats.median([1.0, 2.0, 3.0, 10.0]) == 2.5


def test_percentile_rejects_no_samples() -> None:
    with pytest.raises(ValueError, match="no samples"):
        stats.percentile([], 0.5)


def test_http_load_reads_chunked_body() -> None:
    async def read() -> http_load.Response:
        reader = asyncio.StreamReader()
        reader.feed_data(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Type: text/event-stream\r\n\r\n"
            b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n"
        )
        reader.feed_eof()
        return await http_load._read_response(reader)

    response = asyncio.run(read())
    assert response.status == 200
    assert response.body == b"hello world"
    assert response.headers["content-type"] == "text/event-stream"


def test_http_load_request_has_length() -> None:
    raw = http_load.build_request("POST", "127.0.0.1", 8000, "/mcp", body=b"{}")
    assert raw.startswith(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n")
    assert b"Content-Length: 2\r\n\r\n{}" in raw
