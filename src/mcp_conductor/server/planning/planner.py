"""The pure planner behind ``plan_chain``: a raw plan and a catalog snapshot in, a ``PlanResult`` out.

No I/O, no anyio, no logging (networkx is behind ``graph``). The planner reads the plan (``parse_plan``),
resolves tool ids, rewrites ``CHAIN_RESULT`` to ``${steps.<previous id>}``, checks every reference (the step
exists and is not itself, the path exists in its tool's ``outputSchema``; the input is declared and has the
path), validates the arguments against each ``inputSchema``, then builds the dependency graph (references ∪
``depends_on``) for cycles, levels and the critical path. Every problem is collected, none raised.
The per-step checks (tools, references, expressions, arguments) are ``step_checks.StepChecks``; this module
owns ``plan``, ``plan_id``, ``PlannerLimits`` and the whole-plan work (outputs, estimates, the graph).

References in arguments are validated by stand-ins in one JSON Schema validation of the arguments:
- an exact ``${inputs...}`` becomes the input's value, and text made only of input references its rendered
  text, so they are checked like literals;
- an exact ``${steps...}`` becomes an opaque value that matches no JSON type. The ``type`` error it draws
  (also through ``$ref`` and ``anyOf``/``oneOf``) gives the expected types, which are compared with the types
  the producer's ``outputSchema`` declares at the path (integer and number count as compatible). Without an
  ``outputSchema``, or when it says nothing there, the position is left to run time;
- text interpolating a step reference becomes a ``str`` of unknown content: it must be allowed to be a
  string; its pattern, length, enum and format checks are left to run time.
Other errors at a stand-in, and whole-value keywords (``anyOf``, ``enum``, ``uniqueItems``...) on its
ancestors, are dropped as undecidable. ``required`` holds because the stand-in keeps its key.

The normalized plan (what the executor runs) has canonical ``server/tool`` ids, defaults filled in, no
``CHAIN_RESULT``, ``depends_on`` = every dependency in plan order, and ``outputs`` resolved; planning it again
gives the same ``plan_id``. Input values are checked as declared: a caller that overrides inputs at run time
should plan again with the merged inputs.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import MISSING

from mcp_conductor.client_pool.catalog import CatalogSnapshot, ToolId, ToolInfo
from mcp_conductor.server.discovery.metrics import ToolStats
from mcp_conductor.server.planning import graph as dag
from mcp_conductor.server.planning.models import (
    EstimateBasis,
    FanOut,
    Plan,
    PlanResult,
    StepId,
)
from mcp_conductor.server.planning.parsing import parse_plan
from mcp_conductor.server.planning.saved_chains import ChainTool
from mcp_conductor.server.planning.step_checks import StepChecks
from mcp_conductor.shapes import Shape
from mcp_conductor.suggest import close_matches


@dataclass(frozen=True, slots=True)
class PlannerLimits:
    """Bounds on one plan, each a ``limit_exceeded`` error. ``default_step_latency_ms`` estimates a tool
    that has no measured calls yet."""

    max_steps: int = 200
    max_plan_bytes: int = 1_000_000
    max_reference_depth: int = 32
    default_step_latency_ms: float = 200.0
    max_foreach_concurrency: int = 50
    max_foreach_items: int = 1000


def plan(
    raw: Mapping[str, Any] | Plan,
    catalog: CatalogSnapshot,
    *,
    stats: Mapping[ToolId, ToolStats] | None = None,
    unavailable_servers: Collection[str] = (),
    limits: PlannerLimits = PlannerLimits(),
    shapes: Mapping[ToolId, Shape] | None = None,
    chains: Mapping[str, ChainTool] | None = None,
) -> PlanResult:
    """Check a plan against the catalog; compute its levels, critical path and latency estimate.

    Never raises for a bad plan: every problem is in ``errors`` (and ``valid`` is False), each with a JSON
    pointer into the plan. For example ``plan({"steps": [{"id": "a", "tool": "text/word_stats",
    "arguments": {"text": "hi"}}]}, snapshot).levels == (("a",),)``. ``chains`` are the saved chains a step
    may name as ``chain/NAME`` or ``chain/NAME@VERSION`` (by that id).
    """
    parsed = parse_plan(raw, max_steps=limits.max_steps, max_bytes=limits.max_plan_bytes)
    if isinstance(parsed, list):
        return PlanResult(valid=False, errors=tuple(parsed))
    checks = StepChecks(
        catalog, stats or {}, frozenset(unavailable_servers), limits, parsed, shapes or {}, chains or {}
    )
    return _result(checks)


def plan_id(normalized: Plan) -> str:
    """``plan_`` + 16 hex digits of the SHA-256 of the normalized plan's canonical JSON (sorted keys)."""
    data = normalized.model_dump(mode="json")
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "plan_" + hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _result(checks: StepChecks) -> PlanResult:
    """The plan as a whole, after its steps are checked: outputs, estimates, cycles, levels and critical path."""
    normalized = checks.check_steps()
    steps = checks.parsed.steps
    order = [s.id for s in normalized]
    depended_on = {dep for s in normalized for dep in s.depends_on}
    outputs = _outputs(checks, checks.parsed.outputs, order, depended_on)
    basis: dict[str, EstimateBasis] = {}
    weights: list[float] = []
    fan_out: dict[str, FanOut] = {}
    for index, step in steps:
        weight, basis[step.id] = (0.0, "in_process") if step.is_data else _estimate(checks, checks.tools[index])
        if step.foreach is not MISSING:
            options = step.options
            waves = math.ceil(options.max_items / options.max_concurrency)
            fan_out[step.id] = FanOut(max_items=options.max_items, max_concurrency=options.max_concurrency, waves=waves)
            weight *= waves
        weights.append(weight)
    # Nodes are positions in `normalized`, so a duplicated id cannot merge two steps into one node.
    slot: dict[str, int] = {}
    for position, step in enumerate(normalized):
        slot.setdefault(step.id, position)
    graph = dag.build_graph([[slot[dep] for dep in step.depends_on] for step in normalized])
    for cycle in dag.cycles(graph):
        names = [normalized[k].id for k in cycle]
        message = f"steps depend on each other in a cycle: {' -> '.join([*names, names[0]])}"
        hint = "remove one of these references or depends_on entries"
        checks.error("cycle", ("steps", steps[cycle[0]][0]), names[0], message, hint=hint)
    levels: list[list[str]] = []
    critical: list[str] = []
    estimate = None
    if checks.parsed.complete and len(slot) == len(normalized) and dag.is_acyclic(graph):
        generations = dag.levels(graph)
        path, estimate = dag.critical_path(graph, generations, weights)
        levels = [[normalized[k].id for k in level] for level in generations]
        critical = [normalized[k].id for k in path]
    final = None
    if not checks.errors:
        final = Plan.model_construct(inputs=checks.parsed.inputs, steps=tuple(normalized), outputs=outputs)
    return PlanResult(
        valid=final is not None,
        plan_id=plan_id(final) if final else None,
        steps=tuple(normalized),
        outputs=outputs,
        levels=tuple(tuple(level) for level in levels),
        critical_path=tuple(critical),
        estimated_latency_ms=estimate,
        estimate_basis=basis,
        fan_out=fan_out,
        warnings=tuple(checks.warnings),
        errors=tuple(checks.errors),
        normalized_plan=final,
    )


def _estimate(checks: StepChecks, tool: ToolInfo | None) -> tuple[float, EstimateBasis]:
    found = checks.stats.get(tool.id) if tool else None
    if found is not None and found.calls and found.p50_ms is not None:
        return found.p50_ms, "measured"
    chain = checks.chains.get(tool.id) if tool else None
    if chain is not None and chain.estimate_ms is not None:
        return chain.estimate_ms, "chain"
    return checks.limits.default_step_latency_ms, "default"


def _outputs(
    checks: StepChecks, given: Sequence[str] | None, order: Sequence[StepId], depended_on: Collection[str]
) -> tuple[StepId, ...]:
    if given is None:
        return tuple(step_id for step_id in order if step_id not in depended_on)
    for position, name in enumerate(given):
        if name not in checks.index_of and name not in checks.known_ids:
            message = f"outputs names no step {name!r}"
            fixes = close_matches(name, checks.index_of)
            where = ("outputs", position)
            checks.error("unknown_step_reference", where, None, message, hint=checks.ids_hint(), suggestions=fixes)
    return tuple(StepId(name) for name in dict.fromkeys(given))
