"""Between the run store's records (``StepRun``, ``ItemRun``) and the workflow's plain states, and from a
validated plan to the workflow's input."""

from __future__ import annotations

from typing import Any

from pydantic import MISSING

from mcp_conductor.client_pool.catalog import CatalogSnapshot, ToolId
from mcp_conductor.server.execution.engine import RunRequest
from mcp_conductor.server.execution.interrupted import Interrupted, interrupted_rule
from mcp_conductor.server.execution.temporal.blobs import BlobStore
from mcp_conductor.server.execution.temporal.protocol import ItemState, RetrySpec, RunInput, StepSpec, StepState
from mcp_conductor.server.planning.models import PlannedStep
from mcp_conductor.server.store.records import ItemRun, StepError, StepRun, StepStatus


def step_spec(step: PlannedStep, snapshot: CatalogSnapshot, timeout_s: float, request: RunRequest) -> StepSpec:
    """One step as the workflow reads it: the tool's safety and the step's timeout resolved here."""
    tool = None if step.is_data else snapshot.tools.get(ToolId(step.target))
    safe = tool is not None and (tool.read_only or tool.idempotent)
    rerun = step.is_data or interrupted_rule(step, snapshot, request.options.rerun_unknown) is Interrupted.RERUN
    return StepSpec(
        id=step.id,
        tool=None if step.is_data else step.target,
        expr=step.expr if step.expr is not MISSING else None,
        arguments=dict(step.arguments),
        depends_on=list(step.depends_on),
        when=step.when if step.when is not MISSING else None,
        foreach=step.foreach if step.foreach is not MISSING else None,
        max_concurrency=step.options.max_concurrency,
        max_items=step.options.max_items,
        on_item_error=step.options.on_item_error,
        has_default=step.has_default,
        default=step.default if step.has_default else None,
        timeout_s=timeout_s,
        retry=RetrySpec(
            attempts=step.retry.attempts,
            backoff_s=step.retry.backoff_s,
            max_backoff_s=step.retry.max_backoff_s,
            kinds=[k for k in step.retry.kinds if k != "unknown"] if (step.retry.on is not None or safe) else [],
            rerun_interrupted=rerun,
        ),
        on_error=step.on_error or request.options.on_error or "fail",
    )


def run_input(
    run_id: str, request: RunRequest, specs: list[StepSpec], earlier: list[StepState], heartbeat_s: float
) -> RunInput:
    return RunInput(
        run_id=run_id,
        steps=specs,
        inputs=dict(request.inputs),
        timeout_s=request.options.timeout_s,
        max_concurrency=request.options.max_concurrency,
        heartbeat_s=heartbeat_s,
        earlier=earlier,
    )


def status_of(value: str) -> StepStatus:
    return StepStatus(value)


def _error(value: dict[str, Any] | None) -> StepError | None:
    return StepError.model_validate(value) if value is not None else None


async def to_record(run_id: str, state: StepState, blobs: BlobStore) -> StepRun:
    """A workflow step state as the store keeps it (blob references read back: the store keeps full values)."""
    items = None
    if state.items is not None:
        items = [
            ItemRun(
                index=item.index,
                item=await blobs.resolve(item.item),
                status=status_of(item.status),
                attempts=item.attempts,
                arguments=await blobs.resolve(item.arguments),
                started_at=item.started_at,
                finished_at=item.finished_at,
                duration_ms=item.duration_ms,
                error=_error(item.error),
                output=await blobs.resolve(item.output),
                has_output=item.has_output,
            )
            for item in state.items
        ]
    return StepRun(
        run_id=run_id,
        step_id=state.step_id,
        tool=state.tool,
        status=status_of(state.status),
        attempts=state.attempts,
        arguments=await blobs.resolve(state.arguments),
        started_at=state.started_at,
        finished_at=state.finished_at,
        duration_ms=state.duration_ms,
        error=_error(state.error),
        output=await blobs.resolve(state.output),
        has_output=state.has_output,
        items=items,
    )


async def to_state(step: StepRun, blobs: BlobStore) -> StepState:
    """A stored step as the workflow's input for a resumed run (big values go by reference)."""
    items = None
    if step.items is not None:
        items = [
            ItemState(
                index=item.index,
                item=item.item,
                status=item.status.value,
                attempts=item.attempts,
                started_at=item.started_at,
                finished_at=item.finished_at,
                duration_ms=item.duration_ms,
                error=item.error.model_dump(exclude_none=True) if item.error else None,
                output=await blobs.keep(step.run_id, f"{step.step_id}.{item.index}", item.output),
                has_output=item.has_output,
            )
            for item in step.items
        ]
    return StepState(
        step_id=step.step_id,
        tool=step.tool,
        status=step.status.value,
        attempts=step.attempts,
        started_at=step.started_at,
        finished_at=step.finished_at,
        duration_ms=step.duration_ms,
        error=step.error.model_dump(exclude_none=True) if step.error else None,
        output=await blobs.keep(step.run_id, step.step_id, step.output),
        has_output=step.has_output,
        items=items,
    )
