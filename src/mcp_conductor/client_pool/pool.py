"""All downstream connections: start them concurrently, route calls, report health.

    async with ClientPool(load_config("servers.json")) as pool:   # returns at once; servers connect meanwhile
        await pool.wait_settled(timeout_s=10)                      # optional: wait for the first attempts
        result = await pool.call_tool("text", "word_stats", {"text": "hi"})

Each server has one owner task (``Connection.run``) in the pool's task group; leaving the ``async with`` stops
them all, and the SDK's stdio shutdown (close stdin, SIGTERM, then SIGKILL to the process group) leaves no
child process behind.
"""

from __future__ import annotations

from collections.abc import Collection
from types import TracebackType
from typing import Any, Self

import anyio
import structlog
from anyio.abc import TaskGroup
from mcp.types import CallToolResult

from mcp_conductor.backoff import Backoff
from mcp_conductor.client_pool.catalog import Catalog, CatalogSnapshot, ServerName
from mcp_conductor.client_pool.config_models import ConductorConfig
from mcp_conductor.client_pool.connection import Connection
from mcp_conductor.client_pool.status import ServerState, ServerStatus
from mcp_conductor.errors import UnknownServerError

log = structlog.get_logger(__name__)


class ClientPool:
    """The pool of downstream MCP client sessions."""

    def __init__(self, config: ConductorConfig, *, backoff: Backoff = Backoff()) -> None:
        self.config = config
        self.catalog = Catalog()
        self.connections: dict[ServerName, Connection] = {
            name: Connection(
                server,
                self.catalog,
                connect_timeout_s=config.connect_timeout_s(name),
                call_timeout_s=config.timeout_s(name),
                max_concurrency=config.max_concurrency(name),
                backoff=backoff,
            )
            for name, server in config.servers.items()
        }
        self._tg: TaskGroup | None = None

    async def __aenter__(self) -> Self:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        try:
            async with anyio.create_task_group() as starters:
                for conn in self.connections.values():
                    starters.start_soon(self._tg.start, conn.run)
        except BaseException as exc:
            self._tg.cancel_scope.cancel()
            await self._tg.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        log.info("pool.started", servers=len(self.connections))
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        assert self._tg is not None
        for conn in self.connections.values():
            conn.stop()
        try:
            return await self._tg.__aexit__(exc_type, exc, tb)
        finally:
            self._tg = None
            log.info("pool.stopped")

    # -- health --------------------------------------------------------------------------------------------
    def statuses(self) -> dict[ServerName, ServerStatus]:
        return {name: conn.status() for name, conn in self.connections.items()}

    def unavailable(self) -> list[ServerStatus]:
        """Servers whose tools the catalog cannot show right now (connecting, failed, reconnecting, disabled;
        not the ones stopped because the pool is closing)."""
        return [s for s in self.statuses().values() if s.state not in (ServerState.READY, ServerState.STOPPED)]

    async def wait_settled(self, timeout_s: float | None = None, servers: Collection[str] | None = None) -> bool:
        """Wait until each server's first connect attempt has ended. Returns False if the timeout ran out."""
        conns = [self.connection(s) for s in servers] if servers is not None else list(self.connections.values())
        with anyio.move_on_after(timeout_s):
            for conn in conns:
                await conn.wait_settled()
            return True
        return False

    def connection(self, server: str) -> Connection:
        """Raises:
        UnknownServerError: ``server`` is not configured.
        """
        conn = self.connections.get(ServerName(server))
        if conn is None:
            raise UnknownServerError(server, list(self.connections))
        return conn

    def snapshot(self) -> CatalogSnapshot:
        return self.catalog.snapshot()

    # -- calls ---------------------------------------------------------------------------------------------
    async def call_tool(
        self,
        server: str,
        tool: str,
        arguments: dict[str, Any] | None = None,
        *,
        timeout_s: float | None = None,
        meta: dict[str, Any] | None = None,
    ) -> CallToolResult:
        """Call ``server``'s ``tool`` (``meta``: sent as the request's ``_meta``). See ``Connection.call_tool`` for
        waiting, limits and errors.

        Raises:
            UnknownServerError: ``server`` is not configured.
            DownstreamError: a subclass per failure kind (unavailable, timeout, connection lost, tool error,
                protocol error).
        """
        conn = self.connections.get(ServerName(server))
        if conn is None:
            raise UnknownServerError(server, list(self.connections), tool=tool)
        return await conn.call_tool(tool, arguments or {}, timeout_s=timeout_s, meta=meta)
