"""What only the Temporal engine has: a workflow history that replays, and a run that outlives the front that
started it (a worker killed mid-call is in tests/e2e/test_temporal_failures.py). In process: the dev server of
``fixtures.temporal``, workers on a task queue of the test's own, in-process downstream servers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from test_executor import Probe, probe_step  # type: ignore[import-not-found]

from mcp_conductor.client_pool.config import in_process_config
from mcp_conductor.client_pool.pool import ClientPool
from mcp_conductor.demo import latency
from mcp_conductor.server.discovery.metrics import MetricsRegistry
from mcp_conductor.server.execution.chains import ChainService
from mcp_conductor.server.execution.engine import RunRequest
from mcp_conductor.server.execution.results import RunOptions
from mcp_conductor.server.store.store import RunStore

pytest.importorskip("temporalio", reason="the temporal extra is not installed")

from temporalio.client import Client
from temporalio.worker import Replayer, Worker

from mcp_conductor.server.execution.temporal.engine import TemporalEngine, TemporalSettings, connect
from mcp_conductor.server.execution.temporal.worker import build_worker
from mcp_conductor.server.execution.temporal.workflow import RunPlan

WAIT_S = 60


class Front:
    """The pieces of one test: the store, a pool, the engine and its chain service, and a way to add workers."""

    def __init__(self, tmp_path: Path, client: Client, servers: dict[str, Any], queue: str) -> None:
        self.tmp_path, self.client, self.servers, self.queue = tmp_path, client, servers, queue

    @asynccontextmanager
    async def worker(self) -> AsyncIterator[Worker]:
        """A worker with a pool of its own (as another process would have), running until the block ends."""
        async with ClientPool(in_process_config(self.servers)) as pool:
            with anyio.fail_after(10):
                await pool.wait_settled()
            worker, _ = build_worker(self.client, pool, task_queue=self.queue, blob_dir=self.tmp_path / "blobs")
            async with worker:
                yield worker


@asynccontextmanager
async def front(
    tmp_path: Path, address: str, queue: str, **servers: Any
) -> AsyncIterator[tuple[Front, ChainService, TemporalEngine]]:
    objects = {name: s.server if isinstance(s, Probe) else s for name, s in servers.items()}
    metrics = MetricsRegistry()
    client = await connect(TemporalSettings(address))
    async with RunStore.open(tmp_path / "state") as store, ClientPool(in_process_config(objects)) as pool:
        with anyio.fail_after(10):
            await pool.wait_settled()
        engine = TemporalEngine(client, pool, store, metrics, task_queue=queue, blob_dir=tmp_path / "blobs")
        yield Front(tmp_path, client, objects, queue), ChainService(store, engine, pool, metrics), engine


async def test_a_run_s_workflow_history_replays_deterministically(
    tmp_path: Path, temporal_address: str, task_queue: str
):
    plan = {
        "inputs": {"words": ["a", "bb", "ccc"]},
        "steps": [
            {"id": "each", "tool": "latency/echo", "arguments": {"value": "${item}"}, "foreach": "inputs.words"},
            {"id": "n", "expr": "size(steps.each)"},
            {"id": "big", "tool": "latency/echo", "arguments": {"value": "${steps.n}"}, "when": "steps.n > 2"},
            {"id": "no", "tool": "latency/echo", "arguments": {"value": 0}, "when": "steps.n > 5", "default": 1},
            {
                "id": "flaky",
                "tool": "latency/flaky",
                "arguments": {"fail_first": 1},
                "retry": {"attempts": 2, "on": ["tool_error"], "backoff_s": 0},
            },
        ],
    }
    async with front(tmp_path, temporal_address, task_queue, latency=latency.build_server()) as (f, chains, _):
        async with f.worker():
            with anyio.fail_after(WAIT_S):
                result = await chains.execute(plan=plan, options=RunOptions(run_id="replay-me"))
        history = await f.client.get_workflow_handle("replay-me").fetch_history()
    assert result.status == "succeeded", result
    replayed = await Replayer(workflows=[RunPlan]).replay_workflow(history, raise_on_replay_failure=False)
    assert replayed.replay_failure is None


async def test_execute_with_the_run_id_attaches_to_a_run_whose_front_went_away(
    tmp_path: Path, temporal_address: str, task_queue: str
):
    probe = Probe()
    plan = {"steps": [probe_step("a", wait_for=["go"]), probe_step("b", depends_on=["a"])]}
    async with front(tmp_path, temporal_address, task_queue, probe=probe) as (f, chains, engine):
        checked = await chains.plan(plan)
        assert checked.normalized_plan is not None and checked.plan_id is not None
        request = RunRequest(checked.normalized_plan, checked.plan_id, {}, RunOptions(run_id="outlives-front"))
        async with f.worker():
            await engine.start(request)  # the front that started it "dies" here: nothing follows the workflow
            assert await chains.store.mark_interrupted(alive=lambda pid: False) == ["outlives-front"]
            with anyio.fail_after(WAIT_S):
                async with anyio.create_task_group() as tg:
                    results = []

                    async def attach() -> None:
                        results.append(await chains.execute(options=RunOptions(run_id="outlives-front")))

                    tg.start_soon(attach)
                    probe.started("go").set()
    [result] = results
    assert (result.run_id, result.status) == ("outlives-front", "succeeded")
    assert probe.calls == {"a": 1, "b": 1}
