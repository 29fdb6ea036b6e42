"""Pydantic models of ``execute_chain``'s options and result."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mcp_conductor.server.planning.models import PlanIssue
from mcp_conductor.server.store.records import StepError


class ExecuteOptionsIn(BaseModel):
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


class StepSummary(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    tool: str
    status: str = Field(description="succeeded, failed, timeout, skipped or cancelled")
    attempts: int
    started_at: str | None
    duration_ms: float | None
    error: StepError | None


class ExecuteResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    run_id: str | None = Field(description="the run's id; pass it as options.resume_run_id to resume")
    status: str = Field(description="succeeded, failed, partial, timed_out, cancelled, or invalid (nothing ran)")
    outputs: dict[str, Any] = Field(default_factory=dict, description="value of each output step")
    steps: list[StepSummary] = Field(default_factory=list)
    duration_ms: float | None = None
    errors: list[PlanIssue] = Field(default_factory=list, description="why the plan is invalid (nothing ran)")
    reused: bool = Field(False, description="true when an earlier finished run with this run_id was returned")
