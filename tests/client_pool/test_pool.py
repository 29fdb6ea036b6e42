from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from mcp import MCPError
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import INVALID_PARAMS

from fixtures.catalog import wait_for_tool
from mcp_conductor.backoff import Backoff
from mcp_conductor.client_pool.catalog import CatalogSnapshot, ServerName, ToolInfo
from mcp_conductor.client_pool.config import in_process_config
from mcp_conductor.client_pool.config_models import ConductorConfig, ServerSettings, ToolFilter
from mcp_conductor.client_pool.pool import ClientPool
from mcp_conductor.client_pool.status import ServerState
from mcp_conductor.errors import (
    AmbiguousToolError,
    CallTimeoutError,
    ProtocolError,
    ServerUnavailableError,
    ToolExecutionError,
    UnknownServerError,
    UnknownToolError,
)


def math_server() -> MCPServer:
    server = MCPServer("math")

    @server.tool()
    async def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @server.tool()
    async def echo(text: str) -> str:
        return f"math:{text}"

    return server


def text_server() -> MCPServer:
    server = MCPServer("text")

    @server.tool()
    async def echo(text: str) -> str:
        return f"text:{text}"

    @server.tool()
    async def upper(text: str) -> str:
        return text.upper()

    @server.tool()
    async def boom(reason: str) -> str:
        raise ToolError(f"disk on fire: {reason}")

    @server.tool()
    async def strict(x: int) -> int:
        raise MCPError(INVALID_PARAMS, "x must be odd")

    return server


def configure(servers: dict[str, Any], **settings: ServerSettings) -> ConductorConfig:
    """An in-process config, with conductor settings for some servers."""
    base = in_process_config(servers)
    return base.model_copy(
        update={
            "servers": {
                name: server.model_copy(update={"settings": settings.get(name, server.settings)})
                for name, server in base.servers.items()
            }
        }
    )


def state_of(pool: ClientPool, server: str) -> ServerState:
    return pool.statuses()[ServerName(server)].state


async def test_pool_is_usable_at_once_and_each_server_becomes_ready_on_its_own():
    gate = anyio.Event()

    @asynccontextmanager
    async def held_back(_: MCPServer) -> AsyncIterator[None]:
        await gate.wait()
        yield

    slow_start = MCPServer("slow-start", lifespan=held_back)

    @slow_start.tool()
    async def ping() -> str:
        return "pong"

    answers: list[str] = []
    async with ClientPool(configure({"math": math_server(), "slow": slow_start})) as pool:
        with anyio.fail_after(5):
            await pool.wait_settled(servers=["math"])
            assert pool.statuses()[ServerName("slow")].state is ServerState.CONNECTING
            assert sorted(pool.snapshot().tools) == ["math/add", "math/echo"]
            async with anyio.create_task_group() as tg:

                async def call_slow() -> None:
                    result = await pool.call_tool("slow", "ping", {})
                    answers.append(result.structured_content["result"])

                tg.start_soon(call_slow)
                assert (await pool.call_tool("math", "add", {"a": 2, "b": 3})).structured_content == {"result": 5}
                assert answers == []
                gate.set()
        statuses = pool.statuses()
    assert answers == ["pong"]
    assert statuses[ServerName("slow")].state is ServerState.READY
    assert statuses[ServerName("slow")].tools == 1


async def test_leaving_the_pool_does_not_wait_for_a_server_that_is_still_connecting():
    @asynccontextmanager
    async def never_ready(_: MCPServer) -> AsyncIterator[None]:
        await anyio.sleep_forever()
        yield

    stuck = MCPServer("stuck", lifespan=never_ready)
    config = configure({"stuck": stuck, "math": math_server()}, stuck=ServerSettings(connect_timeout_s=600))
    with anyio.fail_after(5):
        async with ClientPool(config) as pool:
            await pool.wait_settled(servers=["math"])
            before = state_of(pool, "stuck")
    assert before is ServerState.CONNECTING
    assert state_of(pool, "stuck") is ServerState.STOPPED
    assert len(pool.snapshot()) == 0


async def test_tool_ids_are_namespaced_so_the_same_name_on_two_servers_is_fine():
    async with ClientPool(configure({"math": math_server(), "text": text_server()})) as pool:
        with anyio.fail_after(5):
            assert await pool.wait_settled()
            math_echo = await pool.call_tool("math", "echo", {"text": "hi"})
            text_echo = await pool.call_tool("text", "echo", {"text": "hi"})
        snapshot = pool.snapshot()
    assert sorted(snapshot.tools) == [
        "math/add",
        "math/echo",
        "text/boom",
        "text/echo",
        "text/strict",
        "text/upper",
    ]
    assert snapshot.tools["math/echo"].server == "math"
    assert snapshot.tools["text/echo"].name == "echo"
    assert (math_echo.structured_content, text_echo.structured_content) == (
        {"result": "math:hi"},
        {"result": "text:hi"},
    )


async def test_catalog_keeps_wire_schemas_and_descriptions():
    async with ClientPool(configure({"math": math_server()})) as pool:
        with anyio.fail_after(5):
            await pool.wait_settled()
        add = pool.snapshot().tools["math/add"]
    assert add.description == "Add two integers."
    assert add.input_schema["type"] == "object"
    assert set(add.input_schema["properties"]) == {"a", "b"}
    assert add.input_schema["required"] == ["a", "b"]
    assert add.output_schema is not None and add.output_schema["properties"]["result"]["type"] == "integer"


async def test_allow_and_deny_lists_hide_tools_from_the_catalog():
    config = configure(
        {"math": math_server(), "text": text_server()},
        math=ServerSettings(tools=ToolFilter(allow=["add"])),
        text=ServerSettings(tools=ToolFilter(deny=["boom", "strict"])),
    )
    async with ClientPool(config) as pool:
        with anyio.fail_after(5):
            await pool.wait_settled()
        snapshot = pool.snapshot()
        statuses = pool.statuses()
    assert sorted(snapshot.tools) == ["math/add", "text/echo", "text/upper"]
    assert (statuses[ServerName("math")].tools, statuses[ServerName("text")].tools) == (1, 2)


async def test_call_tool_returns_the_downstream_result():
    async with ClientPool(configure({"text": text_server()})) as pool:
        with anyio.fail_after(5):
            result = await pool.call_tool("text", "upper", {"text": "quiet"})
    assert result.is_error is False
    assert result.structured_content == {"result": "QUIET"}
    assert result.content[0].type == "text" and result.content[0].text == "QUIET"


async def test_a_tool_raising_tool_error_becomes_tool_execution_error_with_its_message():
    async with ClientPool(configure({"text": text_server()})) as pool:
        with anyio.fail_after(5), pytest.raises(ToolExecutionError) as exc:
            await pool.call_tool("text", "boom", {"reason": "sector 7"})
    assert "disk on fire: sector 7" in exc.value.message
    assert exc.value.describe() == {
        "kind": "tool_error",
        "message": exc.value.message,
        "retryable": False,
        "server": "text",
        "tool": "boom",
    }


async def test_a_json_rpc_error_from_the_server_becomes_protocol_error():
    async with ClientPool(configure({"text": text_server()})) as pool:
        with anyio.fail_after(5), pytest.raises(ProtocolError) as exc:
            await pool.call_tool("text", "strict", {"x": 2})
    assert exc.value.describe() == {
        "kind": "protocol_error",
        "message": "text answered with error -32602: x must be odd",
        "retryable": False,
        "server": "text",
        "tool": "strict",
    }
    assert isinstance(exc.value.__cause__, MCPError)


async def test_a_slow_tool_times_out_with_call_timeout_error_and_is_cancelled_downstream():
    entered, cancelled = anyio.Event(), anyio.Event()
    server = MCPServer("slow")

    @server.tool()
    async def wait_forever() -> str:
        entered.set()
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.set()
        return "unreachable"

    async with ClientPool(configure({"slow": server})) as pool:
        with anyio.fail_after(5):
            with pytest.raises(CallTimeoutError) as exc:
                await pool.call_tool("slow", "wait_forever", {}, timeout_s=0.2)
            await cancelled.wait()
    assert entered.is_set()
    assert exc.value.describe() == {
        "kind": "timeout",
        "message": "slow/wait_forever did not answer within 0.2s",
        "retryable": True,
        "server": "slow",
        "tool": "wait_forever",
        "hint": "raise the step's timeout_s or the server's timeout_s in the config",
    }


async def test_the_configured_server_timeout_applies_when_the_call_gives_none():
    server = MCPServer("slow")

    @server.tool()
    async def wait_forever() -> str:
        await anyio.sleep_forever()
        return "unreachable"

    async with ClientPool(configure({"slow": server}, slow=ServerSettings(timeout_s=0.1))) as pool:
        with anyio.fail_after(5), pytest.raises(CallTimeoutError) as exc:
            await pool.call_tool("slow", "wait_forever", {})
    assert exc.value.message == "slow/wait_forever did not answer within 0.1s"


async def test_cancelling_the_caller_cancels_the_downstream_call():
    entered, cancelled = anyio.Event(), anyio.Event()
    server = MCPServer("slow")

    @server.tool()
    async def wait_forever() -> str:
        entered.set()
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.set()
        return "unreachable"

    async with ClientPool(configure({"slow": server})) as pool:
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(pool.call_tool, "slow", "wait_forever", {})
                await entered.wait()
                tg.cancel_scope.cancel()
            await cancelled.wait()
        assert pool.connection("slow").in_flight == 0


async def test_an_unknown_server_is_an_error_listing_the_configured_names():
    async with ClientPool(configure({"math": math_server(), "text": text_server()})) as pool:
        with pytest.raises(UnknownServerError) as exc:
            await pool.call_tool("maths", "add", {"a": 1, "b": 2})
    assert exc.value.message == "unknown server 'maths'; configured servers: math, text"
    assert exc.value.describe() == {
        "kind": "unknown_server",
        "message": exc.value.message,
        "retryable": False,
        "server": "maths",
        "tool": "add",
        "known": ["math", "text"],
    }


async def test_a_disabled_server_is_never_started_and_calls_to_it_are_unavailable():
    started = anyio.Event()

    @asynccontextmanager
    async def record_start(_: MCPServer) -> AsyncIterator[None]:
        started.set()
        yield

    off = MCPServer("off", lifespan=record_start)

    @off.tool()
    async def ping() -> str:
        return "pong"

    config = configure({"off": off, "math": math_server()}, off=ServerSettings(disabled=True))
    async with ClientPool(config) as pool:
        with anyio.fail_after(5):
            assert await pool.wait_settled()
            with pytest.raises(ServerUnavailableError) as exc:
                await pool.call_tool("off", "ping", {})
        statuses = pool.statuses()
        snapshot = pool.snapshot()
    assert statuses[ServerName("off")].state is ServerState.DISABLED
    assert statuses[ServerName("math")].state is ServerState.READY
    assert not started.is_set()
    assert snapshot.by_server("off") == []
    described = exc.value.describe()
    assert (described["kind"], described["server"], described["tool"]) == ("unavailable", "off", "ping")
    assert described["message"] == "server off is disabled in the config"
    assert set(described) >= {"kind", "message", "retryable", "server", "tool"}


async def test_per_server_max_concurrency_holds_calls_back_until_a_slot_frees():
    gate = anyio.Event()
    active = peak = 0
    entered: list[int] = []
    server = MCPServer("busy")

    @server.tool()
    async def work(i: int) -> int:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        entered.append(i)
        try:
            await gate.wait()
        finally:
            active -= 1
        return i

    results: list[int] = []
    async with ClientPool(configure({"busy": server}, busy=ServerSettings(max_concurrency=3))) as pool:
        with anyio.fail_after(5):
            await pool.wait_settled()
            async with anyio.create_task_group() as tg:

                async def call(i: int) -> None:
                    results.append((await pool.call_tool("busy", "work", {"i": i})).structured_content["result"])

                for i in range(10):
                    tg.start_soon(call, i)
                # Every caller has now either entered the tool or is parked on the limiter.
                await anyio.wait_all_tasks_blocked()
                entered_while_gated = len(entered)
                gate.set()
    assert entered_while_gated == 3
    assert peak == 3
    assert sorted(results) == list(range(10))
    assert sorted(entered) == list(range(10))


async def test_a_call_that_cannot_get_a_slot_within_its_timeout_times_out_and_frees_its_place():
    gate = anyio.Event()
    server = MCPServer("busy")
    calls: list[str] = []

    @server.tool()
    async def work(name: str) -> str:
        calls.append(name)
        if name == "holder":
            await gate.wait()
        return name

    async with ClientPool(configure({"busy": server}, busy=ServerSettings(max_concurrency=1))) as pool:
        with anyio.fail_after(5):
            await pool.wait_settled()
            async with anyio.create_task_group() as tg:
                tg.start_soon(pool.call_tool, "busy", "work", {"name": "holder"})
                await anyio.wait_all_tasks_blocked()  # the holder is inside the tool, on the only slot
                with pytest.raises(CallTimeoutError) as exc:
                    await pool.call_tool("busy", "work", {"name": "queued"}, timeout_s=0.05)
                gate.set()
            after = await pool.call_tool("busy", "work", {"name": "after"}, timeout_s=2)
    assert calls == ["holder", "after"]  # the timed-out call never reached the server
    assert after.structured_content == {"result": "after"}
    described = exc.value.describe()
    assert (described["kind"], described["server"], described["tool"]) == ("timeout", "busy", "work")
    assert "did not start within 0.05s: all 1 of the server's call slots stayed busy" in described["message"]
    assert "max_concurrency" in described["hint"]


async def test_the_concurrency_limit_is_per_server():
    gate = anyio.Event()
    entered: list[str] = []

    def gated(name: str) -> MCPServer:
        server = MCPServer(name)

        @server.tool()
        async def work() -> str:
            entered.append(name)
            await gate.wait()
            return name

        return server

    config = configure(
        {"a": gated("a"), "b": gated("b")}, a=ServerSettings(max_concurrency=1), b=ServerSettings(max_concurrency=2)
    )
    async with ClientPool(config) as pool:
        with anyio.fail_after(5):
            await pool.wait_settled()
            async with anyio.create_task_group() as tg:
                for name in ["a", "b"] * 3:
                    tg.start_soon(pool.call_tool, name, "work", {})
                await anyio.wait_all_tasks_blocked()
                gated_entries = sorted(entered)
                gate.set()
    assert gated_entries == ["a", "b", "b"]
    assert sorted(entered) == ["a", "a", "a", "b", "b", "b"]


async def test_a_tool_added_at_run_time_appears_after_list_changed():
    server = MCPServer("grow")

    @server.tool()
    async def grow(name: str, ctx: Context) -> str:
        async def extra() -> str:
            return name

        server.add_tool(extra, name=name)
        await ctx.notify_tools_changed()
        return name

    async with ClientPool(configure({"grow": server})) as pool:
        with anyio.fail_after(5):
            await pool.wait_settled()
            before = pool.catalog.version
            await pool.call_tool("grow", "grow", {"name": "sprout"})
            await wait_for_tool(pool, "grow/sprout")
            answer = await pool.call_tool("grow", "sprout", {})
    assert pool.catalog.version > before
    assert answer.structured_content == {"result": "sprout"}


# -- resolving tool references ---------------------------------------------------------------------------------


def catalog(*ids: str) -> CatalogSnapshot:
    tools = {}
    for tid in ids:
        server, _, name = tid.partition("/")
        info = ToolInfo(server=ServerName(server), name=name)
        tools[info.id] = info
    return CatalogSnapshot(1, tools)


def test_resolve_accepts_a_full_id_and_a_unique_bare_name():
    snapshot = catalog("math/add", "math/echo", "text/echo", "text/word_stats")
    assert snapshot.resolve("text/echo").id == "text/echo"
    assert snapshot.resolve("add").id == "math/add"
    assert snapshot.resolve("word_stats").id == "text/word_stats"


def test_resolve_rejects_a_bare_name_offered_by_two_servers_and_lists_both():
    snapshot = catalog("math/add", "math/echo", "text/echo")
    with pytest.raises(AmbiguousToolError) as exc:
        snapshot.resolve("echo")
    assert exc.value.suggestions == ["math/echo", "text/echo"]
    assert exc.value.describe() == {
        "kind": "ambiguous_tool",
        "message": "tool name 'echo' is offered by several servers",
        "retryable": False,
        "hint": "use a full id: math/echo, text/echo",
        "tool": "echo",
        "suggestions": ["math/echo", "text/echo"],
    }


@pytest.mark.parametrize(
    ("ref", "suggestions"),
    [
        ("text/wordstats", ["text/word_stats"]),
        ("wordstats", ["text/word_stats"]),
        ("maths/add", ["math/add"]),
        ("ech", ["math/echo", "text/echo"]),
        ("zzz", []),
    ],
)
def test_resolve_suggests_close_ids_for_a_typo(ref: str, suggestions: list[str]):
    snapshot = catalog("math/add", "math/echo", "text/echo", "text/word_stats")
    with pytest.raises(UnknownToolError) as exc:
        snapshot.resolve(ref)
    assert exc.value.suggestions == suggestions
    assert exc.value.describe()["kind"] == "unknown_tool"


async def test_resolve_works_on_a_live_pool_snapshot():
    async with ClientPool(configure({"math": math_server(), "text": text_server()})) as pool:
        with anyio.fail_after(5):
            await pool.wait_settled()
        snapshot = pool.snapshot()
    assert snapshot.resolve("upper").id == "text/upper"
    with pytest.raises(AmbiguousToolError):
        snapshot.resolve("echo")
    with pytest.raises(UnknownToolError) as exc:
        snapshot.resolve("text/uper")
    assert exc.value.suggestions[0] == "text/upper"
    assert len(exc.value.suggestions) <= 3


# -- backoff ---------------------------------------------------------------------------------------------------


def test_backoff_grows_exponentially_up_to_the_cap_with_full_jitter():
    backoff = Backoff(base_s=0.5, cap_s=4.0)
    assert [backoff.delay(n, rand=lambda: 1.0) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert [backoff.delay(n, rand=lambda: 0.0) for n in range(1, 7)] == [0.0] * 6
    assert backoff.delay(3, rand=lambda: 0.5) == 1.0
    assert backoff.delay(0, rand=lambda: 1.0) == 0.5


def test_backoff_delays_stay_within_zero_and_the_cap_for_any_random_draw():
    backoff = Backoff(base_s=0.05, cap_s=0.2)
    draws = [i / 100 for i in range(100)]
    for attempt in range(1, 20):
        for draw in draws:
            assert 0.0 <= backoff.delay(attempt, rand=lambda d=draw: d) <= 0.2
