"""The gate below every front: ``Conductor.execute(approve=...)``. Without an approver nothing that needs consent
runs; an approver sees exactly the steps that need it; fuzzed plans, patterns and argument text never crash
the form and never run a step the approver was not shown."""

from collections import Counter
from collections.abc import Sequence
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import anyio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

from mcp_conductor.client_pool.config import in_process_config
from mcp_conductor.client_pool.consent_policy import ConsentPolicy
from mcp_conductor.server.conductor import Conductor
from mcp_conductor.server.execution.consent import ConsentDecision, only_listed
from mcp_conductor.server.planning.consent import ConsentStep, form_text

TOOLS = ("erase", "read", "stamp")


def vault(calls: Counter[str]) -> MCPServer:
    server = MCPServer("vault")

    @server.tool(annotations=ToolAnnotations(destructive_hint=True))
    async def erase(key: str) -> dict[str, str]:
        calls[f"erase:{key}"] += 1
        return {"key": key}

    @server.tool(annotations=ToolAnnotations(read_only_hint=True))
    async def read(key: str) -> dict[str, str]:
        calls[f"read:{key}"] += 1
        return {"key": key}

    @server.tool()
    async def stamp(key: str) -> dict[str, str]:
        calls[f"stamp:{key}"] += 1
        return {"key": key}

    return server


def opened(tmp_path: Path, calls: Counter[str], policy: ConsentPolicy | None = None) -> Any:
    return Conductor.open(in_process_config({"vault": vault(calls)}, consent=policy), tmp_path / "state")


PLAN = {"steps": [{"id": "a", "tool": "vault/read", "arguments": {"key": "x"}},
                  {"id": "b", "tool": "vault/erase", "arguments": {"key": "x"}, "depends_on": ["a"]}]}  # fmt: skip


async def test_without_an_approver_a_destructive_step_makes_a_consent_required_result(tmp_path: Path):
    calls: Counter[str] = Counter()
    async with opened(tmp_path, calls) as conductor:
        result = await conductor.execute(PLAN)
    assert result.status == "consent_required" and result.failed and result.run_id is None
    assert result.consent is not None and [s.id for s in result.consent.steps] == ["b"]
    assert calls == Counter()


async def test_a_python_approver_sees_the_steps_and_its_decision_is_recorded(tmp_path: Path):
    calls: Counter[str] = Counter()
    seen: list[list[str]] = []

    async def approve(steps: Sequence[ConsentStep]) -> ConsentDecision:
        seen.append([s.id for s in steps])
        return ConsentDecision(approved=True)

    async with opened(tmp_path, calls) as conductor:
        result = await conductor.execute(PLAN, approve=approve)
        assert result.run_id is not None
        (decision,) = await conductor.store.get_consents(result.run_id)
    assert result.status == "succeeded" and seen == [["b"]]
    assert (decision.who, decision.decision) == ("python", "approved")
    assert calls == Counter({"read:x": 1, "erase:x": 1})


async def test_an_approval_given_for_other_steps_runs_nothing(tmp_path: Path):
    calls: Counter[str] = Counter()
    async with opened(tmp_path, calls) as conductor:
        result = await conductor.execute(PLAN, approve=only_listed([], ConsentDecision(approved=True, who="host")))
    assert result.status == "consent_required" and "changed after the person was asked" in str(result.error)
    assert calls == Counter()


step_strategy = st.fixed_dictionaries(
    # any text, long or odd, in the form; but not "${", which would make it a reference (fuzzed in test_fuzz)
    {"tool": st.sampled_from(TOOLS), "key": st.text(max_size=300).filter(lambda text: "${" not in text)}
)
pattern = st.sampled_from(["vault/*", "vault/erase", "vault/st*", "*/read", "vault/[er]*", "other/*", "vault/?ead"])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    steps=st.lists(step_strategy, min_size=1, max_size=6),
    allow=st.lists(pattern, max_size=2),
    ask=st.lists(pattern, max_size=2),
    approve=st.booleans(),
)
def test_fuzzed_plans_and_patterns_never_run_an_unlisted_step(
    tmp_path_factory: Any, steps: list[dict[str, str]], allow: list[str], ask: list[str], approve: bool
):
    plan = {
        "steps": [
            {"id": f"s{i}", "tool": f"vault/{s['tool']}", "arguments": {"key": s["key"]}} for i, s in enumerate(steps)
        ]
    }
    policy = ConsentPolicy(allow=tuple(allow), ask=tuple(ask))
    calls: Counter[str] = Counter()
    shown: list[ConsentStep] = []

    async def decide(needed: Sequence[ConsentStep]) -> ConsentDecision:
        shown.extend(needed)
        assert form_text(needed).count("\n- ") == min(len(needed), 20)
        return ConsentDecision(approved=approve)

    async def main() -> Any:
        async with opened(tmp_path_factory.mktemp("fuzz"), calls, policy) as conductor:
            return await conductor.execute(plan, approve=decide)

    result = anyio.run(main)
    listed = {s.id for s in shown}
    for i, step in enumerate(steps):  # the policy, restated: destructive or asked, and not allowed
        tool = f"vault/{step['tool']}"
        needs = step["tool"] == "erase" or any(fnmatchcase(tool, p) for p in ask)
        assert (f"s{i}" in listed) == (needs and not any(fnmatchcase(tool, p) for p in allow))
    if shown and not approve:
        assert result.status == "declined" and calls == Counter()
    else:
        assert result.status == "succeeded"


async def test_a_foreach_over_50_items_of_a_destructive_tool_asks_once_with_the_item_count(tmp_path: Path):
    calls: Counter[str] = Counter()
    asked: list[list[tuple[str, int | None]]] = []
    keys = [f"k{i}" for i in range(50)]
    plan = {
        "inputs": {"keys": keys},
        "steps": [
            {
                "id": "wipe",
                "tool": "vault/erase",
                "foreach": "inputs.keys",
                "foreach_options": {"max_items": 60},
                "arguments": {"key": "${item}"},
            }
        ],
    }

    async def decline(steps: Sequence[ConsentStep]) -> ConsentDecision:
        asked.append([(s.id, s.items) for s in steps])
        return ConsentDecision(approved=False)

    async with opened(tmp_path, calls) as conductor:
        result = await conductor.execute(plan, approve=decline)
    assert asked == [[("wipe", 60)]]  # one question, with the item bound
    assert result.status == "declined"
    assert calls == Counter()  # nothing unlisted (or listed) ran
