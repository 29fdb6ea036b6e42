import json
import math
import sys
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters

from mcp_conductor.demo import latency
from mcp_conductor.demo.latency import build_server, flaky_fails


async def test_sleep_answers_with_the_requested_delay_and_counts_calls():
    async with Client(build_server()) as c:
        first = await c.call_tool("sleep", {"ms": 1})
        second = await c.call_tool("sleep", {"ms": 0})
    assert first.structured_content == {"slept_ms": 1.0, "call": 1}
    assert second.structured_content == {"slept_ms": 0.0, "call": 2}


async def test_echo_returns_any_json_value_unchanged():
    value = {"nested": [1, 2.5, None, True, "x"], "empty": {}}
    async with Client(build_server()) as c:
        result = await c.call_tool("echo", {"value": value})
    assert result.structured_content == {"value": value, "call": 1}


async def test_flaky_with_fail_first_fails_that_many_calls_then_succeeds():
    async with Client(build_server()) as c:
        results = [await c.call_tool("flaky", {"fail_first": 2, "key": "job"}) for _ in range(4)]
    assert [r.is_error for r in results] == [True, True, False, False]
    assert results[0].content[0].text == (
        "Error executing tool flaky: flaky failure: call 1 for key 'job' fails by rule"
    )
    assert results[2].structured_content == {"ok": True, "call": 3}


async def test_flaky_at_half_rate_alternates_starting_with_a_failure_and_keys_are_independent():
    async with Client(build_server()) as c:
        a = [(await c.call_tool("flaky", {"key": "a"})).is_error for _ in range(4)]
        b = [(await c.call_tool("flaky", {"key": "b", "fail_rate": 0})).is_error for _ in range(2)]
    assert a == [True, False, True, False]
    assert b == [False, False]


@pytest.mark.parametrize("rate", [0, 0.1, 0.25, 0.5, 0.7, 0.9, 1])
def test_flaky_fails_exactly_ceil_n_times_rate_of_the_first_n_calls(rate: float):
    failures = 0
    for n in range(1, 41):
        failures += flaky_fails(n, rate)
        assert failures == math.ceil(round(n * rate, 9))


async def test_fail_always_returns_the_given_message_as_a_tool_error():
    async with Client(build_server()) as c:
        result = await c.call_tool("fail", {"message": "disk on fire"})
    assert result.is_error
    assert result.content[0].text == "Error executing tool fail: disk on fire"


async def test_counters_count_every_call_including_failures_but_not_themselves():
    async with Client(build_server()) as c:
        await c.call_tool("sleep", {"ms": 0})
        await c.call_tool("fail", {"message": "x"})
        await c.call_tool("fail", {"message": "y"})
        await c.call_tool("counters", {})
        result = await c.call_tool("counters", {})
    assert result.structured_content == {"counts": {"sleep": 1, "fail": 2}}


async def test_slow_write_counts_writes_per_key_and_is_annotated_as_not_idempotent():
    async with Client(build_server()) as c:
        tools = {t.name: t.annotations for t in (await c.list_tools()).tools}
        await c.call_tool("slow_write", {"key": "a"})
        second = await c.call_tool("slow_write", {"key": "a", "ms": 1})
        other = await c.call_tool("slow_write", {"key": "b"})
    assert second.structured_content == {"key": "a", "writes": 2, "call": 2}
    assert other.structured_content == {"key": "b", "writes": 1, "call": 3}
    write = tools["slow_write"]
    assert write is not None
    assert (write.read_only_hint, write.destructive_hint, write.idempotent_hint) == (False, False, False)
    assert all(a is not None and a.read_only_hint for name, a in tools.items() if name != "slow_write")


async def test_a_slow_write_cancelled_while_waiting_writes_nothing():
    async with Client(build_server()) as c:
        with anyio.move_on_after(0.2):
            await c.call_tool("slow_write", {"key": "k", "ms": 60_000})
        result = await c.call_tool("slow_write", {"key": "k"})
    assert result.structured_content == {"key": "k", "writes": 1, "call": 2}


async def test_the_default_delay_holds_back_every_call():
    async with Client(build_server(default_ms=60_000)) as c:
        with anyio.move_on_after(0.2) as scope:
            await c.call_tool("echo", {"value": 1})
    assert scope.cancelled_caught


def test_latency_default_ms_must_be_a_number(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LATENCY_DEFAULT_MS", "fast")
    with pytest.raises(ValueError, match="LATENCY_DEFAULT_MS"):
        latency._from_env()


async def test_servers_sharing_a_counter_file_share_their_counts(tmp_path: Path):
    counter_file = tmp_path / "counters.json"
    async with Client(build_server(counter_file=counter_file)) as one:
        await one.call_tool("echo", {"value": 1})
        await one.call_tool("flaky", {"fail_first": 1, "key": "k"})
    async with Client(build_server(counter_file=counter_file)) as two:
        echoed = await two.call_tool("echo", {"value": 2})
        flaky = await two.call_tool("flaky", {"fail_first": 1, "key": "k"})
        counts = await two.call_tool("counters", {})
    assert echoed.structured_content == {"value": 2, "call": 2}
    assert flaky.structured_content == {
        "ok": True,
        "call": 2,
    }  # the key's first call, a failure, was remembered
    assert counts.structured_content == {"counts": {"echo": 2, "flaky": 2}}
    assert json.loads(counter_file.read_text())["calls"] == {"echo": 2, "flaky": 2}


async def test_counter_file_carries_counts_over_a_process_restart(tmp_path: Path):
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "mcp_conductor.demo.latency"],
        env={"LATENCY_COUNTER_FILE": str(tmp_path / "counters.json")},
    )
    with anyio.fail_after(30):
        async with Client(params) as c:
            tools = (await c.list_tools()).tools
            first = await c.call_tool("sleep", {"ms": 5})
        async with Client(params) as c:
            counts = await c.call_tool("counters", {})
            second = await c.call_tool("sleep", {"ms": 0})
    assert {t.name for t in tools} == {"sleep", "echo", "flaky", "fail", "counters", "slow_write"}
    assert first.structured_content == {"slept_ms": 5.0, "call": 1}
    assert counts.structured_content == {"counts": {"sleep": 1}}
    assert second.structured_content == {"slept_ms": 0.0, "call": 2}
