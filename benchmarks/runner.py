"""Run the benchmarks and write docs/benchmarks.md.

Each benchmark is a module of this package with `TITLE` and `run(context) ->
Section`. The runner stores each section as JSON under `<data dir>/results/`, then
writes the page from every stored section, so `--only NAME` refreshes one table and
keeps the others.
"""

import argparse
import datetime
import importlib
import json
import logging
import os
import shlex
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

from benchmarks import machine
from benchmarks.report import (
    Section,
    describe,
    load_sections,
    render_page,
    save_section,
)

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = ROOT / "benchmarks" / ".data"
DEFAULT_OUTPUT = ROOT / "docs" / "benchmarks.md"
ANALYSIS_FILE = ROOT / "benchmarks" / "analysis.md"
# Stored beside the sections; its leading underscore keeps it out of them.
MACHINE_FILE = "_machine.json"

# Benchmark name -> module under benchmarks/, in the order of the page.
BENCHMARKS: dict[str, str] = {
    "context": "benchmarks.context_cost",
    "overhead": "benchmarks.call_overhead",
    "startup": "benchmarks.startup",
    "sandbox": "benchmarks.sandbox_speed",
    "upload": "benchmarks.id_upload",
    "load": "benchmarks.load",
}

Size = Literal["smoke", "quick", "full"]
T = TypeVar("T")


@dataclass(frozen=True)
class RunContext:
    """Settings every benchmark gets: the size to run at and where to keep files."""

    size: Size
    data_dir: Path
    root: Path = ROOT
    python: str = sys.executable

    def pick(self, smoke: T, quick: T, full: T) -> T:
        """Return the value for this run's size."""
        return {"smoke": smoke, "quick": quick, "full": full}[self.size]

    @property
    def scratch_dir(self) -> Path:
        """A directory for files a benchmark writes and may delete."""
        path = self.data_dir / "scratch"
        path.mkdir(parents=True, exist_ok=True)
        return path


def benchmark_title(name: str) -> str:
    module = importlib.import_module(BENCHMARKS[name])
    title: str = module.TITLE
    return title


def run_one(name: str, context: RunContext, command: str) -> Section:
    """Run one benchmark; a failure becomes a section that carries the error."""
    module = importlib.import_module(BENCHMARKS[name])
    load_average = os.getloadavg()[0]
    started = time.perf_counter()
    measured_at = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    try:
        section: Section = module.run(context)
    except Exception as error:
        logger.error("benchmark %s failed: %s", name, error)
        traceback.print_exc(file=sys.stderr)
        section = Section(
            name=name,
            title=module.TITLE,
            description=describe(module.__doc__),
            error=f"{type(error).__name__}: {error}",
        )
    section.name = name
    section.command = command
    section.measured_at = measured_at
    section.size = context.size
    section.seconds = time.perf_counter() - started
    section.load_average = load_average
    return section


def save_machine(results_dir: Path) -> None:
    """Store the machine and versions of this run, for the page's Machine table."""
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / MACHINE_FILE
    path.write_text(json.dumps(machine.collect(ROOT), indent=2) + "\n")


def write_page(results_dir: Path, output: Path) -> None:
    """Write the Markdown page from every stored section.

    The Machine table is the one stored by the last run, or this machine now when
    no run stored one.
    """
    sections = load_sections(results_dir)
    order = [(name, benchmark_title(name)) for name in BENCHMARKS]
    analysis = ANALYSIS_FILE.read_text() if ANALYSIS_FILE.is_file() else ""
    machine_path = results_dir / MACHINE_FILE
    if machine_path.is_file():
        described = json.loads(machine_path.read_text())
    else:
        described = machine.collect(ROOT)
    page = render_page(sections, order, described, analysis)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(page)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Run the ta-cohort-mcp benchmarks and write the report page.",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(BENCHMARKS),
        metavar="NAME",
        help="run only this benchmark (repeat for several); names: "
        + ", ".join(BENCHMARKS),
    )
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument(
        "--quick",
        action="store_true",
        help="use smaller sizes: 100k and 1M events, 200,000 ids, fewer calls",
    )
    sizes.add_argument(
        "--smoke",
        action="store_true",
        help="use tiny sizes that only check the benchmarks work",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="directory for generated databases, scratch files and stored results "
        "(default: benchmarks/.data)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help="Markdown page to write (default: docs/benchmarks.md)",
    )
    parser.add_argument(
        "--no-page", action="store_true", help="store results but do not write the page"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen benchmarks, store their sections and write the page.

    Returns 1 when a benchmark failed or one of its checks did not pass, else 0.
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(arguments)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr
    )
    # One INFO line per request from httpx, and the sandbox's per-refresh lines,
    # would bury the progress of the benchmarks.
    for name in ("httpx", "httpcore", "ta_cohort_mcp"):
        logging.getLogger(name).setLevel(logging.WARNING)
    size: Size = "full"
    if args.smoke:
        size = "smoke"
    elif args.quick:
        size = "quick"
    context = RunContext(size=size, data_dir=args.data_dir.resolve())
    command = shlex.join(["python", "-m", "benchmarks", *arguments])
    results_dir = context.data_dir / "results"
    save_machine(results_dir)
    status = 0
    for name in args.only or list(BENCHMARKS):
        logger.info("running benchmark %s (size %s)", name, size)
        section = run_one(name, context, command)
        save_section(section, results_dir)
        passed = section.error is None and all(section.checks.values())
        logger.info(
            "benchmark %s %s in %.1f s",
            name,
            "done" if passed else "FAILED",
            section.seconds,
        )
        if not passed:
            status = 1
    if not args.no_page:
        write_page(results_dir, args.output)
        logger.info("wrote %s", args.output)
    return status
