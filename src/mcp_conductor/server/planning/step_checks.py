"""The planner's per-step checks: one plan's steps resolved, rewritten and checked, problems collected.

``StepChecks`` owns everything about a single step: its tool (a catalog tool or a saved ``chain/NAME``), the
``CHAIN_RESULT`` rewrite, every reference in its arguments and CEL expressions (the step or input exists, the
path exists in the producer's ``outputSchema`` or learned shape), its ``depends_on``, ``foreach_options`` limits
and its arguments against the tool's ``inputSchema``. The whole-plan work (outputs, estimates, the dependency
graph, the ``PlanResult``) is in ``planner``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jsonschema.exceptions import SchemaError
from jsonschema.protocols import Validator
from pydantic import MISSING

from mcp_conductor.client_pool.catalog import CatalogSnapshot, ToolId, ToolInfo
from mcp_conductor.errors import AmbiguousToolError, UnknownToolError
from mcp_conductor.server.discovery.metrics import ToolStats
from mcp_conductor.server.planning.arguments import check_arguments, compile_validator
from mcp_conductor.server.planning.expressions import Expression, ExpressionCompileError, compile_expression
from mcp_conductor.server.planning.models import PlanIssue, PlannedStep
from mcp_conductor.server.planning.parsing import ParsedPlan
from mcp_conductor.server.planning.references import (
    LOOP_SOURCES,
    NAME_PATTERN,
    JsonPath,
    Reference,
    ReferenceSyntaxError,
    Template,
    follow_path,
    format_path,
    json_pointer,
    parse_template,
)
from mcp_conductor.server.planning.saved_chains import CHAIN_PREFIX, ChainRefError, ChainTool, parse_ref
from mcp_conductor.server.planning.schema_paths import lookup_schema
from mcp_conductor.shapes import Shape, shape_schema, shape_text
from mcp_conductor.suggest import close_matches

if TYPE_CHECKING:
    from mcp_conductor.server.planning.planner import PlannerLimits

_CHAIN_RESULT = re.compile(r"(?<![A-Za-z0-9_])CHAIN_RESULT(?![A-Za-z0-9_])")


@dataclass(slots=True)
class StepChecks:
    """One plan's per-step checks and what they found (``errors``, ``warnings``, each step's tool)."""

    catalog: CatalogSnapshot
    stats: Mapping[ToolId, ToolStats]
    unavailable: frozenset[str]
    limits: PlannerLimits
    parsed: ParsedPlan
    shapes: Mapping[ToolId, Shape]  # learned value shapes of tools without an outputSchema
    chains: Mapping[str, ChainTool]  # saved chains by their tool id (chain/NAME, chain/NAME@VERSION)
    errors: list[PlanIssue] = field(default_factory=list)
    warnings: list[PlanIssue] = field(default_factory=list)
    index_of: dict[str, int] = field(default_factory=dict)  # step id -> its first position
    tools: dict[int, ToolInfo | None] = field(default_factory=dict)  # by position
    producers: dict[str, ToolInfo | None] = field(default_factory=dict)  # by step id
    known_ids: set[str] = field(default_factory=set)  # also of steps that failed to parse
    validators: dict[ToolId, Validator | None] = field(default_factory=dict)

    def ids_hint(self) -> str:
        return "the plan's steps: " + (", ".join(self.index_of) or "none")

    def error(self, kind: str, where: JsonPath, step: str | None, message: str, **extra: Any) -> None:
        self.errors.append(PlanIssue(step=step, field=json_pointer(where), kind=kind, message=message, **extra))

    def warn(self, kind: str, where: JsonPath, step: str | None, message: str, **extra: Any) -> None:
        self.warnings.append(PlanIssue(step=step, field=json_pointer(where), kind=kind, message=message, **extra))

    def check_steps(self) -> list[PlannedStep]:
        """Each step checked and normalized, in plan order; every problem is recorded, none raised."""
        self.errors += self.parsed.issues
        self.known_ids = {step_id for step_id in self.parsed.ids.values() if step_id is not None}
        steps = self.parsed.steps
        for index, step in steps:
            first = self.index_of.setdefault(step.id, index)
            if first != index:
                message = f"step id {step.id!r} is already used by step {first}"
                self.error("duplicate_step_id", ("steps", index, "id"), step.id, message, hint="give each its own id")
        for index, step in steps:
            self._tool(index, step)  # first, so references to later steps know their producer
        self.producers = {step_id: self.tools[index] for step_id, index in self.index_of.items()}
        normalized = [self._check_step(index, step) for index, step in steps]
        return normalized

    def _tool(self, index: int, step: PlannedStep) -> ToolInfo | None:
        if step.tool is MISSING:  # a data step
            self.tools[index] = None
        elif index not in self.tools and step.tool.startswith(CHAIN_PREFIX):
            self.tools[index] = self._chain(index, step.id, step.tool)
        elif index not in self.tools:
            try:
                self.tools[index] = self.catalog.resolve(step.tool)
            except (UnknownToolError, AmbiguousToolError) as exc:
                self.tools[index] = None
                where = ("steps", index, "tool")
                self.error(exc.kind, where, step.id, exc.message, hint=exc.hint, suggestions=tuple(exc.suggestions))
        return self.tools[index]

    def _chain(self, index: int, step_id: str, name: str) -> ToolInfo | None:
        """A saved chain named by a step (``chain/NAME[@VERSION]``), or None with the error recorded."""
        found = self.chains.get(name)
        if found is not None:
            return found.info
        where = ("steps", index, "tool")
        try:
            ref = parse_ref(name)
        except ChainRefError as exc:
            self.error(exc.kind, where, step_id, exc.message, hint=exc.hint)
            return None
        known = [key for key in self.chains if "@" not in key]
        message = f"there is no saved chain {ref}" + (" (at that version)" if ref.version else "")
        hint = "discover_tools lists saved chains (chain/NAME); plan_chain's save_as saves one"
        self.error("unknown_chain", where, step_id, message, hint=hint, suggestions=close_matches(name, known))
        return None

    def _check_step(self, index: int, step: PlannedStep) -> PlannedStep:
        here = ("steps", index)
        tool = self._tool(index, step)
        if tool is not None and tool.server in self.unavailable:
            message = f"server {tool.server!r} is not connected right now"
            self.warn(
                "server_unavailable",
                (*here, "tool"),
                step.id,
                message,
                hint="the step fails unless it connects",
            )
        if tool is not None and step.retry.attempts > 1 and not tool.idempotent:
            message = (
                f"{tool.id} is not annotated read-only or idempotent, so it is not retried unless retry.on "
                "lists the failure kinds to retry"
                if step.retry.on is None
                else f"{tool.id} is not annotated read-only or idempotent: a retry may repeat its side effect"
            )
            self.warn("unsafe_retry", (*here, "retry", "attempts"), step.id, message)
        templates: list[tuple[JsonPath, Template]] = []
        arguments = {k: self._normalize(index, step, v, (k,), templates) for k, v in step.arguments.items()}
        deps: set[str] = set()
        for path, template in templates:
            for placeholder in template.placeholders:
                self._check_reference(step, (*here, "arguments", *path), placeholder.reference, deps)
        loop = step.foreach is not MISSING
        for name, source, in_loop in (
            ("foreach", step.foreach, False),
            ("when", step.when, False),
            ("expr", step.expr, loop),
        ):
            if source is not MISSING:
                self._check_expression(step, (*here, name), source, in_loop, deps)
        if loop:
            self._check_foreach_options(step, here)
        for position, dep in enumerate(step.depends_on):
            where = (*here, "depends_on", position)
            if dep == step.id:
                self.error("self_dependency", where, step.id, f"step {step.id!r} depends on itself")
            elif dep in self.index_of:
                deps.add(dep)
            elif dep not in self.known_ids:  # a step that failed to parse is reported already
                message = f"depends_on names no step {dep!r}"
                fixes = close_matches(dep, self.index_of)
                self.error("unknown_step_reference", where, step.id, message, hint=self.ids_hint(), suggestions=fixes)
        if tool is not None:
            self._check_arguments(index, step, tool, arguments, templates)
        ordered = tuple(sorted(deps, key=self.index_of.__getitem__))
        update: dict[str, Any] = {"arguments": arguments, "depends_on": ordered}
        if not step.is_data:
            update["tool"] = tool.id if tool else step.tool
        return step.model_copy(update=update)

    def _check_expression(self, step: PlannedStep, where: JsonPath, source: str, loop: bool, deps: set[str]) -> None:
        try:
            expr: Expression = compile_expression(source, loop=loop)
        except ExpressionCompileError as exc:
            column = {} if exc.column is None else {"column": exc.column}
            self.error(exc.kind, where, step.id, exc.message, hint=exc.hint, **column)
            return
        for name in expr.steps:
            self._check_reference(step, where, Reference("steps", name), deps)
        for name in expr.inputs:
            self._check_reference(step, where, Reference("inputs", name), deps)

    def _check_foreach_options(self, step: PlannedStep, here: JsonPath) -> None:
        options = step.options
        caps = (
            ("max_concurrency", options.max_concurrency, self.limits.max_foreach_concurrency),
            ("max_items", options.max_items, self.limits.max_foreach_items),
        )
        for name, value, cap in caps:
            if value > cap:
                message = f"foreach_options.{name} is {value}; the limit is {cap}"
                self.error("limit_exceeded", (*here, "foreach_options", name), step.id, message)

    def _normalize(self, index: int, step: PlannedStep, value: Any, path: JsonPath, found: list[Any]) -> Any:
        if isinstance(value, dict):
            return {k: self._normalize(index, step, v, (*path, k), found) for k, v in value.items()}
        if isinstance(value, list):
            return [self._normalize(index, step, v, (*path, i), found) for i, v in enumerate(value)]
        if not isinstance(value, str) or ("$" not in value and "CHAIN_RESULT" not in value):
            return value
        where = ("steps", index, "arguments", *path)
        try:
            template = parse_template(value)
        except ReferenceSyntaxError as exc:
            self.error(exc.kind, where, step.id, exc.message, hint=exc.hint)
            return value
        spans = [(p.start, p.end) for p in template.placeholders]
        hits = [m.start() for m in _CHAIN_RESULT.finditer(value) if not any(a <= m.start() < b for a, b in spans)]
        previous = self.parsed.ids.get(index - 1)
        if previous is not None and not NAME_PATTERN.fullmatch(previous):
            previous = None  # not a usable id (that step's own error says so): nothing to rewrite to
        if hits and index == 0:
            hint = "use a literal or ${inputs.NAME} instead"
            message = "CHAIN_RESULT in the first step: there is no previous step"
            self.error("unknown_step_reference", where, step.id, message, hint=hint)
        elif hits and any(value[:at].endswith("$") for at in hits):
            message = "'$' right before CHAIN_RESULT would read as the escape '$${'"
            self.error("bad_reference", where, step.id, message, hint=f"write ${{steps.{previous}}} instead")
        elif hits and previous is not None:
            chunks, last = [], 0
            for at in hits:
                chunks += [value[last:at], f"${{steps.{previous}}}"]
                last = at + len("CHAIN_RESULT")
            value = "".join([*chunks, value[last:]])
            template = parse_template(value)
        if template.placeholders:
            found.append((path, template))
        return value

    def _check_reference(self, step: PlannedStep, where: JsonPath, ref: Reference, deps: set[str]) -> None:
        if ref.source in LOOP_SOURCES:
            if step.foreach is MISSING:
                hint = 'add "foreach": "<a CEL list expression>" to the step, or reference a step or an input'
                self.error("bad_reference", where, step.id, f"{ref} exists only in a foreach step", hint=hint)
            elif ref.source == "index" and ref.path:
                self.error("bad_reference_path", where, step.id, f"{ref}: the index is a number; it has no parts")
        elif len(ref.path) > self.limits.max_reference_depth:
            message = f"{ref} is {len(ref.path)} levels deep; the limit is {self.limits.max_reference_depth}"
            self.error("limit_exceeded", where, step.id, message)
        elif ref.source == "inputs":
            inputs = self.parsed.inputs
            if ref.name not in inputs:
                hint, fixes = 'declare it under the plan\'s "inputs"', close_matches(ref.name, inputs)
                message = f"{ref}: the plan declares no input {ref.name!r}"
                self.error("unknown_input", where, step.id, message, hint=hint, suggestions=fixes)
            elif (missing := follow_path(inputs[ref.name], ref.path)[1]) is not None:
                message = f"{ref}: input {ref.name!r} has no {ref.path[missing]!r} at {_at(ref, missing)}"
                self.error("bad_reference_path", where, step.id, message)
        elif ref.name == step.id:
            hint = "reference an earlier step (CHAIN_RESULT is the previous one)"
            self.error("self_dependency", where, step.id, f"step {step.id!r} references itself", hint=hint)
        elif ref.name not in self.index_of:
            if ref.name not in self.known_ids:
                fixes = close_matches(ref.name, self.index_of)
                message = f"{ref}: there is no step {ref.name!r}"
                self.error("unknown_step_reference", where, step.id, message, hint=self.ids_hint(), suggestions=fixes)
        else:
            deps.add(ref.name)
            producer = self.producers[ref.name]
            if producer is None or (producer.output_schema is None and not ref.path):
                return
            if producer.output_schema is None:
                self._check_learned(step, where, ref, producer)
                return
            lookup = lookup_schema(producer.output_schema, ref.path)
            if (at := lookup.missing_at) is not None:
                keys = close_matches(ref.path[at], lookup.offered)
                fixes = tuple(str(Reference("steps", ref.name, (*ref.path[:at], k))) for k in keys)
                offered = f"available there: {', '.join(lookup.offered)}" if lookup.offered else None
                message = f"{ref}: the outputSchema of {producer.id} has no {ref.path[at]!r} at {_at(ref, at)}"
                self.error("bad_reference_path", where, step.id, message, hint=offered, suggestions=fixes)

    def _check_learned(self, step: PlannedStep, where: JsonPath, ref: Reference, producer: ToolInfo) -> None:
        """A tool without an outputSchema: check the path against the shape learned from its earlier calls."""
        shape = self.shapes.get(producer.id)
        if shape is None:
            message = (
                f"{producer.id} declares no outputSchema and has not been called yet: {ref} is checked at run time"
            )
            self.warn("unchecked_reference", where, step.id, message)
            return
        lookup = lookup_schema(shape_schema(shape), ref.path)
        if (at := lookup.missing_at) is not None:
            keys = close_matches(ref.path[at], lookup.offered)
            fixes = tuple(str(Reference("steps", ref.name, (*ref.path[:at], k))) for k in keys)
            has = f"it had {', '.join(lookup.offered)}" if lookup.offered else f"it was {shape_text(shape)}"
            message = (
                f"{ref}: earlier values of {producer.id} had no {ref.path[at]!r} at {_at(ref, at)} ({has}); "
                "the step may fail at run time"
            )
            self.warn("unexpected_reference_path", where, step.id, message, suggestions=fixes)

    def _check_arguments(
        self, index: int, step: PlannedStep, tool: ToolInfo, arguments: dict[str, Any], templates: list[Any]
    ) -> None:
        where = ("steps", index, "arguments")
        if tool.id not in self.validators:
            try:
                self.validators[tool.id] = compile_validator(tool.input_schema)
            except SchemaError as exc:
                self.validators[tool.id] = None
                message = f"the inputSchema of {tool.id} is not valid JSON Schema: {exc.message}"
                self.warn("invalid_schema", ("steps", index, "tool"), step.id, message, hint="arguments unchecked")
        validator = self.validators[tool.id]
        if validator is None:
            return
        try:
            problems = check_arguments(validator, arguments, templates, self.parsed.inputs, self.producers)
        except Exception as exc:  # a downstream's broken schema (bad regex, unresolvable $ref) must not crash us
            message = f"could not validate against the inputSchema of {tool.id}: {exc}"
            self.warn("invalid_schema", where, step.id, message)
            return
        hint = f"the arguments must match the inputSchema of {tool.id}"
        for problem in problems:
            extra = {"hint": problem.hint or hint, "suggestions": problem.suggestions}
            self.error("invalid_arguments", (*where, *problem.path), step.id, problem.message, **extra)


def _at(ref: Reference, missing: int) -> str:
    return format_path(ref.path[:missing]) or "the top"
