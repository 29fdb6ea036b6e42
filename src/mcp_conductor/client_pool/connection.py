"""One downstream server: its owner task, its state, its reconnect loop and its calls.

The owner task both enters and exits the server's ``mcp.Client`` (an SDK context must be exited in the task that
entered it). Other tasks only call ``Connection.call_tool``. The owner loop::

    connecting -> ready -(EOF / error)-> reconnecting -> ready ...
         \\-> failed (waits with capped exponential backoff and full jitter, then tries again)

A connect that does not finish within ``connect_timeout_s`` (spawn, handshake and the first tool listing) counts
as a failure, so a server that hangs on ``initialize`` cannot hold anything up. ``tool_listing`` reads the tool
list; ``call_errors`` says what a failed call becomes.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, cast

import anyio
import structlog
from anyio.abc import TaskStatus
from mcp import Client
from mcp.client.subscriptions import SubscriptionLost
from mcp.types import (
    CallToolResult,
    RequestParamsMeta,
    ToolListChangedNotification,
)
from mcp.types.version import MODERN_PROTOCOL_VERSIONS

from mcp_conductor.backoff import Backoff
from mcp_conductor.client_pool.call_errors import (
    call_failure,
    closed_connection,
    describe,
    error_text,
    no_person_to_ask,
)
from mcp_conductor.client_pool.catalog import Catalog, ServerName
from mcp_conductor.client_pool.config_models import InProcessServer, ServerConfig
from mcp_conductor.client_pool.secrets import redact, server_secrets
from mcp_conductor.client_pool.status import ServerState, ServerStatus, now
from mcp_conductor.client_pool.tool_listing import list_tools
from mcp_conductor.client_pool.transports import StderrTail, open_transport
from mcp_conductor.errors import (
    CallTimeoutError,
    ServerUnavailableError,
    ToolExecutionError,
)
from mcp_conductor.limits import acquire

log = structlog.get_logger(__name__)


class Connection:
    """One configured downstream server. Start ``run`` in a task group with ``tg.start``."""

    def __init__(
        self,
        config: ServerConfig,
        catalog: Catalog,
        *,
        connect_timeout_s: float,
        call_timeout_s: float,
        max_concurrency: int,
        backoff: Backoff = Backoff(),
    ) -> None:
        self.config = config
        self.name = ServerName(config.name)
        self._catalog = catalog
        self._connect_timeout_s = connect_timeout_s
        self.call_timeout_s = call_timeout_s
        self._limiter = anyio.CapacityLimiter(max_concurrency)
        self._backoff = backoff
        self._client: Client | None = None
        self._ready = anyio.Event()
        self._settled = anyio.Event()
        self._stop = anyio.Event()
        self._refresh = anyio.Event()
        self._changed = anyio.Event()
        self._eof = anyio.Event()
        self._secrets = server_secrets(config)
        self._stderr = StderrTail(config.name, self._secrets)
        state = ServerState.DISABLED if config.settings.disabled else ServerState.CONNECTING
        self._status = ServerStatus(self.name, config.transport, state, since=now())
        self.in_flight = 0
        self.peak_in_flight = 0

    # -- reading state -------------------------------------------------------------------------------------
    def status(self) -> ServerStatus:
        return replace(self._status, stderr_tail=self._stderr.text())

    @property
    def state(self) -> ServerState:
        return self._status.state

    async def wait_settled(self) -> None:
        """Wait until the first connect attempt has ended (ready or failed); disabled servers are settled."""
        await self._settled.wait()

    def stop(self) -> None:
        self._stop.set()

    def request_refresh(self) -> None:
        """Re-list the tools (on ``tools/list_changed``)."""
        self._refresh.set()

    # -- the owner task ------------------------------------------------------------------------------------
    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Own the connection until ``stop()``; reports started at once so the pool is usable immediately."""
        task_status.started()
        if self.state is ServerState.DISABLED:
            self._settled.set()
            return
        attempt = 0
        try:
            while not self._stop.is_set():
                attempt += 1
                self._set(attempts=attempt)
                was_ready = await self._session_once()
                self._settled.set()
                if self._stop.is_set():
                    break
                if was_ready:
                    attempt = 1  # a session that came up resets the backoff
                delay = self._backoff.delay(attempt)
                log.info("pool.reconnect_scheduled", server=self.name, delay_s=round(delay, 3), attempt=attempt)
                with anyio.move_on_after(delay):
                    await self._stop.wait()
        finally:
            self._client = None
            self._catalog.drop_server(self.name)
            self._set(state=ServerState.STOPPED)
            self._settled.set()

    async def _session_once(self) -> bool:
        """Run one session from connect to EOF/failure. Returns whether it reached ``ready``."""
        eof = self._eof = anyio.Event()
        timed_out = False
        reached_ready = False
        started = anyio.current_time()
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:

                async def watchdog() -> None:
                    nonlocal timed_out
                    with anyio.move_on_after(self._connect_timeout_s):
                        await self._ready.wait()
                        return
                    timed_out = True
                    scope.cancel()

                async def stop_while_connecting() -> None:
                    # Once ready, _serve ends the session on stop; before that, nothing else would notice.
                    await self._stop.wait()
                    if not reached_ready:
                        scope.cancel()

                tg.start_soon(watchdog)
                tg.start_soon(stop_while_connecting)
                try:
                    target: Any = (
                        self.config.server
                        if isinstance(self.config, InProcessServer)
                        else open_transport(self.config, eof, self._stderr)
                    )
                    async with Client(
                        target,
                        message_handler=self._on_message,
                        elicitation_callback=no_person_to_ask,
                    ) as client:
                        await self._list_tools(client)
                        reached_ready = True
                        self._client = client
                        self._set(
                            state=ServerState.READY,
                            error=None,
                            connected_at=now(),
                            connect_ms=round((anyio.current_time() - started) * 1000, 1),
                            protocol_version=client.protocol_version,
                        )
                        self._ready.set()
                        self._settled.set()
                        log.info(
                            "pool.server_connected",
                            server=self.name,
                            tools=self._status.tools,
                            connect_ms=self._status.connect_ms,
                            protocol=client.protocol_version,
                        )
                        await self._serve(client, eof)
                except Exception as exc:  # spawn failure, handshake error, ExceptionGroup from HTTP transports
                    self._fail(exc)
                finally:
                    self._client = None
                    self._ready = anyio.Event()
                    tg.cancel_scope.cancel()
        if timed_out and not reached_ready:
            self._fail(TimeoutError(f"no MCP handshake and tool list within {self._connect_timeout_s:g}s"))
        elif reached_ready and self._status.state is ServerState.READY and not self._stop.is_set():
            self._fail(ConnectionError("connection closed by the server"))
        return reached_ready

    async def _serve(self, client: Client, eof: anyio.Event) -> None:
        """Hold the session open until EOF or stop; refresh the tool list on change notifications."""
        async with anyio.create_task_group() as tg:
            if client.protocol_version in MODERN_PROTOCOL_VERSIONS:
                tg.start_soon(self._listen, client)

            async def refresher() -> None:
                while True:
                    await self._refresh.wait()
                    self._refresh = anyio.Event()
                    try:
                        await self._list_tools(client)
                        log.info("pool.tools_refreshed", server=self.name, tools=self._status.tools)
                    except Exception as exc:
                        log.warning("pool.tools_refresh_failed", server=self.name, error=describe(exc))

            tg.start_soon(refresher)
            async with anyio.create_task_group() as waiters:

                async def until(event: anyio.Event) -> None:
                    await event.wait()
                    waiters.cancel_scope.cancel()

                waiters.start_soon(until, eof)
                waiters.start_soon(until, self._stop)
            tg.cancel_scope.cancel()

    async def _listen(self, client: Client) -> None:
        try:
            async with client.listen(tools_list_changed=True) as sub:
                # listen has no replay: a change between the first listing and this ack would be lost.
                self.request_refresh()
                async for _event in sub:
                    self.request_refresh()
        except SubscriptionLost:
            pass
        except Exception as exc:  # a server that does not serve listen still works; it just won't push changes
            log.debug("pool.listen_unavailable", server=self.name, error=describe(exc))

    async def _on_message(self, message: Any) -> None:
        if isinstance(message, ToolListChangedNotification):
            self.request_refresh()
        elif isinstance(message, Exception):
            first_line = describe(message).splitlines()[0]
            self._set(stdout_garbage=self._status.stdout_garbage + 1)
            log.warning("pool.server_sent_garbage", server=self.name, error=first_line[:300])

    async def _list_tools(self, client: Client) -> None:
        tools, hidden = await list_tools(client, self.name, self.config.settings.tools)
        self._catalog.set_server_tools(self.name, tools, hidden=hidden)
        self._set(tools=len(tools))

    # -- calls ---------------------------------------------------------------------------------------------
    async def call_tool(
        self,
        tool: str,
        arguments: dict[str, Any],
        *,
        timeout_s: float | None = None,
        meta: dict[str, Any] | None = None,
    ) -> CallToolResult:
        """Call ``tool`` on this server within ``timeout_s`` (default: the server's configured timeout), with
        ``meta`` as the request's ``_meta`` (e.g. the chain's idempotency key).

        Waits for a server that is still connecting (within the same timeout); cancellation of the caller
        cancels the downstream call.

        Raises:
            ServerUnavailableError: the server is disabled, failed, or did not become ready in time.
            CallTimeoutError: the call took longer than ``timeout_s``; it was cancelled downstream.
            ConnectionLostError: the server went away during the call.
            ToolExecutionError: the tool answered with ``isError``.
            ProtocolError: the server answered with a JSON-RPC error or a result that is not a CallToolResult.
        """
        timeout = timeout_s if timeout_s is not None else self.call_timeout_s
        deadline = anyio.current_time() + timeout
        client = await self._client_within(deadline, tool)
        await self._slot_within(deadline, tool, waited_s=timeout)
        try:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            try:
                with anyio.CancelScope(deadline=deadline) as scope:  # fail_after, without its generator
                    result = await client.call_tool(tool, arguments, meta=cast(RequestParamsMeta | None, meta))
                if scope.cancelled_caught:
                    raise TimeoutError
            except Exception as exc:
                if closed_connection(exc):
                    self._mark_dead(client)
                raise call_failure(exc, self.name, tool, timeout, self._secrets) from exc
            finally:
                self.in_flight -= 1
        finally:
            self._limiter.release()
        if result.is_error:
            raise ToolExecutionError(redact(error_text(result), self._secrets), server=self.name, tool=tool)
        return result

    async def _slot_within(self, deadline: float, tool: str, *, waited_s: float) -> None:
        """Take one of the server's ``max_concurrency`` slots; waiting for one counts against the call's timeout."""
        with anyio.CancelScope(deadline=deadline) as waiting:
            await acquire(self._limiter)
        if waiting.cancelled_caught:
            raise CallTimeoutError(
                f"{self.name}/{tool} did not start within {waited_s:g}s: all {self._limiter.total_tokens:g} of the "
                "server's call slots stayed busy",
                server=self.name,
                tool=tool,
                hint="raise the server's max_concurrency or the step's timeout_s, or run fewer steps on it at once",
            )

    async def _client_within(self, deadline: float, tool: str) -> Client:
        if self._client is not None:  # the common case: connected, nothing to wait for
            return self._client
        state = self.state
        if state is ServerState.DISABLED:
            raise ServerUnavailableError(f"server {self.name} is disabled in the config", server=self.name, tool=tool)
        # READY without a client is the moment between a lost connection and the owner task noticing it.
        waiting = (ServerState.CONNECTING, ServerState.RECONNECTING, ServerState.READY)
        with anyio.move_on_after(max(0.0, deadline - anyio.current_time())):
            while self._client is None and self.state in waiting:
                await self._changed.wait()
        client = self._client
        if client is None:
            detail = f": {self._status.error}" if self._status.error else ""
            raise ServerUnavailableError(
                f"server {self.name} is {self.state.value}{detail}",
                server=self.name,
                tool=tool,
                hint="run `mcp-conductor doctor` to see why it does not start",
            )
        return client

    # -- helpers -------------------------------------------------------------------------------------------
    def _mark_dead(self, client: Client) -> None:
        """A call saw the connection close: stop routing calls to it and let the owner task reconnect now."""
        if self._client is client:
            self._client = None
            self._eof.set()

    def _fail(self, exc: BaseException) -> None:
        was_ready = self._status.state is ServerState.READY or self._status.connected_at is not None
        state = ServerState.RECONNECTING if was_ready else ServerState.FAILED
        message = describe(exc)
        if not was_ready and self._stderr.lines:
            message = f"{message} (stderr: {self._stderr.lines[-1][:300]})"
        message = redact(message, self._secrets)
        self._set(state=state, error=message)
        log.warning("pool.server_failed", server=self.name, state=state.value, error=message)

    def _set(self, **changes: Any) -> None:
        changed = "state" in changes and changes["state"] is not self._status.state
        if changed:
            changes["since"] = now()
        self._status = replace(self._status, **changes)
        if changed:
            self._changed.set()
            self._changed = anyio.Event()
