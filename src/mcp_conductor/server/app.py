"""Build the meta MCP server: its lifespan opens one ``Conductor``, and the meta tools call it.

    server = build_server(load_config("servers.json"), state_dir=path)
    server.run()            # stdio; see ``server.http`` for streamable HTTP

The lifespan starts the pool without waiting for any downstream server, so ``initialize`` and ``tools/list``
answer at once even while slow ``npx`` servers are still starting.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from mcp.server.mcpserver import MCPServer

from mcp_conductor import __version__
from mcp_conductor.client_pool.config_models import ConductorConfig
from mcp_conductor.server.conductor import Conductor
from mcp_conductor.server.discovery.metrics import MetricsRegistry
from mcp_conductor.server.tools_chain import register_chain_tools
from mcp_conductor.server.tools_discover import register_discover_tools

INSTRUCTIONS = """\
mcp-conductor connects you to many MCP servers through three tools instead of hundreds.
1. discover_tools: describe what you need in plain words; you get the best matching tools with their schemas.
   Tool ids have the form "server/tool".
2. plan_chain: check a multi-step plan (steps, arguments, ${steps.ID.field} references) before running it.
3. execute_chain: run the plan; independent steps run in parallel and outputs flow into later steps.
"""


def build_server(
    config: ConductorConfig, *, state_dir: Path, metrics: MetricsRegistry | None = None
) -> MCPServer[Conductor]:
    """The meta server for ``config``; the pool starts when a host connects (stdio) or the app starts (HTTP)."""

    @asynccontextmanager
    async def lifespan(_: MCPServer[Conductor]) -> AsyncIterator[Conductor]:
        async with Conductor.open(config, state_dir, metrics=metrics) as conductor:
            yield conductor

    server: MCPServer[Conductor] = MCPServer(
        "mcp-conductor",
        version=__version__,
        instructions=INSTRUCTIONS,
        lifespan=lifespan,
        log_level="WARNING",
    )
    register_discover_tools(server)
    register_chain_tools(server)
    return server
