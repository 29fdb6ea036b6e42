"""One downstream server's tool list: every page of ``tools/list``, filtered by the config, as ``ToolInfo``.

``connection`` decides when to list (on connect and on ``tools/list_changed``) and puts the result in the catalog;
this module only reads the pages (at most ``MAX_TOOL_PAGES``), drops duplicate names, and sets aside the tools the
server's ``tools`` filter hides, with the reason.
"""

from __future__ import annotations

import inspect

import structlog
from mcp import Client

from mcp_conductor.client_pool.catalog import ServerName, ToolInfo
from mcp_conductor.client_pool.config_models import ToolFilter

log = structlog.get_logger(__name__)

MAX_TOOL_PAGES = 1000  # a server that pages forever must not hang the listing


async def list_tools(
    client: Client, server: ServerName, tool_filter: ToolFilter
) -> tuple[list[ToolInfo], dict[str, str]]:
    """The tools ``client``'s server offers after ``tool_filter``, and the hidden ones' names with the reason."""
    tools: list[ToolInfo] = []
    hidden: dict[str, str] = {}
    seen: set[str] = set()
    cursor: str | None = None
    for _ in range(MAX_TOOL_PAGES):
        page = await client.list_tools(cursor=cursor, cache_mode="refresh")
        for tool in page.tools:
            if tool.name in seen:
                log.warning("pool.duplicate_tool_name", server=server, tool=tool.name)
                continue
            seen.add(tool.name)
            why_hidden = tool_filter.hidden_because(server, tool.name)
            if why_hidden is not None:
                hidden[tool.name] = why_hidden
                continue
            wire = tool.model_dump(by_alias=True, mode="json", exclude_none=True)
            tools.append(
                ToolInfo(
                    server=server,
                    name=tool.name,
                    description=inspect.cleandoc(tool.description or ""),
                    title=tool.title or (tool.annotations.title if tool.annotations else None),
                    input_schema=wire.get("inputSchema") or {"type": "object"},
                    output_schema=wire.get("outputSchema"),
                    annotations=wire.get("annotations"),
                )
            )
        cursor = page.next_cursor
        if cursor is None:
            break
    return tools, hidden
