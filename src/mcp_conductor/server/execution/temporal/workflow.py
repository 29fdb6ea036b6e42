"""``RunPlan``: the workflow that interprets a validated plan (its input) with the local engine's semantics.

Scheduling is dependency-driven as in ``executor``: a step starts as soon as its last dependency has ended;
``when``, ``foreach`` lists and data steps are evaluated here (CEL evaluation is deterministic), each tool call is
one activity (``activities.call_tool``) with a start-to-close timeout (the step's timeout plus a grace) and a
heartbeat timeout, so a lost worker is noticed within seconds.

Retries. A failed call (the activity returns the failure as a value) gets another try by the local engine's
rules (``retry.on`` kinds, else transient kinds for read-only or idempotent tools), after a workflow timer with
the same capped, jittered backoff: Temporal's server-side retries have a one second floor and cannot tell a
failed call from a lost worker. Temporal's own retry policy covers only the lost worker: a read-only or
idempotent call (or one whose step allows it) is re-run up to ``INTERRUPTED_RERUNS`` times; any other call that
was in flight ends ``unknown`` (it may or may not have happened) and is not re-run.

Determinism: no clock, randomness or I/O but the SDK's (``workflow.now``, ``workflow.random``); asyncio is the
SDK's deterministic loop here (anyio does not run inside workflows).
"""

from __future__ import annotations

import asyncio  # noqa: TID251 - Temporal workflows run on the SDK's own deterministic asyncio loop
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, CancelledError
from temporalio.exceptions import TimeoutError as ActivityTimeoutError

with workflow.unsafe.imports_passed_through():
    from mcp_conductor.errors import ConductorError
    from mcp_conductor.server.execution.interrupted import UNKNOWN_OUTCOME, UNKNOWN_RUN_MESSAGE, unknown_message
    from mcp_conductor.server.execution.temporal.protocol import (
        CALL_ACTIVITY,
        EVALUATE_ACTIVITY,
        INTERRUPTED_RERUNS,
        PROGRESS_QUERY,
        WORKFLOW,
        CallInput,
        CallResult,
        EvaluateInput,
        EvaluateResult,
        ItemState,
        Progress,
        RunInput,
        RunResult,
        StepSpec,
        StepState,
        is_blob,
    )
    from mcp_conductor.server.planning.expressions import compile_expression

GRACE_S = 5.0  # the downstream call's own timeout fires first; Temporal's is the backstop
_ENDED = frozenset({"succeeded", "failed", "timeout", "skipped", "cancelled", "unknown"})
_DONE_ITEM = frozenset({"succeeded", "failed", "timeout", "unknown"})
_AT_START = frozenset({"succeeded", "unknown"})  # a resumed run's steps that do not run again
_IN_FLIGHT = frozenset({"running", "interrupted", "unknown"})  # stored so, the call may have happened


class _ExpressionFailed(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error["message"])
        self.error = error


@workflow.defn(name=WORKFLOW)
class RunPlan:
    def __init__(self) -> None:
        self._states: dict[str, StepState] = {}
        self._seq = 0
        self._finished = 0
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._outputs: dict[str, Any] = {}
        self._stop: str | None = None  # failed, timed_out, cancelled
        self._continue_failed = False
        self._internal: dict[str, Any] | None = None
        self._unknown: list[str] = []  # steps whose interrupted call was not made again
        self._cancelled: set[asyncio.Task[Any]] = set()  # tasks this workflow cancelled (else: a worker gave up)
        self._slots: asyncio.Semaphore | None = None

    @workflow.query(name=PROGRESS_QUERY)
    def progress(self, since: int) -> Progress:
        changed = [s for s in self._states.values() if s.seq > since]
        return Progress(self._seq, self._finished, len(self._states), changed)

    @workflow.run
    async def run(self, spec: RunInput) -> RunResult:
        self._spec = spec
        self._steps = {s.id: s for s in spec.steps}
        earlier = {s.step_id: s for s in spec.earlier}
        self._waiting: dict[str, int] = {}
        self._dependents: dict[str, list[str]] = {s.id: [] for s in spec.steps}
        for step in spec.steps:
            old = earlier.get(step.id)
            if old is not None and old.status == "succeeded":
                self._states[step.id] = old
                self._outputs[step.id] = old.output
                self._finished += 1
            elif old is not None and old.status == "unknown":  # the engine applied the rule: not called again
                self._states[step.id] = old
                self._finished += 1
                self._settle(step, old)
            else:
                attempts, items = (old.attempts, old.items) if old else (0, None)
                self._states[step.id] = StepState(step.id, step.target, attempts=attempts, items=items)
        for step in spec.steps:
            if self._states[step.id].status in _AT_START:
                continue
            # A planned step's depends_on holds all its dependencies (the planner adds the referenced steps).
            open_deps = [d for d in step.depends_on if self._states[d].status not in _AT_START]
            self._waiting[step.id] = len(open_deps)
            for dep in open_deps:
                self._dependents[dep].append(step.id)
        if spec.max_concurrency:
            self._slots = asyncio.Semaphore(spec.max_concurrency)
        for step_id in [sid for sid, n in self._waiting.items() if n == 0 and self._stop is None]:
            self._launch(step_id)
        try:
            await workflow.wait_condition(lambda: not self._tasks, timeout=spec.timeout_s)
        except TimeoutError:
            self._stop = "timed_out"
            await self._stop_all()
        except asyncio.CancelledError:
            self._stop = self._stop or "cancelled"
            await self._stop_all()
        for state in self._states.values():
            if state.status == "pending":
                self._skip(state, "the run stopped before this step started")
        defaults = {s.id: s.default for s in spec.steps if s.has_default and self._states[s.id].status != "succeeded"}
        return RunResult(self._status(), [self._states[s.id] for s in spec.steps], self._run_error(), defaults)

    # -- scheduling ---------------------------------------------------------------------------------------
    def _launch(self, step_id: str) -> None:
        self._tasks[step_id] = asyncio.create_task(self._step(step_id))

    async def _stop_all(self) -> None:
        for task in list(self._tasks.values()):
            self._cancel(task)
        await workflow.wait_condition(lambda: not self._tasks)

    def _cancel_others(self, step_id: str) -> None:
        for other, task in list(self._tasks.items()):
            if other != step_id:
                self._cancel(task)

    def _cancel(self, task: asyncio.Task[Any]) -> None:
        self._cancelled.add(task)
        task.cancel()

    def _status(self) -> str:
        if self._stop is not None:
            return self._stop
        if self._continue_failed:
            return "partial" if any(s.status == "succeeded" for s in self._states.values()) else "failed"
        return "succeeded"

    def _run_error(self) -> dict[str, Any] | None:
        if self._internal is not None or not self._unknown:
            return self._internal
        return {"kind": UNKNOWN_OUTCOME, "message": f"step {', '.join(self._unknown)}: {UNKNOWN_RUN_MESSAGE}"}

    def _touch(self, state: StepState) -> None:
        self._seq += 1
        state.seq = self._seq

    def _now(self) -> str:
        return workflow.now().isoformat(timespec="milliseconds")

    # -- one step -----------------------------------------------------------------------------------------
    async def _step(self, step_id: str) -> None:
        step, state = self._steps[step_id], self._states[step_id]
        try:
            blocked = [d for d in step.depends_on if d not in self._outputs]  # a default stands in for a value
            if blocked:
                self._skip(state, f"dependency {blocked[0]} did not succeed")
            elif step.when is not None and not await self._condition(step, state):
                pass
            elif step.foreach is not None:
                await self._foreach(step, state)
            elif step.expr is not None:
                await self._data(step, state)
            else:
                await self._call(step, state, state)
            self._settle(step, state)
        except asyncio.CancelledError:
            self._interrupted(state)
        except Exception as exc:  # the interpreter's own error boundary: fail the run, never the workflow task
            message = f"internal error: {type(exc).__name__}: {exc}"[:500]
            workflow.logger.exception("mcp-conductor internal error in step %s", step_id)
            self._internal = self._internal or {"kind": "internal_error", "message": message}
            if state.status not in _ENDED:
                self._end(state, "failed", {"kind": "internal_error", "message": message})
            self._stop = "failed"
            self._cancel_others(step_id)
        finally:
            if state.status in _ENDED:
                self._finished += 1
                self._touch(state)
            if self._stop is None:
                for dependent in self._dependents[step_id]:
                    self._waiting[dependent] -= 1
                    if self._waiting[dependent] == 0:
                        self._launch(dependent)
            del self._tasks[step_id]

    def _settle(self, step: StepSpec, state: StepState) -> None:
        """After a step ended: its value for later steps (its ``default`` if it has none), and the policy."""
        if state.status == "succeeded":
            self._outputs[step.id] = state.output
            return
        if state.status == "unknown":
            self._unknown.append(step.id)
        if state.status != "skipped":
            if step.on_error == "fail":
                self._stop = self._stop or "failed"
                self._cancel_others(step.id)
                return
            self._continue_failed = True
        if step.has_default:
            self._outputs[step.id] = step.default

    def _end(
        self, target: StepState | ItemState, status: str, error: dict[str, Any] | None, output: Any = None
    ) -> None:
        target.status = status
        target.error = error
        target.finished_at = self._now()
        target.output = output
        target.has_output = status == "succeeded"
        if isinstance(target, StepState):
            self._touch(target)

    def _skip(self, state: StepState, why: str) -> None:
        self._end(state, "skipped", {"kind": "skipped", "message": why})

    def _interrupted(self, state: StepState) -> None:
        if state.status in _ENDED:
            return
        if state.status != "running":
            self._skip(state, "the run stopped before this step started")
        elif self._stop == "timed_out":
            self._end(
                state, "timeout", {"kind": "timeout", "message": "the chain's deadline passed", "retryable": True}
            )
        else:
            self._end(state, "cancelled", {"kind": "cancelled", "message": "the run was cancelled"})

    def _started(self, target: StepState | ItemState) -> None:
        target.status = "running"
        target.attempts += 1
        target.started_at = self._now()
        target.finished_at = None
        target.error = None
        if isinstance(target, StepState):
            self._touch(target)

    def _duration_ms(self, started_at: str | None) -> float | None:
        if started_at is None:
            return None
        return round((workflow.now() - datetime.fromisoformat(started_at)).total_seconds() * 1000, 2)

    # -- expressions (in the workflow; through an activity when a value lives in a blob) ------------------
    async def _evaluate(self, source: str, *, loop: bool = False, item: Any = None, index: int = 0) -> Any:
        if is_blob(item) or any(is_blob(v) for v in self._outputs.values()):
            result = await workflow.execute_local_activity(
                EVALUATE_ACTIVITY,
                EvaluateInput(source, dict(self._outputs), self._spec.inputs, loop, item, index),
                result_type=EvaluateResult,
                start_to_close_timeout=timedelta(seconds=60),
            )
            if not result.ok:
                raise _ExpressionFailed(result.error or {"kind": "expression_error", "message": source})
            return result.value
        try:
            return compile_expression(source, loop=loop).evaluate(self._outputs, self._spec.inputs, item, index)
        except ConductorError as exc:
            raise _ExpressionFailed({"kind": exc.kind, "message": exc.summary()}) from exc

    async def _condition(self, step: StepSpec, state: StepState) -> bool:
        assert step.when is not None
        try:
            value = await self._evaluate(step.when)
            if not isinstance(value, bool):
                raise _ExpressionFailed(
                    {
                        "kind": "expression_error",
                        "message": f"when {step.when!r} gave {type(value).__name__}, not true or false",
                    }
                )
        except _ExpressionFailed as exc:
            self._end(state, "failed", {"kind": "expression_error", "message": exc.error["message"][:1000]})
            return False
        if not value:
            self._end(state, "skipped", {"kind": "condition_false", "message": f"when {step.when!r} was false"})
        return value

    async def _data(self, step: StepSpec, state: StepState) -> None:
        assert step.expr is not None
        self._started(state)
        try:
            value = await self._evaluate(step.expr)
        except _ExpressionFailed as exc:
            self._end(state, "failed", exc.error)
        else:
            self._end(state, "succeeded", None, value)
        state.duration_ms = self._duration_ms(state.started_at)

    async def _foreach(self, step: StepSpec, state: StepState) -> None:
        assert step.foreach is not None
        try:
            elements = await self._evaluate(step.foreach)
            if not isinstance(elements, list):
                message = f"foreach {step.foreach!r} gave {type(elements).__name__}, not a list"
                raise _ExpressionFailed({"kind": "expression_error", "message": message})
        except _ExpressionFailed as exc:
            self._end(state, "failed", {"kind": "expression_error", "message": exc.error["message"][:1000]})
            return
        if len(elements) > step.max_items:
            message = f"foreach gave {len(elements)} items; max_items is {step.max_items}"
            self._end(state, "failed", {"kind": "limit_exceeded", "message": message})
            return
        self._started(state)
        earlier = {item.index: item for item in state.items or ()}
        items: list[ItemState] = []
        for index, element in enumerate(elements):
            old = earlier.get(index)
            if old is not None and old.status == "succeeded" and old.item == element:
                items.append(old)
            elif old is not None and old.status in _IN_FLIGHT and not step.retry.rerun_interrupted:
                message = unknown_message(step.tool or "")
                old.status, old.error, old.output, old.has_output = (
                    "unknown",
                    {"kind": UNKNOWN_OUTCOME, "message": message},
                    None,
                    False,
                )
                items.append(old)
            else:
                items.append(ItemState(index, element, attempts=old.attempts if old else 0))
        state.items = items
        todo = [item for item in items if item.status not in ("succeeded", "unknown")]
        if any(item.status == "unknown" for item in items) and step.on_item_error == "fail":
            todo = []  # under fail, an unknown item fails the step: nothing else runs
        if step.expr is not None:
            for item in todo:
                self._started(item)
                try:
                    value = await self._evaluate(step.expr, loop=True, item=item.item, index=item.index)
                except _ExpressionFailed as exc:
                    self._end(item, "failed", exc.error)
                else:
                    self._end(item, "succeeded", None, value)
                item.duration_ms = self._duration_ms(item.started_at)
                self._touch(state)
        else:
            await self._items(step, state, todo)
        self._foreach_outcome(step, state)
        state.duration_ms = self._duration_ms(state.started_at)

    async def _items(self, step: StepSpec, state: StepState, todo: list[ItemState]) -> None:
        slots = asyncio.Semaphore(step.max_concurrency)
        tasks: list[asyncio.Task[None]] = []

        async def one(item: ItemState) -> None:
            try:
                async with slots:
                    await self._call(step, item, state, item)
                if item.status != "succeeded" and step.on_item_error == "fail":
                    for task in tasks:
                        if task is not asyncio.current_task():
                            self._cancel(task)
            except asyncio.CancelledError:
                if item.status not in _DONE_ITEM:
                    error = {"kind": "cancelled", "message": "another item failed, or the run stopped"}
                    self._end(item, "cancelled", error)
                    self._touch(state)

        tasks.extend(asyncio.create_task(one(item)) for item in todo)
        try:
            await asyncio.gather(*tasks)
        except asyncio.CancelledError:
            for task in tasks:
                self._cancel(task)
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    def _foreach_outcome(self, step: StepSpec, state: StepState) -> None:
        items = state.items or []
        failed = [item for item in items if item.status != "succeeded"]
        if failed and step.on_item_error == "fail":
            first = next((item for item in failed if item.status != "cancelled"), failed[0])
            error = dict(first.error or {"kind": "item_failed", "message": "an item did not succeed"})
            error["message"] = f"item {first.index} of {len(items)}: {error['message']}"[:1000]
            self._end(state, "failed", error)
            return
        values = [item.output if item.status == "succeeded" else None for item in items]
        self._end(state, "succeeded", None, values)

    # -- one downstream call (a step's, or a foreach item's) ---------------------------------------------
    async def _call(
        self, step: StepSpec, target: StepState | ItemState, state: StepState, item: ItemState | None = None
    ) -> None:
        assert step.tool is not None
        referenced = {d: self._outputs[d] for d in step.depends_on if d in self._outputs}
        this_run = 0
        while True:
            this_run += 1
            self._started(target)
            self._touch(state)
            call = CallInput(
                run_id=self._spec.run_id,
                step_id=step.id,
                tool=step.tool,
                arguments=step.arguments,
                steps=referenced,
                inputs=self._spec.inputs,
                timeout_s=step.timeout_s,
                heartbeat_s=self._spec.heartbeat_s,
                item=item.item if item is not None else None,
                index=item.index if item is not None else None,
            )
            try:
                if self._slots is not None:
                    async with self._slots:
                        result = await self._activity(step, call)
                else:
                    result = await self._activity(step, call)
            except ActivityError as exc:
                if isinstance(exc.cause, CancelledError) and asyncio.current_task() in self._cancelled:
                    raise asyncio.CancelledError from exc  # this workflow cancelled the call (fail-fast, deadline)
                self._lost(step, target, exc)
                self._touch(state)
                return
            target.attempts += result.attempt - 1  # Temporal re-ran it after a lost worker
            target.arguments = result.arguments
            target.started_at = result.started_at or target.started_at
            target.duration_ms = result.duration_ms
            if result.ok:
                self._end(target, "succeeded", None, result.output)
                self._touch(state)
                return
            error = result.error or {"kind": "internal_error", "message": "the call failed"}
            if this_run < step.retry.attempts and error.get("kind") in step.retry.kinds:
                ceiling = min(step.retry.max_backoff_s, step.retry.backoff_s * 2.0 ** (this_run - 1))
                delay = workflow.random().random() * ceiling
                if delay > 0:
                    await workflow.sleep(delay)
                continue
            self._end(target, result.status, error)
            self._touch(state)
            return

    async def _activity(self, step: StepSpec, call: CallInput) -> CallResult:
        reruns = INTERRUPTED_RERUNS if step.retry.rerun_interrupted else 1
        result: CallResult = await workflow.execute_activity(
            CALL_ACTIVITY,
            call,
            result_type=CallResult,
            start_to_close_timeout=timedelta(seconds=step.timeout_s + GRACE_S),
            heartbeat_timeout=timedelta(seconds=self._spec.heartbeat_s),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=0.2), maximum_attempts=reruns, non_retryable_error_types=["internal"]
            ),
        )
        return result

    def _lost(self, step: StepSpec, target: StepState | ItemState, exc: ActivityError) -> None:
        """The activity ended without a result: its worker was lost (heartbeat or start-to-close timeout), or it
        gave the call up (a worker shutting down cancels its calls; the activity itself returns every failure of
        the call as a value). Either way the call may or may not have happened."""
        server, _, tool = (step.tool or "").partition("/")
        cause = exc.cause if exc.cause is not None else exc
        why = "was lost" if isinstance(cause, ActivityTimeoutError) else f"gave it up ({type(cause).__name__}: {cause})"
        if not step.retry.rerun_interrupted:
            message = (
                f"the worker running this call of {step.tool} {why}; the call may or may not have happened, and "
                "it is not run again because the tool is not read-only or idempotent "
                "(retry.on with unknown, or options.rerun_unknown, allows it)"
            )[:1000]
            error: dict[str, Any] = {"kind": UNKNOWN_OUTCOME, "message": message, "server": server, "tool": tool}
            self._end(target, "unknown", error)
            return
        message = f"the worker running this call of {step.tool} {why}, {INTERRUPTED_RERUNS} times"[:1000]
        error = {"kind": "connection_lost", "message": message, "retryable": True, "server": server, "tool": tool}
        self._end(target, "failed", error)
