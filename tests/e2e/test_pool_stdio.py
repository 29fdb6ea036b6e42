import sys
from pathlib import Path
from typing import Any

import anyio
import psutil
import pytest
from structlog.testing import capture_logs

from fixtures.catalog import wait_for_tool
from mcp_conductor.backoff import Backoff
from mcp_conductor.client_pool.config import build_config
from mcp_conductor.client_pool.config_models import ConductorConfig
from mcp_conductor.client_pool.pool import ClientPool
from mcp_conductor.client_pool.status import ServerState
from mcp_conductor.errors import ConnectionLostError

pytestmark = pytest.mark.e2e

FAULTY = Path(__file__).parents[1] / "fixtures" / "faulty_server.py"
FAST_BACKOFF = Backoff(base_s=0.05, cap_s=0.2)


def faulty(mode: str, *args: str) -> dict[str, Any]:
    return {"command": sys.executable, "args": [str(FAULTY), mode, *args]}


def config(entries: dict[str, dict[str, Any]], **settings: dict[str, Any]) -> ConductorConfig:
    return build_config({"mcpServers": entries, "conductor": {"servers": settings}})


def pool_of(entries: dict[str, dict[str, Any]], **settings: dict[str, Any]) -> ClientPool:
    return ClientPool(config(entries, **settings), backoff=FAST_BACKOFF)


def state(pool: ClientPool, server: str) -> ServerState:
    return pool.connection(server).state


async def test_a_server_that_exits_at_start_fails_with_its_stderr_and_the_others_keep_working():
    async with pool_of({"broken": faulty("exit"), "ok": faulty("ok")}) as pool:
        with anyio.fail_after(20):
            await pool.wait_settled()
            answer = await pool.call_tool("ok", "add", {"a": 2, "b": 40})
        broken = pool.statuses()["broken"]
    assert broken.state is ServerState.FAILED
    assert broken.error is not None and "refusing to start" in broken.error
    assert "fatal: refusing to start" in broken.stderr_tail
    assert answer.structured_content == {"result": 42}
    assert pool.snapshot().by_server("broken") == []


async def test_a_server_that_hangs_on_initialize_fails_after_the_connect_timeout_and_others_are_unaffected():
    async with pool_of({"hang": faulty("hang_init"), "ok": faulty("ok")}, hang={"connect_timeout_s": 1.5}) as pool:
        with anyio.fail_after(20):
            await pool.wait_settled(servers=["ok"])
            echoed = await pool.call_tool("ok", "echo", {"text": "still here"})
            await pool.wait_settled(servers=["hang"])
        hang = pool.statuses()["hang"]
        ok_state = state(pool, "ok")
    assert hang.state is ServerState.FAILED
    assert hang.error == "TimeoutError: no MCP handshake and tool list within 1.5s"
    assert ok_state is ServerState.READY
    assert echoed.structured_content == {"result": "still here"}


async def test_a_server_that_prints_garbage_and_exits_fails():
    async with pool_of({"garbage": faulty("garbage"), "ok": faulty("ok")}) as pool:
        with anyio.fail_after(20):
            await pool.wait_settled()
        garbage = pool.statuses()["garbage"]
        ok_state = state(pool, "ok")
    assert garbage.state is ServerState.FAILED
    assert garbage.error is not None and "Connection closed" in garbage.error
    assert ok_state is ServerState.READY


async def test_a_banner_on_stdout_before_the_handshake_is_logged_and_the_server_still_works():
    with capture_logs() as logs:
        async with pool_of({"chatty": faulty("garbage_then_ok")}) as pool:
            with anyio.fail_after(20):
                await pool.wait_settled()
                answer = await pool.call_tool("chatty", "echo", {"text": "hi"})
            chatty_state = state(pool, "chatty")
    assert chatty_state is ServerState.READY
    assert answer.structured_content == {"result": "hi"}
    garbage = [e for e in logs if e["event"] == "pool.server_sent_garbage"]
    assert garbage and garbage[0]["server"] == "chatty"


async def test_tools_on_several_pages_are_all_listed():
    async with pool_of({"paged": faulty("paged", "5")}) as pool:
        with anyio.fail_after(20):
            await pool.wait_settled()
            answer = await pool.call_tool("paged", "t4", {})
        snapshot = pool.snapshot()
        tools = pool.statuses()["paged"].tools
    assert sorted(snapshot.tools) == ["paged/t0", "paged/t1", "paged/t2", "paged/t3", "paged/t4"]
    assert snapshot.tools["paged/t3"].description == "tool number 3"
    assert tools == 5
    assert answer.content[0].text == "t4"


async def test_a_server_that_dies_mid_call_loses_that_call_then_reconnects_as_a_new_process():
    async with pool_of({"mortal": faulty("ok"), "ok": faulty("ok")}) as pool:
        with anyio.fail_after(30):
            before = (await pool.call_tool("mortal", "pid", {})).structured_content["result"]
            first_connect = pool.statuses()["mortal"].connected_at
            with pytest.raises(ConnectionLostError) as exc:
                await pool.call_tool("mortal", "die", {})
            after = (await pool.call_tool("mortal", "pid", {}, timeout_s=20)).structured_content["result"]
            other = await pool.call_tool("ok", "add", {"a": 1, "b": 1})
        mortal = pool.statuses()["mortal"]
    assert exc.value.describe() == {
        "kind": "connection_lost",
        "message": "mortal closed the connection during the call",
        "retryable": True,
        "server": "mortal",
        "tool": "die",
    }
    assert after != before
    assert not psutil.pid_exists(before)
    assert mortal.state is ServerState.READY
    assert first_connect is not None and mortal.connected_at is not None and mortal.connected_at > first_connect
    assert other.structured_content == {"result": 2}


async def test_a_tool_added_at_run_time_appears_in_the_catalog_after_list_changed():
    async with pool_of({"grow": faulty("ok")}) as pool:
        with anyio.fail_after(20):
            await pool.wait_settled()
            version = pool.catalog.version
            assert "grow/late_tool" not in pool.snapshot().tools
            await pool.call_tool("grow", "add_tool", {"name": "late_tool"})
            await wait_for_tool(pool, "grow/late_tool")
            answer = await pool.call_tool("grow", "late_tool", {})
    assert pool.catalog.version > version
    assert answer.structured_content == {"result": "late_tool"}


async def test_calls_to_different_servers_run_concurrently_and_a_slow_call_blocks_no_one():
    finished: list[str] = []
    async with pool_of({"a": faulty("ok"), "b": faulty("ok"), "c": faulty("ok")}) as pool:
        with anyio.fail_after(30):
            await pool.wait_settled()
            async with anyio.create_task_group() as tg:

                async def slow() -> None:
                    await pool.call_tool("a", "slow", {"seconds": 60})
                    finished.append("slow")

                tg.start_soon(slow)
                await anyio.wait_all_tasks_blocked()
                assert pool.connection("a").in_flight == 1

                sums: dict[tuple[str, int], int] = {}

                async def add(server: str, i: int) -> None:
                    result = await pool.call_tool(server, "add", {"a": i, "b": 1000})
                    sums[(server, i)] = result.structured_content["result"]

                async with anyio.create_task_group() as burst:
                    for i in range(10):
                        for server in ("a", "b", "c"):
                            burst.start_soon(add, server, i)
                finished.append("burst")
                tg.cancel_scope.cancel()
        peaks = {name: conn.peak_in_flight for name, conn in pool.connections.items()}
    assert finished == ["burst"]
    assert sums == {(s, i): i + 1000 for i in range(10) for s in ("a", "b", "c")}
    assert all(peak >= 2 for peak in peaks.values())


async def test_calls_beyond_a_servers_max_concurrency_wait_for_a_free_slot():
    async with pool_of({"narrow": faulty("ok")}, narrow={"max_concurrency": 2}) as pool:
        conn = pool.connection("narrow")
        with anyio.fail_after(30):
            await pool.wait_settled()
            async with anyio.create_task_group() as tg:
                for _ in range(5):
                    tg.start_soon(pool.call_tool, "narrow", "slow", {"seconds": 60})
                await anyio.wait_all_tasks_blocked()
                in_flight_while_blocked = conn.in_flight
                tg.cancel_scope.cancel()
            after_cancel = conn.in_flight
            answer = await pool.call_tool("narrow", "echo", {"text": "free again"})
    assert in_flight_while_blocked == 2
    assert conn.peak_in_flight == 2
    assert after_cancel == 0
    assert answer.structured_content == {"result": "free again"}


async def test_no_child_process_survives_shutdown_not_even_one_that_ignores_sigterm_and_stdin():
    entries = {
        "ok": faulty("ok"),
        "stubborn": faulty("stubborn"),
        "paged": faulty("paged", "3"),
        "hang": faulty("hang_init"),
    }
    with anyio.fail_after(60):  # bounds the shutdown too: stdin grace, then SIGTERM, then SIGKILL
        async with pool_of(entries, hang={"connect_timeout_s": 30}) as pool:
            await pool.wait_settled(servers=["ok", "stubborn", "paged"])
            served = {
                name: (await pool.call_tool(name, "pid", {})).structured_content["result"]
                for name in ("ok", "stubborn")
            }
            children = psutil.Process().children(recursive=True)
            states = {name: s.state for name, s in pool.statuses().items()}
    pids = {child.pid for child in children}
    assert states["stubborn"] is ServerState.READY and states["hang"] is ServerState.CONNECTING
    assert set(served.values()) <= pids
    assert len(pids) == 4
    survivors = [pid for pid in pids if psutil.pid_exists(pid)]
    assert survivors == []


async def test_a_secret_a_failing_server_prints_to_stderr_stays_out_of_its_status_and_the_log():
    secret = "sk-live-0123456789abcdef"
    leaky = {
        "command": sys.executable,
        "args": ["-c", "import os, sys; print('bad key ' + os.environ['API_KEY'], file=sys.stderr); sys.exit(2)"],
        "env": {"API_KEY": secret},
    }
    with capture_logs() as logs:
        async with pool_of({"leaky": leaky}) as pool:
            with anyio.fail_after(20):
                await pool.wait_settled()
            status = pool.statuses()["leaky"]
    assert status.state is ServerState.FAILED
    assert "bad key ***" in status.stderr_tail and "bad key ***" in (status.error or "")
    assert secret not in status.stderr_tail + (status.error or "") + repr(logs)
