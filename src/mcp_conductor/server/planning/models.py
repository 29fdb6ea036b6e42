"""The plan a model writes for ``plan_chain`` / ``execute_chain``, and the planner's result.

Pydantic models, frozen, ``extra="forbid"``. Reading a raw plan into them, with shape errors as ``PlanIssue``
values, is ``parsing``'s job.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, NewType

from pydantic import (
    MISSING,
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from mcp_conductor.models import OutModel
from mcp_conductor.schemas import DETAIL

StepId = NewType("StepId", str)
FailureKind = Literal["timeout", "unavailable", "connection_lost", "tool_error", "protocol_error"]
# retry.on: the failure kinds, and "unknown": a call cut off by a crash is made again on resume (see execution)
RetryOn = Literal["timeout", "unavailable", "connection_lost", "tool_error", "protocol_error", "unknown"]
EstimateBasis = Literal["measured", "default", "in_process", "chain"]  # chain: a saved chain's own estimate

TRANSIENT_FAILURES: tuple[FailureKind, ...] = ("timeout", "unavailable", "connection_lost")
MAX_STEP_ID_LENGTH = 64
MAX_ATTEMPTS = 10
DATA_STEP = "expr"  # the tool column of a data step's records


STEP_ID_PATTERN = re.compile(r"[a-z][a-z0-9_]*")


def suggest_step_id(value: str) -> str:
    """A valid id close to ``value``: ``Fetch-Data`` -> ``fetch_data``, ``1st`` -> ``s_1st``."""
    text = re.sub(r"[^a-z0-9_]+", "_", value.lower()).strip("_") or "step"
    return (text if text[0].isalpha() else "s_" + text)[:MAX_STEP_ID_LENGTH]


def _check_step_id(value: StepId) -> StepId:
    if len(value) > MAX_STEP_ID_LENGTH or not STEP_ID_PATTERN.fullmatch(value):
        raise ValueError(
            f"step id {value!r} must start with a lowercase letter and hold only lowercase letters, digits and '_' "
            f"(1-{MAX_STEP_ID_LENGTH} characters, so that steps.ID works in expressions); "
            f"use {suggest_step_id(value)!r}"
        )
    return value


StepIdField = Annotated[StepId, AfterValidator(_check_step_id)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RetryPolicy(_Frozen):
    """How a failed call is retried. ``attempts=1`` (the default) means no retry."""

    attempts: int = Field(1, ge=1, le=MAX_ATTEMPTS, description="total tries, including the first")
    backoff_s: float = Field(0.5, ge=0, description="first delay; doubles each retry, with full jitter")
    max_backoff_s: float = Field(10.0, ge=0, description="cap of one delay")
    on: tuple[RetryOn, ...] | None = Field(
        None,
        description="failure kinds that are retried; when left out: the transient ones (timeout, unavailable, "
        'connection_lost), and only for tools annotated read-only or idempotent. "unknown": a call that was in '
        "flight when the conductor died is made again on resume (otherwise, for a tool not annotated read-only "
        "or idempotent, the step ends in status unknown)",
    )

    @property
    def kinds(self) -> tuple[RetryOn, ...]:
        return TRANSIENT_FAILURES if self.on is None else self.on

    @model_validator(mode="after")
    def _backoff_order(self) -> RetryPolicy:
        if self.max_backoff_s < self.backoff_s:
            raise ValueError("max_backoff_s must be at least backoff_s")
        return self


class ForeachOptions(_Frozen):
    """How a ``foreach`` step runs its items (the planner enforces the hard caps, 50 and 1,000 by default)."""

    max_concurrency: int = Field(10, ge=1, description="most items running at once")
    max_items: int = Field(100, ge=1, description="a longer list fails the step")
    on_item_error: Literal["fail", "continue"] = Field(
        "fail", description="fail: the first failed item fails the step; continue: a failed item's value is null"
    )


class PlannedStep(_Frozen):
    """One step: a tool call (``tool``) or a data step (``expr``, no downstream call). After planning, ``tool``
    is the canonical ``server/tool`` id and ``depends_on`` holds every dependency (references, expressions and
    explicit ordering), in plan order. The plan-language fields are left out of dumps when unset, so plans
    that do not use them keep their plan ids."""

    id: StepIdField
    tool: str | MISSING = Field(MISSING, min_length=1, description="server/tool, or a bare name offered by one server")
    expr: str | MISSING = Field(MISSING, description="a data step: CEL expression whose value is the step's value")
    arguments: dict[str, JsonValue] = Field(default_factory=dict)
    depends_on: tuple[StepIdField, ...] = Field((), description="ordering without data flow")
    when: str | MISSING = Field(MISSING, description="CEL condition; false skips the step")
    foreach: str | MISSING = Field(MISSING, description="CEL expression giving a list: the step runs once per item")
    foreach_options: ForeachOptions | MISSING = MISSING
    default: JsonValue | MISSING = Field(MISSING, description="the value when skipped or failed under continue")
    timeout_s: float | None = Field(None, gt=0, description="None: the executor's default applies")
    retry: RetryPolicy = RetryPolicy()
    on_error: Literal["fail", "continue"] | None = Field(
        None, description="fail: stop the run; continue: skip only this step's dependents (default: fail)"
    )

    @model_validator(mode="after")
    def _one_kind(self) -> PlannedStep:
        if (self.tool is MISSING) == (self.expr is MISSING):
            raise ValueError('a step has either "tool" (a tool call) or "expr" (a data step), not both or neither')
        if self.expr is not MISSING and self.arguments:
            raise ValueError('a data step ("expr") takes no arguments: read values in the expression itself')
        if self.foreach_options is not MISSING and self.foreach is MISSING:
            raise ValueError('"foreach_options" needs "foreach"')
        return self

    @property
    def is_data(self) -> bool:
        return self.expr is not MISSING

    @property
    def target(self) -> str:
        """The tool id, or ``"expr"`` for a data step (what its records show as the tool)."""
        return self.tool if self.tool is not MISSING else DATA_STEP

    @property
    def has_default(self) -> bool:
        return self.default is not MISSING

    @property
    def options(self) -> ForeachOptions:
        return self.foreach_options if self.foreach_options is not MISSING else ForeachOptions()


class Plan(_Frozen):
    """A tool chain: inputs, steps and which step values to return (default: the steps nothing depends on)."""

    inputs: dict[str, JsonValue] = Field(default_factory=dict)
    steps: tuple[PlannedStep, ...] = Field(min_length=1)
    outputs: tuple[StepIdField, ...] | None = None


class PlanIssue(OutModel):
    """One error or warning; ``field`` is a JSON pointer into the plan (``/steps/2/arguments/text``)."""

    step: str | None = None
    field: str = ""
    kind: str
    message: str
    hint: str | None = None
    suggestions: tuple[str, ...] = ()
    column: int | MISSING = MISSING  # of an invalid expression, 1-based


class FanOut(OutModel):
    """A ``foreach`` step in ``plan_chain``'s answer: one level whose width is known only at run time."""

    max_items: int
    max_concurrency: int
    waves: int = Field(description="ceil(max_items / max_concurrency): the estimate's number of call latencies")

    @model_serializer(mode="wrap")
    def _without_empty(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # An issue is read by a model: an empty pointer, hint or suggestion list only costs tokens.
        data: dict[str, Any] = handler(self)
        return {k: v for k, v in data.items() if v not in (None, "", [], ()) or k in ("kind", "message")}


class SavedChainRef(OutModel):
    """What ``plan_chain`` saved under ``save_as``: run it as ``{"chain": id}`` or a step's ``"tool": id``."""

    id: str = Field(description="chain/NAME: a step's tool, or execute_chain's chain")
    name: str
    version: str = Field(description="NAME@VERSION runs this version even after newer saves")
    status: Literal["created", "new_version", "unchanged", "description_updated"]
    previous: str | None = Field(None, description="the version that was the newest before this save")


PLAN_DETAIL = frozenset({"steps", "outputs", "estimate_basis"})  # shown by plan_chain only with detail "plan"


class PlanResult(OutModel):
    """What ``plan_chain`` returns. An invalid plan is a normal result with ``valid=False`` and every error.

    ``normalized_plan`` (valid plans only) is what the executor runs; it is left out of dumps because
    ``steps`` already shows it.
    """

    valid: bool
    plan_id: str | None = None
    levels: tuple[tuple[str, ...], ...] = ()
    critical_path: tuple[str, ...] = ()
    estimated_latency_ms: float | None = None
    fan_out: dict[str, FanOut] = Field(default_factory=dict, description="the foreach steps' widths")
    effects: dict[str, list[str]] = Field(default_factory=dict, description="step ids: destructive, writes")
    saved: SavedChainRef | None = Field(None, description="the saved chain, with save_as")
    warnings: tuple[PlanIssue, ...] = ()
    errors: tuple[PlanIssue, ...] = ()
    steps: tuple[PlannedStep, ...] = Field((), json_schema_extra={DETAIL: True})
    outputs: tuple[str, ...] = Field((), json_schema_extra={DETAIL: True})
    estimate_basis: dict[str, EstimateBasis] = Field(default_factory=dict, json_schema_extra={DETAIL: True})
    normalized_plan: Plan | None = Field(None, exclude=True, json_schema_extra={DETAIL: True})
