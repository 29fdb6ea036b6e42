"""The plan a model writes for ``plan_chain`` / ``execute_chain``, and the planner's result.

Pydantic models, frozen, ``extra="forbid"``. Shape errors (``ValidationError``) are turned into ``PlanIssue``
values with JSON pointers into the raw plan by :func:`shape_issues`, so a malformed plan is reported like any
other problem instead of raising.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, NewType

from pydantic import (
    MISSING,
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)

from mcp_conductor.models import OutModel
from mcp_conductor.schemas import DETAIL
from mcp_conductor.server.planning.references import PathSegment, json_pointer
from mcp_conductor.suggest import close_matches

StepId = NewType("StepId", str)
FailureKind = Literal["timeout", "unavailable", "connection_lost", "tool_error", "protocol_error"]
# retry.on: the failure kinds, and "unknown": a call cut off by a crash is made again on resume (see execution)
RetryOn = Literal["timeout", "unavailable", "connection_lost", "tool_error", "protocol_error", "unknown"]
EstimateBasis = Literal["measured", "default", "in_process"]

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
    warnings: tuple[PlanIssue, ...] = ()
    errors: tuple[PlanIssue, ...] = ()
    steps: tuple[PlannedStep, ...] = Field((), json_schema_extra={DETAIL: True})
    outputs: tuple[str, ...] = Field((), json_schema_extra={DETAIL: True})
    estimate_basis: dict[str, EstimateBasis] = Field(default_factory=dict, json_schema_extra={DETAIL: True})
    normalized_plan: Plan | None = Field(None, exclude=True, json_schema_extra={DETAIL: True})


@dataclass(slots=True)
class ParsedPlan:
    """What :func:`parse_plan` could read. With shape errors, ``steps`` holds the steps that did parse
    (``complete=False``), so their other problems can still be reported in the same answer."""

    inputs: dict[str, Any]
    steps: list[tuple[int, PlannedStep]]  # (position in the raw list, step)
    ids: dict[int, str | None]  # every raw step's id, when it has a string one
    outputs: tuple[str, ...] | None
    complete: bool = True
    issues: list[PlanIssue] = field(default_factory=list)


def parse_plan(raw: Any, *, max_steps: int, max_bytes: int) -> ParsedPlan | list[PlanIssue]:
    """Read a raw plan, or say why it cannot be read at all (not an object, too big, too many steps)."""
    steps: Any
    if isinstance(raw, Plan):
        size, steps = len(raw.model_dump_json().encode()), raw.steps
    elif not isinstance(raw, Mapping):
        return [_issue((), f"a plan is a JSON object with 'steps', not {type(raw).__name__}")]
    else:
        steps = raw.get("steps")
        try:
            size = len(json.dumps(raw, ensure_ascii=False, separators=(",", ":")).encode())
        except RecursionError:
            return [_issue((), "the plan is nested too deeply", kind="limit_exceeded")]
        except UnicodeEncodeError:  # a lone surrogate ("\ud800" in a JSON file): it could not be stored or hashed
            return [_issue((), "the plan contains text that is not valid Unicode (a lone surrogate such as \\ud800)")]
        except (TypeError, ValueError):
            size = 0  # not JSON-shaped: the shape check says where
    if size > max_bytes:
        return [_issue((), f"the plan is {size} bytes; the limit is {max_bytes}", kind="limit_exceeded")]
    if isinstance(steps, list | tuple) and len(steps) > max_steps:
        message = f"the plan has {len(steps)} steps; the limit is {max_steps}"
        return [_issue(("steps",), message, kind="limit_exceeded", hint="split it into several chains")]
    if isinstance(raw, Plan):
        return _complete(raw)
    try:
        return _complete(Plan.model_validate(dict(raw)))
    except ValidationError as exc:
        parsed = _salvage(raw)
        parsed.issues = shape_issues(exc, raw)
        return parsed


def _complete(plan: Plan) -> ParsedPlan:
    steps = list(enumerate(plan.steps))
    return ParsedPlan(dict(plan.inputs), steps, {i: s.id for i, s in steps}, plan.outputs)


def _salvage(raw: Mapping[str, Any]) -> ParsedPlan:
    inputs = raw.get("inputs")
    parsed = ParsedPlan(dict(inputs) if isinstance(inputs, Mapping) else {}, [], {}, None, complete=False)
    steps = raw.get("steps")
    for index, item in enumerate(steps if isinstance(steps, list | tuple) else ()):
        step: PlannedStep | None
        try:
            step = PlannedStep.model_validate(item)
        except ValidationError as exc:
            step = _without_bad_fields(item, exc)  # one bad field must not hide the step's other problems
        if step is None:
            parsed.ids[index] = _id_of(item)
            continue
        parsed.steps.append((index, step))
        parsed.ids[index] = step.id
    outputs = raw.get("outputs")
    if isinstance(outputs, list | tuple) and all(isinstance(o, str) for o in outputs):
        parsed.outputs = tuple(outputs)
    return parsed


def _without_bad_fields(item: Any, error: ValidationError) -> PlannedStep | None:
    """The step without the fields its shape errors are about (reported already), so its references, tool and
    arguments are still checked; None when what is left is not a step either (e.g. its id is the problem)."""
    if not isinstance(item, Mapping):
        return None
    bad = {str(detail["loc"][0]) for detail in error.errors() if detail["loc"]}
    if bad & {"id", "tool", "expr"}:
        return None
    try:
        return PlannedStep.model_validate({k: v for k, v in item.items() if k not in bad})
    except ValidationError:
        return None


def _issue(
    path: Sequence[PathSegment], message: str, *, kind: str = "invalid_plan", hint: str | None = None
) -> PlanIssue:
    hint = hint or ('a plan looks like {"steps": [{"id": "a", "tool": "server/tool", "arguments": {}}]}')
    return PlanIssue(field=json_pointer(path), kind=kind, message=message, hint=hint)


_FIELDS_AT = {"plan": tuple(Plan.model_fields), "step": tuple(PlannedStep.model_fields)}
_RETRY_FIELDS = tuple(RetryPolicy.model_fields)


def shape_issues(error: ValidationError, raw: Any, prefix: Sequence[PathSegment] = ()) -> list[PlanIssue]:
    """One ``invalid_plan`` issue per pydantic error, located by a JSON pointer into ``raw``.

    ``raw`` is the data that was validated and ``prefix`` its own path in the plan (``("steps", 3)`` for a
    step validated alone).
    """
    issues = []
    for detail in error.errors():
        if detail["type"] == "too_short" and detail["loc"] == ("steps",) and _has_steps(raw):
            continue  # pydantic also counts the steps it rejected as missing: their own errors say why
        path = [*prefix, *_raw_path(raw, detail["loc"])]
        key = path[-1] if path else None
        message = str(detail["msg"]).removeprefix("Value error, ")
        hint = None
        suggestions: tuple[str, ...] = ()
        if detail["type"] == "missing":
            message = f"missing required field {key!r}"
            hint = 'every step needs an "id" and a "tool" (or an "expr")' if len(path) == 3 else None
        elif detail["type"] == "extra_forbidden":
            allowed = _allowed_fields(path[:-1])
            suggestions = close_matches(key, allowed, cutoff=0.5)
            message = f"unknown field {key!r}" + (f" (did you mean {suggestions[0]!r}?)" if suggestions else "")
            hint = f"allowed here: {', '.join(allowed)}" if allowed else None
        elif key is not None and detail["type"] != "value_error":
            message = f"{key!r}: {message}"
        issues.append(
            PlanIssue(
                step=_step_of(raw, prefix, path),
                field=json_pointer(path),
                kind="invalid_plan",
                message=message,
                hint=hint,
                suggestions=tuple(suggestions),
            )
        )
    return issues


def _has_steps(raw: Any) -> bool:
    return isinstance(raw, Mapping) and isinstance(raw.get("steps"), list | tuple) and bool(raw["steps"])


def _raw_path(raw: Any, loc: Sequence[str | int]) -> list[PathSegment]:
    # pydantic puts union and type tags into `loc`; keep only the steps that exist in the raw data
    # (and a final missing key).
    path: list[PathSegment] = []
    current = raw
    for position, seg in enumerate(loc):
        in_map = isinstance(current, Mapping) and seg in current
        if in_map or (isinstance(current, list | tuple) and isinstance(seg, int) and 0 <= seg < len(current)):
            current = current[seg]
        elif position != len(loc) - 1:
            continue
        path.append(seg)
    return path


def _allowed_fields(parent: Sequence[PathSegment]) -> tuple[str, ...]:
    if not parent:
        return _FIELDS_AT["plan"]
    if parent[-1] == "retry":
        return _RETRY_FIELDS
    if parent[-1] == "foreach_options":
        return tuple(ForeachOptions.model_fields)
    if len(parent) == 2 and parent[0] == "steps" and isinstance(parent[1], int):
        return _FIELDS_AT["step"]
    return ()


def _step_of(raw: Any, prefix: Sequence[PathSegment], path: Sequence[PathSegment]) -> str | None:
    if prefix:  # raw is the step itself
        return _id_of(raw)
    if len(path) >= 2 and path[0] == "steps" and isinstance(path[1], int) and isinstance(raw, Mapping):
        steps = raw.get("steps")
        if isinstance(steps, list | tuple) and path[1] < len(steps):
            return _id_of(steps[path[1]])
    return None


def _id_of(step: Any) -> str | None:
    if isinstance(step, Mapping) and isinstance(step.get("id"), str):
        return str(step["id"])
    return None
