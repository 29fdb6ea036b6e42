"""The ``discover_tools`` meta tool."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from mcp_conductor.errors import ConductorError
from mcp_conductor.server.conductor import Conductor
from mcp_conductor.server.discovery.results import DiscoverResult
from mcp_conductor.server.discovery.search import DEFAULT_TOP_K, MAX_TOP_K

DESCRIPTION = """\
Find the tools you need among all connected MCP servers, ranked for your task, with their input schemas.

Use it whenever you need a capability you do not see among your own tools: describe the task in plain words.
Each result's `id` has the form "server/tool"; use that id as `tool` in plan_chain and execute_chain steps.
Results carry measured latency and success rate once a tool has been called. Servers that are still starting
or failing are listed in `unavailable_servers`. An empty query lists every tool, page by page (pass
`next_cursor` back as `cursor`).

Example: {"query": "count the words in a text and extract keywords", "top_k": 5}
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
        query: Annotated[str, Field(description="what you want to do, in plain words; empty to list all")] = "",
        top_k: Annotated[int, Field(ge=1, le=MAX_TOP_K, description="how many tools to return")] = DEFAULT_TOP_K,
        servers: Annotated[
            list[str] | None, Field(description="only search these servers (names as in the config)")
        ] = None,
        include_schemas: Annotated[bool, Field(description="include input/output schemas")] = True,
        cursor: Annotated[str | None, Field(description="next_cursor of a previous listing")] = None,
    ) -> DiscoverResult:
        conductor = ctx.request_context.lifespan_context
        try:
            return await conductor.discover(
                query, top_k=top_k, servers=servers, include_schemas=include_schemas, cursor=cursor
            )
        except ConductorError as exc:
            raise ToolError(exc.summary()) from exc
