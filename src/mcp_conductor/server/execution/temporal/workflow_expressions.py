"""The ``RunPlan`` workflow's expressions: ``when`` conditions and data steps, and the evaluation they share.

CEL evaluation is deterministic, so it runs in the workflow itself; when a value it may read lives in a blob (a
large output kept out of Temporal), it runs in a local activity (``activities.evaluate``) that can read the blob.
A failed expression raises ``ExpressionFailed`` with the structured error the step ends with.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from mcp_conductor.errors import ConductorError
    from mcp_conductor.server.execution.temporal.protocol import (
        EVALUATE_ACTIVITY,
        EvaluateInput,
        EvaluateResult,
        StepSpec,
        StepState,
        is_blob,
    )
    from mcp_conductor.server.execution.temporal.workflow_records import RunRecords
    from mcp_conductor.server.planning.expressions import compile_expression


class ExpressionFailed(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error["message"])
        self.error = error


class Expressions(RunRecords):
    """Evaluates a step's ``when``, a data step's ``expr``, and (for ``Foreach``) a ``foreach`` list or item."""

    async def _evaluate(self, source: str, *, loop: bool = False, item: Any = None, index: int = 0) -> Any:
        if is_blob(item) or any(is_blob(v) for v in self._outputs.values()):
            result = await workflow.execute_local_activity(
                EVALUATE_ACTIVITY,
                EvaluateInput(source, dict(self._outputs), self._spec.inputs, loop, item, index),
                result_type=EvaluateResult,
                start_to_close_timeout=timedelta(seconds=60),
            )
            if not result.ok:
                raise ExpressionFailed(result.error or {"kind": "expression_error", "message": source})
            return result.value
        try:
            return compile_expression(source, loop=loop).evaluate(self._outputs, self._spec.inputs, item, index)
        except ConductorError as exc:
            raise ExpressionFailed({"kind": exc.kind, "message": exc.summary()}) from exc

    async def _condition(self, step: StepSpec, state: StepState) -> bool:
        assert step.when is not None
        try:
            value = await self._evaluate(step.when)
            if not isinstance(value, bool):
                raise ExpressionFailed(
                    {
                        "kind": "expression_error",
                        "message": f"when {step.when!r} gave {type(value).__name__}, not true or false",
                    }
                )
        except ExpressionFailed as exc:
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
        except ExpressionFailed as exc:
            self._end(state, "failed", exc.error)
        else:
            self._end(state, "succeeded", None, value)
        state.duration_ms = self._duration_ms(state.started_at)
