"""``RunPlan``: the workflow that interprets a validated plan (its input) with the local engine's semantics.

This module owns the run: scheduling, the run's policy (``on_error``, defaults, the deadline, cancellation) and its
result. Scheduling is dependency-driven as in ``executor``: a step starts as soon as its last dependency has ended.
The step kinds live in the parts ``RunPlan`` is built from: ``workflow_expressions`` (``when`` and data steps),
``workflow_foreach`` (foreach steps), ``workflow_calls`` (one tool call as an activity: retries, a lost worker) and
``workflow_records`` (the shared state and each step's and item's transitions).

Determinism: no clock, randomness or I/O but the SDK's (``workflow.now``, ``workflow.random``); asyncio is the
SDK's deterministic loop here (anyio does not run inside workflows). The parts are imported passed through the
sandbox, as the rest of the package is, so they must stay free of import-time side effects.
"""

from __future__ import annotations

import asyncio  # noqa: TID251 - Temporal workflows run on the SDK's own deterministic asyncio loop
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from mcp_conductor.server.execution.interrupted import UNKNOWN_OUTCOME, UNKNOWN_RUN_MESSAGE
    from mcp_conductor.server.execution.temporal.protocol import (
        PROGRESS_QUERY,
        WORKFLOW,
        Progress,
        RunInput,
        RunResult,
        StepSpec,
        StepState,
    )
    from mcp_conductor.server.execution.temporal.workflow_foreach import Foreach
    from mcp_conductor.server.execution.temporal.workflow_records import ENDED

_AT_START = frozenset({"succeeded", "unknown"})  # a resumed run's steps that do not run again


@workflow.defn(name=WORKFLOW)
class RunPlan(Foreach):
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
            if state.status not in ENDED:
                self._end(state, "failed", {"kind": "internal_error", "message": message})
            self._stop = "failed"
            self._cancel_others(step_id)
        finally:
            if state.status in ENDED:
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

    def _interrupted(self, state: StepState) -> None:
        if state.status in ENDED:
            return
        if state.status != "running":
            self._skip(state, "the run stopped before this step started")
        elif self._stop == "timed_out":
            self._end(
                state, "timeout", {"kind": "timeout", "message": "the chain's deadline passed", "retryable": True}
            )
        else:
            self._end(state, "cancelled", {"kind": "cancelled", "message": "the run was cancelled"})
