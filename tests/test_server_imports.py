"""Importing the server or the CLI loads neither DuckDB nor the sandbox."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["ta_cohort_mcp.server.app", "ta_cohort_mcp.cli"])
def test_import_skips_duckdb(module: str) -> None:
    code = (
        f"import sys, {module}; "
        "loaded = [m for m in ('duckdb', 'ta_cohort_mcp.sandbox.app') if m in sys.modules]; "
        "print(','.join(loaded))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert completed.stdout.strip() == ""
