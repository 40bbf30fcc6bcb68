"""Shared pytest configuration. Fixture modules of each area are plugins listed here."""

import pytest

# Modules under tests/ that define fixtures shared across test files.
pytest_plugins: list[str] = ["client_fixtures", "sandbox_fixtures", "server_fixtures"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
