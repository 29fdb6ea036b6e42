"""The ``RunPlan`` workflow's downstream calls: one step's or foreach item's call, its retries, a lost worker.

Each call is one activity (``activities.call_tool``) with a start-to-close timeout (the step's timeout plus
``GRACE_S``) and a heartbeat timeout, so a lost worker is noticed within seconds. A failed call (the activity
returns the failure as a value) gets another try by the local engine's rules, after a workflow timer with the same
capped, jittered backoff. Temporal's own retry policy covers only the lost worker: a read-only or idempotent call
(or one whose step allows it) is re-run up to ``INTERRUPTED_RERUNS`` times; any other call that was in flight ends
``unknown`` and is not re-run.
"""

from __future__ import annotations

import asyncio  # noqa: TID251 - Temporal workflows run on the SDK's own deterministic asyncio loop
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, CancelledError
from temporalio.exceptions import TimeoutError as ActivityTimeoutError

with workflow.unsafe.imports_passed_through():
    from mcp_conductor.server.execution.interrupted import UNKNOWN_OUTCOME
    from mcp_conductor.server.execution.temporal.protocol import (
        CALL_ACTIVITY,
        INTERRUPTED_RERUNS,
        CallInput,
        CallResult,
        ItemState,
        StepSpec,
        StepState,
    )
    from mcp_conductor.server.execution.temporal.workflow_records import RunRecords

GRACE_S = 5.0  # the downstream call's own timeout fires first; Temporal's is the backstop


class Calls(RunRecords):
    """Makes a tool step's call (or a foreach item's) through the call activity, and records how it ended."""

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
