"""One downstream call of a chain step (or of one ``foreach`` item), with its retries, metrics and record.

``Caller.call`` takes a slot of the run's limiters, tries the call up to ``retry.attempts`` times and leaves the
target record (a ``StepRun`` or an ``ItemRun``) in its final state; the ``started`` and ``ended`` callbacks
write it through the run's journal (a step's start, or an item's). Every call carries the idempotency key
``<run_id>/<step_id>[/<item index>]`` in its ``_meta`` (see ``interrupted``), so a downstream server can
recognise a repeat.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import structlog

from mcp_conductor.client_pool.catalog import ToolId
from mcp_conductor.client_pool.pool import ClientPool
from mcp_conductor.errors import CallTimeoutError, DownstreamError
from mcp_conductor.limits import acquire
from mcp_conductor.server.discovery.metrics import MetricsRegistry
from mcp_conductor.server.execution.interrupted import IDEMPOTENCY_KEY_META, idempotency_key
from mcp_conductor.server.execution.retry import backoff_delay, should_retry
from mcp_conductor.server.execution.run_state import RunState, step_error
from mcp_conductor.server.execution.values import step_value
from mcp_conductor.server.planning.models import PlannedStep
from mcp_conductor.server.store.records import ItemRun, StepError, StepRun, StepStatus, now_iso

log = structlog.get_logger(__name__)

Sleep = Callable[[float], Awaitable[None]]
Write = Callable[[], Awaitable[None]]
Target = StepRun | ItemRun


class Caller:
    """Makes the downstream calls of one executor (its global limiter, metrics, sleep and random source)."""

    def __init__(
        self,
        pool: ClientPool,
        metrics: MetricsRegistry,
        limiter: anyio.CapacityLimiter,
        sleep: Sleep = anyio.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._pool = pool
        self._metrics = metrics
        self.limiter = limiter
        self._sleep = sleep
        self._rand = rand

    async def call(
        self,
        run: RunState,
        step: PlannedStep,
        target: Target,
        arguments: Any,
        call_timeout_s: float,
        started: Write,
        ended: Write,
    ) -> None:
        """Call ``step``'s tool with ``arguments`` inside a slot of the run's and the global limiter."""
        await acquire(run.per_run, before_waiting=run.journal.sync)  # nothing unsaved while waiting
        try:
            await acquire(self.limiter, before_waiting=run.journal.sync)
            try:
                await self._attempts(run, step, target, arguments, call_timeout_s, started, ended)
            finally:
                self.limiter.release()
        finally:
            if run.per_run is not None:
                run.per_run.release()

    async def _attempts(
        self,
        run: RunState,
        step: PlannedStep,
        target: Target,
        arguments: Any,
        call_timeout_s: float,
        started: Write,
        ended: Write,
    ) -> None:
        assert run.snapshot is not None
        tool_id = ToolId(step.target)
        tool = run.snapshot.tools.get(tool_id)
        server, _, name = step.target.partition("/")
        key = idempotency_key(run.run_id, step.id, target.index if isinstance(target, ItemRun) else None)
        meta = {IDEMPOTENCY_KEY_META: key}  # the same on every attempt and every resume
        this_run = 0  # the retry budget is per execution: a resumed step gets its full budget again
        while True:
            this_run += 1
            target.status = StepStatus.RUNNING
            target.attempts += 1  # across resumes, for the record
            target.arguments = arguments
            target.started_at = now_iso()
            target.finished_at = target.error = None
            await started()
            log.info("chain.step_started", tool=step.target, attempt=target.attempts)
            t0 = time.perf_counter()
            try:
                result = await self._pool.call_tool(server, name, arguments, timeout_s=call_timeout_s, meta=meta)
            except DownstreamError as exc:
                elapsed = (time.perf_counter() - t0) * 1000
                timed_out = isinstance(exc, CallTimeoutError)
                self._metrics.record(tool_id, ok=False, duration_ms=elapsed, timed_out=timed_out, error=exc)
                run.touched_tools.add(tool_id)
                if should_retry(step.retry, tool, exc.kind, this_run):
                    delay = backoff_delay(step.retry, this_run, self._rand)
                    log.info(
                        "chain.step_retry_scheduled", kind=exc.kind, attempt=target.attempts, delay_s=round(delay, 3)
                    )
                    await self._sleep(delay)
                    continue
                status = StepStatus.TIMEOUT if timed_out else StepStatus.FAILED
                log.warning("chain.step_failed", kind=exc.kind, error=exc.message, attempts=target.attempts)
                await end(target, status, step_error(exc, server, name), ended, started=t0)
                return
            elapsed = (time.perf_counter() - t0) * 1000
            value = step_value(result)
            self._metrics.record(tool_id, ok=True, duration_ms=elapsed)
            if tool is None or tool.output_schema is None:
                self._metrics.learn(tool_id, value)  # what ${steps.x...} may find: see shapes
            run.touched_tools.add(tool_id)
            await end(target, StepStatus.SUCCEEDED, None, ended, started=t0, output=value)
            return


async def end(
    target: Target,
    status: StepStatus,
    error: StepError | None,
    ended: Write,
    *,
    started: float | None,
    output: Any = None,
) -> None:
    """Set ``target``'s end and record it. ``started``: when this attempt began, or None (no attempt)."""
    target.status = status
    target.error = error
    target.finished_at = now_iso()
    target.output = output
    target.has_output = status is StepStatus.SUCCEEDED
    if started is not None:
        target.duration_ms = round((time.perf_counter() - started) * 1000, 2)
    await ended()
    log.info("chain.step_finished", status=status.value, duration_ms=target.duration_ms)
