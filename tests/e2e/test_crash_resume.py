"""End to end: the meta server is SIGKILLed in the middle of a chain, restarted on the same state, and the run
resumes without calling again any step that had succeeded (the downstream's own counters prove it)."""

import contextlib
import json
import re
import sys
from pathlib import Path
from typing import Any

import anyio
import psutil
import pytest
from mcp import MCPError
from mcp.types import CONNECTION_CLOSED

pytestmark = pytest.mark.e2e

RUN_ID = "crash-1"
# Two quick steps, then a long one whose length is a plan input, so the resumed run (which reuses the stored plan)
# can be made short by passing new inputs; "after" only runs once the long step is done.
PLAN = {
    "inputs": {"ms": 20_000},
    "steps": [
        {"id": "one", "tool": "latency/echo", "arguments": {"value": "one"}},
        {"id": "two", "tool": "latency/echo", "arguments": {"value": "${steps.one.value}+two"}},
        {"id": "nap", "tool": "latency/sleep", "arguments": {"ms": "${inputs.ms}"}, "depends_on": ["two"]},
        {"id": "after", "tool": "latency/echo", "arguments": {"value": "${steps.nap.slept_ms}"}},
    ],
    "outputs": ["two", "after"],
}
LAST_STEP = re.compile(r"last: (\S+) (\S+)$")


def calls(counter_file: Path) -> dict[str, int]:
    counts: dict[str, int] = json.loads(counter_file.read_text(encoding="utf-8"))["calls"]
    return counts


def meta_server() -> psutil.Process:
    """The one child of this test process that is ``python -m mcp_conductor ... serve``."""
    [meta] = [p for p in psutil.Process().children() if p.cmdline()[1:3] == ["-m", "mcp_conductor"]]
    assert "serve" in meta.cmdline()
    return meta


@pytest.mark.parametrize("resume_with", ["run_id", "resume_run_id"])
async def test_a_run_killed_mid_chain_resumes_without_rerunning_the_steps_that_succeeded(
    tmp_path: Path, serve_stdio: Any, make_config: Any, wait_gone: Any, resume_with: str
):
    counter_file = tmp_path / "latency-counts.json"
    state_dir = tmp_path / "state"
    latency = {
        "command": sys.executable,
        "args": ["-m", "mcp_conductor.demo.latency"],
        "env": {"LATENCY_COUNTER_FILE": str(counter_file)},
    }
    config = make_config({"latency": latency})
    env = {"MCP_CONDUCTOR_STATE_DIR": str(state_dir), "HOME": str(tmp_path / "home")}
    progress: list[str] = []
    quick_steps_done = anyio.Event()
    lost: list[MCPError] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append(message or "")
        if (m := LAST_STEP.search(message or "")) and m.groups() == ("two", "succeeded"):
            quick_steps_done.set()

    async def run_chain(client: Any) -> None:
        try:
            await client.call_tool(
                "execute_chain", {"plan": PLAN, "options": {"run_id": RUN_ID}}, progress_callback=on_progress
            )
        except MCPError as exc:
            lost.append(exc)

    with anyio.fail_after(60):
        async with serve_stdio(config, env=env) as client:
            async with anyio.create_task_group() as tg:
                tg.start_soon(run_chain, client)
                await quick_steps_done.wait()
                meta = meta_server()
                [downstream] = meta.children()
                downstream_cmdline = " ".join(downstream.cmdline())
                meta.kill()
    # The killed server's child lost its parent, most likely in the middle of the 20 s sleep; with its stdin
    # closed it must exit by itself, without waiting for that call to finish.
    with anyio.fail_after(10):
        await wait_gone(downstream)
    assert "mcp_conductor.demo.latency" in downstream_cmdline
    assert [exc.error.code for exc in lost] == [CONNECTION_CLOSED]
    assert f"run {RUN_ID} started" in progress[0]
    before = calls(counter_file)
    assert before["echo"] == 2  # one and two, and "after" never started
    assert before.get("sleep", 0) in (0, 1)  # the kill may land before or after the sleep call left the server

    with anyio.fail_after(60):
        async with serve_stdio(config, env=env) as client:
            options = {resume_with: RUN_ID, "detail": "steps"}
            resumed = await client.call_tool("execute_chain", {"inputs": {"ms": 10}, "options": options})
            repeated = await client.call_tool("execute_chain", {"options": {"run_id": RUN_ID}})
    run = resumed.structured_content
    assert run is not None, resumed.content
    assert (run["run_id"], run["status"]) == (RUN_ID, "succeeded")
    steps = {s["id"]: s for s in run["steps"]}
    assert {sid: s["status"] for sid, s in steps.items()} == dict.fromkeys(("one", "two", "nap", "after"), "succeeded")
    assert steps["one"]["attempts"] == steps["two"]["attempts"] == steps["after"]["attempts"] == 1
    assert run["outputs"] == {"two": {"value": "one+two", "call": 2}, "after": {"value": 10, "call": 3}}
    after = calls(counter_file)
    assert after["echo"] == 3  # one, two and after: each exactly once over both servers' lives
    assert after["sleep"] == before.get("sleep", 0) + 1
    assert repeated.structured_content is not None
    assert repeated.structured_content["reused"] is True
    assert repeated.structured_content["outputs"] == run["outputs"]
    assert calls(counter_file) == after
    assert (state_dir / "runs.db").is_file()


FOREACH_RUN_ID = "crash-foreach-1"
ITEM_DONE = re.compile(r"each: (\d+)/(\d+) items$")


def foreach_plan(ms: list[int]) -> dict[str, Any]:
    """One flaky (never failing) call per item, one at a time; each item has its own key, so the latency server's
    per-key counters tell how often each item was called."""
    return {
        "inputs": {"items": [{"key": f"item{i}", "ms": m} for i, m in enumerate(ms)]},
        "steps": [
            {
                "id": "each",
                "tool": "latency/flaky",
                "foreach": "inputs.items",
                "foreach_options": {"max_concurrency": 1},
                "arguments": {"key": "${item.key}", "ms": "${item.ms}", "fail_rate": 0},
            }
        ],
    }


async def test_a_run_killed_mid_foreach_resumes_without_calling_the_items_that_finished(
    tmp_path: Path, serve_stdio: Any, make_config: Any, wait_gone: Any
):
    counter_file = tmp_path / "latency-counts.json"
    latency = {
        "command": sys.executable,
        "args": ["-m", "mcp_conductor.demo.latency"],
        "env": {"LATENCY_COUNTER_FILE": str(counter_file)},
    }
    config = make_config({"latency": latency})
    env = {"MCP_CONDUCTOR_STATE_DIR": str(tmp_path / "state")}
    three_items_done = anyio.Event()

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        if (m := ITEM_DONE.search(message or "")) and int(m.group(1)) >= 3:
            three_items_done.set()

    async def run_chain(client: Any) -> None:
        plan = foreach_plan([0, 0, 0, 20_000, 0, 0])  # item 3 is still running when the server is killed
        with contextlib.suppress(MCPError):
            await client.call_tool(
                "execute_chain", {"plan": plan, "options": {"run_id": FOREACH_RUN_ID}}, progress_callback=on_progress
            )

    with anyio.fail_after(60):
        async with serve_stdio(config, env=env) as client:
            async with anyio.create_task_group() as tg:
                tg.start_soon(run_chain, client)
                await three_items_done.wait()
                meta = meta_server()
                [downstream] = meta.children()
                meta.kill()
    with anyio.fail_after(10):
        await wait_gone(downstream)
    before = json.loads(counter_file.read_text(encoding="utf-8"))["flaky"]
    assert {k: before[k] for k in ("item0", "item1", "item2")} == {"item0": 1, "item1": 1, "item2": 1}
    assert before.get("item3", 0) in (0, 1) and "item4" not in before

    # Resumed with the slow item made quick: items 0-2 keep their stored values and are not called again.
    with anyio.fail_after(60):
        async with serve_stdio(config, env=env) as client:
            resumed = await client.call_tool(
                "execute_chain",
                {"inputs": foreach_plan([0, 0, 0, 0, 0, 0])["inputs"], "options": {"resume_run_id": FOREACH_RUN_ID}},
            )
    run = resumed.structured_content
    assert run is not None, resumed.content
    assert run["status"] == "succeeded"
    assert [v["call"] for v in run["outputs"]["each"]] == [1, 1, 1, before.get("item3", 0) + 1, 1, 1]
    after = json.loads(counter_file.read_text(encoding="utf-8"))["flaky"]
    assert after == {f"item{i}": 1 for i in range(6)} | {"item3": before.get("item3", 0) + 1}
