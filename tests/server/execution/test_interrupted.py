"""The rule for calls in flight when the server died (``execution.interrupted``), and the idempotency key.

The store is left here exactly as a SIGKILLed server leaves it (the step's start committed, the run marked
interrupted at the next start); tests/e2e/test_crash_unknown.py kills a real server for the same rule.
"""

from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

from fixtures.crash import crash_during
from mcp_conductor.client_pool.config import in_process_config
from mcp_conductor.server.app import build_server
from mcp_conductor.server.execution.interrupted import (
    IDEMPOTENCY_KEY_META,
    Interrupted,
    idempotency_key,
    interrupted_outcome,
)

READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True)
IDEMPOTENT = ToolAnnotations(read_only_hint=False, idempotent_hint=True)
WRITE = ToolAnnotations(read_only_hint=False, idempotent_hint=False)


@pytest.mark.parametrize(
    ("read_only", "idempotent", "retry_on", "rerun_unknown", "expected"),
    [
        (True, True, None, False, Interrupted.RERUN),
        (False, True, None, False, Interrupted.RERUN),
        (True, False, None, False, Interrupted.RERUN),
        (False, False, None, False, Interrupted.UNKNOWN),
        (False, False, ("timeout",), False, Interrupted.UNKNOWN),
        (False, False, ("timeout", "unknown"), False, Interrupted.RERUN),
        (False, False, None, True, Interrupted.RERUN),
    ],
)
def test_only_a_call_that_is_safe_to_repeat_or_was_asked_for_is_made_again(
    read_only: bool, idempotent: bool, retry_on: tuple[str, ...] | None, rerun_unknown: bool, expected: Interrupted
):
    got = interrupted_outcome(
        read_only=read_only, idempotent=idempotent, retry_on=retry_on, rerun_unknown=rerun_unknown
    )
    assert got is expected


def test_the_idempotency_key_names_the_run_the_step_and_the_item():
    assert idempotency_key("r1", "save") == "r1/save"
    assert idempotency_key("r1", "save", 0) == "r1/save/0"


def shop() -> tuple[MCPServer, dict[str, int]]:
    """Tools with each kind of annotation; each counts its calls per key and answers with its idempotency key."""
    calls: dict[str, int] = {}
    server = MCPServer("shop")

    def answer(tool: str, key: str, fail: bool, ctx: Context) -> dict[str, Any]:
        calls[f"{tool}:{key}"] = calls.get(f"{tool}:{key}", 0) + 1
        if fail:
            raise ToolError(f"{tool} {key} fails on purpose")
        meta = ctx.request_context.meta or {}
        return {"key": key, "idempotency_key": meta.get(IDEMPOTENCY_KEY_META)}

    @server.tool(annotations=READ_ONLY)
    async def look(key: str, ctx: Context, fail: bool = False) -> dict[str, Any]:
        """Read a key."""
        return answer("look", key, fail, ctx)

    @server.tool(annotations=IDEMPOTENT)
    async def put(key: str, ctx: Context, fail: bool = False) -> dict[str, Any]:
        """Set a key (the same call twice leaves the same state)."""
        return answer("put", key, fail, ctx)

    @server.tool(annotations=WRITE)
    async def add(key: str, ctx: Context, fail: bool = False) -> dict[str, Any]:
        """Add to a key (every call adds)."""
        return answer("add", key, fail, ctx)

    return server, calls


async def execute(client: Client, **arguments: Any) -> dict[str, Any]:
    arguments["options"] = {"detail": "steps", **arguments.get("options", {})}
    result = await client.call_tool("execute_chain", arguments)
    assert result.structured_content is not None, result.content
    return result.structured_content


def statuses(run: dict[str, Any]) -> dict[str, str]:
    return {s["id"]: s["status"] for s in run["steps"]}


def two_branches(tool: str) -> dict[str, Any]:
    """``write`` (with ``tool``) fails on the first run, then is cut off by the crash; ``then`` needs it;
    ``other`` is an independent branch that also fails first."""
    return {
        "inputs": {"fail": True},
        "steps": [
            {"id": "write", "tool": f"shop/{tool}", "arguments": {"key": "w", "fail": "${inputs.fail}"}},
            {"id": "then", "tool": "shop/look", "arguments": {"key": "${steps.write.key}+then"}},
            {"id": "other", "tool": "shop/look", "arguments": {"key": "o", "fail": "${inputs.fail}"}},
        ],
        "outputs": ["then", "other"],
    }


@pytest.mark.parametrize(("tool", "rerun"), [("look", True), ("put", True), ("add", False)])
async def test_on_resume_an_interrupted_call_runs_again_only_for_a_read_only_or_idempotent_tool(
    tmp_path: Path, tool: str, rerun: bool
):
    server, calls = shop()
    state = tmp_path / "state"
    async with Client(build_server(in_process_config({"shop": server}), state_dir=state)) as client:
        with anyio.fail_after(10):
            first = await execute(client, plan=two_branches(tool), options={"run_id": "r", "on_error": "continue"})
            await crash_during(state, "r", "write")
            options = {"resume_run_id": "r", "on_error": "continue"}  # a resume's options are its own
            resumed = await execute(client, inputs={"fail": False}, options=options)
    assert statuses(first) == {"write": "failed", "then": "skipped", "other": "failed"}
    if rerun:
        assert (resumed["status"], resumed.get("error")) == ("succeeded", None)
        assert calls[f"{tool}:w"] == 2
    else:
        assert resumed["status"] == "partial"  # on_error continue: the independent branch still ran
        assert statuses(resumed) == {"write": "unknown", "then": "skipped", "other": "succeeded"}
        assert resumed["error"]["kind"] == "unknown_outcome"
        assert resumed["error"]["message"].startswith("step write: ")
        assert calls["add:w"] == 1  # only the first run's call
    assert calls["look:o"] == 2


async def test_an_unknown_step_under_on_error_fail_stops_the_resumed_run_before_anything_runs(tmp_path: Path):
    server, calls = shop()
    state = tmp_path / "state"
    async with Client(build_server(in_process_config({"shop": server}), state_dir=state)) as client:
        with anyio.fail_after(10):
            await execute(client, plan=two_branches("add"), options={"run_id": "r", "on_error": "continue"})
            await crash_during(state, "r", "write")
            resumed = await execute(client, inputs={"fail": False}, options={"resume_run_id": "r", "on_error": "fail"})
    assert (resumed["status"], resumed["error"]["kind"]) == ("failed", "unknown_outcome")
    assert statuses(resumed) == {"write": "unknown", "then": "skipped", "other": "skipped"}
    assert calls == {"add:w": 1, "look:o": 1}


def items(fail_b: bool) -> dict[str, Any]:
    return {"items": [{"key": "a", "fail": False}, {"key": "b", "fail": fail_b}, {"key": "c", "fail": False}]}


def items_plan(tool: str, on_item_error: str) -> dict[str, Any]:
    return {
        "inputs": items(fail_b=True),
        "steps": [
            {
                "id": "each",
                "tool": f"shop/{tool}",
                "foreach": "inputs.items",
                "foreach_options": {"on_item_error": on_item_error, "max_concurrency": 1},
                "arguments": {"key": "${item.key}", "fail": "${item.fail}"},
            }
        ],
    }


async def test_a_foreach_item_in_flight_ends_unknown_and_under_continue_its_value_is_null_like_a_failed_one(
    tmp_path: Path,
):
    server, calls = shop()
    state = tmp_path / "state"
    async with Client(build_server(in_process_config({"shop": server}), state_dir=state)) as client:
        with anyio.fail_after(10):
            first = await execute(client, plan=items_plan("add", "continue"), options={"run_id": "r"})
            await crash_during(state, "r", "each", items=(1,))
            resumed = await execute(client, inputs=items(fail_b=False), options={"resume_run_id": "r"})
    assert [v and v["key"] for v in first["outputs"]["each"]] == ["a", None, "c"]
    assert resumed["status"] == "succeeded"  # on_item_error continue: an unknown item's value is null
    assert [v and v["key"] for v in resumed["outputs"]["each"]] == ["a", None, "c"]
    [problem] = resumed["problems"]
    assert problem["items"] == {"succeeded": 2, "unknown": 1}
    assert problem["item_errors"][0]["error"]["kind"] == "unknown_outcome"
    assert calls == {"add:a": 1, "add:b": 1, "add:c": 1}  # b: only the call cut off by the crash


async def test_every_downstream_call_carries_its_idempotency_key_in_meta(tmp_path: Path):
    server, _ = shop()
    plan = {
        "steps": [
            {"id": "one", "tool": "shop/put", "arguments": {"key": "x"}},
            {"id": "each", "tool": "shop/look", "foreach": "['p', 'q']", "arguments": {"key": "${item}"}},
        ]
    }
    async with Client(build_server(in_process_config({"shop": server}), state_dir=tmp_path / "s")) as client:
        with anyio.fail_after(10):
            run = await execute(client, plan=plan, options={"run_id": "k1"})
    assert run["outputs"]["one"]["idempotency_key"] == "k1/one"
    assert [v["idempotency_key"] for v in run["outputs"]["each"]] == ["k1/each/0", "k1/each/1"]


async def test_plan_validation_accepts_unknown_in_retry_on_and_names_it_among_the_kinds_otherwise(tmp_path: Path):
    server, _ = shop()
    step = {"id": "a", "tool": "shop/add", "arguments": {"key": "x"}}
    async with Client(build_server(in_process_config({"shop": server}), state_dir=tmp_path / "s")) as client:
        with anyio.fail_after(10):
            good = await client.call_tool("plan_chain", {"plan": {"steps": [{**step, "retry": {"on": ["unknown"]}}]}})
            bad = await client.call_tool("plan_chain", {"plan": {"steps": [{**step, "retry": {"on": ["unknwn"]}}]}})
    assert good.structured_content is not None and good.structured_content["valid"] is True
    assert bad.structured_content is not None and bad.structured_content["valid"] is False
    assert "'unknown'" in bad.structured_content["errors"][0]["message"]
