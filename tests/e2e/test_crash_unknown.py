"""End to end: the meta server is SIGKILLed while a call to a tool that is neither read-only nor idempotent is in
flight. On resume that step ends ``unknown`` and is not called again (the downstream's own counters prove it),
until the resume asks for it with ``rerun_unknown`` or the step's ``retry.on`` lists ``unknown``."""

import contextlib
import json
import sys
from pathlib import Path
from typing import Any

import anyio
import psutil
import pytest
from mcp import Client, MCPError

pytestmark = pytest.mark.e2e


def counts(counter_file: Path) -> dict[str, dict[str, int]]:
    if not counter_file.exists():
        return {}
    data: dict[str, dict[str, int]] = json.loads(counter_file.read_text(encoding="utf-8"))
    return data


async def until_called(counter_file: Path, tool: str, times: int) -> None:
    """Until the latency server has counted ``times`` calls of ``tool`` (it counts a call when it starts; the
    conductor commits a step's start before it calls). Polled: the counter is another process's file."""
    while counts(counter_file).get("calls", {}).get(tool, 0) < times:  # noqa: ASYNC110 - no event to wait on
        await anyio.sleep(0.02)


def meta_server() -> psutil.Process:
    [meta] = [p for p in psutil.Process().children() if p.cmdline()[1:3] == ["-m", "mcp_conductor"]]
    return meta


async def kill_while_called(
    serve_stdio: Any, setup: tuple[Path, dict[str, str], Path], wait_gone: Any, arguments: dict[str, Any], calls: int
) -> None:
    """Start ``execute_chain`` with ``arguments``; SIGKILL the meta server once slow_write was called ``calls``
    times (the last call still in flight), and wait until its downstream server is gone too."""
    config, env, counter_file = setup

    async def run_chain(client: Client) -> None:
        with contextlib.suppress(MCPError):  # the server is killed under this call
            await client.call_tool("execute_chain", arguments)

    with anyio.fail_after(60):
        async with serve_stdio(config, env=env) as client:
            async with anyio.create_task_group() as tg:
                tg.start_soon(run_chain, client)
                await until_called(counter_file, "slow_write", calls)
                meta = meta_server()
                [downstream] = meta.children()
                meta.kill()
    with anyio.fail_after(10):
        await wait_gone(downstream)


@pytest.fixture
def setup(tmp_path: Path, make_config: Any) -> tuple[Path, dict[str, str], Path]:
    counter_file = tmp_path / "latency-counts.json"
    latency = {
        "command": sys.executable,
        "args": ["-m", "mcp_conductor.demo.latency"],
        "env": {"LATENCY_COUNTER_FILE": str(counter_file)},
    }
    env = {"MCP_CONDUCTOR_STATE_DIR": str(tmp_path / "state")}
    return make_config({"latency": latency}), env, counter_file


def write_plan(retry_on: list[str] | None = None) -> dict[str, Any]:
    write: dict[str, Any] = {
        "id": "write",
        "tool": "latency/slow_write",
        "arguments": {"key": "k", "ms": "${inputs.ms}"},
    }
    if retry_on is not None:
        write["retry"] = {"on": retry_on}
    return {
        "inputs": {"ms": 20_000},
        "steps": [
            {"id": "one", "tool": "latency/echo", "arguments": {"value": "one"}},
            {**write, "depends_on": ["one"]},
            {"id": "after", "tool": "latency/echo", "arguments": {"value": "${steps.write.writes}"}},
        ],
    }


async def resume(client: Client, run_id: str, **options: Any) -> tuple[dict[str, Any], bool]:
    result = await client.call_tool(
        "execute_chain", {"inputs": {"ms": 0}, "options": {"resume_run_id": run_id, "detail": "steps", **options}}
    )
    assert result.structured_content is not None, result.content
    return result.structured_content, result.is_error


def statuses(run: dict[str, Any]) -> dict[str, str]:
    return {s["id"]: s["status"] for s in run["steps"]}


async def test_a_write_in_flight_when_the_server_died_ends_unknown_and_runs_again_only_when_asked(
    serve_stdio: Any, setup: tuple[Path, dict[str, str], Path], wait_gone: Any
):
    config, env, counter_file = setup
    arguments = {"plan": write_plan(), "options": {"run_id": "write-1"}}
    await kill_while_called(serve_stdio, setup, wait_gone, arguments, calls=1)
    before = counts(counter_file)
    assert before["calls"] == {"echo": 1, "slow_write": 1}
    assert "writes" not in before  # the write waits 20 s first: its server died before it wrote

    with anyio.fail_after(60):
        async with serve_stdio(config, env=env) as client:
            unknown, unknown_is_error = await resume(client, "write-1")
            again, _ = await resume(client, "write-1")  # still unknown: a resume alone never repeats it
            after_unknown = counts(counter_file)
            rerun, rerun_is_error = await resume(client, "write-1", rerun_unknown=True)

    assert (unknown["status"], unknown_is_error) == ("failed", True)
    assert statuses(unknown) == {"one": "succeeded", "write": "unknown", "after": "skipped"}
    assert unknown["error"]["kind"] == "unknown_outcome"
    assert "rerun_unknown" in unknown["error"]["message"]
    [problem, _] = unknown["problems"]
    assert (problem["id"], problem["status"], problem["error"]["kind"]) == ("write", "unknown", "unknown_outcome")
    assert (again["status"], statuses(again)["write"]) == ("failed", "unknown")
    assert after_unknown == before  # neither resume called anything: not the write, not "after"

    assert (rerun["status"], rerun_is_error) == ("succeeded", False)
    assert statuses(rerun) == dict.fromkeys(("one", "write", "after"), "succeeded")
    assert rerun["outputs"] == {"after": {"value": 1, "call": 2}}
    final = counts(counter_file)
    assert final["calls"] == {"echo": 2, "slow_write": 2}  # the write was called once more, "one" was not
    assert final["writes"] == {"k": 1}


async def test_a_write_whose_retry_on_lists_unknown_is_called_again_on_resume(
    serve_stdio: Any, setup: tuple[Path, dict[str, str], Path], wait_gone: Any
):
    config, env, counter_file = setup
    arguments = {"plan": write_plan(retry_on=["unknown"]), "options": {"run_id": "write-2"}}
    await kill_while_called(serve_stdio, setup, wait_gone, arguments, calls=1)
    with anyio.fail_after(60):
        async with serve_stdio(config, env=env) as client:
            resumed, _ = await resume(client, "write-2")
    assert resumed["status"] == "succeeded"
    assert counts(counter_file)["calls"] == {"echo": 2, "slow_write": 2}


def foreach_plan(ms: list[int]) -> dict[str, Any]:
    return {
        "inputs": {"items": [{"key": f"item{i}", "ms": m} for i, m in enumerate(ms)]},
        "steps": [
            {
                "id": "each",
                "tool": "latency/slow_write",
                "foreach": "inputs.items",
                "foreach_options": {"max_concurrency": 1},
                "arguments": {"key": "${item.key}", "ms": "${item.ms}"},
            }
        ],
    }


async def test_a_foreach_write_item_in_flight_ends_unknown_and_the_others_wait_for_rerun_unknown(
    serve_stdio: Any, setup: tuple[Path, dict[str, str], Path], wait_gone: Any
):
    config, env, counter_file = setup
    arguments = {"plan": foreach_plan([0, 0, 20_000, 0]), "options": {"run_id": "each-1"}}
    await kill_while_called(serve_stdio, setup, wait_gone, arguments, calls=3)  # item 2 in flight
    before = counts(counter_file)
    assert before["writes"] == {"item0": 1, "item1": 1}

    quick = foreach_plan([0, 0, 0, 0])["inputs"]
    with anyio.fail_after(60):
        async with serve_stdio(config, env=env) as client:
            unknown = await client.call_tool("execute_chain", {"inputs": quick, "options": {"resume_run_id": "each-1"}})
            after_unknown = counts(counter_file)
            rerun = await client.call_tool(
                "execute_chain", {"inputs": quick, "options": {"resume_run_id": "each-1", "rerun_unknown": True}}
            )
    run = unknown.structured_content
    assert run is not None and unknown.is_error
    assert (run["status"], run["error"]["kind"]) == ("failed", "unknown_outcome")
    [problem] = run["problems"]
    assert (problem["status"], problem["items"]) == ("unknown", {"succeeded": 2, "unknown": 1, "pending": 1})
    assert [(e["index"], e["status"]) for e in problem["item_errors"]] == [(2, "unknown"), (3, "pending")]
    assert after_unknown == before  # item 3 did not run either: under on_item_error fail the step is decided

    done = rerun.structured_content
    assert done is not None and done["status"] == "succeeded", rerun.content
    assert [v["writes"] for v in done["outputs"]["each"]] == [1, 1, 1, 1]
    final = counts(counter_file)
    assert final["writes"] == {f"item{i}": 1 for i in range(4)}
    assert final["calls"]["slow_write"] == 5  # items 0 and 1 once, item 2 twice, item 3 once
