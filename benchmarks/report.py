"""Benchmark results, their JSON store and the Markdown page written from them.

Each benchmark returns a `Section`: a table of `Row`s, each a figure next to its
limit (the best this machine and this design can do, or a stated target) and the
ratio figure / limit. Sections are stored one JSON file per benchmark, so running
one benchmark alone replaces its own section and keeps the others.
"""

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Above this ratio a figure is called far from its limit.
FAR_RATIO = 2.0


@dataclass
class Row:
    """One measured figure, its unit, and the limit it is compared with."""

    measure: str
    figure: float
    unit: str
    limit: float | None = None
    limit_label: str = ""
    note: str = ""
    higher_is_better: bool = False

    @property
    def ratio(self) -> float | None:
        """Return how many times worse than its limit the figure is.

        That is figure / limit for times and sizes, and limit / figure for
        throughputs (`higher_is_better`), so above 1 is always worse than the limit.
        None when there is no limit or a zero makes the ratio undefined.
        """
        if self.limit is None or self.limit == 0 or self.figure == 0:
            return None
        if self.higher_is_better:
            return self.limit / self.figure
        return self.figure / self.limit


@dataclass
class Section:
    """The outcome of one benchmark run: a table and the notes that explain it."""

    name: str
    title: str
    description: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)
    error: str | None = None
    command: str = ""
    measured_at: str = ""
    size: str = "full"
    seconds: float = 0.0
    # 1-minute load average when the benchmark started: other work on the machine.
    load_average: float | None = None

    def add(
        self,
        measure: str,
        figure: float,
        unit: str,
        limit: float | None = None,
        limit_label: str = "",
        note: str = "",
        *,
        higher_is_better: bool = False,
    ) -> Row:
        """Append a row and return it."""
        row = Row(measure, figure, unit, limit, limit_label, note, higher_is_better)
        self.rows.append(row)
        return row

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Section":
        rows = [Row(**row) for row in data.pop("rows", [])]
        return cls(rows=rows, **data)


def save_section(section: Section, results_dir: Path) -> Path:
    """Write a section to `<results_dir>/<name>.json` and return the path."""
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{section.name}.json"
    path.write_text(json.dumps(section.to_json(), indent=2, ensure_ascii=False) + "\n")
    return path


def load_sections(results_dir: Path) -> dict[str, Section]:
    """Read every stored section, keyed by benchmark name."""
    sections: dict[str, Section] = {}
    if not results_dir.is_dir():
        return sections
    for path in sorted(results_dir.glob("*.json")):
        if path.name.startswith("_"):
            continue  # not a section, such as _machine.json
        section = Section.from_json(json.loads(path.read_text()))
        sections[section.name] = section
    return sections


def describe(docstring: str | None) -> str:
    """Turn a module docstring into Markdown paragraphs, each on one line."""
    paragraphs = (docstring or "").strip().split("\n\n")
    return "\n\n".join(" ".join(part.split()) for part in paragraphs)


def format_number(value: float, unit: str) -> str:
    """Format a figure for a table cell, with a precision that suits its size."""
    if math.isnan(value):
        return "n/a"
    if unit in ("chars", "tokens", "calls", "ids", "rows", "users", "events", "errors"):
        return f"{round(value):,} {unit}"
    magnitude = abs(value)
    if magnitude >= 100:
        text = f"{value:,.0f}"
    elif magnitude >= 10:
        text = f"{value:.1f}"
    elif magnitude >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3f}"
    return f"{text} {unit}".rstrip()


def format_ratio(ratio: float | None) -> str:
    if ratio is None:
        return ""
    if ratio >= 10:
        return f"{ratio:.0f}×"
    return f"{ratio:.2f}×"


def _table(rows: list[Row]) -> list[str]:
    lines = [
        "| Measure | Figure | Limit | Ratio |",
        "| --- | ---: | --- | ---: |",
    ]
    for row in rows:
        limit = ""
        if row.limit is not None:
            limit = format_number(row.limit, row.unit)
        if row.limit_label and limit:
            limit = f"{limit} ({row.limit_label})"
        elif row.limit_label:
            limit = row.limit_label
        measure = row.measure
        if row.note:
            measure += f" ({row.note})"
        figure = format_number(row.figure, row.unit)
        lines.append(f"| {measure} | {figure} | {limit} | {format_ratio(row.ratio)} |")
    return lines


def _run_line(section: Section) -> str:
    run = (
        f"Measured {section.measured_at} in {section.seconds:.0f} s "
        f"with `{section.command}`"
    )
    if section.size != "full":
        run += f" (size `{section.size}`, not the full run)"
    if section.load_average is not None:
        run += f", load average {section.load_average:.1f} at the start"
    if section.parameters:
        parameters = ", ".join(
            f"{key}={value}" for key, value in section.parameters.items()
        )
        run += f"; parameters: {parameters}"
    return run + "."


def render_section(section: Section) -> list[str]:
    """Render one section as Markdown lines."""
    lines = [f"## {section.title}", "", section.description, ""]
    if section.error:
        lines += [f"**Failed:** `{section.error}`", ""]
    if section.rows:
        lines += [*_table(section.rows), ""]

    if section.checks:
        failed = [name for name, passed in section.checks.items() if not passed]
        status = "FAILED: " + ", ".join(failed) if failed else "all passed"
        lines += [f"Checks ({', '.join(section.checks)}): {status}.", ""]
    for note in section.notes:
        lines += [note, ""]

    far = [row for row in section.rows if (row.ratio or 0) > FAR_RATIO]
    if far:
        names = ", ".join(f"{row.measure} ({format_ratio(row.ratio)})" for row in far)
        lines += [f"Far from the limit (ratio above {FAR_RATIO:g}): {names}.", ""]
    lines += [_run_line(section), ""]
    return lines


def render_page(
    sections: dict[str, Section],
    order: list[tuple[str, str]],
    machine: dict[str, str],
    analysis: str,
) -> str:
    """Render the whole benchmark page.

    `order` lists (name, title) of every benchmark, so a benchmark not run yet
    still gets a heading and the command that runs it.
    """
    lines = [
        "# Benchmarks",
        "",
        "Written by `python -m benchmarks` (see `benchmarks/__init__.py`); do not edit "
        "by hand. Each table puts a figure next to its limit: the best this machine "
        "reaches for the same work (a bare MCP SDK server, a direct HTTP request, a "
        "hand-written DuckDB query) or a stated target. The ratio says how many "
        "times worse than its limit a figure is: figure / limit for times and sizes, "
        "limit / figure for throughputs. 1.00× means no overhead; below 1 is under "
        "the limit (sizes) or faster than it.",
        "",
        "Run all: `python -m benchmarks`; one: `python -m benchmarks --only NAME`; "
        "smaller sizes: `--quick`. Names: "
        + ", ".join(f"`{name}`" for name, _ in order)
        + ".",
        "",
        "## Machine",
        "",
        "| | |",
        "| --- | --- |",
    ]
    lines += [f"| {key} | {value} |" for key, value in machine.items()]
    lines.append("")
    if analysis.strip():
        lines += [analysis.strip(), ""]
    for name, title in order:
        section = sections.get(name)
        if section is None:
            lines += [
                f"## {title}",
                "",
                f"Not measured yet: run `python -m benchmarks --only {name}`.",
                "",
            ]
            continue
        lines += render_section(section)
    return "\n".join(lines).rstrip() + "\n"
