"""Records of runs and steps: what the executor writes, the store keeps, and ``execute_chain`` returns."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mcp_conductor.models import OutModel


class RunStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    PARTIAL = "partial"  # some branches failed under on_error=continue, the others finished
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"  # the server died while the run was running; resume it
    DECLINED = "declined"  # the person declined the steps that needed consent: nothing ran

    @property
    def finished(self) -> bool:
        return self not in (RunStatus.RUNNING, RunStatus.INTERRUPTED)


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMEOUT = "timeout"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"  # its call was in flight when the server died; a resume re-runs it or ends it unknown
    UNKNOWN = "unknown"  # its call was in flight when the process died: it may or may not have happened


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StepError(OutModel):
    """Why a step did not succeed; never a traceback."""

    kind: str = Field(description="timeout, unavailable, connection_lost, tool_error, protocol_error, ...")
    message: str
    retryable: bool = False
    server: str | None = None
    tool: str | None = None


@dataclass(slots=True)
class ItemRun:
    """One element of a ``foreach`` step in one run: the element, and how its call (or expression) went.
    Stored one by one, so a resume re-runs only the items that did not succeed."""

    index: int
    item: Any
    status: StepStatus = StepStatus.PENDING
    attempts: int = 0
    arguments: Any = None
    started_at: str | None = None
    finished_at: str | None = None
    duration_ms: float | None = None
    error: StepError | None = None
    output: Any = None
    has_output: bool = False


@dataclass(slots=True)
class StepRun:
    """One step of one run: what the executor updates while the step runs, what the store keeps, and what
    results and the CLI are built from (``output`` is the full value, never truncated here).

    A plain mutable dataclass, not a pydantic model: the executor changes it several times per step, and
    pydantic validates it only where it crosses a boundary (``RunExport``)."""

    run_id: str
    step_id: str
    tool: str
    status: StepStatus = StepStatus.PENDING
    attempts: int = 0
    arguments: Any = None  # after substitution; None until the step starts
    started_at: str | None = None  # ISO 8601, UTC
    finished_at: str | None = None
    duration_ms: float | None = None
    error: StepError | None = None
    output: Any = None
    has_output: bool = False  # distinguishes a stored null output from no output
    items: list[ItemRun] | None = None  # a foreach step's elements, in input order


class ConsentRecord(_Model):
    """A consent decision recorded with a run: who decided, when, and about which steps."""

    run_id: str
    decided_at: str
    who: str
    decision: str  # approved, declined
    steps: list[dict[str, Any]] = Field(default_factory=list, description="the steps as the person saw them")


class RunRecord(_Model):
    """One run of a plan, as stored."""

    run_id: str
    plan_id: str
    status: RunStatus
    inputs: dict[str, Any] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)
    outputs: list[str] = Field(default_factory=list, description="the step ids whose values the run returns")
    started_at: str
    finished_at: str | None = None
    duration_ms: float | None = None
    owner_pid: int | None = None
    error: StepError | None = None


class RunExport(_Model):
    """A run's whole state, for ``runs export`` / ``runs import`` (lossless round trip)."""

    format: str = "mcp-conductor.run/1"
    run: RunRecord
    steps: list[StepRun]
    plan: dict[str, Any] | None = None


def now_iso() -> str:
    """The time in UTC as ISO 8601 with milliseconds, e.g. ``2026-11-25T18:00:00.123+00:00``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")
