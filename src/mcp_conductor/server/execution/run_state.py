"""The bookkeeping of one run in progress: which steps wait for which, what ended, how the run ends.

``executor.LocalExecutor`` drives it and makes the downstream calls and the store writes; nothing here touches
the pool or the store. ``Progress`` sends the host's progress notifications.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeVar

import anyio
import structlog
from anyio.abc import TaskGroup

from mcp_conductor.client_pool.catalog import CatalogSnapshot, ToolId
from mcp_conductor.errors import ConductorError
from mcp_conductor.server.execution.engine import ProgressFn, RunRequest
from mcp_conductor.server.execution.interrupted import (
    UNKNOWN_OUTCOME,
    UNKNOWN_RUN_MESSAGE,
    Interrupted,
    interrupted_outcome,
    unknown_message,
)
from mcp_conductor.server.planning.models import PlannedStep
from mcp_conductor.server.store.records import ItemRun, RunRecord, RunStatus, StepError, StepRun, StepStatus, now_iso
from mcp_conductor.server.store.store import RunJournal

log = structlog.get_logger(__name__)

_ENDED_AT_START = frozenset({StepStatus.SUCCEEDED, StepStatus.UNKNOWN})  # a resumed run's steps that do not run


@dataclass
class RunState:
    """Mutable bookkeeping of one run in progress (owned by ``LocalExecutor.execute``)."""

    run_id: str
    request: RunRequest
    steps: dict[str, PlannedStep]
    records: dict[str, StepRun]
    journal: RunJournal
    outputs: dict[str, Any]
    waiting: dict[str, int]  # a step still to run -> how many of its dependencies have not ended
    dependents: dict[str, list[str]]  # in plan order
    finished: int = 0
    stop_reason: Literal["failed", "timed_out"] | None = None
    failed_under_continue: bool = False
    deadline_at: float | None = None
    touched_tools: set[ToolId] = field(default_factory=set)
    snapshot: CatalogSnapshot | None = None
    per_run: anyio.CapacityLimiter | None = None
    notify: Progress | None = None
    tg: TaskGroup | None = None
    record: RunRecord | None = None  # the run as stored when it ended
    internal_error: StepError | None = None  # the first failure of the run's own machinery
    unknown_steps: list[str] = field(default_factory=list)  # ended unknown: an interrupted call not made again

    @classmethod
    def start(cls, request: RunRequest, records: dict[str, StepRun], journal: RunJournal) -> RunState:
        """The state of a run about to start (or resume): steps that succeeded already count as ended."""
        plan = request.plan
        run = cls(
            run_id=journal.run_id,
            request=request,
            steps={s.id: s for s in plan.steps},
            records=records,
            journal=journal,
            outputs={},
            waiting={},
            dependents={s.id: [] for s in plan.steps},
        )
        for step in plan.steps:
            if records[step.id].status is StepStatus.SUCCEEDED:
                run.outputs[step.id] = records[step.id].output
                run.finished += 1
                continue
            if records[step.id].status is StepStatus.UNKNOWN:  # ended already: its failure policy applies now
                run.finished += 1
                run.step_failed(step, records[step.id])
                continue
            # A planned step's depends_on holds all its dependencies (the planner adds the referenced steps).
            open_deps = [d for d in step.depends_on if records[d].status not in _ENDED_AT_START]
            run.waiting[step.id] = len(open_deps)
            for dep in open_deps:
                run.dependents[dep].append(step.id)
        return run

    def ready_at_start(self) -> list[str]:
        if self.stop_reason is not None:  # a step that ended unknown stopped the run before it started
            return []
        return [sid for sid, n in self.waiting.items() if n == 0]

    def step_failed(self, step: PlannedStep, live: StepRun) -> bool:
        """``step`` ended without success (not skipped): apply its failure policy. Returns whether the run stops
        (``on_error: fail``); if not, its ``default`` (if any) stands in for its value."""
        if live.status is StepStatus.UNKNOWN:
            self.unknown_steps.append(step.id)
        if (step.on_error or self.request.options.on_error or "fail") == "fail":
            self.stop_reason = self.stop_reason or "failed"
            return True
        self.failed_under_continue = True
        if step.has_default:
            self.outputs[step.id] = step.default
        return False

    def run_error(self) -> StepError | None:
        """The run's error: a failure of its machinery, else the steps whose outcome is unknown."""
        if self.internal_error is not None or not self.unknown_steps:
            return self.internal_error
        steps = ", ".join(self.unknown_steps)
        return StepError(kind=UNKNOWN_OUTCOME, message=f"step {steps}: {UNKNOWN_RUN_MESSAGE}")

    def release(self, step_id: str) -> list[str]:
        """``step_id`` ended: its dependents that have nothing left to wait for, in plan order."""
        if self.stop_reason is not None:
            return []
        ready = []
        for dependent in self.dependents[step_id]:
            self.waiting[dependent] -= 1
            if self.waiting[dependent] == 0:
                ready.append(dependent)
        return ready

    def status(self) -> RunStatus:
        """How the run ended, once its steps have."""
        if self.stop_reason == "timed_out":
            return RunStatus.TIMED_OUT
        if self.stop_reason == "failed":
            return RunStatus.FAILED
        if self.failed_under_continue:
            succeeded = any(r.status is StepStatus.SUCCEEDED for r in self.records.values())
            return RunStatus.PARTIAL if succeeded else RunStatus.FAILED
        return RunStatus.SUCCEEDED


class Progress:
    """Progress notifications (``k/n steps, last: step status``); a host that asked for none gets none."""

    def __init__(self, send: ProgressFn | None, total: int) -> None:
        self._send = send
        self._total = total
        self.active = send is not None

    async def say(self, done: float, message: str) -> None:
        """``done`` steps of the total have ended (a fraction while a foreach step's items run)."""
        if self._send is None:
            return
        try:
            await self._send(done, self._total, f"{int(done)}/{self._total} steps, {message}")
        except Exception as exc:  # a host that went away must not fail the run
            log.debug("chain.progress_failed", error=str(exc))


def step_error(exc: ConductorError, server: str, tool: str) -> StepError:
    d = exc.describe()
    return StepError(
        kind=d["kind"],
        message=d["message"],
        retryable=bool(d["retryable"]),
        server=d.get("server") or server,
        tool=d.get("tool") or tool,
    )


def interrupted_rule(request: RunRequest, snapshot: CatalogSnapshot, step: PlannedStep) -> Interrupted:
    """What becomes of ``step``'s call (or its items' calls) found in flight on resume (see ``interrupted``)."""
    tool = snapshot.tools.get(ToolId(step.target))
    return interrupted_outcome(
        read_only=tool is not None and tool.read_only,
        idempotent=tool is not None and tool.idempotent,
        retry_on=step.retry.on,
        rerun_unknown=request.options.rerun_unknown,
    )


Record = TypeVar("Record", StepRun, ItemRun)


def ended_unknown(old: Record, tool: str) -> Record:
    """``old`` (a step or an item whose call was in flight) ended in status unknown, its call not made again."""
    error = StepError(kind=UNKNOWN_OUTCOME, message=unknown_message(tool))
    finished_at = old.finished_at if old.status is StepStatus.UNKNOWN and old.finished_at else now_iso()
    return replace(
        old,
        status=StepStatus.UNKNOWN,
        error=error,
        finished_at=finished_at,
        duration_ms=None,  # the call's answer was lost
        output=None,
        has_output=False,
    )
