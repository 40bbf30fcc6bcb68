"""Fixtures of a running sandbox, shared by every test file (a pytest plugin).

- `sandbox` (session scope): a `SandboxServer` on 127.0.0.1 and a free port, in
  memory, with 1,000 sample users in each of projects 102 and 2. Its `today` is
  2020-01-10, the day the reference's detail example was computed, so recentDay
  "1-7" shows 2020-01-03 to 2020-01-09. Use `sandbox.base_url`, `sandbox.token`
  (valid for both projects), `sandbox.faults`, `sandbox.stats`, `sandbox.store`.
  Clusters made by one test stay for the next, so give them unique names.
  After each test that uses it, its fault rules are cleared.
- `sandbox_http` (function scope): an `httpx.Client` on `sandbox.base_url` with a
  10 s timeout.
- `cluster_name` (function scope): a clusterName unique in the session.

Constants: `SANDBOX_TODAY`, and `PROJECT_2_TOKEN`, a second token that the
sandbox accepts for project 2 only.
"""

import datetime
import uuid
from collections.abc import Iterator

import httpx
import pytest

from ta_cohort_mcp.sandbox import SandboxConfig, SandboxServer

SANDBOX_TODAY = datetime.date(2020, 1, 10)
PROJECT_2_TOKEN = "project-2-token"


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxServer]:
    config = SandboxConfig(
        today=SANDBOX_TODAY,
        users=1000,
        tokens={"sandbox-token": {102, 2}, PROJECT_2_TOKEN: {2}},
    )
    with SandboxServer(config) as server:
        yield server


@pytest.fixture(autouse=True)
def _clear_sandbox_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    server: SandboxServer | None = None
    if "sandbox" in request.fixturenames:
        server = request.getfixturevalue("sandbox")
    yield
    if server is not None:
        server.faults.clear()


@pytest.fixture
def sandbox_http(sandbox: SandboxServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.base_url, timeout=10.0) as client:
        yield client


@pytest.fixture
def cluster_name() -> str:
    return f"t_{uuid.uuid4().hex[:16]}"
