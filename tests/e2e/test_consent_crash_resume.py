"""End to end, over stdio with a real host: a run the person approved is SIGKILLed mid-chain; resumed on a
restarted server, it asks again, and only about the step that has not run yet (the downstream's own counters
prove what ran)."""

import json
import re
import sys
from contextlib import suppress
from pathlib import Path
from typing import Any

import anyio
import psutil
import pytest
from mcp import MCPError
from mcp.client import ClientRequestContext
from mcp.types import ElicitRequestParams, ElicitResult

pytestmark = pytest.mark.e2e

RUN_ID = "consent-crash-1"
PLAN = {
    "inputs": {"ms": 20_000},
    "steps": [
        {"id": "one", "tool": "latency/echo", "arguments": {"value": "one"}},
        {"id": "nap", "tool": "latency/sleep", "arguments": {"ms": "${inputs.ms}"}, "depends_on": ["one"]},
        {"id": "after", "tool": "latency/echo", "arguments": {"value": "${steps.nap.slept_ms}"}},
    ],
}
LAST_STEP = re.compile(r"last: (\S+) (\S+)$")


def listed(form: str) -> list[str]:
    return [line[2:].split(":")[0] for line in form.splitlines() if line.startswith("- ")]


async def test_a_killed_approved_run_asks_again_only_for_what_has_not_run(
    tmp_path: Path, serve_stdio: Any, make_config: Any, wait_gone: Any
):
    counter_file = tmp_path / "latency-counts.json"
    latency = {
        "command": sys.executable,
        "args": ["-m", "mcp_conductor.demo.latency"],
        "env": {"LATENCY_COUNTER_FILE": str(counter_file)},
    }
    config = make_config({"latency": latency}, {"consent": {"ask": ["latency/echo"]}})
    env = {"MCP_CONDUCTOR_STATE_DIR": str(tmp_path / "state")}
    forms: list[str] = []
    one_done = anyio.Event()

    async def approve(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        forms.append(params.message)
        return ElicitResult(action="accept", content={"approve": True})

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        if (m := LAST_STEP.search(message or "")) and m.groups() == ("one", "succeeded"):
            one_done.set()

    async def run_chain(client: Any) -> None:
        with suppress(MCPError):  # the server is killed under this call
            await client.call_tool(
                "execute_chain", {"plan": PLAN, "options": {"run_id": RUN_ID}}, progress_callback=on_progress
            )

    with anyio.fail_after(60):
        async with serve_stdio(config, env=env, elicitation_callback=approve) as client:
            async with anyio.create_task_group() as tg:
                tg.start_soon(run_chain, client)
                await one_done.wait()
                [meta] = [p for p in psutil.Process().children() if p.cmdline()[1:3] == ["-m", "mcp_conductor"]]
                [downstream] = meta.children()
                meta.kill()
    with anyio.fail_after(10):
        await wait_gone(downstream)
    assert [listed(form) for form in forms] == [["one", "after"]]

    with anyio.fail_after(60):
        async with serve_stdio(config, env=env, elicitation_callback=approve) as client:
            resumed = await client.call_tool("execute_chain", {"inputs": {"ms": 10}, "options": {"run_id": RUN_ID}})
    assert (resumed.structured_content or {}).get("status") == "succeeded", resumed.content
    assert [listed(form) for form in forms] == [["one", "after"], ["after"]]
    assert json.loads(counter_file.read_text(encoding="utf-8"))["calls"]["echo"] == 2  # one and after, once each
