"""Pydantic models of the meta tools' results (what the host sees as structured content)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ToolStatsOut(_Model):
    calls: int = Field(description="downstream calls recorded for this tool")
    success_rate: float | None = Field(description="fraction of calls that succeeded")
    p50_ms: float | None = Field(description="median latency in milliseconds")
    p95_ms: float | None = Field(description="95th percentile latency in milliseconds")


class DiscoveredTool(_Model):
    id: str = Field(description="the tool id to use in plans: server/tool")
    server: str
    name: str
    title: str | None = None
    description: str
    input_schema: dict[str, Any] | None = Field(default=None, description="JSON Schema of the arguments")
    output_schema: dict[str, Any] | None = Field(default=None, description="JSON Schema of the structured result")
    annotations: dict[str, Any] | None = None
    score: float = Field(description="relevance to the query (higher is better; 0 when listing)")
    stats: ToolStatsOut | None = Field(description="measured calls, success rate and latency; null if never called")


class UnavailableServer(_Model):
    server: str
    state: str = Field(description="connecting, failed, reconnecting or disabled")
    error: str | None = None


class DiscoverResult(_Model):
    tools: list[DiscoveredTool]
    unavailable_servers: list[UnavailableServer] = Field(
        description="servers whose tools cannot be searched right now, and why"
    )
    total_tools: int = Field(description="tools in the catalog (after the servers filter)")
    next_cursor: str | None = Field(default=None, description="pass as cursor to list the next page (empty query)")
