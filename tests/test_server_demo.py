"""`ta-cohort-mcp demo`, the README's first command, succeeds end to end."""

import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def test_demo_exits_zero() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "ta_cohort_mcp", "demo", "--refresh-seconds", "0.5"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, (
        completed.stdout[-3000:] + completed.stderr[-3000:]
    )
    assert "Every step succeeded." in completed.stdout
    assert "progress 100/100" in completed.stdout
    assert "-> delete_user_cluster_by_name" in completed.stdout
    assert "Deleted cluster 'recent_7_days_consume'" in completed.stdout
