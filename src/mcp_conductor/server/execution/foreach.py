"""A ``foreach`` step's items: bounded concurrency, recorded one by one, resumed per item.

The step's list is evaluated once; every element becomes an ``ItemRun`` in the step's record. An item that
succeeded in an earlier execution of the run, on the same element, keeps its value and is not run again. Tool
items take a slot of the step's own semaphore (``max_concurrency``), then of the run's and the global limiter
like any call (the pool's per-server limits hold as well); data items are evaluated inline. The step's value is
the items' values in input order (null for an item that failed under ``on_item_error: continue``); under
``fail`` the first failed item cancels the others and fails the step. An item whose call was in flight when the
process died is, on resume, run again or ends ``unknown`` (see ``interrupted``); under ``fail`` an unknown item
ends the step ``unknown`` without running the others.
"""

from __future__ import annotations

import time
from typing import Any

import anyio

from mcp_conductor.errors import ConductorError
from mcp_conductor.server.execution.calls import Caller, end
from mcp_conductor.server.execution.run_state import RunState, ended_unknown, step_error
from mcp_conductor.server.planning.expressions import compile_expression
from mcp_conductor.server.planning.models import PlannedStep
from mcp_conductor.server.planning.references import substitute
from mcp_conductor.server.store.records import ItemRun, StepError, StepRun, StepStatus

_DONE = frozenset({StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.TIMEOUT, StepStatus.UNKNOWN})
_IN_FLIGHT = frozenset({StepStatus.RUNNING, StepStatus.INTERRUPTED, StepStatus.UNKNOWN})  # the call may have happened
_NOT_RUN = frozenset({StepStatus.SUCCEEDED, StepStatus.UNKNOWN})  # items an execution does not run


def prepare_items(live: StepRun, elements: list[Any], *, keep_unknown: bool = False) -> list[ItemRun]:
    """The step's items for this execution: earlier successes on the same element are kept. An item whose call
    was in flight when the process died ends unknown if ``keep_unknown`` (see ``interrupted``), else it runs
    again; even if its element changed (new inputs), since that call may have taken effect all the same."""
    earlier = {item.index: item for item in live.items or ()}
    items = []
    for index, element in enumerate(elements):
        old = earlier.get(index)
        if old is not None and old.status is StepStatus.SUCCEEDED and old.item == element:
            items.append(old)
        elif keep_unknown and old is not None and old.status in _IN_FLIGHT:
            items.append(ended_unknown(old, live.tool))
        else:
            items.append(ItemRun(index, element, attempts=old.attempts if old else 0))
    return items


async def run_items(run: RunState, step: PlannedStep, live: StepRun, caller: Caller, call_timeout_s: float) -> None:
    """Run every item of ``live.items`` that has not succeeded; returns when all have ended."""
    items = live.items or []
    todo = [item for item in items if item.status not in _NOT_RUN]
    counter = _Counter(run, step, len(items), len(items) - len(todo))
    if step.is_data:
        for item in todo:
            await _data_item(run, step, live, item)
            await counter.one_more()
        return
    slots = anyio.Semaphore(step.options.max_concurrency)
    async with anyio.create_task_group() as tg:
        for item in todo:
            if slots.value == 0:
                await run.journal.sync()  # nothing unsaved while waiting
            await slots.acquire()
            tg.start_soon(_tool_item, run, step, live, item, caller, call_timeout_s, slots, tg.cancel_scope, counter)


async def _tool_item(
    run: RunState,
    step: PlannedStep,
    live: StepRun,
    item: ItemRun,
    caller: Caller,
    call_timeout_s: float,
    slots: anyio.Semaphore,
    scope: anyio.CancelScope,
    counter: _Counter,
) -> None:
    server, _, name = step.target.partition("/")
    try:
        try:
            arguments = substitute(step.arguments, run.outputs, run.request.inputs, (item.item, item.index))
        except ConductorError as exc:
            await end(item, StepStatus.FAILED, step_error(exc, server, name), _ended(run, live, item), started=None)
        else:
            started, ended = (lambda: run.journal.item_started(live, item)), _ended(run, live, item)
            await caller.call(run, step, item, arguments, call_timeout_s, started, ended)
        if item.status is not StepStatus.SUCCEEDED and step.options.on_item_error == "fail":
            scope.cancel()  # the others stop; the step fails with this item's error
        await counter.one_more()
    except anyio.get_cancelled_exc_class():
        with anyio.CancelScope(shield=True):
            if item.status not in _DONE:
                item.status = StepStatus.CANCELLED
                item.error = StepError(kind="cancelled", message="another item failed, or the run stopped")
                await run.journal.item_ended(live, item)
        raise
    finally:
        slots.release()


async def _data_item(run: RunState, step: PlannedStep, live: StepRun, item: ItemRun) -> None:
    assert isinstance(step.expr, str)
    t0 = time.perf_counter()
    item.attempts += 1
    try:
        value = compile_expression(step.expr, loop=True).evaluate(
            run.outputs, run.request.inputs, item.item, item.index
        )
    except ConductorError as exc:
        error = StepError(kind=exc.kind, message=exc.summary())
        await end(item, StepStatus.FAILED, error, _ended(run, live, item), started=t0)
    else:
        await end(item, StepStatus.SUCCEEDED, None, _ended(run, live, item), started=t0, output=value)


def _ended(run: RunState, live: StepRun, item: ItemRun) -> Any:
    return lambda: run.journal.item_ended(live, item)


def outcome(step: PlannedStep, live: StepRun) -> tuple[StepStatus, StepError | None, Any]:
    """The step's status, error and value once its items have ended."""
    items = live.items or []
    failed = [item for item in items if item.status is not StepStatus.SUCCEEDED]
    if failed and step.options.on_item_error == "fail":
        first = next((item for item in failed if item.status is not StepStatus.CANCELLED), failed[0])
        error = first.error or StepError(kind="item_failed", message="an item did not succeed")
        message = f"item {first.index} of {len(items)}: {error.message}"
        status = StepStatus.UNKNOWN if first.status is StepStatus.UNKNOWN else StepStatus.FAILED
        return status, error.model_copy(update={"message": message[:1000]}), None
    return StepStatus.SUCCEEDED, None, [item.output if item.status is StepStatus.SUCCEEDED else None for item in items]


class _Counter:
    """Counts a foreach step's ended items for the progress notifications."""

    def __init__(self, run: RunState, step: PlannedStep, total: int, done: int) -> None:
        self._run, self._step, self._total, self.done = run, step, total, done

    async def one_more(self) -> None:
        self.done += 1
        notify = self._run.notify
        if notify is not None and notify.active and self._total:
            await self._run.journal.sync()  # stored before it is announced
            fraction = self.done / self._total
            await notify.say(self._run.finished + fraction, f"{self._step.id}: {self.done}/{self._total} items")
