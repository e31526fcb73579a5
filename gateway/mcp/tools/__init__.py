"""The MCP tools: each a scope, an input model (its JSON schema is what `tools/list` shows) and a
handler calling the same services as the matching REST route, with the caller's tenant and label
policy. Every tool is read-only; log answers always carry a byte budget.

args: the input models; call: what a handler works with; logs: the tools reading logs and
Loki's index; other: follow, summary, overview, alerts; catalog: the list `tools/list` shows."""

from __future__ import annotations

from gateway.mcp.tools.call import ToolCall, ToolSpec
from gateway.mcp.tools.catalog import TOOLS, TOOLS_BY_NAME

__all__ = ["TOOLS", "TOOLS_BY_NAME", "ToolCall", "ToolSpec"]
