"""A run's step and item records, written as the run goes: the journal decides when each is committed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from mcp_conductor.server.store.records import ItemRun, StepRun, StepStatus

if TYPE_CHECKING:  # store.py imports this module to hand out journals
    from mcp_conductor.server.store.store import RunStore


class RunJournal:
    """The step records of one run, written as the run goes; the journal decides when each is committed.

    The guarantee: a step's start is committed before ``step_started`` returns (so before its downstream call);
    any end that is not a success is committed before ``step_ended`` returns; a success is committed with the
    run's next write (in a chain: the next step's start, one transaction instead of two), so before anything
    that depends on it can start, and at the latest by ``sync()``. The executor calls ``sync()`` before it
    reports progress, waits for anything or leaves a task (a foreach step waiting for an item slot leaves that
    to the item it started last, whose start write carries the pending ends), and the run's end is written
    after a ``sync()``.
    A write that fails or is cancelled keeps the ends it carried for the next one.
    """

    def __init__(self, store: RunStore, run_id: str) -> None:
        self._store = store
        self.run_id = run_id
        self._pending: dict[str, StepRun] = {}  # succeeded, end not committed yet
        self._pending_items: dict[tuple[str, int], tuple[StepRun, ItemRun]] = {}  # likewise, foreach items
        self._started: set[str] = set()  # steps whose start row this run wrote (their end writes only its columns)

    @property
    def pending(self) -> int:
        """Ends that are not committed yet."""
        return len(self._pending) + len(self._pending_items)

    async def step_started(self, step: StepRun) -> None:
        """Commit ``step``'s start (status running, arguments, attempts, start time) with the pending ends.

        Raises:
            StoreError: the store cannot be written.
        """
        await self._write(started=step)
        self._started.add(step.step_id)

    async def step_ended(self, step: StepRun) -> None:
        """Record ``step``'s end (its status, error, output and times are set). A success is committed with the
        next write, also for a step that never started (a data step: no call to protect).

        Raises:
            StoreError: the store cannot be written.
        """
        if step.status is StepStatus.SUCCEEDED:
            self._pending[step.step_id] = step
            return
        await self._write(last=step)

    async def item_started(self, step: StepRun, item: ItemRun) -> None:
        """Commit a foreach item's start (before its call), with the pending ends.

        Raises:
            StoreError: the store cannot be written.
        """
        self._pending_items.pop((step.step_id, item.index), None)
        await self._write(items=[(step, item)])

    async def item_ended(self, step: StepRun, item: ItemRun) -> None:
        """Record a foreach item's end: a success with the next write, anything else now.

        Raises:
            StoreError: the store cannot be written.
        """
        self._pending_items[(step.step_id, item.index)] = (step, item)
        if item.status is not StepStatus.SUCCEEDED:
            await self._write()

    async def sync(self) -> None:
        """Commit every pending end now.

        Raises:
            StoreError: the store cannot be written.
        """
        if self._pending or self._pending_items:
            await self._write()

    async def _write(
        self,
        *,
        started: StepRun | None = None,
        last: StepRun | None = None,
        items: Sequence[tuple[StepRun, ItemRun]] = (),
    ) -> None:
        steps = list(self._pending.values())
        ended = [step for step in steps if step.step_id in self._started]
        rows = [step for step in steps if step.step_id not in self._started]
        if last is not None:
            (ended if last.step_id in self._started else rows).append(last)
        pending_items = list(self._pending_items.items())
        await self._store.write_steps(
            ended=ended, rows=rows, started=started, items=[*(v for _, v in pending_items), *items]
        )
        for step in steps:
            self._pending.pop(step.step_id, None)
        for key, _ in pending_items:
            self._pending_items.pop(key, None)
