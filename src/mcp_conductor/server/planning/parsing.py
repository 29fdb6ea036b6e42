"""Reading a raw plan: the ``Plan`` models of ``models``, or why the plan cannot be read, as ``PlanIssue`` values.

Shape errors (``ValidationError``) are turned into ``PlanIssue`` values with JSON pointers into the raw plan by
:func:`shape_issues`, so a malformed plan is reported like any other problem instead of raising; the steps that
did parse are kept (``ParsedPlan.complete`` is false) so that their other problems reach the same answer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from mcp_conductor.server.planning.models import ForeachOptions, Plan, PlanIssue, PlannedStep, RetryPolicy
from mcp_conductor.server.planning.references import PathSegment, json_pointer
from mcp_conductor.suggest import close_matches


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
