"""Graph properties of the planner on random DAGs (hypothesis)."""

import itertools
import random
from functools import cache
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_conductor.client_pool.catalog import Catalog, CatalogSnapshot, ServerName, ToolId, ToolInfo
from mcp_conductor.server.discovery.metrics import ToolStats
from mcp_conductor.server.planning.planner import plan

LATENCIES = (5.0, 20.0, 50.0, 125.0, 300.0)  # p50 of tools t0..t4; exact in binary floating point


def catalog() -> CatalogSnapshot:
    tools = [
        ToolInfo(
            ServerName("x"),
            f"t{k}",
            output_schema={"type": "object", "properties": {"v": {"type": "integer"}}},
        )
        for k in range(len(LATENCIES))
    ]
    built = Catalog()
    built.set_server_tools(ServerName("x"), tools)
    return built.snapshot()


CATALOG = catalog()
STATS = {
    ToolId(f"x/t{k}"): ToolStats(calls=1, successes=1, failures=0, timeouts=0, p50_ms=ms, p95_ms=ms)
    for k, ms in enumerate(LATENCIES)
}


@st.composite
def dags(draw: st.DrawFn) -> tuple[list[int], dict[int, list[int]], list[bool]]:
    """(tool index per step, earlier predecessors per step, whether each edge is a reference)."""
    size = draw(st.integers(1, 14))
    tools = draw(st.lists(st.integers(0, len(LATENCIES) - 1), min_size=size, max_size=size))
    preds = {j: sorted(draw(st.sets(st.integers(0, j - 1), max_size=3)) if j else []) for j in range(size)}
    style = draw(st.lists(st.booleans(), min_size=size, max_size=size))
    return tools, preds, style


def to_plan(tools: list[int], preds: dict[int, list[int]], as_refs: list[bool]) -> dict[str, Any]:
    # Edges are written as references for some steps and as depends_on for others.
    steps = []
    for j, tool in enumerate(tools):
        step: dict[str, Any] = {"id": f"s{j}", "tool": f"x/t{tool}"}
        if as_refs[j]:
            step["arguments"] = {"inputs": [f"${{steps.s{i}.v}}" for i in preds[j]]}
        else:
            step["depends_on"] = [f"s{i}" for i in preds[j]]
        steps.append(step)
    return {"steps": steps}


def longest_path(tools: list[int], preds: dict[int, list[int]]) -> float:
    @cache
    def ending_at(j: int) -> float:
        return LATENCIES[tools[j]] + max((ending_at(i) for i in preds[j]), default=0.0)

    return max(ending_at(j) for j in range(len(tools)))


@given(dags())
@settings(max_examples=150, deadline=None)
def test_every_edge_goes_from_an_earlier_level_to_a_later_one(dag):
    tools, preds, style = dag
    result = plan(to_plan(tools, preds, style), CATALOG)
    assert result.valid, result.errors
    level_of = {step: n for n, level in enumerate(result.levels) for step in level}
    listed = [step for level in result.levels for step in level]
    assert sorted(listed) == sorted(f"s{j}" for j in range(len(tools)))  # each step in exactly one level
    for j, earlier in preds.items():
        for i in earlier:
            assert level_of[f"s{i}"] < level_of[f"s{j}"]


@given(dags(), st.randoms(use_true_random=False))
@settings(max_examples=150, deadline=None)
def test_any_added_back_edge_is_reported_as_a_cycle_naming_its_steps(dag, rng: random.Random):
    tools, preds, style = dag
    edges = [(i, j) for j, earlier in preds.items() for i in earlier]
    if not edges:
        return
    head, tail = rng.choice(edges)  # head -> tail exists; make head depend on tail too
    raw = to_plan(tools, preds, style)
    raw["steps"][head].setdefault("depends_on", []).append(f"s{tail}")
    result = plan(raw, CATALOG)
    assert not result.valid
    cycles = [e for e in result.errors if e.kind == "cycle"]
    assert [e.kind for e in result.errors] == ["cycle"] * len(cycles)
    named = [e.message.rpartition(": ")[2].split(" -> ") for e in cycles]
    assert any(f"s{head}" in steps and f"s{tail}" in steps for steps in named)
    back = {**{j: list(p) for j, p in preds.items()}, head: [*preds[head], tail]}
    for steps in named:
        assert steps[0] == steps[-1]
        for a, b in itertools.pairwise(steps):  # each hop is a real dependency
            assert int(a[1:]) in back[int(b[1:])]


@given(dags())
@settings(max_examples=150, deadline=None)
def test_the_critical_path_estimate_equals_the_longest_path(dag):
    tools, preds, style = dag
    result = plan(to_plan(tools, preds, style), CATALOG, stats=STATS)
    assert result.estimated_latency_ms == longest_path(tools, preds)
    path = [int(step[1:]) for step in result.critical_path]
    assert all(a in preds[b] for a, b in itertools.pairwise(path))
    assert sum(LATENCIES[tools[j]] for j in path) == result.estimated_latency_ms
    assert set(result.estimate_basis.values()) == {"measured"}


@given(dags())
@settings(max_examples=60, deadline=None)
def test_planning_a_normalized_plan_again_is_a_fixed_point(dag):
    tools, preds, style = dag
    first = plan(to_plan(tools, preds, style), CATALOG)
    assert first.normalized_plan is not None
    again = plan(first.normalized_plan.model_dump(mode="json"), CATALOG)
    assert (again.plan_id, again.levels) == (first.plan_id, first.levels)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)
REFERENCE_TEXT = st.sampled_from(["${steps.s0}", "${steps.s1.v}", "x ${inputs.a", "$${", "CHAIN_RESULT", "${"])
STEP = st.fixed_dictionaries(
    {
        "id": st.sampled_from(["s0", "s1", "s2", "", "a b"]) | JSON,
        "tool": st.sampled_from(["x/t0", "t1", "y"]) | JSON,
    },
    optional={
        "arguments": st.dictionaries(st.text(max_size=4), JSON | REFERENCE_TEXT, max_size=3) | JSON,
        "depends_on": st.lists(st.sampled_from(["s0", "s1", "s2"]) | JSON, max_size=3),
        "retry": st.fixed_dictionaries({}, optional={"attempts": JSON, "on": JSON}) | JSON,
        "timeout_s": JSON,
        "on_error": JSON,
    },
)


@given(
    JSON
    | st.fixed_dictionaries({"steps": st.lists(STEP, max_size=4) | JSON}, optional={"inputs": JSON, "outputs": JSON})
)
@settings(max_examples=300, deadline=None)
def test_any_json_input_gives_a_result_and_never_raises(raw):
    result = plan(raw, CATALOG)
    assert result.valid == (not result.errors)
    assert all(e.field == "" or e.field.startswith("/") for e in [*result.errors, *result.warnings])
