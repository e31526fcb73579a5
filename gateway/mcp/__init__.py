"""The gateway's capabilities as MCP tools at /mcp (streamable HTTP), on the REST keys and policies."""
