"""Runs that outlive their request: ``options.wait_s``, attaching again by run id, and cancelling."""

from pathlib import Path
from typing import Any

import anyio
from mcp import Client

from mcp_conductor.client_pool.config import in_process_config
from mcp_conductor.demo import latency
from mcp_conductor.server.app import build_server
from mcp_conductor.server.conductor import Conductor
from mcp_conductor.server.store.store import RunStore

SLOW = {
    "steps": [
        {"id": "a", "tool": "latency/echo", "arguments": {"value": 1}},
        {"id": "b", "tool": "latency/sleep", "arguments": {"ms": 800}, "depends_on": ["a"]},
        {"id": "c", "tool": "latency/echo", "arguments": {"value": "${steps.a.value}"}, "depends_on": ["b"]},
    ],
    "outputs": ["c"],
}


def config() -> Any:
    return in_process_config({"latency": latency.build_server()})


async def test_a_run_not_done_within_wait_s_answers_running_and_a_second_call_gets_its_result(tmp_path: Path):
    async with Conductor.open(config(), tmp_path / "state") as conductor:
        with anyio.fail_after(10):
            first = await conductor.execute(SLOW, options={"wait_s": 0.2})
            again = await conductor.execute(options={"run_id": first.run_id, "wait_s": 10})
    assert first.status == "running" and first.run_id is not None
    assert first.progress is not None and first.progress.total == 3 and first.progress.done <= 2
    assert again.run_id == first.run_id
    assert again.status == "succeeded" and again.outputs == {"c": {"value": 1, "call": 2}}


async def test_a_host_that_stops_waiting_does_not_stop_the_run(tmp_path: Path):
    server = build_server(config(), state_dir=tmp_path / "state")
    async with Client(server) as client:
        with anyio.fail_after(10):
            with anyio.CancelScope() as waiting:

                async def give_up(progress: float, total: float | None, message: str | None) -> None:
                    waiting.cancel()  # the host gives up on its call once the run is under way

                await client.call_tool(
                    "execute_chain", {"plan": SLOW, "options": {"run_id": "mine"}}, progress_callback=give_up
                )
            assert waiting.cancelled_caught
            result = await client.call_tool("execute_chain", {"options": {"run_id": "mine", "wait_s": 10}})
    assert result.structured_content is not None
    assert result.structured_content["status"] == "succeeded"
    assert not result.is_error


async def test_cancel_true_stops_a_running_run_and_answers_its_stored_state(tmp_path: Path):
    async with Conductor.open(config(), tmp_path / "state") as conductor:
        with anyio.fail_after(10):
            first = await conductor.execute(SLOW, options={"wait_s": 0.2})
            cancelled = await conductor.execute(options={"run_id": first.run_id, "cancel": True, "wait_s": 10})
    assert first.status == "running"
    assert cancelled.status == "cancelled"
    assert {p.id: p.status for p in cancelled.problems} == {"b": "cancelled", "c": "skipped"}


async def test_a_cancel_requested_through_the_store_reaches_the_owner(tmp_path: Path):
    async with Conductor.open(config(), tmp_path / "state") as conductor:
        with anyio.fail_after(10):
            first = await conductor.execute(SLOW, options={"wait_s": 0.2})
            assert first.run_id is not None
            async with RunStore.open(tmp_path / "state") as other:  # e.g. `mcp-conductor runs cancel`
                await other.request_cancel(first.run_id)
            done = await conductor.execute(options={"run_id": first.run_id, "wait_s": 10})
    assert done.status == "cancelled"


async def test_a_second_waiter_hears_the_progress_of_the_run(tmp_path: Path):
    heard: list[tuple[int, int]] = []

    async def progress(done: int, total: int, message: str) -> None:
        heard.append((done, total))

    async with Conductor.open(config(), tmp_path / "state") as conductor:
        with anyio.fail_after(10):
            first = await conductor.execute(SLOW, options={"wait_s": 0.2})
            await conductor.execute(options={"run_id": first.run_id, "wait_s": 10}, progress=progress)
    assert heard and heard[-1] == (3, 3)
