"""The ``RunPlan`` workflow's records: the state it shares across its parts, and each step's and item's transitions.

A step or foreach item starts (``_started``: one more attempt, its start time) and ends (``_end``: status, error,
output, end time); each change of a step bumps the run's sequence number (``_touch``), which the progress query
reads. Times come from ``workflow.now()`` only, so replay gives the same records.
"""

from __future__ import annotations

import asyncio  # noqa: TID251 - Temporal workflows run on the SDK's own deterministic asyncio loop
from datetime import datetime
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from mcp_conductor.server.execution.temporal.protocol import ItemState, RunInput, StepState

ENDED = frozenset({"succeeded", "failed", "timeout", "skipped", "cancelled", "unknown"})
DONE_ITEM = frozenset({"succeeded", "failed", "timeout", "unknown"})


class RunRecords:
    """What the workflow's parts share; ``RunPlan`` sets it up. Workflow-side only (deterministic)."""

    _spec: RunInput
    _outputs: dict[str, Any]  # each ended step's value for later steps
    _seq: int
    _cancelled: set[asyncio.Task[Any]]  # tasks this workflow cancelled (else: a worker gave up)
    _slots: asyncio.Semaphore | None  # the run's max_concurrency

    def _cancel(self, task: asyncio.Task[Any]) -> None:
        self._cancelled.add(task)
        task.cancel()

    def _touch(self, state: StepState) -> None:
        self._seq += 1
        state.seq = self._seq

    def _now(self) -> str:
        return workflow.now().isoformat(timespec="milliseconds")

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
