"""Every tool of the server, in the order tools/list shows them."""

from ta_cohort_mcp.server.tools.base import Call, Outcome, ToolSpec
from ta_cohort_mcp.server.tools.clusters import CLUSTER_TOOLS
from ta_cohort_mcp.server.tools.delete import DELETE_TOOLS
from ta_cohort_mcp.server.tools.extra import EXTRA_TOOLS
from ta_cohort_mcp.server.tools.upload import UPLOAD_TOOLS

ALL_TOOLS: dict[str, ToolSpec] = {
    spec.name: spec
    for spec in [*CLUSTER_TOOLS, *DELETE_TOOLS, *UPLOAD_TOOLS, *EXTRA_TOOLS]
}
WRITE_TOOLS = frozenset(name for name, spec in ALL_TOOLS.items() if spec.writes)

__all__ = ["ALL_TOOLS", "WRITE_TOOLS", "Call", "Outcome", "ToolSpec"]
