"""mcp-conductor: one MCP server that discovers, plans and runs tool chains over many MCP servers."""

from mcp_conductor.errors import ConductorError

__version__ = "0.1.0"

__all__ = ["ConductorError", "__version__"]
