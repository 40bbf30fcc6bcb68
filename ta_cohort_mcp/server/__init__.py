"""The MCP server: tools over TA's Open API, plus resources, prompts and completions.

`build_server(settings)` returns the low-level MCP `Server`; `ta-cohort-mcp
serve` runs it over stdio or streamable HTTP.
"""
