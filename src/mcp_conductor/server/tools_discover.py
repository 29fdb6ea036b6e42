"""The ``discover_tools`` meta tool."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import Field

from mcp_conductor.errors import ConductorError
from mcp_conductor.server.conductor import Conductor
from mcp_conductor.server.discovery.results import Detail, DiscoverResult
from mcp_conductor.server.discovery.search import DEFAULT_TOP_K, MAX_TOP_K, SCHEMA_HITS
from mcp_conductor.server.replies import reply

DESCRIPTION = f"""\
Find the tools for a task across all connected servers, best first: id ("server/tool", a step's tool),
description, input_schema (first {SCHEMA_HITS} hits; the rest: input, a signature), returns (the shape of
the step's value, for ${{steps.ID.key}} references). An empty query lists all tools (pass next_cursor as
cursor). detail="full" adds full schemas, annotations, measured latency and success.
"""


def register_discover_tools(server: MCPServer[Conductor]) -> None:
    @server.tool(
        name="discover_tools",
        title="Discover tools",
        description=DESCRIPTION,
        annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False),
    )
    async def discover_tools(
        ctx: Context[Conductor],
        query: Annotated[str, Field(description="the task, in plain words")] = "",
        top_k: Annotated[int, Field(ge=1, le=MAX_TOP_K)] = DEFAULT_TOP_K,
        servers: list[str] | None = None,
        include_schemas: bool = True,
        cursor: str | None = None,
        detail: Detail = "compact",
    ) -> Annotated[CallToolResult, DiscoverResult]:
        conductor = ctx.request_context.lifespan_context
        try:
            found = await conductor.discover(
                query, top_k=top_k, servers=servers, include_schemas=include_schemas, cursor=cursor, detail=detail
            )
        except ConductorError as exc:
            raise ToolError(exc.summary()) from exc
        return reply(found)
