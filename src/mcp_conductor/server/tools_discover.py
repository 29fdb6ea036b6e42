"""The ``discover_tools`` meta tool."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from mcp_conductor.client_pool.catalog import ToolInfo
from mcp_conductor.errors import ConductorError
from mcp_conductor.server.conductor import Conductor
from mcp_conductor.server.discovery.metrics import ToolStats
from mcp_conductor.server.discovery.results import DiscoveredTool, DiscoverResult, ToolStatsOut

MAX_TOP_K = 50

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
        top_k: Annotated[int, Field(ge=1, le=MAX_TOP_K, description="how many tools to return")] = 8,
        servers: Annotated[
            list[str] | None, Field(description="only search these servers (names as in the config)")
        ] = None,
        include_schemas: Annotated[bool, Field(description="include input/output schemas")] = True,
        cursor: Annotated[str | None, Field(description="next_cursor of a previous listing")] = None,
    ) -> DiscoverResult:
        conductor = ctx.request_context.lifespan_context
        try:
            await conductor.wait_for_startup()
            return discover(
                conductor, query, top_k=top_k, servers=servers, include_schemas=include_schemas, cursor=cursor
            )
        except ConductorError as exc:
            raise ToolError(exc.summary()) from exc


def discover(
    conductor: Conductor,
    query: str,
    *,
    top_k: int = 8,
    servers: list[str] | None = None,
    include_schemas: bool = True,
    cursor: str | None = None,
) -> DiscoverResult:
    """Rank (or, for an empty query, list) the catalog's tools.

    Raises:
        UnknownServerError: a name in ``servers`` is not configured.
        ConductorError: the cursor is not one this tool returned.
    """
    if servers is not None:
        conductor.check_servers(servers)
    index = conductor.index()
    stats = conductor.metrics.stats()
    filter_ = set(servers) if servers is not None else None
    listing = index.list_tools(servers=filter_)
    next_cursor: str | None = None
    if query.strip():
        hits = [(h.tool, h.score) for h in index.search(query, top_k=top_k, servers=filter_, stats=stats)]
    else:
        start = _decode_cursor(cursor, len(listing))
        page = listing[start : start + top_k]
        hits = [(tool, 0.0) for tool in page]
        if start + top_k < len(listing):
            next_cursor = str(start + top_k)
    return DiscoverResult(
        tools=[_describe(tool, score, stats.get(tool.id), include_schemas) for tool, score in hits],
        unavailable_servers=conductor.unavailable(filter_),
        total_tools=len(listing),
        next_cursor=next_cursor,
    )


def _describe(tool: ToolInfo, score: float, stats: ToolStats | None, include_schemas: bool) -> DiscoveredTool:
    return DiscoveredTool(
        id=tool.id,
        server=tool.server,
        name=tool.name,
        title=tool.title,
        description=tool.description,
        input_schema=dict(tool.input_schema) if include_schemas else None,
        output_schema=dict(tool.output_schema) if include_schemas and tool.output_schema else None,
        annotations=dict(tool.annotations) if tool.annotations else None,
        score=round(score, 4),
        stats=ToolStatsOut(**stats.public()) if stats is not None and stats.calls else None,
    )


def _decode_cursor(cursor: str | None, total: int) -> int:
    if cursor is None:
        return 0
    if not cursor.isdigit() or int(cursor) > total:
        raise ConductorError(f"invalid cursor {cursor!r}", hint="pass the next_cursor of the previous result")
    return int(cursor)
