"""Run a validated plan against the pool: dependency-driven, parallel, persistent, resumable.

Scheduling: every step counts its dependencies that have not ended. The steps with none start at once, each in
a task of its own. When a step ends, the task that ran it releases its dependents, runs one that became ready
itself and starts a task for each other one. So a step starts the moment its last input exists (no level
barriers), and a chain runs in one task, without a task or a wake-up per step. A global limiter (shared by all
runs) and an optional per-run limiter bound the parallelism; the pool's per-server limiters hold as well.

Persistence: the executor tells the run's ``RunJournal`` (the store) each start and end, and calls its
``sync()`` before it reports progress, waits for a slot, or leaves a task; the journal decides when what is
committed (see ``store.RunJournal``). So a killed server loses nothing that finished, and ``resume`` re-runs
only what did not succeed.

Failure policy per step: ``on_error="fail"`` cancels running steps and skips the rest (run ``failed``);
``"continue"`` skips only the failed step's dependents while other branches go on (run ``partial``).

The error boundary: whatever goes wrong in a step's bookkeeping (a store write that fails, a bug, an exception a
downstream library should not have raised) fails that step with kind ``internal_error`` and a one-line message
(the traceback goes to the log), and fails the run; the run still ends with a normal result.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Awaitable, Callable

import anyio
import structlog
from pydantic import MISSING

from mcp_conductor.client_pool.pool import ClientPool
from mcp_conductor.errors import ConductorError
from mcp_conductor.server.discovery.metrics import MetricsRegistry
from mcp_conductor.server.execution.calls import Caller, Sleep, end
from mcp_conductor.server.execution.engine import ProgressFn, RunOutcome, RunRequest, new_run_id
from mcp_conductor.server.execution.foreach import outcome, prepare_items, run_items
from mcp_conductor.server.execution.interrupted import Interrupted
from mcp_conductor.server.execution.run_state import Progress, RunState, ended_unknown, interrupted_rule, step_error
from mcp_conductor.server.planning.expressions import compile_expression
from mcp_conductor.server.planning.models import PlannedStep
from mcp_conductor.server.planning.references import substitute
from mcp_conductor.server.store.records import RunRecord, RunStatus, StepError, StepRun, StepStatus, now_iso
from mcp_conductor.server.store.store import RunStore

log = structlog.get_logger(__name__)

DEFAULT_MAX_CONCURRENCY = 32
DEFAULT_STEP_TIMEOUT_S = 60.0

# Stored so, a step's call may have happened (running: its server died and was not marked yet).
_IN_FLIGHT = frozenset({StepStatus.RUNNING, StepStatus.INTERRUPTED, StepStatus.UNKNOWN})
_ENDED = frozenset(
    {StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.TIMEOUT, StepStatus.SKIPPED, StepStatus.UNKNOWN}
)


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
        self._caller = Caller(pool, metrics, self._limiter, sleep, rand)
        self._default_step_timeout_s = default_step_timeout_s

    async def execute(self, request: RunRequest, progress: ProgressFn | None = None) -> RunOutcome:
        """Run (or resume) ``request``; returns when the run ends. Host cancellation propagates after the run
        is recorded as ``cancelled``.

        Raises:
            StoreError: the run cannot be created in the store (nothing ran).
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
        await self._guarded(run, None, run.journal.sync)  # nothing left here: no end may wait for another task

    async def _run_step(self, run: RunState, step: PlannedStep) -> None:
        structlog.contextvars.bind_contextvars(step_id=step.id)  # this task's context: no unbinding needed
        live = run.records[step.id]
        try:
            blocked = [d for d in step.depends_on if d not in run.outputs]  # a default stands in for a value
            if blocked:
                await self._skip(run, live, f"dependency {blocked[0]} did not succeed")
            elif step.when is not MISSING and not await self._condition(run, step, live):
                pass  # skipped, or failed: the condition's evaluation recorded which
            elif step.foreach is not MISSING:
                await self._foreach(run, step, live)
            elif step.is_data:
                await self._data(run, step, live)
            else:
                await self._tool(run, step, live)
            self._settle(run, step, live)
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                await self._guarded(run, live, lambda: self._interrupted(run, live))
            raise
        except Exception as exc:
            await self._internal_error(run, live, exc)
        finally:
            if live.status not in (StepStatus.PENDING, StepStatus.RUNNING):
                run.finished += 1
                assert run.notify is not None
                if run.notify.active:
                    with anyio.CancelScope(shield=True):
                        await self._guarded(run, live, run.journal.sync)  # stored before it is announced
                        await run.notify.say(run.finished, f"last: {step.id} {live.status.value}")

    async def _tool(self, run: RunState, step: PlannedStep, live: StepRun) -> None:
        server, _, name = step.target.partition("/")
        ended = lambda: run.journal.step_ended(live)  # noqa: E731 - one line, used twice
        try:
            arguments = substitute(step.arguments, run.outputs, run.request.inputs)
        except ConductorError as exc:  # nothing was started
            await end(live, StepStatus.FAILED, step_error(exc, server, name), ended, started=None)
            return
        timeout = self._timeout(run, step, server)
        await self._caller.call(run, step, live, arguments, timeout, lambda: run.journal.step_started(live), ended)

    async def _condition(self, run: RunState, step: PlannedStep, live: StepRun) -> bool:
        """Evaluate ``when``: true runs the step; false skips it (``condition_false``); an error fails it."""
        assert isinstance(step.when, str)
        try:
            value = compile_expression(step.when).evaluate(run.outputs, run.request.inputs)
            if not isinstance(value, bool):
                raise ConductorError(f"when {step.when!r} gave {type(value).__name__}, not true or false")
        except ConductorError as exc:
            error = StepError(kind="expression_error", message=exc.summary()[:1000])
            await end(live, StepStatus.FAILED, error, lambda: run.journal.step_ended(live), started=None)
            return False
        if not value:
            live.status = StepStatus.SKIPPED
            live.error = StepError(kind="condition_false", message=f"when {step.when!r} was false")
            live.finished_at = now_iso()
            await run.journal.step_ended(live)
            log.info("chain.step_skipped", reason="condition_false")
        return value

    async def _data(self, run: RunState, step: PlannedStep, live: StepRun) -> None:
        """A data step: its expression's value, in-process, recorded like any step."""
        assert isinstance(step.expr, str)
        t0 = time.perf_counter()
        live.status = StepStatus.RUNNING
        live.attempts += 1
        live.started_at = now_iso()
        ended = lambda: run.journal.step_ended(live)  # noqa: E731 - one line, used twice
        try:
            value = compile_expression(step.expr).evaluate(run.outputs, run.request.inputs)
        except ConductorError as exc:
            await end(live, StepStatus.FAILED, StepError(kind=exc.kind, message=exc.summary()), ended, started=t0)
        else:
            await end(live, StepStatus.SUCCEEDED, None, ended, started=t0, output=value)

    async def _foreach(self, run: RunState, step: PlannedStep, live: StepRun) -> None:
        assert isinstance(step.foreach, str)
        ended = lambda: run.journal.step_ended(live)  # noqa: E731 - one line, used thrice
        try:
            elements = compile_expression(step.foreach).evaluate(run.outputs, run.request.inputs)
            if not isinstance(elements, list):
                raise ConductorError(f"foreach {step.foreach!r} gave {type(elements).__name__}, not a list")
        except ConductorError as exc:
            error = StepError(kind="expression_error", message=exc.summary()[:1000])
            await end(live, StepStatus.FAILED, error, ended, started=None)
            return
        if len(elements) > step.options.max_items:
            message = f"foreach gave {len(elements)} items; max_items is {step.options.max_items}"
            await end(live, StepStatus.FAILED, StepError(kind="limit_exceeded", message=message), ended, started=None)
            return
        t0 = time.perf_counter()
        live.status = StepStatus.RUNNING
        live.attempts += 1
        live.started_at = now_iso()
        assert run.snapshot is not None
        keep_unknown = not step.is_data and interrupted_rule(run.request, run.snapshot, step) is Interrupted.UNKNOWN
        live.items = prepare_items(live, elements, keep_unknown=keep_unknown)
        await run.journal.step_started(live)
        log.info("chain.foreach_started", items=len(elements))
        unknown = [item for item in live.items if item.status is StepStatus.UNKNOWN]
        for item in unknown:
            await run.journal.item_ended(live, item)
            log.warning("chain.item_unknown", item=item.index, tool=step.target)
        if not unknown or step.options.on_item_error == "continue":  # under fail, an unknown item fails the step
            timeout = 0.0 if step.is_data else self._timeout(run, step, step.target.partition("/")[0])
            await run_items(run, step, live, self._caller, timeout)
        status, failure, value = outcome(step, live)
        await end(live, status, failure, ended, started=t0, output=value)

    async def _guarded(self, run: RunState, live: StepRun | None, write: Callable[[], Awaitable[None]]) -> None:
        """A bookkeeping write whose failure must not escape the run: it fails the run instead."""
        try:
            await write()
        except Exception as exc:
            await self._internal_error(run, live, exc)

    async def _internal_error(self, run: RunState, live: StepRun | None, exc: Exception) -> None:
        """The error boundary (see the module docstring): record what can be recorded and stop the run."""
        text = str(exc).strip()
        message = f"internal error: {type(exc).__name__}" + (f": {text.splitlines()[0]}" if text else "")
        log.error("chain.internal_error", step_id=live.step_id if live else None, error=message, exc_info=exc)
        error = StepError(kind="internal_error", message=message[:500])
        if live is not None and live.status not in _ENDED:
            live.status = StepStatus.FAILED
            live.error = error
            live.finished_at = now_iso()
            try:
                await run.journal.step_ended(live)
            except Exception as again:  # the store itself is failing: the run's result still says why
                log.error("chain.record_failed", step_id=live.step_id, error=str(again))
        run.internal_error = run.internal_error or error
        run.stop_reason = "failed"
        if run.tg is not None:
            run.tg.cancel_scope.cancel()

    def _settle(self, run: RunState, step: PlannedStep, live: StepRun) -> None:
        """After a step ended: its value for later steps (its ``default`` if it has none), and the failure policy."""
        if live.status is StepStatus.SUCCEEDED:
            run.outputs[step.id] = live.output
            return
        if live.status is StepStatus.SKIPPED:
            if step.has_default:
                run.outputs[step.id] = step.default
        elif run.step_failed(step, live):
            assert run.tg is not None
            run.tg.cancel_scope.cancel()

    async def _skip(self, run: RunState, live: StepRun, why: str) -> None:
        live.status = StepStatus.SKIPPED
        live.error = StepError(kind="skipped", message=why)
        live.finished_at = now_iso()
        await run.journal.step_ended(live)
        log.info("chain.step_skipped", reason=why)

    async def _interrupted(self, run: RunState, live: StepRun) -> None:
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
        await run.journal.step_ended(live)

    # -- run bookkeeping -----------------------------------------------------------------------------------
    async def _prepare(self, request: RunRequest) -> RunState:
        plan = request.plan
        snapshot = self._pool.snapshot()
        unknown: list[StepRun] = []
        if request.resume and request.options.run_id:
            run_id = request.options.run_id
            stored = {s.step_id: s for s in await self._store.get_steps(run_id)}
            records: dict[str, StepRun] = {}
            for step in plan.steps:
                old = stored.get(step.id)
                if old is not None and old.status is StepStatus.SUCCEEDED:
                    records[step.id] = old
                elif (
                    old is not None
                    and old.status in _IN_FLIGHT
                    and step.foreach is MISSING  # a foreach step decides item by item (see _foreach)
                    and not step.is_data
                    and interrupted_rule(request, snapshot, step) is Interrupted.UNKNOWN
                ):
                    records[step.id] = ended_unknown(old, step.target)
                    unknown.append(records[step.id])
                else:
                    attempts, items = (old.attempts, old.items) if old else (0, None)
                    records[step.id] = StepRun(run_id, step.id, step.target, attempts=attempts, items=items)
            await self._store.set_run_status(run_id, RunStatus.RUNNING, owner_pid=os.getpid())
        else:
            run_id = request.options.run_id or new_run_id()
            records = {s.id: StepRun(run_id, s.id, s.target) for s in plan.steps}
            record = RunRecord(
                run_id=run_id,
                plan_id=request.plan_id,
                status=RunStatus.RUNNING,
                inputs=dict(request.inputs),
                options=request.options.stored(),
                outputs=list(plan.outputs or ()),  # the planner resolves the default (the sinks)
                started_at=now_iso(),
                owner_pid=os.getpid(),
            )
            await self._store.create_run(record, list(records.values()))
        run = RunState.start(request, records, self._store.journal(run_id))
        run.snapshot = snapshot
        for live in unknown:  # recorded before anything else runs
            await run.journal.step_ended(live)
            log.warning("chain.step_unknown", step_id=live.step_id, tool=live.tool)
        return run

    async def _finish(self, run: RunState, status: RunStatus, duration_ms: float) -> None:
        """Record the run's end; if the store fails here, the result is built from memory and says why."""
        try:
            await run.journal.sync()
            # Steps still pending because the run stopped early (or never became ready) are marked skipped.
            for live in run.records.values():
                if live.status is StepStatus.PENDING:
                    await self._skip(run, live, "the run stopped before this step started")
        except Exception as exc:
            await self._internal_error(run, None, exc)
        if run.internal_error is not None:
            status = RunStatus.FAILED
        metrics = {t: m for t in run.touched_tools if (m := self._metrics.get(t)) is not None}
        finished_at = now_iso()
        try:
            run.record = await self._store.finish_run(
                run.run_id, status, finished_at, duration_ms, run.run_error(), metrics=metrics
            )
        except Exception as exc:
            await self._internal_error(run, None, exc)
            run.record = RunRecord(
                run_id=run.run_id,
                plan_id=run.request.plan_id,
                status=RunStatus.FAILED,
                inputs=dict(run.request.inputs),
                options=run.request.options.stored(),
                outputs=list(run.request.plan.outputs or ()),
                started_at=finished_at,
                finished_at=finished_at,
                duration_ms=duration_ms,
                owner_pid=os.getpid(),
                error=run.run_error(),
            )
        log.info("chain.run_finished", status=run.record.status.value, duration_ms=duration_ms)

    def _timeout(self, run: RunState, step: PlannedStep, server: str) -> float:
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
