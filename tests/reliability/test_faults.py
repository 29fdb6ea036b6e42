"""Fault injection (issue 8): a downstream server that misbehaves on request, beside a healthy one.

Each test runs the real meta server in process (``Client(build_server(config))``) over two stdio servers:
``healthy`` (``faulty_server.py ok``) and ``bad`` (``fault_server.py MODE``). For every fault: the meta server keeps
answering, ``healthy`` keeps serving, the calls the fault hits end with a structured step error (a kind and a
one-line message, no traceback) within their timeout, and the pool takes ``bad`` back once it comes back.
"""

import json
import resource
import sys
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import psutil
import pytest
from mcp import Client
from mcp.server.mcpserver import Context, MCPServer
from structlog.testing import capture_logs

from mcp_conductor.client_pool.catalog import ServerName, ToolInfo
from mcp_conductor.client_pool.config import build_config
from mcp_conductor.server.app import build_server
from mcp_conductor.server.conductor import Conductor

pytestmark = pytest.mark.e2e

FIXTURES = Path(__file__).parents[1] / "fixtures"
STEP_TIMEOUT_S = 2.0
MARGIN_S = 5.0  # what a step may take beyond its own timeout: planning, the store, the MCP front
FAILED = {"invalid", "failed", "timed_out", "cancelled"}  # the run statuses execute_chain answers with isError


def fixture(script: str, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    return {"command": sys.executable, "args": [str(FIXTURES / script), *args], "env": env or {}}


def with_catalog_probe(server: MCPServer[Conductor]) -> MCPServer[Conductor]:
    """Add a test-only tool that waits until the catalog lists a tool (to see a server come up, without polling)."""

    @server.tool(name="test_wait_for_tool")
    async def wait_for_tool(ctx: Context[Conductor], tool_id: str) -> bool:
        catalog = ctx.request_context.lifespan_context.pool.catalog
        changed = anyio.Event()
        original = catalog.set_server_tools

        def set_server_tools(
            server: ServerName, tools: Iterable[ToolInfo], *, hidden: Mapping[str, str] | None = None
        ) -> None:
            original(server, tools, hidden=hidden)
            changed.set()

        catalog.set_server_tools = set_server_tools  # type: ignore[method-assign]
        try:
            while tool_id not in catalog.snapshot().tools:
                await changed.wait()
                changed = anyio.Event()
        finally:
            catalog.set_server_tools = original  # type: ignore[method-assign]
        return True

    return server


@asynccontextmanager
async def meta(tmp_path: Path, mode: str, *args: str, **bad_settings: Any) -> AsyncIterator[Client]:
    """The meta server over ``healthy`` and ``bad`` (``fault_server.py mode *args``, its state in tmp/fault)."""
    state = tmp_path / "fault"
    state.mkdir(exist_ok=True)
    config = build_config(
        {
            "mcpServers": {
                "healthy": fixture("faulty_server.py", "ok"),
                "bad": fixture("fault_server.py", mode, *args, env={"FAULT_DIR": str(state)}),
            },
            "conductor": {"servers": {"bad": bad_settings}},
        }
    )
    async with Client(with_catalog_probe(build_server(config, state_dir=tmp_path / "state"))) as client:
        yield client


def step(step_id: str, tool: str, timeout_s: float = STEP_TIMEOUT_S, **arguments: Any) -> dict[str, Any]:
    return {"id": step_id, "tool": tool, "arguments": arguments, "timeout_s": timeout_s}


async def run(client: Client, *steps: dict[str, Any], **options: Any) -> dict[str, Any]:
    """execute_chain with every step in the result; bounded by the slowest step's timeout (the steps given may run
    in parallel). A run that did not do its job is an ``isError`` result, and still structured."""
    with anyio.fail_after(max(s["timeout_s"] for s in steps) + MARGIN_S):
        result = await client.call_tool(
            "execute_chain", {"plan": {"steps": list(steps)}, "options": {"detail": "steps", **options}}
        )
    assert result.structured_content is not None, result.content
    assert result.is_error is (result.structured_content["status"] in FAILED), result.structured_content
    return result.structured_content


async def discover(client: Client, query: str = "") -> dict[str, Any]:
    with anyio.fail_after(20):  # the first call waits for every server's first connect attempt
        result = await client.call_tool("discover_tools", {"query": query, "top_k": 50, "detail": "full"})
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def plan_chain(client: Client, *steps: dict[str, Any]) -> dict[str, Any]:
    with anyio.fail_after(20):
        result = await client.call_tool("plan_chain", {"plan": {"steps": list(steps)}})
    assert result.structured_content is not None, result.content
    assert result.is_error is (not result.structured_content["valid"]), result.structured_content
    return result.structured_content


async def assert_alive(client: Client) -> None:
    """The meta server answers and ``healthy`` serves."""
    found = await discover(client, "echo the text")
    assert any(t["id"] == "healthy/echo" for t in found["tools"])
    done = await run(client, step("hi", "healthy/echo", text="still here"))
    assert done["status"] == "succeeded", done
    assert done["outputs"]["hi"] == {"result": "still here"}


def step_of(run: dict[str, Any], step_id: str) -> dict[str, Any]:
    return next(s for s in run["steps"] if s["id"] == step_id)


def structured_error(run: dict[str, Any], step_id: str, kinds: set[str]) -> dict[str, Any]:
    """The step's error, checked to be structured: a known kind and one line that is not a traceback."""
    error = step_of(run, step_id).get("error")
    assert error is not None, run
    assert error["kind"] in kinds, error
    assert error["message"] and "\n" not in error["message"] and "Traceback" not in error["message"], error
    return error


def unavailable(found: dict[str, Any], server: str) -> dict[str, Any]:
    entry = next(u for u in found["unavailable_servers"] if u["server"] == server)
    assert entry["error"] and "\n" not in entry["error"] and "Traceback" not in entry["error"], entry
    return entry


async def wait_for_tool(client: Client, tool_id: str, timeout_s: float = 30) -> None:
    with anyio.fail_after(timeout_s):
        result = await client.call_tool("test_wait_for_tool", {"tool_id": tool_id})
    assert not result.is_error, result.content


# -- the server does not come up -----------------------------------------------------------------------------


async def test_a_server_that_crashes_at_start_is_reported_unavailable_and_its_tools_are_unknown(tmp_path: Path):
    async with meta(tmp_path, "crash_start") as client:
        found = await discover(client)
        await assert_alive(client)
        attempt = await run(client, step("a", "bad/echo", text="x"))
    entry = unavailable(found, "bad")
    assert entry["state"] == "failed"
    assert "crashes at start" in entry["error"]
    assert attempt["status"] == "invalid"
    assert [e["kind"] for e in attempt["errors"]] == ["unknown_tool"]


async def test_a_server_that_hangs_on_initialize_fails_after_its_connect_timeout(tmp_path: Path):
    async with meta(tmp_path, "hang_init", connect_timeout_s=1.5) as client:
        with anyio.fail_after(1.5 + MARGIN_S):
            found = await discover(client)
        await assert_alive(client)
    entry = unavailable(found, "bad")
    assert entry == {
        "server": "bad",
        "state": "failed",
        "error": "TimeoutError: no MCP handshake and tool list within 1.5s",
    }


async def test_a_slow_starting_server_misses_its_connect_timeout_then_comes_up_and_serves(tmp_path: Path):
    # A 4 s connect timeout against a 5 s slow start: the first attempt must miss, and a later one makes it even
    # when a loaded machine takes seconds to start a Python server.
    async with meta(tmp_path, "slow_start", "5", connect_timeout_s=4) as client:
        found = await discover(client)
        await assert_alive(client)
        await wait_for_tool(client, "bad/echo")
        later = await run(client, step("late", "bad/echo", text="up at last"))
    assert unavailable(found, "bad")["error"] == "TimeoutError: no MCP handshake and tool list within 4s"
    assert later["status"] == "succeeded", later
    assert later["outputs"]["late"] == {"result": "up at last"}


# -- the server dies or stops answering ----------------------------------------------------------------------


async def test_a_crash_in_the_middle_of_a_call_fails_that_step_and_a_later_call_reaches_a_new_process(
    tmp_path: Path,
):
    async with meta(tmp_path, "ok") as client:
        before = await run(client, step("pid", "bad/pid"))
        crashed = await run(
            client, step("crash", "bad/crash"), step("side", "healthy/echo", text="unaffected"), on_error="continue"
        )
        await assert_alive(client)
        after = await run(client, step("pid", "bad/pid", timeout_s=20))
    assert crashed["status"] == "partial"
    assert step_of(crashed, "side")["status"] == "succeeded"
    assert structured_error(crashed, "crash", {"connection_lost"})["retryable"] is True
    assert after["status"] == "succeeded", after
    assert after["outputs"]["pid"] != before["outputs"]["pid"]


async def test_a_server_in_a_crash_loop_gives_unavailable_errors_until_it_comes_back(tmp_path: Path):
    down = tmp_path / "fault" / "down"
    async with meta(tmp_path, "ok") as client:
        crashed = await run(client, step("crash", "bad/crash", stay_down=True))
        while_down = await run(client, step("echo", "bad/echo", text="anyone?"))
        await assert_alive(client)
        found = await discover(client)
        down.unlink()
        back = await run(client, step("echo", "bad/echo", timeout_s=30, text="back"))
    structured_error(crashed, "crash", {"connection_lost"})
    assert step_of(while_down, "echo")["status"] == "failed"
    error = structured_error(while_down, "echo", {"unavailable", "connection_lost"})
    assert error["retryable"] is True
    assert unavailable(found, "bad")["state"] == "reconnecting"
    assert back["status"] == "succeeded", back
    assert back["outputs"]["echo"] == {"result": "back"}


async def test_a_call_that_hangs_forever_times_out_and_the_server_keeps_serving(tmp_path: Path):
    async with meta(tmp_path, "ok") as client:
        hung = await run(
            client,
            step("hang", "bad/hang", timeout_s=1),
            step("side", "healthy/echo", text="unaffected"),
            on_error="continue",
        )
        await assert_alive(client)
        after = await run(client, step("echo", "bad/echo", text="still serving"))
    assert step_of(hung, "hang")["status"] == "timeout"
    assert structured_error(hung, "hang", {"timeout"})["retryable"] is True
    assert step_of(hung, "side")["status"] == "succeeded"
    assert after["outputs"]["echo"] == {"result": "still serving"}


async def test_a_server_whose_event_loop_freezes_times_out_every_call_without_holding_up_others(tmp_path: Path):
    async with meta(tmp_path, "ok") as client:
        frozen = await run(client, step("freeze", "bad/freeze", timeout_s=1))
        next_call = await run(client, step("echo", "bad/echo", timeout_s=1, text="hello?"))
        await assert_alive(client)
    structured_error(frozen, "freeze", {"timeout"})
    # The process is alive and its pipe open, so nothing tells the pool to restart it: each call times out.
    structured_error(next_call, "echo", {"timeout"})


# -- the server says things that are not MCP -----------------------------------------------------------------


async def test_garbage_and_partial_json_rpc_on_stdout_are_logged_and_skipped(tmp_path: Path):
    with capture_logs() as logs:
        async with meta(tmp_path, "garbage") as client:
            await assert_alive(client)
            answers = await run(client, step("echo", "bad/echo", text="first"))
            midway = await run(client, step("garbage", "bad/garbage"), step("then", "bad/echo", text="after"))
            malformed = await run(client, step("bad", "bad/bad_result"))
            after = await run(client, step("echo", "bad/echo", text="last"))
    assert answers["outputs"]["echo"] == {"result": "first"}
    assert midway["status"] == "succeeded", midway
    assert midway["outputs"] == {"garbage": {"result": "after garbage"}, "then": {"result": "after"}}
    # A response to the call itself that is not a CallToolResult fails that step, and only that step.
    structured_error(malformed, "bad", {"protocol_error"})
    assert after["outputs"]["echo"] == {"result": "last"}
    garbage = [e for e in logs if e["event"] == "pool.server_sent_garbage" and e["server"] == "bad"]
    assert len(garbage) >= 2 * 3, garbage  # at start and from the tool: half an object, non-JSON-RPC, a batch
    assert all("\n" not in e["error"] for e in garbage)


async def test_bytes_that_are_not_utf8_on_stdout_are_replaced_and_the_server_keeps_serving(tmp_path: Path):
    with capture_logs() as logs:
        async with meta(tmp_path, "non_utf8") as client:
            await assert_alive(client)
            midway = await run(client, step("bytes", "bad/non_utf8"), step("then", "bad/echo", text="café ✓"))
            after = await run(client, step("echo", "bad/echo", text="last"))
    assert midway["status"] == "succeeded", midway
    assert midway["outputs"]["then"] == {"result": "café ✓"}
    assert after["outputs"]["echo"] == {"result": "last"}
    assert any(e["event"] == "pool.server_sent_garbage" and e["server"] == "bad" for e in logs)


async def test_a_server_flooding_notifications_does_not_delay_other_calls(tmp_path: Path):
    async with meta(tmp_path, "flood", "2000") as client:  # 2000 notifications a second, from the start
        await assert_alive(client)
        flooded = await run(
            client,
            step("flood", "bad/flood", timeout_s=10, count=5000),  # and 15,000 more during this call
            step("same", "bad/echo", text="same server"),
            step("other", "healthy/echo", text="other server"),
        )
        await assert_alive(client)
    assert flooded["status"] == "succeeded", flooded
    assert flooded["outputs"] == {
        "flood": {"result": 5000},
        "same": {"result": "same server"},
        "other": {"result": "other server"},
    }


# -- the server's answers are odd ----------------------------------------------------------------------------


async def test_a_50_mb_result_is_cut_to_the_output_budget_and_memory_stays_bounded(tmp_path: Path):
    process = psutil.Process()
    rss_before = process.memory_info().rss
    latencies: list[float] = []
    async with meta(tmp_path, "ok") as client:
        await assert_alive(client)
        async with anyio.create_task_group() as tg:

            async def big() -> None:
                nonlocal result
                # the front answers "running" after wait_s (50 s by default): wait here for the step's end
                result = await run(client, step("big", "bad/big", timeout_s=120, megabytes=50), wait_s=120 + MARGIN_S)
                tg.cancel_scope.cancel()

            async def sample_healthy() -> None:
                while True:  # until the big step ends: how long healthy calls take meanwhile
                    started = anyio.current_time()
                    done = await run(client, step("hi", "healthy/echo", text="meanwhile"))
                    assert done["status"] == "succeeded", done
                    latencies.append(anyio.current_time() - started)
                    await anyio.sleep(0.5)  # a sampling interval, not a wait for an event

            result: dict[str, Any] = {}
            tg.start_soon(big)
            tg.start_soon(sample_healthy)
        rss_after = process.memory_info().rss
        await assert_alive(client)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        f"\n50 MB result: step {step_of(result, 'big')['status']} in {step_of(result, 'big')['duration_ms']:.0f} ms;"
        f" RSS {rss_before / 1e6:.0f} -> {rss_after / 1e6:.0f} MB, peak {peak_kib / 1e3:.0f} MB;"
        f" {len(latencies)} healthy calls meanwhile, slowest {max(latencies, default=0) * 1000:.0f} ms"
    )
    big_step = step_of(result, "big")
    assert big_step["status"] in ("succeeded", "timeout", "failed"), big_step
    if big_step["status"] == "succeeded":
        output = result["outputs"]["big"]
        assert output["truncated"] is True
        assert output["size_bytes"] > 50_000_000
        assert output["full_value"] == f"conductor://runs/{result['run_id']}/steps/big"
        assert len(json.dumps(output).encode()) <= 20_000  # the default output budget
    else:
        structured_error(result, "big", {"timeout", "protocol_error", "connection_lost"})
    assert rss_after - rss_before < 2_000_000_000  # a few copies of 50 MB, not an explosion


async def test_duplicate_tool_names_keep_the_first_and_are_logged(tmp_path: Path):
    with capture_logs() as logs:
        async with meta(tmp_path, "dup_tools") as client:
            found = await discover(client)
            await assert_alive(client)
            called = await run(client, step("echo", "bad/echo", text="which one?"))
    bad_tools = {t["id"]: t["description"] for t in found["tools"] if t["server"] == "bad"}
    assert bad_tools == {"bad/echo": "Echo the text back (first).", "bad/other": "Another tool."}
    assert called["status"] == "succeeded", called
    duplicates = [e for e in logs if e["event"] == "pool.duplicate_tool_name"]
    assert [(e["server"], e["tool"]) for e in duplicates] == [("bad", "echo")]


async def test_an_input_schema_that_is_not_json_schema_gives_a_planning_warning_and_the_tool_still_runs(
    tmp_path: Path,
):
    async with meta(tmp_path, "bad_schema", "json") as client:
        found = await discover(client, "broken input schema")
        await assert_alive(client)
        checked = await plan_chain(client, step("w", "bad/weird", n=1))
        ran = await run(client, step("w", "bad/weird", n=1))
    assert "bad/weird" in {t["id"] for t in found["tools"]}
    assert checked["valid"] is True, checked.get("errors")
    assert [w["kind"] for w in checked["warnings"]] == ["invalid_schema"]
    assert "not valid JSON Schema" in checked["warnings"][0]["message"]
    assert ran["status"] == "succeeded", ran
    assert ran["outputs"]["w"] == 'weird: {"n": 1}'


async def test_an_input_schema_that_breaks_mcps_tool_shape_makes_the_server_unavailable_not_the_meta_server(
    tmp_path: Path,
):
    # {"type": "nonsense", "properties": 5}: the SDK rejects the whole tools/list, so the server cannot be used.
    async with meta(tmp_path, "bad_schema", "wire") as client:
        found = await discover(client)
        await assert_alive(client)
        checked = await plan_chain(client, step("w", "bad/weird", n=1))
    entry = unavailable(found, "bad")
    assert entry["state"] == "failed"
    assert entry["error"].startswith("ValidationError: 2 validation errors for ListToolsResult")
    assert checked["valid"] is False
    assert [e["kind"] for e in checked["errors"]] == ["unknown_tool"]
