"""MCP server for ThinkingData (TA) user clusters (cohorts) and tags."""

__version__ = "0.1.0"

__all__ = ["__version__"]
