"""Run a validated plan against the pool: dependency-driven, parallel, persistent, resumable.

Scheduling: every step counts its dependencies that have not ended. The steps with none start at once, each in
a task of its own. When a step ends, the task that ran it releases its dependents, runs one that became ready
itself and starts a task for each other one. So a step starts the moment its last input exists (no level
barriers), and a chain runs in one task, without a task or a wake-up per step. A global limiter (shared by all
runs) and an optional per-run limiter bound the parallelism; the pool's per-server limiters hold as well.

Each step's start and finish are committed to the store before the run moves on, so a killed server loses
nothing that finished, and ``resume`` re-runs only what did not succeed. A success is committed together with
the run's next write (in a chain: the next step's start, one transaction instead of two), which always comes
before anything depends on it, before the task waits for anything and before it ends; with progress
notifications on, every end is committed on its own before it is announced.

Failure policy per step: ``on_error="fail"`` cancels running steps and skips the rest (run ``failed``);
``"continue"`` skips only the failed step's dependents while other branches go on (run ``partial``).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Protocol

import anyio
import structlog

from mcp_conductor.client_pool.catalog import ToolId
from mcp_conductor.client_pool.pool import ClientPool
from mcp_conductor.errors import CallTimeoutError, ConductorError, DownstreamError
from mcp_conductor.limits import acquire
from mcp_conductor.server.conductor import MetricsRegistry
from mcp_conductor.server.execution.engine import ProgressFn, RunOutcome, RunRequest, new_run_id, now_iso
from mcp_conductor.server.execution.retry import backoff_delay, should_retry
from mcp_conductor.server.execution.run_state import Progress, RunState, public_options, step_error
from mcp_conductor.server.execution.values import step_value
from mcp_conductor.server.planning.models import Step
from mcp_conductor.server.planning.references import substitute
from mcp_conductor.server.store.records import LiveStep, RunRecord, RunStatus, StepError, StepStatus
from mcp_conductor.server.store.store import RunStore

log = structlog.get_logger(__name__)

DEFAULT_MAX_CONCURRENCY = 32
DEFAULT_STEP_TIMEOUT_S = 60.0

Sleep = Callable[[float], Awaitable[None]]


class _Write(Protocol):
    """A store write that takes the ends to commit with it."""

    def __call__(self, *, ended: list[LiveStep]) -> Awaitable[None]: ...


_ENDED = frozenset({StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.TIMEOUT, StepStatus.SKIPPED})


class LocalExecutor:
    """The in-process anyio engine with the SQLite store."""

    def __init__(
        self,
        pool: ClientPool,
        store: RunStore,
        metrics: MetricsRegistry,
        *,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        default_step_timeout_s: float | None = None,
        sleep: Sleep = anyio.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._pool = pool
        self._store = store
        self._metrics = metrics
        self._limiter = anyio.CapacityLimiter(max_concurrency)
        self._default_step_timeout_s = default_step_timeout_s
        self._sleep = sleep
        self._rand = rand

    async def execute(self, request: RunRequest, progress: ProgressFn | None = None) -> RunOutcome:
        """Run (or resume) ``request``; returns when the run ends. Host cancellation propagates after the run
        is recorded as ``cancelled``.

        Raises:
            StoreError: the run store cannot be written.
        """
        run = await self._prepare(request)
        structlog.contextvars.bind_contextvars(run_id=run.run_id)
        total = len(request.plan.steps)
        run.notify = notify = Progress(progress, total)
        started = time.perf_counter()
        log.info("chain.run_started", steps=total, plan_id=request.plan_id, resume=request.resume)
        await notify.say(run.finished, f"run {run.run_id} started: {total} steps")
        if request.options.timeout_s is not None:
            run.deadline_at = anyio.current_time() + request.options.timeout_s
        if request.options.max_concurrency:
            run.per_run = anyio.CapacityLimiter(request.options.max_concurrency)
        run.snapshot = self._pool.snapshot()
        status = RunStatus.CANCELLED
        try:
            with anyio.move_on_after(request.options.timeout_s) as deadline:
                async with anyio.create_task_group() as tg:
                    run.tg = tg
                    for step_id in run.ready_at_start():
                        tg.start_soon(self._worker, run, step_id)
            if deadline.cancelled_caught:
                run.stop_reason = "timed_out"
            status = run.status()
        finally:
            duration_ms = round((time.perf_counter() - started) * 1000, 1)
            with anyio.CancelScope(shield=True):
                await self._finish(run, status, duration_ms)
            structlog.contextvars.unbind_contextvars("run_id")
        record = run.record
        assert record is not None
        outputs = {sid: run.outputs[sid] for sid in record.outputs if sid in run.outputs}
        return RunOutcome(run=record, steps=[run.records[s.id] for s in request.plan.steps], outputs=outputs)

    # -- one task: a step, then whichever dependent it made ready -------------------------------------------
    async def _worker(self, run: RunState, step_id: str) -> None:
        assert run.tg is not None
        current: str | None = step_id
        while current is not None:
            await self._run_step(run, run.steps[current])
            ready = run.release(current)
            for other in ready[1:]:
                run.tg.start_soon(self._worker, run, other)
            current = ready[0] if ready else None
        await self._save_ends(run)  # nothing left for this task: no end may wait for another task's write

    async def _save_ends(self, run: RunState) -> None:
        if run.unsaved:
            await self._write(run, lambda ended: self._store.steps_ended(ended))

    @staticmethod
    async def _write(run: RunState, write: _Write) -> None:
        """One store write that also carries the ends the run has not stored yet (see the module's docstring);
        a write that fails or is cancelled leaves them for the next one."""
        ended = list(run.unsaved.values())
        await write(ended=ended)
        run.saved(ended)

    async def _run_step(self, run: RunState, step: Step) -> None:
        structlog.contextvars.bind_contextvars(step_id=step.id)  # this task's context: no unbinding needed
        live = run.records[step.id]
        try:
            blocked = [d for d in step.depends_on if run.records[d].status is not StepStatus.SUCCEEDED]
            if blocked:
                await self._skip(run, live, f"dependency {blocked[0]} did not succeed")
            else:
                save_first = partial(self._save_ends, run)  # before waiting for a slot
                await acquire(run.per_run, before_waiting=save_first)
                try:
                    await acquire(self._limiter, before_waiting=save_first)
                    try:
                        await self._attempts(run, step, live)
                    finally:
                        self._limiter.release()
                finally:
                    if run.per_run is not None:
                        run.per_run.release()
                self._after_attempts(run, step, live)
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                await self._interrupted(run, live)
            raise
        finally:
            if live.status not in (StepStatus.PENDING, StepStatus.RUNNING):
                run.finished += 1
                assert run.notify is not None
                if run.notify.active:
                    with anyio.CancelScope(shield=True):
                        await run.notify.say(run.finished, f"last: {step.id} {live.status.value}")

    def _after_attempts(self, run: RunState, step: Step, live: LiveStep) -> None:
        if live.status is StepStatus.SUCCEEDED:
            run.outputs[step.id] = live.output
        elif (step.on_error or run.request.options.on_error or "fail") == "fail":
            run.stop_reason = run.stop_reason or "failed"
            assert run.tg is not None
            run.tg.cancel_scope.cancel()
        else:
            run.failed_under_continue = True

    async def _attempts(self, run: RunState, step: Step, live: LiveStep) -> None:
        """Try the step up to ``retry.attempts`` times; ``live`` ends with its final state, stored."""
        assert run.snapshot is not None
        tool = run.snapshot.tools.get(ToolId(step.tool))
        server, _, name = step.tool.partition("/")
        timeout = self._timeout(run, step, server)
        try:
            arguments = substitute(step.arguments, run.outputs, run.request.inputs)
        except ConductorError as exc:  # nothing was started: the whole row is written
            await self._end(run, live, StepStatus.FAILED, step_error(exc, server, name), started=None)
            return
        this_run = 0  # the retry budget is per execution: a resumed step gets its full budget again
        while True:
            this_run += 1
            live.status = StepStatus.RUNNING
            live.attempts += 1  # across resumes, for the record
            live.arguments = arguments
            live.started_at = now_iso()
            live.finished_at = live.error = None
            await self._write(
                run, partial(self._store.step_started, run.run_id, step.id, arguments, live.started_at, live.attempts)
            )
            log.info("chain.step_started", tool=step.tool, attempt=live.attempts)
            t0 = time.perf_counter()
            try:
                result = await self._pool.call_tool(server, name, arguments, timeout_s=timeout)
            except DownstreamError as exc:
                elapsed = (time.perf_counter() - t0) * 1000
                timed_out = isinstance(exc, CallTimeoutError)
                self._metrics.record(ToolId(step.tool), ok=False, duration_ms=elapsed, timed_out=timed_out)
                run.touched_tools.add(ToolId(step.tool))
                if should_retry(step.retry, tool, exc.kind, this_run):
                    delay = backoff_delay(step.retry, this_run, self._rand)
                    log.info(
                        "chain.step_retry_scheduled", kind=exc.kind, attempt=live.attempts, delay_s=round(delay, 3)
                    )
                    await self._sleep(delay)
                    continue
                status = StepStatus.TIMEOUT if timed_out else StepStatus.FAILED
                log.warning("chain.step_failed", kind=exc.kind, error=exc.message, attempts=live.attempts)
                await self._end(run, live, status, step_error(exc, server, name), started=t0)
                return
            elapsed = (time.perf_counter() - t0) * 1000
            self._metrics.record(ToolId(step.tool), ok=True, duration_ms=elapsed)
            run.touched_tools.add(ToolId(step.tool))
            await self._end(run, live, StepStatus.SUCCEEDED, None, started=t0, output=step_value(result))
            return

    async def _end(
        self,
        run: RunState,
        live: LiveStep,
        status: StepStatus,
        error: StepError | None,
        *,
        started: float | None,
        output: Any = None,
    ) -> None:
        """``started``: when this attempt's call began (its start is stored), or None (no attempt was made)."""
        live.status = status
        live.error = error
        live.finished_at = now_iso()
        live.output = output
        live.has_output = status is StepStatus.SUCCEEDED
        if started is not None:
            live.duration_ms = round((time.perf_counter() - started) * 1000, 2)
        assert run.notify is not None
        if started is None:
            await self._write(run, partial(self._store.step_finished, live))
        elif status is StepStatus.SUCCEEDED and not run.notify.active:
            run.unsaved[live.step_id] = live  # stored with the run's next write: see the module's docstring
        else:
            await self._write(run, lambda ended: self._store.steps_ended([*ended, live]))
        log.info("chain.step_finished", status=status.value, duration_ms=live.duration_ms)

    async def _skip(self, run: RunState, live: LiveStep, why: str) -> None:
        live.status = StepStatus.SKIPPED
        live.error = StepError(kind="skipped", message=why)
        live.finished_at = now_iso()
        await self._write(run, partial(self._store.step_finished, live))
        log.info("chain.step_skipped", reason=why)

    async def _interrupted(self, run: RunState, live: LiveStep) -> None:
        """Record a step that the run's cancellation stopped (deadline, fail-fast, or the host)."""
        if live.status in _ENDED:
            return
        if live.status is not StepStatus.RUNNING:
            await self._skip(run, live, "the run stopped before this step started")
            return
        deadline_passed = run.deadline_at is not None and anyio.current_time() >= run.deadline_at
        if run.stop_reason == "timed_out" or (run.stop_reason is None and deadline_passed):
            live.status = StepStatus.TIMEOUT
            live.error = StepError(kind="timeout", message="the chain's deadline passed", retryable=True)
        else:
            live.status = StepStatus.CANCELLED
            live.error = StepError(kind="cancelled", message="the run was cancelled")
        live.finished_at = now_iso()
        await self._write(run, partial(self._store.step_finished, live))

    # -- run bookkeeping -----------------------------------------------------------------------------------
    async def _prepare(self, request: RunRequest) -> RunState:
        plan = request.plan
        if request.resume and request.options.run_id:
            run_id = request.options.run_id
            stored = {s.step_id: s for s in await self._store.get_steps(run_id)}
            records: dict[str, LiveStep] = {}
            for step in plan.steps:
                old = stored.get(step.id)
                if old is not None and old.status is StepStatus.SUCCEEDED:
                    records[step.id] = LiveStep.of(old)
                else:
                    records[step.id] = LiveStep(run_id, step.id, step.tool, attempts=old.attempts if old else 0)
            await self._store.set_run_status(run_id, RunStatus.RUNNING, owner_pid=os.getpid())
        else:
            run_id = request.options.run_id or new_run_id()
            records = {s.id: LiveStep(run_id, s.id, s.tool) for s in plan.steps}
            record = RunRecord(
                run_id=run_id,
                plan_id=request.plan_id,
                status=RunStatus.RUNNING,
                inputs=dict(request.inputs),
                options=public_options(request.options),
                outputs=list(plan.outputs or ()),  # the planner resolves the default (the sinks)
                started_at=now_iso(),
                owner_pid=os.getpid(),
            )
            await self._store.create_run(record, list(records.values()))
        return RunState.start(run_id, request, records)

    async def _finish(self, run: RunState, status: RunStatus, duration_ms: float) -> None:
        await self._save_ends(run)
        # Steps still pending because the run stopped early (or never became ready) are marked skipped.
        for live in run.records.values():
            if live.status is StepStatus.PENDING:
                await self._skip(run, live, "the run stopped before this step started")
        metrics = {t: m for t in run.touched_tools if (m := self._metrics.get(t)) is not None}
        run.record = await self._store.finish_run(run.run_id, status, now_iso(), duration_ms, metrics=metrics)
        log.info("chain.run_finished", status=status.value, duration_ms=duration_ms)

    def _timeout(self, run: RunState, step: Step, server: str) -> float:
        if step.timeout_s is not None:
            return step.timeout_s
        if run.request.options.default_step_timeout_s is not None:
            return run.request.options.default_step_timeout_s
        if self._default_step_timeout_s is not None:
            return self._default_step_timeout_s
        try:
            return self._pool.connection(server).call_timeout_s
        except ConductorError:
            return DEFAULT_STEP_TIMEOUT_S
