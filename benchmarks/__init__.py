"""Benchmarks of ta-cohort-mcp: context cost, call overhead, start-up, sandbox
speed, id upload and load.

Run from the repository root with the project's Python:

    python -m benchmarks                  # every benchmark, full sizes
    python -m benchmarks --only sandbox   # one benchmark (repeat --only for more)
    python -m benchmarks --quick          # smaller sizes

The page docs/benchmarks.md is written from the stored results. Generated DuckDB
files and results live in benchmarks/.data/, which git ignores.
"""
