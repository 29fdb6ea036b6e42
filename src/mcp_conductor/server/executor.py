"""Run a validated plan against the pool: dependency-driven, parallel, persistent, resumable.

Every step gets a task at once; it waits for its dependencies' outcomes, not for a whole level (no barriers),
so a step starts the moment its inputs exist. A global limiter (shared by all runs) and an optional per-run
limiter bound the parallelism; the pool's per-server limiters hold as well. Each step's start and finish are
committed to the store before the run moves on, so a killed server loses nothing that finished, and ``resume``
re-runs only what did not succeed.

Failure policy per step: ``on_error="fail"`` cancels running steps and skips the rest (run ``failed``);
``"continue"`` skips only the failed step's dependents while other branches go on (run ``partial``).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
import structlog

from mcp_conductor.client_pool.catalog import CatalogSnapshot, ToolId, ToolInfo
from mcp_conductor.client_pool.pool import ClientPool
from mcp_conductor.errors import CallTimeoutError, ConductorError, DownstreamError
from mcp_conductor.server.engine import ProgressFn, RunOptions, RunOutcome, RunRequest, new_run_id, now_iso
from mcp_conductor.server.plan_models import Step
from mcp_conductor.server.references import substitute
from mcp_conductor.server.retry import backoff_delay, should_retry
from mcp_conductor.server.run_models import RunRecord, RunStatus, StepError, StepRecord, StepStatus
from mcp_conductor.server.runtime import MetricsRegistry
from mcp_conductor.server.store import RunStore
from mcp_conductor.server.values import step_value

log = structlog.get_logger(__name__)

DEFAULT_MAX_CONCURRENCY = 32
DEFAULT_STEP_TIMEOUT_S = 60.0

Sleep = Callable[[float], Awaitable[None]]


@dataclass
class _RunState:
    """Mutable bookkeeping of one run in progress (owned by ``LocalExecutor.execute``)."""

    run_id: str
    request: RunRequest
    records: dict[str, StepRecord]
    outputs: dict[str, Any]
    done: dict[str, anyio.Event]
    finished: int = 0
    stop_reason: Literal["failed", "timed_out"] | None = None
    failed_under_continue: bool = False
    deadline_at: float | None = None
    touched_tools: set[ToolId] = field(default_factory=set)


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
        state = await self._prepare(request)
        run_id = state.run_id
        structlog.contextvars.bind_contextvars(run_id=run_id)
        total = len(request.plan.steps)
        notify = _Progress(progress, total)
        started = time.perf_counter()
        log.info("chain.run_started", steps=total, plan_id=request.plan_id, resume=request.resume)
        await notify.say(state.finished, f"run {run_id} started: {total} steps")
        if request.options.timeout_s is not None:
            state.deadline_at = anyio.current_time() + request.options.timeout_s
        per_run = anyio.CapacityLimiter(request.options.max_concurrency) if request.options.max_concurrency else None
        snapshot = self._pool.snapshot()
        status = RunStatus.CANCELLED
        try:
            with anyio.move_on_after(request.options.timeout_s) as deadline:
                async with anyio.create_task_group() as tg:
                    for step in request.plan.steps:
                        if state.records[step.id].status is not StepStatus.SUCCEEDED:
                            tg.start_soon(self._run_step, state, step, snapshot, per_run, notify, tg.cancel_scope)
            if deadline.cancelled_caught:
                state.stop_reason = "timed_out"
            status = _run_status(state)
        finally:
            duration_ms = round((time.perf_counter() - started) * 1000, 1)
            with anyio.CancelScope(shield=True):
                await self._finish(state, status, duration_ms)
            structlog.contextvars.unbind_contextvars("run_id")
        run = await self._store.get_run(run_id)
        assert run is not None
        outputs = {sid: state.outputs[sid] for sid in run.outputs if sid in state.outputs}
        return RunOutcome(run=run, steps=[state.records[s.id] for s in request.plan.steps], outputs=outputs)

    # -- one step ------------------------------------------------------------------------------------------
    async def _run_step(
        self,
        state: _RunState,
        step: Step,
        snapshot: CatalogSnapshot,
        per_run: anyio.CapacityLimiter | None,
        notify: _Progress,
        run_scope: anyio.CancelScope,
    ) -> None:
        structlog.contextvars.bind_contextvars(step_id=step.id)
        record = state.records[step.id]
        try:
            deps = _dependencies(step)
            for dep in deps:
                await state.done[dep].wait()
            blocked = [d for d in deps if state.records[d].status is not StepStatus.SUCCEEDED]
            if blocked:
                await self._skip(state, step, f"dependency {blocked[0]} did not succeed")
                return
            async with _OptionalLimiter(per_run), self._limiter:
                record = await self._attempts(state, step, snapshot)
            state.records[step.id] = record
            if record.status is StepStatus.SUCCEEDED:
                state.outputs[step.id] = record.output
            elif self._on_error(state, step) == "fail":
                state.stop_reason = state.stop_reason or "failed"
                run_scope.cancel()
            else:
                state.failed_under_continue = True
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                await self._interrupted(state, step)
            raise
        finally:
            state.done[step.id].set()
            if state.records[step.id].status not in (StepStatus.PENDING, StepStatus.RUNNING):
                state.finished += 1
                with anyio.CancelScope(shield=True):
                    await notify.say(state.finished, f"last: {step.id} {state.records[step.id].status.value}")
            structlog.contextvars.unbind_contextvars("step_id")

    async def _attempts(self, state: _RunState, step: Step, snapshot: CatalogSnapshot) -> StepRecord:
        """Try the step up to ``retry.attempts`` times; returns its final record (already stored)."""
        record = state.records[step.id]
        tool = _lookup(snapshot, step.tool)
        server, _, name = step.tool.partition("/")
        timeout = self._timeout(state, step, server)
        try:
            arguments = substitute(step.arguments, state.outputs, state.request.inputs)
        except ConductorError as exc:
            return await self._store_finish(
                record, StepStatus.FAILED, _error(exc, server, name), started=time.perf_counter()
            )
        tries = record.attempts  # across resumes, for the record
        this_run = 0  # the retry budget is per execution: a resumed step gets its full budget again
        while True:
            tries += 1
            this_run += 1
            started_at = now_iso()
            record = record.model_copy(
                update={
                    "status": StepStatus.RUNNING,
                    "attempts": tries,
                    "arguments": arguments,
                    "started_at": started_at,
                    "finished_at": None,
                    "error": None,
                }
            )
            state.records[step.id] = record
            await self._store.step_started(state.run_id, step.id, arguments, started_at, tries)
            log.info("chain.step_started", tool=step.tool, attempt=tries)
            t0 = time.perf_counter()
            try:
                result = await self._pool.call_tool(server, name, arguments, timeout_s=timeout)
            except DownstreamError as exc:
                elapsed = (time.perf_counter() - t0) * 1000
                timed_out = isinstance(exc, CallTimeoutError)
                self._metrics.record(ToolId(step.tool), ok=False, duration_ms=elapsed, timed_out=timed_out)
                state.touched_tools.add(ToolId(step.tool))
                if should_retry(step.retry, tool, exc.kind, this_run):
                    delay = backoff_delay(step.retry, this_run, self._rand)
                    log.info("chain.step_retry_scheduled", kind=exc.kind, attempt=tries, delay_s=round(delay, 3))
                    await self._sleep(delay)
                    continue
                status = StepStatus.TIMEOUT if timed_out else StepStatus.FAILED
                log.warning("chain.step_failed", kind=exc.kind, error=exc.message, attempts=tries)
                return await self._store_finish(record, status, _error(exc, server, name), started=t0)
            elapsed = (time.perf_counter() - t0) * 1000
            self._metrics.record(ToolId(step.tool), ok=True, duration_ms=elapsed)
            state.touched_tools.add(ToolId(step.tool))
            return await self._store_finish(record, StepStatus.SUCCEEDED, None, started=t0, output=step_value(result))

    async def _store_finish(
        self,
        record: StepRecord,
        status: StepStatus,
        error: StepError | None,
        *,
        started: float,
        output: Any = None,
    ) -> StepRecord:
        done = record.model_copy(
            update={
                "status": status,
                "error": error,
                "finished_at": now_iso(),
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                "output": output,
                "has_output": status is StepStatus.SUCCEEDED,
            }
        )
        await self._store.step_finished(done)
        log.info("chain.step_finished", status=status.value, duration_ms=done.duration_ms)
        return done

    async def _skip(self, state: _RunState, step: Step, why: str) -> None:
        record = state.records[step.id].model_copy(
            update={
                "status": StepStatus.SKIPPED,
                "error": StepError(kind="skipped", message=why),
                "finished_at": now_iso(),
            }
        )
        state.records[step.id] = record
        await self._store.step_finished(record)
        log.info("chain.step_skipped", reason=why)

    async def _interrupted(self, state: _RunState, step: Step) -> None:
        """Record a step that the run's cancellation stopped (deadline, fail-fast, or the host)."""
        record = state.records[step.id]
        if record.status in (StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.TIMEOUT, StepStatus.SKIPPED):
            return
        if record.status is not StepStatus.RUNNING:
            await self._skip(state, step, "the run stopped before this step started")
            return
        deadline_passed = state.deadline_at is not None and anyio.current_time() >= state.deadline_at
        if state.stop_reason == "timed_out" or (state.stop_reason is None and deadline_passed):
            status, error = (
                StepStatus.TIMEOUT,
                StepError(kind="timeout", message="the chain's deadline passed", retryable=True),
            )
        else:
            status, error = StepStatus.CANCELLED, StepError(kind="cancelled", message="the run was cancelled")
        done = record.model_copy(update={"status": status, "error": error, "finished_at": now_iso()})
        state.records[step.id] = done
        await self._store.step_finished(done)

    # -- run bookkeeping -----------------------------------------------------------------------------------
    async def _prepare(self, request: RunRequest) -> _RunState:
        plan = request.plan
        if request.resume and request.options.run_id:
            run_id = request.options.run_id
            stored = {s.step_id: s for s in await self._store.get_steps(run_id)}
            records: dict[str, StepRecord] = {}
            for step in plan.steps:
                old = stored.get(step.id)
                if old is not None and old.status is StepStatus.SUCCEEDED:
                    records[step.id] = old
                else:
                    records[step.id] = StepRecord(
                        run_id=run_id, step_id=step.id, tool=step.tool, attempts=old.attempts if old else 0
                    )
            await self._store.set_run_status(run_id, RunStatus.RUNNING, owner_pid=os.getpid())
        else:
            run_id = request.options.run_id or new_run_id()
            records = {str(s.id): StepRecord(run_id=run_id, step_id=s.id, tool=s.tool) for s in plan.steps}
            run = RunRecord(
                run_id=run_id,
                plan_id=request.plan_id,
                status=RunStatus.RUNNING,
                inputs=dict(request.inputs),
                options=_public_options(request.options),
                outputs=list(plan.outputs or ()),  # the planner resolves the default (the sinks)
                started_at=now_iso(),
                owner_pid=os.getpid(),
            )
            await self._store.create_run(run, list(records.values()))
        done: dict[str, anyio.Event] = {s.id: anyio.Event() for s in plan.steps}
        outputs: dict[str, Any] = {}
        finished = 0
        for sid, rec in records.items():
            if rec.status is StepStatus.SUCCEEDED:
                outputs[sid] = rec.output
                done[sid].set()
                finished += 1
        return _RunState(run_id=run_id, request=request, records=records, outputs=outputs, done=done, finished=finished)

    async def _finish(self, state: _RunState, status: RunStatus, duration_ms: float) -> None:
        # Steps that never got a task (a resumed run's pending ones stay as they are) are stored already;
        # steps still pending because the run stopped early are marked skipped.
        for step in state.request.plan.steps:
            if state.records[step.id].status is StepStatus.PENDING:
                await self._skip(state, step, "the run stopped before this step started")
        await self._store.finish_run(state.run_id, status, now_iso(), duration_ms)
        if state.touched_tools:
            items = {t: m for t in state.touched_tools if (m := self._metrics.get(t)) is not None}
            await self._store.save_metrics(items)
        log.info("chain.run_finished", status=status.value, duration_ms=duration_ms)

    def _timeout(self, state: _RunState, step: Step, server: str) -> float:
        if step.timeout_s is not None:
            return step.timeout_s
        if state.request.options.default_step_timeout_s is not None:
            return state.request.options.default_step_timeout_s
        if self._default_step_timeout_s is not None:
            return self._default_step_timeout_s
        try:
            return self._pool.connection(server).call_timeout_s
        except ConductorError:
            return DEFAULT_STEP_TIMEOUT_S

    def _on_error(self, state: _RunState, step: Step) -> str:
        return step.on_error or state.request.options.on_error or "fail"


class _Progress:
    """Progress notifications (``k/n steps, last: step status``); a host that asked for none gets none."""

    def __init__(self, send: ProgressFn | None, total: int) -> None:
        self._send = send
        self._total = total

    async def say(self, done: int, message: str) -> None:
        if self._send is None:
            return
        try:
            await self._send(done, self._total, f"{done}/{self._total} steps, {message}")
        except Exception as exc:  # a host that went away must not fail the run
            log.debug("chain.progress_failed", error=str(exc))


def _run_status(state: _RunState) -> RunStatus:
    if state.stop_reason == "timed_out":
        return RunStatus.TIMED_OUT
    if state.stop_reason == "failed":
        return RunStatus.FAILED
    statuses = [r.status for r in state.records.values()]
    if state.failed_under_continue:
        return RunStatus.PARTIAL if StepStatus.SUCCEEDED in statuses else RunStatus.FAILED
    return RunStatus.SUCCEEDED


def _dependencies(step: Step) -> tuple[str, ...]:
    """A planned step's ``depends_on`` holds all its dependencies (the planner adds the referenced steps)."""
    return step.depends_on


def _lookup(snapshot: CatalogSnapshot, tool_id: str) -> ToolInfo | None:
    return snapshot.tools.get(ToolId(tool_id))


def _error(exc: ConductorError, server: str, tool: str) -> StepError:
    d = exc.describe()
    return StepError(
        kind=d["kind"],
        message=d["message"],
        retryable=bool(d["retryable"]),
        server=d.get("server") or server,
        tool=d.get("tool") or tool,
    )


def _public_options(options: RunOptions) -> dict[str, Any]:
    return {
        k: v
        for k, v in {
            "max_concurrency": options.max_concurrency,
            "timeout_s": options.timeout_s,
            "default_step_timeout_s": options.default_step_timeout_s,
            "on_error": options.on_error,
        }.items()
        if v is not None
    }


class _OptionalLimiter:
    """``async with`` a limiter that may be None."""

    def __init__(self, limiter: anyio.CapacityLimiter | None) -> None:
        self._limiter = limiter

    async def __aenter__(self) -> None:
        if self._limiter is not None:
            await self._limiter.acquire()

    async def __aexit__(self, *exc: object) -> None:
        if self._limiter is not None:
            self._limiter.release()
