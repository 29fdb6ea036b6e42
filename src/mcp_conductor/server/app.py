"""Build the meta MCP server: its lifespan (store, pool, engine) and the meta tools.

    server = build_server(load_config("servers.json"))
    server.run()            # stdio; see ``server.http`` for streamable HTTP

The lifespan opens the run store (marking runs left ``running`` by a dead process as ``interrupted``), loads the
persisted tool metrics, and starts the pool without waiting for any downstream server, so ``initialize`` and
``tools/list`` answer at once even while slow ``npx`` servers are still starting.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import structlog
from mcp.server.mcpserver import MCPServer

from mcp_conductor import __version__
from mcp_conductor.client_pool.config import ConductorConfig
from mcp_conductor.client_pool.pool import ClientPool
from mcp_conductor.server.conductor import Conductor, MetricsRegistry
from mcp_conductor.server.execution.chains import ChainService
from mcp_conductor.server.execution.executor import LocalExecutor
from mcp_conductor.server.store.store import RunStore
from mcp_conductor.server.tools_chain import register_chain_tools
from mcp_conductor.server.tools_discover import register_discover_tools

log = structlog.get_logger(__name__)

INSTRUCTIONS = """\
mcp-conductor connects you to many MCP servers through three tools instead of hundreds.
1. discover_tools: describe what you need in plain words; you get the best matching tools with their schemas.
   Tool ids have the form "server/tool".
2. plan_chain: check a multi-step plan (steps, arguments, ${steps.ID.field} references) before running it.
3. execute_chain: run the plan; independent steps run in parallel and outputs flow into later steps.
"""


@asynccontextmanager
async def open_conductor(
    config: ConductorConfig, state_dir: Path, *, metrics: MetricsRegistry | None = None
) -> AsyncIterator[Conductor]:
    """Everything a running meta server needs, for the MCP front and the CLI alike.

    Raises:
        StoreError: the state directory or its database cannot be used.
    """
    registry = metrics or MetricsRegistry()
    async with RunStore.open(state_dir) as store:
        interrupted = await store.mark_interrupted()
        await store.prune(config.keep_runs)
        if interrupted:
            log.warning("chain.runs_interrupted", runs=interrupted)
        for tool, m in (await store.load_metrics()).items():
            registry.load(tool, m)  # type: ignore[arg-type]
        async with ClientPool(config) as pool:
            conductor = Conductor(pool, registry)
            engine = LocalExecutor(pool, store, registry, max_concurrency=config.max_global_concurrency)
            conductor.attach_chains(
                ChainService(
                    store,
                    engine,
                    catalog=pool.snapshot,
                    stats=registry.stats,
                    unavailable=conductor.unavailable_names,
                    output_budget_bytes=config.output_budget_bytes,
                    keep_runs=config.keep_runs,
                )
            )
            yield conductor


def build_server(
    config: ConductorConfig, *, state_dir: Path, metrics: MetricsRegistry | None = None
) -> MCPServer[Conductor]:
    """The meta server for ``config``; the pool starts when a host connects (stdio) or the app starts (HTTP)."""

    @asynccontextmanager
    async def lifespan(_: MCPServer[Conductor]) -> AsyncIterator[Conductor]:
        async with open_conductor(config, state_dir, metrics=metrics) as conductor:
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
