"""The Temporal engine under real failures, all real processes: a Temporal dev server, ``mcp-conductor worker``
children, the MCP front (``serve --engine temporal``) over stdio, and the latency demo server as the downstream.

The downstream counts its own calls per key (``flaky`` with ``fail_rate`` 0 never fails, and each step uses its
id as the key), in a JSON file that outlives every process: that count, not the engine's word, shows which steps
ran again. Each wait is bounded with ``anyio.fail_after``; the moments to strike are read from that file (a key
appears when its call reaches the server), never guessed with a sleep.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import psutil
import pytest
from mcp import MCPError

from fixtures.temporal import DevServerProcess

pytestmark = pytest.mark.e2e

STEP_MS = 1000  # long enough that a step is surely in flight when the test strikes
TIMEOUT_S = 100  # below pytest-timeout's 120 s, so a stuck run fails here with its story


def chain_plan(steps: int = 6, ms: int = STEP_MS) -> dict[str, Any]:
    """``steps`` sequential calls, each counted by the downstream under its own key (``s0``, ``s1``, ...)."""
    return {
        "steps": [
            {
                "id": f"s{i}",
                "tool": "latency/flaky",
                "arguments": {"fail_rate": 0, "ms": ms, "key": f"s{i}"},
                **({"depends_on": [f"s{i - 1}"]} if i else {}),
            }
            for i in range(steps)
        ]
    }


def fan_out_plan(items: int, ms: int) -> dict[str, Any]:
    """One foreach step of ``items`` parallel calls, each counted under its own key (``i0``, ``i1``, ...)."""
    return {
        "inputs": {"keys": [f"i{i}" for i in range(items)]},
        "steps": [
            {
                "id": "each",
                "tool": "latency/flaky",
                "foreach": "inputs.keys",
                "foreach_options": {"max_concurrency": items, "max_items": items},
                "arguments": {"fail_rate": 0, "ms": ms, "key": "${item}"},
            }
        ],
    }


def latency_config(make_config: Callable[..., Path]) -> Path:
    """Each process that loads it (the front, each worker) counts its downstream's calls in ``$COUNTER_FILE``."""
    latency = {
        "command": sys.executable,
        "args": ["-m", "mcp_conductor.demo.latency"],
        "env": {"LATENCY_COUNTER_FILE": "${COUNTER_FILE}"},
    }
    return make_config({"latency": latency})


def counted(counter_file: Path, section: str = "flaky") -> dict[str, int]:
    """The downstream's counters: ``flaky`` calls per key, ``calls`` per tool, ``writes`` per written key."""
    if not counter_file.exists():
        return {}
    counts: dict[str, int] = json.loads(counter_file.read_text(encoding="utf-8")).get(section, {})
    return counts


async def called(counter_file: Path, key: str, section: str = "flaky") -> None:
    """Until the downstream has received a call for ``key`` (bounded by the caller)."""
    while key not in counted(counter_file, section):  # noqa: ASYNC110 - another process's file: nothing to wait on
        await anyio.sleep(0.02)


def front_args(address: str, task_queue: str) -> tuple[str, ...]:
    return ("--engine", "temporal", "--temporal-address", address, "--task-queue", task_queue)


def front_env(tmp_path: Path, state: Path) -> dict[str, str]:
    return {"COUNTER_FILE": str(tmp_path / "front-counts.json"), "MCP_CONDUCTOR_STATE_DIR": str(state)}


def meta_server() -> psutil.Process:
    [meta] = [p for p in psutil.Process().children() if p.cmdline()[1:3] == ["-m", "mcp_conductor"]]
    assert "serve" in meta.cmdline()
    return meta


async def execute(client: Any, arguments: dict[str, Any], into: list[dict[str, Any]]) -> None:
    result = await client.call_tool("execute_chain", arguments)
    assert result.structured_content is not None, result.content
    into.append(result.structured_content)


async def workflow_status(address: str, workflow_id: str) -> str:
    from temporalio.client import Client

    described = await (await Client.connect(address)).get_workflow_handle(workflow_id).describe()
    assert described.status is not None
    return described.status.name


def steps_of(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["id"]: s for s in run["steps"]}


async def test_a_worker_killed_mid_chain_another_finishes_it_and_only_the_in_flight_step_ran_again(
    tmp_path: Path, temporal_address: str, task_queue: str, temporal_workers: Any, serve_stdio: Any, make_config: Any
) -> None:
    config, state, counts = latency_config(make_config), tmp_path / "state", tmp_path / "counts.json"
    env = {"COUNTER_FILE": str(counts)}
    first = await temporal_workers(config, temporal_address, task_queue, state, env=env)
    runs: list[dict[str, Any]] = []
    arguments = {"plan": chain_plan(), "options": {"run_id": "worker-kill", "detail": "steps"}}
    with anyio.fail_after(TIMEOUT_S):
        async with serve_stdio(config, *front_args(temporal_address, task_queue), env=front_env(tmp_path, state)) as c:
            async with anyio.create_task_group() as tg:
                tg.start_soon(execute, c, arguments, runs)
                await called(counts, "s2")
                first.kill()
                await temporal_workers(config, temporal_address, task_queue, state, env=env)
    [run] = runs
    assert (run["run_id"], run["status"]) == ("worker-kill", "succeeded"), run
    assert counted(counts) == {"s0": 1, "s1": 1, "s2": 2, "s3": 1, "s4": 1, "s5": 1}
    assert {sid: s["attempts"] for sid, s in steps_of(run).items()} == {f"s{i}": 2 if i == 2 else 1 for i in range(6)}


async def test_a_dev_server_killed_mid_chain_and_restarted_on_its_state_file_finishes_the_run(
    tmp_path: Path,
    temporal_servers: Callable[[], DevServerProcess],
    task_queue: str,
    temporal_workers: Any,
    serve_stdio: Any,
    make_config: Any,
) -> None:
    server = temporal_servers()
    config, state, counts = latency_config(make_config), tmp_path / "state", tmp_path / "counts.json"
    await temporal_workers(config, server.address, task_queue, state, env={"COUNTER_FILE": str(counts)})
    runs: list[dict[str, Any]] = []
    arguments = {"plan": chain_plan(), "options": {"run_id": "server-kill", "detail": "steps"}}
    with anyio.fail_after(TIMEOUT_S):
        async with serve_stdio(config, *front_args(server.address, task_queue), env=front_env(tmp_path, state)) as c:
            async with anyio.create_task_group() as tg:
                tg.start_soon(execute, c, arguments, runs)
                await called(counts, "s2")
                server.kill()
                await anyio.to_thread.run_sync(server.start)
    [run] = runs
    assert (run["run_id"], run["status"]) == ("server-kill", "succeeded"), run
    calls = counted(counts)
    # The call in flight when the server died may have reported its end to the restarted server, or been
    # declared lost (its heartbeats went nowhere) and run again: at most the in-flight step runs twice.
    assert {k: v for k, v in calls.items() if k != "s2"} == {"s0": 1, "s1": 1, "s3": 1, "s4": 1, "s5": 1}
    assert calls["s2"] in (1, 2)
    assert steps_of(run)["s2"]["attempts"] == calls["s2"]


async def test_two_workers_share_a_fan_out_of_forty_calls(
    tmp_path: Path, temporal_address: str, task_queue: str, temporal_workers: Any, serve_stdio: Any, make_config: Any
) -> None:
    config, state = latency_config(make_config), tmp_path / "state"
    shares = [tmp_path / "counts-a.json", tmp_path / "counts-b.json"]  # each worker's downstream counts its own
    for counts in shares:
        await temporal_workers(config, temporal_address, task_queue, state, env={"COUNTER_FILE": str(counts)})
    runs: list[dict[str, Any]] = []
    with anyio.fail_after(TIMEOUT_S):
        async with serve_stdio(config, *front_args(temporal_address, task_queue), env=front_env(tmp_path, state)) as c:
            await execute(c, {"plan": fan_out_plan(40, 200), "options": {"run_id": "fan-out"}}, runs)
    [run] = runs
    assert run["status"] == "succeeded", run
    assert len(run["outputs"]["each"]) == 40
    a, b = (counted(counts) for counts in shares)
    print(f"fan-out of 40: worker a ran {len(a)} calls, worker b {len(b)}")  # the share, in the test's output
    assert not a.keys() & b.keys(), "an item ran on both workers"
    assert a | b == {f"i{i}": 1 for i in range(40)}
    assert a and b, f"one worker took all 40 calls: {len(a)} / {len(b)}"


async def test_a_front_restarted_mid_run_attaches_to_the_workflow_by_run_id_and_returns_its_result(
    tmp_path: Path, temporal_address: str, task_queue: str, temporal_workers: Any, serve_stdio: Any, make_config: Any
) -> None:
    config, state, counts = latency_config(make_config), tmp_path / "state", tmp_path / "counts.json"
    await temporal_workers(config, temporal_address, task_queue, state, env={"COUNTER_FILE": str(counts)})
    args, env = front_args(temporal_address, task_queue), front_env(tmp_path, state)
    lost: list[MCPError] = []

    plan = chain_plan()
    plan["steps"][-1]["arguments"]["ms"] = 20_000  # still running when the second front (a slow start) attaches

    async def first_request(client: Any) -> None:
        try:
            await client.call_tool("execute_chain", {"plan": plan, "options": {"run_id": "front-kill"}})
        except MCPError as exc:
            lost.append(exc)

    with anyio.fail_after(TIMEOUT_S):
        async with serve_stdio(config, *args, env=env) as client:
            async with anyio.create_task_group() as tg:
                tg.start_soon(first_request, client)
                await called(counts, "s2")
                meta_server().kill()
        assert len(lost) == 1
        async with serve_stdio(config, *args, env=env) as client:
            assert await workflow_status(temporal_address, "front-kill") == "RUNNING"  # no front follows it now
            result = await client.call_tool("execute_chain", {"options": {"run_id": "front-kill", "detail": "steps"}})
    run = result.structured_content
    assert run is not None, result.content
    assert (run["run_id"], run["status"]) == ("front-kill", "succeeded"), run
    assert counted(counts) == {f"s{i}": 1 for i in range(6)}  # the workflow went on alone: nothing ran twice
    assert all(s["attempts"] == 1 for s in run["steps"])


async def test_a_worker_killed_during_a_non_idempotent_call_ends_the_step_unknown_and_never_repeats_it(
    tmp_path: Path, temporal_address: str, task_queue: str, temporal_workers: Any, serve_stdio: Any, make_config: Any
) -> None:
    config, state, counts = latency_config(make_config), tmp_path / "state", tmp_path / "counts.json"
    env = {"COUNTER_FILE": str(counts)}
    first = await temporal_workers(config, temporal_address, task_queue, state, env=env)
    before, _, after = chain_plan(3, ms=0)["steps"]
    write = {"id": "write", "tool": "latency/slow_write", "arguments": {"key": "w", "ms": 3000}, "depends_on": ["s0"]}
    plan = {"steps": [before, write, after | {"depends_on": ["write"]}]}
    runs: list[dict[str, Any]] = []
    arguments = {"plan": plan, "options": {"run_id": "unknown-write", "detail": "steps"}}
    with anyio.fail_after(TIMEOUT_S):
        async with serve_stdio(config, *front_args(temporal_address, task_queue), env=front_env(tmp_path, state)) as c:
            async with anyio.create_task_group() as tg:
                tg.start_soon(execute, c, arguments, runs)
                await called(counts, "slow_write", "calls")
                first.kill()
                await temporal_workers(config, temporal_address, task_queue, state, env=env)
    [run] = runs
    assert run["status"] == "failed", run
    steps = steps_of(run)
    assert {sid: s["status"] for sid, s in steps.items()} == {"s0": "succeeded", "write": "unknown", "s2": "skipped"}
    assert steps["write"]["error"]["kind"] == "unknown_outcome"  # the local engine's kind (execution/interrupted)
    assert counted(counts, "calls")["slow_write"] == 1  # the second worker did not call it again
    assert counted(counts, "writes") == {}  # the killed call never got to write
    assert counted(counts) == {"s0": 1}
