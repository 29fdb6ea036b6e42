"""Property: for any chain of steps with random ``when`` outcomes, failures and defaults, every step ends as a
small reference model of the rules says (when false skips with condition_false, a when that cannot be evaluated
fails, a skipped or failed step's default feeds its dependents, a dependent of a step without a value is skipped)."""

from pathlib import Path
from typing import Any

import anyio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client
from test_executor import conductor, execute  # type: ignore[import-not-found]

from mcp_conductor.demo import latency

WHEN = {"none": None, "true": "inputs.z == 1", "false": "inputs.z == 2", "error": "inputs.z / 0 > 1"}
STEP = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(["tool", "data"]),
        "when": st.sampled_from(list(WHEN)),
        "fails": st.booleans(),
        "default": st.booleans(),
    }
)


def build(specs: list[dict[str, Any]]) -> dict[str, Any]:
    steps = []
    for i, spec in enumerate(specs):
        prev = f"${{steps.s{i - 1}}}" if i else "start"
        step: dict[str, Any] = {"id": f"s{i}", "on_error": "continue"}
        if spec["kind"] == "tool" and spec["fails"]:
            step |= {"tool": "latency/fail", "arguments": {"message": f"after {prev}"}}
        elif spec["kind"] == "tool":
            step |= {"tool": "latency/echo", "arguments": {"value": prev}}
        else:
            source = f"steps.s{i - 1}" if i else "'start'"
            step["expr"] = f"[{source}, 1 / (inputs.z - 1)]" if spec["fails"] else f"[{source}]"
        if WHEN[spec["when"]] is not None:
            step["when"] = WHEN[spec["when"]]
        if spec["default"]:
            step["default"] = f"default{i}"
        steps.append(step)
    return {"inputs": {"z": 1}, "steps": steps}


def model(specs: list[dict[str, Any]]) -> dict[str, tuple[str, str | None]]:
    """Each step's (status, error kind) under the rules."""
    out: dict[str, tuple[str, str | None]] = {}
    has_value = True  # the previous step left a value (its own or its default)
    for i, spec in enumerate(specs):
        if not has_value:
            result = ("skipped", "skipped")
        elif spec["when"] == "false":
            result = ("skipped", "condition_false")
        elif spec["when"] == "error":
            result = ("failed", "expression_error")
        elif spec["fails"]:
            result = ("failed", "tool_error" if spec["kind"] == "tool" else "expression_error")
        else:
            result = ("succeeded", None)
        out[f"s{i}"] = result
        has_value = result[0] == "succeeded" or spec["default"]
    return out


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(specs=st.lists(STEP, min_size=1, max_size=5))
def test_when_default_and_failures_end_every_step_as_the_rules_say(tmp_path_factory: Any, specs: list[dict[str, Any]]):
    tmp_path: Path = tmp_path_factory.mktemp("run")

    async def run() -> dict[str, Any]:
        async with Client(conductor(tmp_path, latency=latency.build_server())) as client:
            with anyio.fail_after(10):
                return await execute(client, build(specs))

    result = anyio.run(run)
    assert result["status"] != "invalid", result["errors"]
    got = {s["id"]: (s["status"], s["error"]["kind"] if s.get("error") else None) for s in result["steps"]}
    assert got == model(specs)
