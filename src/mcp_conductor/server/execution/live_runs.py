"""Runs that outlive the request that started them.

Many hosts give up on a tool call after about a minute. With ``options.wait_s`` a run is started in the server
process's own task group instead of the request's: the request waits up to ``wait_s`` for it and, if it is not
done, answers ``status: "running"`` with its progress; the run goes on. Calling ``execute_chain`` again with the
run's id waits again. A request that is cancelled while it waits only stops waiting. A run is cancelled by
``options.cancel`` (from any request), or by a cancel request in the store (``mcp-conductor runs cancel``), which
the owner checks every ``CANCEL_POLL_S``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio
import structlog
from anyio.abc import TaskGroup

from mcp_conductor.server.execution.engine import ProgressFn
from mcp_conductor.server.execution.results import ExecuteResult
from mcp_conductor.server.store.store import RunStore

log = structlog.get_logger(__name__)

CANCEL_POLL_S = 0.5

Body = Callable[[ProgressFn], Awaitable[ExecuteResult]]


@dataclass
class LiveRun:
    """A run going on in this process, and the requests waiting for it."""

    run_id: str
    total: int
    finished: int = 0
    result: ExecuteResult | None = None
    done: anyio.Event = field(default_factory=anyio.Event)
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    listeners: list[ProgressFn] = field(default_factory=list)

    async def report(self, done: float, total: int, message: str) -> None:
        self.finished, self.total = int(done), total  # done has a fraction while a foreach step's items run
        for listener in list(self.listeners):
            try:
                await listener(done, total, message)
            except Exception as exc:  # a host that went away must not fail the run
                log.debug("chain.progress_failed", error=str(exc))

    def cancel(self) -> None:
        self.scope.cancel()


class LiveRuns:
    """The runs this process owns beyond their first request (see the module docstring)."""

    def __init__(self, tg: TaskGroup, store: RunStore) -> None:
        self._tg = tg
        self._store = store
        self._runs: dict[str, LiveRun] = {}

    def get(self, run_id: str) -> LiveRun | None:
        return self._runs.get(run_id)

    def start(self, run_id: str, total: int, body: Body, stopped: Callable[[], Awaitable[ExecuteResult]]) -> LiveRun:
        """Run ``body(progress)`` in the process's task group; when the run is cancelled, ``stopped()`` gives
        its result (the run as stored)."""
        live = self._runs[run_id] = LiveRun(run_id, total)
        self._tg.start_soon(self._own, live, body, stopped)
        return live

    async def _own(self, live: LiveRun, body: Body, stopped: Callable[[], Awaitable[ExecuteResult]]) -> None:
        try:
            with live.scope:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._watch_cancel_requests, live)
                    live.result = await body(live.report)
                    tg.cancel_scope.cancel()
            if live.result is None:  # cancelled: the executor recorded the run as such
                with anyio.CancelScope(shield=True):
                    live.result = await stopped()
        except Exception as exc:  # never out of the process's task group: the waiting request reports it
            log.error("chain.detached_run_failed", run_id=live.run_id, error=str(exc), exc_info=exc)
        finally:
            self._runs.pop(live.run_id, None)
            live.done.set()

    async def _watch_cancel_requests(self, live: LiveRun) -> None:
        while True:
            await anyio.sleep(CANCEL_POLL_S)
            if await self._store.cancel_requested(live.run_id):
                log.info("chain.cancel_requested", run_id=live.run_id)
                live.cancel()
                return

    @staticmethod
    async def wait(live: LiveRun, wait_s: float, progress: ProgressFn | None) -> ExecuteResult | None:
        """The run's result if it ends within ``wait_s``, else None; ``progress`` hears of it meanwhile."""
        if progress is not None:
            live.listeners.append(progress)
        try:
            with anyio.move_on_after(wait_s):
                await live.done.wait()
        finally:
            if progress is not None:
                live.listeners.remove(progress)
        return live.result
