"""The ``RunPlan`` workflow's foreach steps: the list, the items (resumed, evaluated or called), the outcome.

A resumed run keeps the items that succeeded with the same element; an item whose call was in flight ends
``unknown`` unless the step may re-run it. Item calls run at most ``max_concurrency`` at a time; under
``on_item_error: fail`` the first item that does not succeed cancels the others.
"""

from __future__ import annotations

import asyncio  # noqa: TID251 - Temporal workflows run on the SDK's own deterministic asyncio loop

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from mcp_conductor.server.execution.interrupted import UNKNOWN_OUTCOME, unknown_message
    from mcp_conductor.server.execution.temporal.protocol import ItemState, StepSpec, StepState
    from mcp_conductor.server.execution.temporal.workflow_calls import Calls
    from mcp_conductor.server.execution.temporal.workflow_expressions import ExpressionFailed, Expressions
    from mcp_conductor.server.execution.temporal.workflow_records import DONE_ITEM

_IN_FLIGHT = frozenset({"running", "interrupted", "unknown"})  # stored so, the call may have happened


class Foreach(Expressions, Calls):
    """Runs a ``foreach`` step: evaluates its list, then each item's expression or call."""

    async def _foreach(self, step: StepSpec, state: StepState) -> None:
        assert step.foreach is not None
        try:
            elements = await self._evaluate(step.foreach)
            if not isinstance(elements, list):
                message = f"foreach {step.foreach!r} gave {type(elements).__name__}, not a list"
                raise ExpressionFailed({"kind": "expression_error", "message": message})
        except ExpressionFailed as exc:
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
                except ExpressionFailed as exc:
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
                if item.status not in DONE_ITEM:
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
