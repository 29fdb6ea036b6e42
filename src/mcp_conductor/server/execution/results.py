"""``execute_chain``'s options and result: the models the MCP front, the CLI and Python callers share.

``RunOptions`` is the one value the options travel as, from the tool's arguments through the chain service and
the engine into the stored run (as its dump).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import MISSING, BaseModel, ConfigDict, Field

from mcp_conductor.server.planning.models import PlanIssue
from mcp_conductor.server.store.records import StepError, StepRun, StepStatus

STORED_OPTIONS = frozenset({"max_concurrency", "timeout_s", "default_step_timeout_s", "on_error"})


class RunOptions(BaseModel):
    """Per-run knobs (``execute_chain``'s ``options``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_concurrency: int | None = Field(None, ge=1, le=256, description="most steps running at once in this run")
    timeout_s: float | None = Field(None, gt=0, description="deadline for the whole chain")
    default_step_timeout_s: float | None = Field(None, gt=0, description="timeout of steps without timeout_s")
    on_error: Literal["fail", "continue"] | None = Field(None, description="default for steps without on_error")
    run_id: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_.:-]{1,100}$",
        description="your own id for this run (idempotency key): the same id again returns the stored result "
        "of a finished run, or resumes an interrupted one, instead of running the steps again",
    )
    resume_run_id: str | None = Field(None, description="re-run only the steps of this run that did not succeed")
    output_budget_bytes: int | None = Field(None, ge=256, description="cut each returned output beyond this size")

    def stored(self) -> dict[str, Any]:
        """What the run record keeps: the options that shaped how the steps ran."""
        return self.model_dump(include=set(STORED_OPTIONS), exclude_none=True)


MAX_ITEM_ERRORS = 100


class ItemError(BaseModel):
    """A foreach item that did not succeed."""

    model_config = ConfigDict(frozen=True)

    index: int
    status: str
    attempts: int
    error: StepError | None


class StepSummary(BaseModel):
    """One step of a run as ``execute_chain`` reports it (a view of the run's ``StepRun``)."""

    model_config = ConfigDict(frozen=True)

    id: str
    tool: str
    status: str = Field(description="succeeded, failed, timeout, skipped or cancelled")
    attempts: int
    started_at: str | None
    duration_ms: float | None
    error: StepError | None
    items: dict[str, int] | MISSING = Field(MISSING, description="a foreach step's items by status")
    item_errors: list[ItemError] | MISSING = Field(
        MISSING, description="a foreach step's items that did not succeed (the first 100)"
    )

    @classmethod
    def of(cls, step: StepRun) -> StepSummary:
        extra: dict[str, Any] = {}
        if step.items is not None:
            counts: dict[str, int] = {}
            errors: list[ItemError] = []
            for item in step.items:
                counts[item.status.value] = counts.get(item.status.value, 0) + 1
                if item.status is not StepStatus.SUCCEEDED and len(errors) < MAX_ITEM_ERRORS:
                    errors.append(
                        ItemError(index=item.index, status=item.status.value, attempts=item.attempts, error=item.error)
                    )
            extra = {"items": counts, "item_errors": errors}
        return cls.model_construct(  # the fields come typed from the run's records
            id=step.step_id,
            tool=step.tool,
            status=step.status.value,
            attempts=step.attempts,
            started_at=step.started_at,
            duration_ms=step.duration_ms,
            error=step.error,
            **extra,
        )


class ExecuteResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    run_id: str | None = Field(description="the run's id; pass it as options.resume_run_id to resume")
    status: str = Field(description="succeeded, failed, partial, timed_out, cancelled, or invalid (nothing ran)")
    outputs: dict[str, Any] = Field(default_factory=dict, description="value of each output step")
    steps: list[StepSummary] = Field(default_factory=list)
    duration_ms: float | None = None
    errors: list[PlanIssue] = Field(default_factory=list, description="why the plan is invalid (nothing ran)")
    error: StepError | None = Field(None, description="why the run itself failed, when no step says it")
    reused: bool = Field(False, description="true when an earlier finished run with this run_id was returned")
