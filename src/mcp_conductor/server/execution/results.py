"""``execute_chain``'s options and result: the models the MCP front, the CLI and Python callers share.

``RunOptions`` is the one value the options travel as, from the tool's arguments through the chain service and
the engine into the stored run (as its dump).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from mcp_conductor.models import OutModel, detail
from mcp_conductor.server.planning.consent import ConsentReport
from mcp_conductor.server.planning.models import PlanIssue
from mcp_conductor.server.store.records import StepError, StepRun, StepStatus

STORED_OPTIONS = frozenset({"max_concurrency", "timeout_s", "default_step_timeout_s", "on_error"})
FAILED_STATUSES = frozenset({"invalid", "failed", "timed_out", "cancelled", "consent_required"})


class RunOptions(OutModel):
    """Per-run knobs (``execute_chain``'s ``options``; the tool's description says what each does)."""

    max_concurrency: int | None = Field(None, ge=1, le=256)
    timeout_s: float | None = Field(None, gt=0)
    default_step_timeout_s: float | None = Field(None, gt=0)
    on_error: Literal["fail", "continue"] | None = None
    run_id: str | None = Field(None, pattern=r"^[A-Za-z0-9_.:-]{1,100}$")
    resume_run_id: str | None = None
    output_budget_bytes: int | None = Field(None, ge=256)
    detail: Literal["steps"] | None = None
    wait_s: float | None = Field(None, ge=0)  # None: until the run ends (see live_runs)
    cancel: bool = False  # with run_id: cancel that run
    rerun_unknown: bool = False  # a resume calls again the steps whose interrupted call ended unknown

    def stored(self) -> dict[str, Any]:
        """What the run record keeps: the options that shaped how the steps ran."""
        return self.model_dump(include=set(STORED_OPTIONS), exclude_none=True)


MAX_ITEM_ERRORS = 100


class ItemError(OutModel):
    """A foreach item that did not succeed."""

    index: int
    status: str
    attempts: int
    error: StepError | None = None


def item_report(step: StepRun) -> tuple[dict[str, int], list[ItemError]] | None:
    """A foreach step's items by status, and its items that did not succeed (the first ``MAX_ITEM_ERRORS``)."""
    if step.items is None:
        return None
    counts: dict[str, int] = {}
    errors: list[ItemError] = []
    for item in step.items:
        counts[item.status.value] = counts.get(item.status.value, 0) + 1
        if item.status is not StepStatus.SUCCEEDED and len(errors) < MAX_ITEM_ERRORS:
            errors.append(
                ItemError(index=item.index, status=item.status.value, attempts=item.attempts, error=item.error)
            )
    return counts, errors


class StepSummary(OutModel):
    """One step of a run as ``execute_chain`` reports it with ``detail: "steps"`` (a view of its ``StepRun``)."""

    id: str
    tool: str
    status: str
    attempts: int
    started_at: str | None = None
    duration_ms: float | None = None
    error: StepError | None = None
    items: dict[str, int] | None = Field(None, description="a foreach step's items by status")
    item_errors: list[ItemError] | None = Field(None, description="its items that did not succeed (first 100)")

    @classmethod
    def of(cls, step: StepRun) -> StepSummary:
        report = item_report(step)
        return cls.model_construct(  # the fields come typed from the run's records
            id=step.step_id,
            tool=step.tool,
            status=step.status.value,
            attempts=step.attempts,
            started_at=step.started_at,
            duration_ms=step.duration_ms,
            error=step.error,
            items=report[0] if report else None,
            item_errors=report[1] if report else None,
        )


class StepProblem(OutModel):
    """A step that did not succeed, or a foreach step with items that did not."""

    id: str
    status: str = Field(description="failed, timeout, skipped, cancelled or unknown")
    error: StepError | None = None
    items: dict[str, int] | None = None
    item_errors: list[ItemError] | None = None

    @classmethod
    def of(cls, step: StepRun) -> StepProblem | None:
        """The problem ``step`` shows, or None when it and all its items succeeded."""
        report = item_report(step)
        if step.status is StepStatus.SUCCEEDED and (report is None or not report[1]):
            return None
        items, errors = report if report else (None, None)
        return cls(id=step.step_id, status=step.status.value, error=step.error, items=items, item_errors=errors)


class RunProgress(OutModel):
    done: int = Field(description="steps ended")
    total: int


class ExecuteResult(OutModel):
    """``execute_chain``'s answer. Compact by default: the plan's outputs and the steps that did not succeed;
    ``detail: "steps"`` adds every step and the duration."""

    run_id: str | None = None
    status: str = Field(
        description="succeeded, partial, failed, timed_out, cancelled, running, invalid, declined or consent_required"
    )
    outputs: dict[str, Any] = Field(default_factory=dict, description="value of each output step")
    problems: list[StepProblem] = Field(default_factory=list)
    warnings: list[PlanIssue] = Field(default_factory=list)
    errors: list[PlanIssue] = Field(default_factory=list, description="why the plan is invalid (nothing ran)")
    error: StepError | None = None
    progress: RunProgress | None = None
    consent: ConsentReport | None = None
    steps: list[StepSummary] | None = detail()
    duration_ms: float | None = detail()
    reused: bool = Field(False, description="an earlier finished run with this run_id")

    @property
    def failed(self) -> bool:
        """The run did not do its job: a host should show it as an error (``isError``)."""
        return self.status in FAILED_STATUSES
