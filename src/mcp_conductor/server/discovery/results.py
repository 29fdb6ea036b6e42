"""What ``discover_tools`` returns (structured content; the text content is the same JSON, compact).

By default a hit is small: ``{id, description, input_schema, returns, effect, score}``, the description cut at
``DESCRIPTION_CHARS`` and the schema without noise; after the first ``search.SCHEMA_HITS`` hits, ``input`` (a
one-line signature, see ``signature``) stands for ``input_schema`` and the description is its first sentence.
``detail="full"`` adds the server, name, title, output schema, annotations and measured stats.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from mcp_conductor.models import OutModel, detail

Detail = Literal["compact", "full"]
DESCRIPTION_CHARS = 160


class ToolStatsOut(OutModel):
    calls: int
    success_rate: float | None = None  # None (left out): every call failed through the caller's own mistake
    p50_ms: float | None = None
    p95_ms: float | None = None


class DiscoveredTool(OutModel):
    id: str = Field(description="use as a step's tool: server/tool")
    description: str
    input_schema: dict[str, Any] | None = None
    input: str | None = Field(None, description="the arguments as a signature (name?: optional), beside input_schema")
    returns: Any = Field(None, description="the shape of the step's value: JSON types and keys")
    effect: str | None = Field(None, description="read_only, writes or destructive (may need consent)")
    score: float
    stale: str | None = Field(None, description="a saved chain (chain/NAME) that may no longer work, and why")
    server: str | None = detail()
    name: str | None = detail()
    title: str | None = detail()
    output_schema: dict[str, Any] | None = detail()
    annotations: dict[str, Any] | None = detail()
    stats: ToolStatsOut | None = detail()


class UnavailableServer(OutModel):
    server: str
    state: str = Field(description="connecting, failed, reconnecting or disabled")
    error: str | None = None


class DiscoverResult(OutModel):
    tools: list[DiscoveredTool]
    unavailable_servers: list[UnavailableServer] = Field(default_factory=list)
    total_tools: int
    next_cursor: str | None = None
