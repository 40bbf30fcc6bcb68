"""Every tool of the server, in the order tools/list shows them.

The order is that of `TOOL_ARGUMENT_MODELS`: the endpoints as the API reference
lists them, then the tools no endpoint has. A new tool needs an arguments model
there and a `ToolSpec` in one of the lists below.
"""

from ta_cohort_mcp.models.tools import TOOL_ARGUMENT_MODELS
from ta_cohort_mcp.server.tools.base import Call, Outcome, ToolSpec
from ta_cohort_mcp.server.tools.catalog import CATALOG_TOOLS
from ta_cohort_mcp.server.tools.clusters import CLUSTER_TOOLS
from ta_cohort_mcp.server.tools.delete import DELETE_TOOLS
from ta_cohort_mcp.server.tools.extra import EXTRA_TOOLS
from ta_cohort_mcp.server.tools.upload import UPLOAD_TOOLS

_SPECS = {
    spec.name: spec
    for spec in [
        *CLUSTER_TOOLS,
        *DELETE_TOOLS,
        *UPLOAD_TOOLS,
        *EXTRA_TOOLS,
        *CATALOG_TOOLS,
    ]
}
ALL_TOOLS: dict[str, ToolSpec] = {
    name: _SPECS[name] for name in TOOL_ARGUMENT_MODELS if name in _SPECS
}
WRITE_TOOLS = frozenset(name for name, spec in ALL_TOOLS.items() if spec.writes)

__all__ = ["ALL_TOOLS", "WRITE_TOOLS", "Call", "Outcome", "ToolSpec"]
