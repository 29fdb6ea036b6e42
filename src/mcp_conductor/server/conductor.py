"""What the meta tools share while the server runs: the pool, the metrics, and the discovery index.

``Conductor`` is the lifespan value of the MCP server; tool handlers reach it through
``ctx.request_context.lifespan_context``. It owns nothing that does I/O itself: the pool does that.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

from mcp_conductor.client_pool.catalog import CatalogSnapshot, ToolId
from mcp_conductor.client_pool.pool import ClientPool
from mcp_conductor.client_pool.status import ServerState
from mcp_conductor.errors import ConductorError, UnknownServerError
from mcp_conductor.server.discovery.index import ToolIndex
from mcp_conductor.server.discovery.metrics import ToolMetrics, ToolStats
from mcp_conductor.server.discovery.results import UnavailableServer

if TYPE_CHECKING:
    from mcp_conductor.server.execution.chains import ChainService


STARTUP_WAIT_S = 15.0


class MetricsRegistry:
    """Per-tool metrics in memory; the run store persists them."""

    def __init__(self) -> None:
        self._by_tool: dict[ToolId, ToolMetrics] = {}
        self.version = 0

    def record(self, tool: ToolId, *, ok: bool, duration_ms: float, timed_out: bool = False) -> None:
        self._by_tool.setdefault(tool, ToolMetrics()).record(ok=ok, duration_ms=duration_ms, timed_out=timed_out)
        self.version += 1

    def load(self, tool: ToolId, metrics: ToolMetrics) -> None:
        self._by_tool[tool] = metrics
        self.version += 1

    def get(self, tool: ToolId) -> ToolMetrics | None:
        return self._by_tool.get(tool)

    def stats(self) -> dict[ToolId, ToolStats]:
        return {tool: m.stats() for tool, m in self._by_tool.items() if m.calls}


class Conductor:
    """The running meta server's shared state: the pool, the metrics, the discovery index and the chains."""

    def __init__(
        self, pool: ClientPool, metrics: MetricsRegistry | None = None, *, startup_wait_s: float = STARTUP_WAIT_S
    ) -> None:
        self.pool = pool
        self.startup_wait_s = startup_wait_s
        self.metrics = metrics or MetricsRegistry()
        self._index: ToolIndex | None = None
        self._index_version = -1
        self._chains: ChainService | None = None

    def attach_chains(self, chains: ChainService) -> None:
        self._chains = chains

    @property
    def chains(self) -> ChainService:
        if self._chains is None:
            raise ConductorError("chains are not available in this server")
        return self._chains

    async def wait_for_startup(self) -> None:
        """Give servers still on their first connect attempt a bounded moment, so the first search after start
        sees their tools; servers that fail or stay slow are reported as unavailable instead."""
        await self.pool.wait_settled(self.startup_wait_s)

    def snapshot(self) -> CatalogSnapshot:
        return self.pool.snapshot()

    def index(self) -> ToolIndex:
        """The search index of the current catalog, rebuilt when any server's tool list changed."""
        snap = self.snapshot()
        if self._index is None or self._index_version != snap.version:
            self._index = ToolIndex.build(snap.tools.values())
            self._index_version = snap.version
        return self._index

    def check_servers(self, servers: Collection[str]) -> None:
        """Raises:
        UnknownServerError: a name that is not configured (the message lists the valid ones).
        """
        for server in servers:
            self.pool.connection(server)

    def unavailable(self, servers: Collection[str] | None = None) -> list[UnavailableServer]:
        return [
            UnavailableServer(server=s.name, state=s.state.value, error=s.error)
            for s in self.pool.unavailable()
            if (servers is None or s.name in servers) and s.state is not ServerState.STOPPED
        ]

    def unavailable_names(self) -> set[str]:
        return {s.server for s in self.unavailable()}


__all__ = ["Conductor", "MetricsRegistry", "UnknownServerError"]
