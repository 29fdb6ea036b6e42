"""Build the meta MCP server: its lifespan opens one ``Conductor``, and the meta tools call it.

    server = build_server(load_config("servers.json"), state_dir=path)
    server.run()            # stdio; see ``server.http`` for streamable HTTP

The lifespan starts the pool without waiting for any downstream server, so ``initialize`` and ``tools/list``
answer at once even while slow ``npx`` servers are still starting. What a model reads is kept small: the
instructions name the configured servers, tool schemas carry no titles, results are compact JSON.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, InputRequiredResult
from mcp.types import Tool as MCPTool
from pydantic import ValidationError

from mcp_conductor import __version__
from mcp_conductor.client_pool.config_models import ConductorConfig
from mcp_conductor.client_pool.status import ServerState
from mcp_conductor.schemas import compact_schema, without_descriptions
from mcp_conductor.server.conductor import Conductor
from mcp_conductor.server.discovery.metrics import MetricsRegistry
from mcp_conductor.server.replies import argument_errors
from mcp_conductor.server.tools_chain import register_chain_tools
from mcp_conductor.server.tools_discover import register_discover_tools


def instructions(config: ConductorConfig, tools: dict[str, int] | None = None) -> str:
    """Which servers stand behind the three tools (with their tool counts once known), and when to call which."""
    counts = tools or {}
    names = [
        f"{name} ({counts[name]} tools)" if name in counts else name
        for name, server in config.servers.items()
        if not server.settings.disabled
    ]
    return (
        f"mcp-conductor fronts these MCP servers: {', '.join(names) or 'none'}. "
        "Call discover_tools to find the tools for a task, then execute_chain once with a plan that does the "
        "whole task (plan_chain only checks a plan)."
    )


class ConductorServer(MCPServer[Conductor]):
    """The MCP server of mcp-conductor: tool schemas without noise, and argument errors in one line."""

    async def list_tools(self) -> list[MCPTool]:
        return [
            tool.model_copy(
                update={
                    "input_schema": compact_schema(tool.input_schema),
                    "output_schema": without_descriptions(compact_schema(tool.output_schema))
                    if tool.output_schema
                    else None,
                }
            )
            for tool in await super().list_tools()
        ]

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Conductor, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        try:
            result = await super().call_tool(name, arguments, context)
        except ToolError as exc:
            cause = exc.__cause__
            if isinstance(cause, ValidationError) and cause.title.endswith("Arguments"):  # not the result's
                raise ToolError(argument_errors(name, cause)) from cause
            raise
        if context is not None and context.request_context is not None:
            self.refresh_instructions(context.request_context.lifespan_context)
        return result

    def refresh_instructions(self, conductor: Conductor) -> None:
        """Name the servers' tool counts, once known, in what the next ``initialize`` returns."""
        ready = {str(s.name): s.tools for s in conductor.pool.statuses().values() if s.state is ServerState.READY}
        # MCPServer exposes its instructions read-only; the low-level server reads this attribute on every
        # initialize / server/discover.
        self._lowlevel_server.instructions = instructions(conductor.config, ready)


def build_server(
    config: ConductorConfig, *, state_dir: Path, metrics: MetricsRegistry | None = None
) -> ConductorServer:
    """The meta server for ``config``; the pool starts when a host connects (stdio) or the app starts (HTTP)."""

    @asynccontextmanager
    async def lifespan(server: MCPServer[Conductor]) -> AsyncIterator[Conductor]:
        async with Conductor.open(config, state_dir, metrics=metrics) as conductor:
            if isinstance(server, ConductorServer):
                server.refresh_instructions(conductor)
            yield conductor

    server = ConductorServer(
        "mcp-conductor",
        version=__version__,
        instructions=instructions(config),
        lifespan=lifespan,
        log_level="WARNING",
    )
    register_discover_tools(server)
    register_chain_tools(server)
    return server
