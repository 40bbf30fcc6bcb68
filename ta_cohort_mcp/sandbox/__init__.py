"""The sandbox: a TA-compatible Open API for clusters and tags, over DuckDB.

`SandboxServer` runs it on a loopback port; `create_app` builds the ASGI app for
another server. The names below load on first use, so importing the package (as
the CLI does to list its subcommands) does not import DuckDB or uvicorn.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ta_cohort_mcp.sandbox.app import (
        DEFAULT_PROJECTS,
        DEFAULT_TOKEN,
        ErrorCode,
        Sandbox,
        SandboxConfig,
        create_app,
    )
    from ta_cohort_mcp.sandbox.faults import (
        FaultKind,
        FaultPlan,
        FaultRule,
        RequestStats,
    )
    from ta_cohort_mcp.sandbox.runner import SandboxServer
    from ta_cohort_mcp.sandbox.store import ClusterRecord, Store

# Public name -> module that defines it.
_EXPORTS = {
    "DEFAULT_PROJECTS": "app",
    "DEFAULT_TOKEN": "app",
    "ErrorCode": "app",
    "Sandbox": "app",
    "SandboxConfig": "app",
    "create_app": "app",
    "FaultKind": "faults",
    "FaultPlan": "faults",
    "FaultRule": "faults",
    "RequestStats": "faults",
    "SandboxServer": "runner",
    "ClusterRecord": "store",
    "Store": "store",
}

__all__ = [
    "DEFAULT_PROJECTS",
    "DEFAULT_TOKEN",
    "ClusterRecord",
    "ErrorCode",
    "FaultKind",
    "FaultPlan",
    "FaultRule",
    "RequestStats",
    "Sandbox",
    "SandboxConfig",
    "SandboxServer",
    "Store",
    "create_app",
]


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{module_name}")
    return getattr(module, name)
