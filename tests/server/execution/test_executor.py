"""execute_chain and its engine, in memory: in-process downstream servers behind the real pool and MCP front.

Concurrency is proven by the order of recorded events: a probe tool waits for other steps to have started, so a
scheduler that ran them one after another (or level by level) would hang and ``fail_after`` would fail the test.
"""

import json
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest
import structlog
from mcp import Client, MCPError
from mcp.server.lowlevel import Server
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import (
    REQUEST_TIMEOUT,
    CallToolResult,
    ListToolsResult,
    TextContent,
    TextResourceContents,
    Tool,
    ToolAnnotations,
)
from structlog.testing import capture_logs

from mcp_conductor.client_pool.config import in_process_config
from mcp_conductor.client_pool.pool import ClientPool
from mcp_conductor.demo import latency
from mcp_conductor.server.app import build_server
from mcp_conductor.server.discovery.metrics import MetricsRegistry
from mcp_conductor.server.execution.chains import ChainService
from mcp_conductor.server.execution.executor import LocalExecutor
from mcp_conductor.server.execution.results import RunOptions
from mcp_conductor.server.planning.planner import PlannerLimits
from mcp_conductor.server.store.records import RunExport, RunStatus, StepRun, StepStatus
from mcp_conductor.server.store.store import RunStore

READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True)
WRITE = ToolAnnotations(read_only_hint=False, idempotent_hint=False, destructive_hint=False)


class Probe:
    """An in-process MCP server whose tools record what happens to them, in order, into ``log``."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.calls: dict[str, int] = {}
        self._started: dict[str, anyio.Event] = {}
        self._cancelled: dict[str, anyio.Event] = {}
        self.in_flight = 0
        self.peak = 0
        self._entered = 0
        self._changed = anyio.Event()
        self.server = self._build()

    def started(self, name: str) -> anyio.Event:
        return self._started.setdefault(name, anyio.Event())

    def cancelled(self, name: str) -> anyio.Event:
        return self._cancelled.setdefault(name, anyio.Event())

    def _count(self, key: str) -> int:
        self.calls[key] = self.calls.get(key, 0) + 1
        return self.calls[key]

    def _build(self) -> MCPServer:
        server = MCPServer("probe")

        @server.tool(annotations=READ_ONLY)
        async def step(name: str, wait_for: list[str] | None = None, fail: bool = False) -> dict[str, Any]:
            """Record 'start NAME', wait until every step in wait_for has started, then record 'end NAME'."""
            self._count(name)
            self.log.append(f"start {name}")
            self.started(name).set()
            for other in wait_for or []:
                await self.started(other).wait()
            if fail:
                self.log.append(f"fail {name}")
                raise ToolError(f"{name} fails on purpose")
            self.log.append(f"end {name}")
            return {"name": name}

        @server.tool(annotations=READ_ONLY)
        async def hang(name: str) -> dict[str, Any]:
            """Record 'start NAME' and wait until cancelled, recording 'cancelled NAME'."""
            self._count(name)
            self.log.append(f"start {name}")
            self.started(name).set()
            try:
                await anyio.sleep_forever()
            except anyio.get_cancelled_exc_class():
                self.log.append(f"cancelled {name}")
                self.cancelled(name).set()
                raise
            raise AssertionError("unreachable")

        @server.tool(annotations=READ_ONLY)
        async def gate(total: int, limit: int) -> int:
            """Stay inside until `limit` calls are inside together (or all `total` calls have entered)."""
            self._entered += 1
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            self._wake()
            try:
                while self.in_flight < limit and self._entered < total:
                    await self._changed.wait()
            finally:
                self.in_flight -= 1
                self._wake()
            return self.peak

        @server.tool(annotations=READ_ONLY)
        async def times_out(key: str, fail_first: int) -> int:
            """Answer with a JSON-RPC request-timeout error for the first `fail_first` calls of `key`."""
            call = self._count(key)
            if call <= fail_first:
                raise MCPError(REQUEST_TIMEOUT, f"call {call} timed out")
            return call

        @server.tool(annotations=READ_ONLY)
        async def errors(key: str, fail_first: int) -> int:
            """Answer with a tool error (isError) for the first `fail_first` calls of `key`."""
            call = self._count(key)
            if call <= fail_first:
                raise ToolError(f"call {call} fails")
            return call

        @server.tool(annotations=WRITE)
        async def write_times_out(key: str, fail_first: int) -> int:
            """Like times_out, but annotated as a non-idempotent write."""
            call = self._count(key)
            if call <= fail_first:
                raise MCPError(REQUEST_TIMEOUT, f"call {call} timed out")
            return call

        return server

    def _wake(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()


def conductor(tmp_path: Path, **servers: Any) -> MCPServer[Any]:
    """The meta server over in-process downstream servers (``Probe`` objects or ``MCPServer`` objects)."""
    objects = {name: s.server if isinstance(s, Probe) else s for name, s in servers.items()}
    return build_server(in_process_config(objects), state_dir=tmp_path / "state")


@asynccontextmanager
async def chains_over(
    tmp_path: Path, servers: dict[str, Any], *, store_class: type[RunStore] = RunStore, **engine: Any
) -> AsyncIterator[ChainService]:
    """A ChainService with a LocalExecutor built here, so tests can inject its sleep, rand and limits."""
    objects = {name: s.server if isinstance(s, Probe) else s for name, s in servers.items()}
    metrics = MetricsRegistry()
    async with store_class.open(tmp_path / "state") as store, ClientPool(in_process_config(objects)) as pool:
        with anyio.fail_after(5):
            await pool.wait_settled()
        executor = LocalExecutor(pool, store, metrics, **engine)
        yield ChainService(store, executor, pool, metrics)


async def execute(client: Client, plan: dict[str, Any] | None = None, **arguments: Any) -> dict[str, Any]:
    """execute_chain with every step in the result; a run that did not do its job is an isError result."""
    if plan is not None:
        arguments["plan"] = plan
    arguments["options"] = {"detail": "steps", **arguments.get("options", {})}
    result = await client.call_tool("execute_chain", arguments)
    assert result.structured_content is not None, result.content
    run = result.structured_content
    assert result.is_error == (run["status"] in ("invalid", "failed", "timed_out", "cancelled")), run
    return run


def statuses(run: dict[str, Any]) -> dict[str, str]:
    return {s["id"]: s["status"] for s in run["steps"]}


def step_of(run: dict[str, Any], step_id: str) -> dict[str, Any]:
    return next(s for s in run["steps"] if s["id"] == step_id)


def probe_step(step_id: str, wait_for: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {"name": step_id}
    if wait_for:
        arguments["wait_for"] = wait_for
    if extra.pop("fail", False):
        arguments["fail"] = True
    return {"id": step_id, "tool": "probe/step", "arguments": arguments, **extra}


async def counters(client: Client) -> dict[str, int]:
    """The latency demo server's call counters, read through a chain (the counters tool is not counted)."""
    run = await execute(client, {"steps": [{"id": "count", "tool": "latency/counters"}]})
    return run["outputs"]["count"]["counts"]


# -- scheduling ----------------------------------------------------------------------------------------------


async def test_fan_out_steps_run_at_the_same_time(tmp_path: Path):
    probe = Probe()
    names = [f"s{i}" for i in range(6)]
    plan = {"steps": [probe_step(n, wait_for=[m for m in names if m != n]) for n in names]}
    async with Client(conductor(tmp_path, probe=probe)) as client:
        with anyio.fail_after(5):
            run = await execute(client, plan)
    assert run["status"] == "succeeded"
    assert sorted(probe.log[:6]) == sorted(f"start {n}" for n in names)  # all started before any ended
    assert sorted(probe.log[6:]) == sorted(f"end {n}" for n in names)


async def test_a_step_starts_when_its_own_dependencies_are_done_not_when_the_whole_level_is(tmp_path: Path):
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
    async with Client(conductor(tmp_path, probe=probe)) as client:
        with anyio.fail_after(5):
            run = await execute(client, plan)
    assert run["status"] == "succeeded"
    assert probe.log.index("start b") < probe.log.index("end c")
    assert probe.log.index("end a") < probe.log.index("start b")
    assert probe.log.index("end c") < probe.log.index("start d")


async def test_outputs_flow_into_later_steps_and_the_sinks_are_returned(tmp_path: Path):
    plan = {
        "steps": [
            {"id": "a", "tool": "latency/echo", "arguments": {"value": {"city": "Oslo", "n": [1, 2]}}},
            {"id": "b", "tool": "latency/echo", "arguments": {"value": "${steps.a.value.n[1]}"}},
            {"id": "c", "tool": "latency/echo", "arguments": {"value": "to ${steps.a.value.city}"}},
        ]
    }
    async with Client(conductor(tmp_path, latency=latency.build_server())) as client:
        with anyio.fail_after(5):
            run = await execute(client, plan)
    assert run["status"] == "succeeded"
    assert {k: v["value"] for k, v in run["outputs"].items()} == {"b": 2, "c": "to Oslo"}


class RecordingStore(RunStore):
    """The run store, noting the order of step starts and finishes (the executor holds a concurrency slot from
    before a step's start is written until after its finish is written)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.order: list[str] = []

    async def write_steps(
        self,
        *,
        ended: Sequence[StepRun] = (),
        rows: Sequence[StepRun] = (),
        started: StepRun | None = None,
        items: Sequence[Any] = (),
    ) -> None:
        self.order += [f"end {r.run_id}/{r.step_id}" for r in (*ended, *rows)]  # written first, one transaction
        if started is not None:
            self.order.append(f"start {started.run_id}/{started.step_id}")
        await super().write_steps(ended=ended, rows=rows, started=started, items=items)

    def most_running(self) -> int:
        running = most = 0
        for event in self.order:
            running += 1 if event.startswith("start") else -1
            most = max(most, running)
        return most


def gates(n: int, total: int, limit: int) -> dict[str, Any]:
    return {
        "steps": [
            {"id": f"g{i}", "tool": "probe/gate", "arguments": {"total": total, "limit": limit}} for i in range(n)
        ]
    }


async def test_the_run_option_max_concurrency_bounds_the_steps_running_at_once(tmp_path: Path):
    probe = Probe()
    async with chains_over(tmp_path, {"probe": probe}, store_class=RecordingStore) as chains:
        with anyio.fail_after(5):
            run = await chains.execute(plan=gates(6, total=6, limit=2), options=RunOptions(max_concurrency=2))
        most = chains.store.most_running()
    assert run.status == "succeeded"
    assert probe.peak == 2  # the gate holds each call until two are inside: the limit is reached ...
    assert most == 2  # ... and never exceeded (steps queue at the store at once when nothing holds them)


async def test_the_executor_wide_limit_holds_across_concurrent_runs(tmp_path: Path):
    probe = Probe()
    results = []
    async with chains_over(tmp_path, {"probe": probe}, store_class=RecordingStore, max_concurrency=3) as chains:

        async def run_once() -> None:
            results.append(await chains.execute(plan=gates(4, total=8, limit=3)))

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(run_once)
                tg.start_soon(run_once)
        most = chains.store.most_running()
    assert [r.status for r in results] == ["succeeded", "succeeded"]
    assert probe.peak == 3
    assert most == 3


# -- failures ------------------------------------------------------------------------------------------------


async def test_under_continue_a_failed_step_skips_its_dependents_and_independent_branches_finish(tmp_path: Path):
    probe = Probe()
    plan = {
        "steps": [
            probe_step("a", fail=True, on_error="continue"),
            probe_step("b", depends_on=["a"]),
            probe_step("c"),
            probe_step("d", depends_on=["c"]),
        ]
    }
    async with Client(conductor(tmp_path, probe=probe)) as client:
        with anyio.fail_after(5):
            run = await execute(client, plan)
    assert run["status"] == "partial"
    assert statuses(run) == {"a": "failed", "b": "skipped", "c": "succeeded", "d": "succeeded"}
    assert step_of(run, "a")["error"] == {
        "kind": "tool_error",
        "message": "Error executing tool step: a fails on purpose",
        "retryable": False,
        "server": "probe",
        "tool": "step",
    }
    assert step_of(run, "b")["error"]["kind"] == "skipped"
    assert "start b" not in probe.log
    assert list(run["outputs"]) == ["d"]


async def test_under_fail_running_steps_are_cancelled_and_the_rest_skipped(tmp_path: Path):
    probe = Probe()
    plan = {
        "steps": [
            probe_step("a", wait_for=["slow"], fail=True),  # fails once slow is running
            {"id": "slow", "tool": "probe/hang", "arguments": {"name": "slow"}},
            probe_step("after", depends_on=["slow"]),
        ]
    }
    async with Client(conductor(tmp_path, probe=probe)) as client:
        with anyio.fail_after(5):
            run = await execute(client, plan)
            await probe.cancelled("slow").wait()
    assert run["status"] == "failed"
    assert statuses(run) == {"a": "failed", "slow": "cancelled", "after": "skipped"}
    assert "start after" not in probe.log


@pytest.mark.parametrize(
    ("step_policy", "run_policy", "expected"),
    [
        (None, None, "failed"),
        (None, "continue", "partial"),
        ("fail", "continue", "failed"),
        ("continue", None, "partial"),
        ("continue", "fail", "partial"),
    ],
)
async def test_the_run_on_error_default_applies_only_to_steps_without_their_own(
    tmp_path: Path, step_policy: str | None, run_policy: str | None, expected: str
):
    probe = Probe()
    failing = probe_step("a", wait_for=["b"], fail=True)  # b has started, so under fail it is cancelled
    if step_policy is not None:
        failing["on_error"] = step_policy
    plan = {"steps": [failing, probe_step("b")]}
    options = {"on_error": run_policy} if run_policy else {}
    async with Client(conductor(tmp_path, probe=probe)) as client:
        with anyio.fail_after(5):
            run = await execute(client, plan, options=options)
    assert run["status"] == expected
    assert statuses(run)["a"] == "failed"
    if expected == "partial":
        assert statuses(run)["b"] == "succeeded"


def lying_server() -> Server:
    """A low-level server whose tool returns structured content that breaks its own output schema."""
    tool = Tool(
        name="count",
        input_schema={"type": "object"},
        output_schema={"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]},
    )

    async def on_list_tools(ctx: Any, params: Any) -> ListToolsResult:
        return ListToolsResult(tools=[tool])

    async def on_call_tool(ctx: Any, params: Any) -> CallToolResult:
        return CallToolResult(content=[TextContent(type="text", text="many")], structured_content={"n": "many"})

    return Server("liar", on_list_tools=on_list_tools, on_call_tool=on_call_tool)


async def test_a_result_the_mcp_client_rejects_fails_only_its_step(tmp_path: Path):
    plan = {
        "steps": [
            {"id": "a", "tool": "liar/count", "on_error": "continue"},
            {"id": "b", "tool": "latency/echo", "arguments": {"value": 1}},
        ]
    }
    async with Client(conductor(tmp_path, liar=lying_server(), latency=latency.build_server())) as client:
        with anyio.fail_after(5):
            run = await execute(client, plan)
    assert run["status"] == "partial"
    assert statuses(run) == {"a": "failed", "b": "succeeded"}
    error = step_of(run, "a")["error"]
    assert (error["kind"], error["server"], error["tool"]) == ("protocol_error", "liar", "count")
    assert "Invalid structured content" in error["message"]


# -- retries -------------------------------------------------------------------------------------------------


def recording_sleep(delays: list[float]) -> Callable[[float], Any]:
    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    return sleep


def retry_plan(tool: str, fail_first: int, **retry: Any) -> dict[str, Any]:
    return {"steps": [{"id": "s", "tool": tool, "arguments": {"key": "k", "fail_first": fail_first}, "retry": retry}]}


async def test_a_transient_failure_is_retried_with_exponential_backoff_capped_at_max(tmp_path: Path):
    probe, delays = Probe(), []
    plan = retry_plan("probe/times_out", 3, attempts=5, backoff_s=0.5, max_backoff_s=1.5)
    async with chains_over(tmp_path, {"probe": probe}, sleep=recording_sleep(delays), rand=lambda: 1.0) as chains:
        with anyio.fail_after(5):
            run = await chains.execute(plan=plan, options=RunOptions(detail="steps"))
    assert run.status == "succeeded"
    assert run.steps[0].attempts == 4
    assert probe.calls == {"k": 4}
    assert delays == [0.5, 1.0, 1.5]
    assert run.outputs["s"] == {"result": 4}


async def test_retries_stop_after_the_configured_attempts_and_the_step_times_out(tmp_path: Path):
    probe, delays = Probe(), []
    plan = retry_plan("probe/times_out", 10, attempts=3, backoff_s=0.25, max_backoff_s=10)
    async with chains_over(tmp_path, {"probe": probe}, sleep=recording_sleep(delays), rand=lambda: 1.0) as chains:
        with anyio.fail_after(5):
            run = await chains.execute(plan=plan, options=RunOptions(detail="steps"))
    assert run.status == "failed"
    assert (run.steps[0].status, run.steps[0].attempts) == ("timeout", 3)
    assert run.steps[0].error is not None and run.steps[0].error.kind == "timeout"
    assert probe.calls == {"k": 3}
    assert delays == [0.25, 0.5]


async def test_jitter_scales_each_delay_by_the_random_draw(tmp_path: Path):
    probe, delays = Probe(), []
    plan = retry_plan("probe/times_out", 2, attempts=3, backoff_s=1.0, max_backoff_s=10)
    async with chains_over(tmp_path, {"probe": probe}, sleep=recording_sleep(delays), rand=lambda: 0.25) as chains:
        with anyio.fail_after(5):
            run = await chains.execute(plan=plan, options=RunOptions(detail="steps"))
    assert run.status == "succeeded"
    assert delays == [0.25, 0.5]


@pytest.mark.parametrize(
    ("tool", "retry", "calls"),
    [
        ("probe/errors", {}, 1),  # a tool error is not transient
        ("probe/errors", {"on": ["tool_error"]}, 3),  # unless listed
        ("probe/errors", {"on": ["timeout"]}, 1),  # listing other kinds does not retry it
        ("probe/write_times_out", {}, 1),  # transient, but the tool is neither read-only nor idempotent
        ("probe/write_times_out", {"on": ["timeout"]}, 3),  # unless retry.on asks for it
        ("probe/times_out", {}, 3),  # transient on a read-only tool: retried by default
    ],
)
async def test_only_transient_failures_of_safe_tools_are_retried_unless_retry_on_says_so(
    tmp_path: Path, tool: str, retry: dict[str, Any], calls: int
):
    probe, delays = Probe(), []
    plan = retry_plan(tool, 10, attempts=3, backoff_s=0.1, **retry)
    async with chains_over(tmp_path, {"probe": probe}, sleep=recording_sleep(delays), rand=lambda: 1.0) as chains:
        with anyio.fail_after(5):
            run = await chains.execute(plan=plan, options=RunOptions(detail="steps"))
    assert run.status == "failed"
    assert probe.calls == {"k": calls}
    assert run.steps[0].attempts == calls
    assert len(delays) == calls - 1


# -- timeouts ------------------------------------------------------------------------------------------------


async def test_a_step_timeout_gives_status_timeout_cancels_the_call_and_skips_dependents(tmp_path: Path):
    probe = Probe()
    plan = {
        "steps": [
            {
                "id": "slow",
                "tool": "probe/hang",
                "arguments": {"name": "slow"},
                "timeout_s": 0.05,
                "on_error": "continue",
            },
            probe_step("after", depends_on=["slow"]),
            probe_step("other"),
        ]
    }
    async with Client(conductor(tmp_path, probe=probe)) as client:
        with anyio.fail_after(5):
            run = await execute(client, plan)
            await probe.cancelled("slow").wait()
    assert run["status"] == "partial"
    assert statuses(run) == {"slow": "timeout", "after": "skipped", "other": "succeeded"}
    error = step_of(run, "slow")["error"]
    assert (error["kind"], error["retryable"], error["server"], error["tool"]) == ("timeout", True, "probe", "hang")


async def test_the_chain_deadline_ends_the_run_as_timed_out(tmp_path: Path):
    probe = Probe()
    plan = {
        "steps": [
            {"id": "slow", "tool": "probe/hang", "arguments": {"name": "slow"}},
            probe_step("after", depends_on=["slow"]),
            probe_step("quick"),
        ]
    }
    async with Client(conductor(tmp_path, probe=probe)) as client:
        with anyio.fail_after(5):
            run = await execute(client, plan, options={"timeout_s": 0.2})
            await probe.cancelled("slow").wait()
    assert run["status"] == "timed_out"
    assert statuses(run) == {"slow": "timeout", "after": "skipped", "quick": "succeeded"}
    assert step_of(run, "slow")["error"]["kind"] == "timeout"


# -- plans ---------------------------------------------------------------------------------------------------


async def test_an_invalid_inline_plan_returns_the_planner_errors_and_runs_nothing(tmp_path: Path):
    plan = {
        "steps": [
            {"id": "a", "tool": "latency/echo", "arguments": {"value": 1}},
            {"id": "b", "tool": "latency/ecko", "arguments": {"value": "${steps.a.value}"}},
        ]
    }
    async with Client(conductor(tmp_path, latency=latency.build_server())) as client:
        with anyio.fail_after(5):
            run = await execute(client, plan)
            planned = await client.call_tool("plan_chain", {"plan": plan})
            counts = await counters(client)
    assert run["status"] == "invalid"
    assert run.get("run_id") is None
    assert "steps" not in run and "outputs" not in run  # nothing ran: no steps, no outputs
    assert run["errors"] == planned.structured_content["errors"]
    assert [(e["kind"], e["step"], e["suggestions"][0]) for e in run["errors"]] == [
        ("unknown_tool", "b", "latency/echo")
    ]
    assert counts == {}


async def test_an_unknown_plan_id_is_an_error_that_points_at_plan_chain(tmp_path: Path):
    async with Client(conductor(tmp_path, latency=latency.build_server())) as client:
        with anyio.fail_after(5):
            result = await client.call_tool("execute_chain", {"plan_id": "plan_0000000000000000"})
    assert result.is_error
    text = result.content[0].text
    assert "plan_0000000000000000" in text and "plan_chain" in text


async def test_a_plan_id_from_plan_chain_runs_with_overridden_inputs(tmp_path: Path):
    plan = {
        "inputs": {"word": "one"},
        "steps": [
            {"id": "a", "tool": "latency/echo", "arguments": {"value": "${inputs.word}"}},
        ],
    }
    async with Client(conductor(tmp_path, latency=latency.build_server())) as client:
        with anyio.fail_after(5):
            planned = (await client.call_tool("plan_chain", {"plan": plan, "detail": "plan"})).structured_content
            run = await execute(client, plan_id=planned["plan_id"], inputs={"word": "two"})
    assert run["status"] == "succeeded"
    assert run["outputs"]["a"]["value"] == "two"


# -- run ids, resume, persistence ----------------------------------------------------------------------------


async def test_the_same_run_id_twice_returns_the_stored_result_without_calling_the_tool_again(tmp_path: Path):
    plan = {"steps": [{"id": "a", "tool": "latency/echo", "arguments": {"value": "once"}}]}
    options = {"run_id": "host-key-1"}
    async with Client(conductor(tmp_path, latency=latency.build_server())) as client:
        with anyio.fail_after(5):
            first = await execute(client, plan, options=options)
            second = await execute(client, plan, options=options)
            counts = await counters(client)
    assert (first["run_id"], first["status"], first.get("reused", False)) == ("host-key-1", "succeeded", False)
    assert (second["run_id"], second["status"], second["reused"]) == ("host-key-1", "succeeded", True)
    assert second["outputs"] == first["outputs"] == {"a": {"value": "once", "call": 1}}
    assert second["steps"] == first["steps"]
    assert counts == {"echo": 1}


async def test_resume_reruns_only_the_steps_that_did_not_succeed_and_reuses_stored_outputs(tmp_path: Path):
    plan = {
        "steps": [
            {"id": "a", "tool": "latency/echo", "arguments": {"value": "key-from-a"}},
            {"id": "b", "tool": "latency/flaky", "arguments": {"fail_first": 1, "key": "${steps.a.value}"}},
            {"id": "c", "tool": "latency/echo", "arguments": {"value": "${steps.b.call}"}},
        ],
        "outputs": ["a", "c"],
    }
    async with Client(conductor(tmp_path, latency=latency.build_server())) as client:
        with anyio.fail_after(5):
            failed = await execute(client, plan)
            resumed = await execute(client, options={"resume_run_id": failed["run_id"]})
            counts = await counters(client)
    assert failed["status"] == "failed"
    assert statuses(failed) == {"a": "succeeded", "b": "failed", "c": "skipped"}
    assert resumed["run_id"] == failed["run_id"]
    assert resumed["status"] == "succeeded"
    assert statuses(resumed) == {"a": "succeeded", "b": "succeeded", "c": "succeeded"}
    assert resumed["outputs"] == {"a": {"value": "key-from-a", "call": 1}, "c": {"value": 2, "call": 2}}
    assert step_of(resumed, "b")["attempts"] == 2  # attempts count across the resume
    assert counts == {"echo": 2, "flaky": 2}  # a ran once; b twice; c once


async def test_a_finished_run_exports_and_imports_into_a_fresh_store_losslessly(tmp_path: Path):
    plan = {
        "inputs": {"v": "héllo"},
        "steps": [
            {"id": "a", "tool": "latency/echo", "arguments": {"value": "${inputs.v}"}},
            {"id": "b", "tool": "latency/fail", "arguments": {"message": "no"}, "on_error": "continue"},
        ],
    }
    async with Client(conductor(tmp_path, latency=latency.build_server())) as client:
        with anyio.fail_after(5):
            run = await execute(client, plan)
    async with RunStore.open(tmp_path / "state") as store:
        exported = await store.export_run(run["run_id"])
    assert exported is not None
    async with RunStore.open(tmp_path / "elsewhere") as fresh:
        await fresh.import_run(RunExport.model_validate_json(exported.model_dump_json()))  # as a file
        again = await fresh.export_run(run["run_id"])
    assert again == exported
    assert exported.run.status is RunStatus.PARTIAL
    assert [(s.step_id, s.status, s.output) for s in exported.steps] == [
        ("a", StepStatus.SUCCEEDED, {"value": "héllo", "call": 1}),
        ("b", StepStatus.FAILED, None),
    ]
    assert exported.steps[0].arguments == {"value": "héllo"}
    assert exported.plan is not None and exported.plan["inputs"] == {"v": "héllo"}


# -- the host ------------------------------------------------------------------------------------------------


async def test_cancelling_a_request_that_waits_for_the_end_cancels_downstream_calls_and_the_run(tmp_path: Path):
    # wait_s null: the run belongs to the request (the default, 50 s, detaches it: see test_live_runs).
    probe = Probe()
    plan = {
        "steps": [
            probe_step("quick"),
            {"id": "slow", "tool": "probe/hang", "arguments": {"name": "slow"}, "depends_on": ["quick"]},
            probe_step("after", depends_on=["slow"]),
        ]
    }
    async with Client(conductor(tmp_path, probe=probe)) as client:
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(partial(execute, client, plan, options={"run_id": "cancel-me", "wait_s": None}))
                await probe.started("slow").wait()
                tg.cancel_scope.cancel()
            await probe.cancelled("slow").wait()
    async with RunStore.open(tmp_path / "state") as store:
        run = await store.get_run("cancel-me")
        steps = {s.step_id: s for s in await store.get_steps("cancel-me")}
    assert run is not None and run.status is RunStatus.CANCELLED
    assert {k: s.status for k, s in steps.items()} == {
        "quick": StepStatus.SUCCEEDED,
        "slow": StepStatus.CANCELLED,
        "after": StepStatus.SKIPPED,
    }
    assert "start after" not in probe.log


async def test_progress_announces_the_run_id_then_reports_each_finished_step(tmp_path: Path):
    probe = Probe()
    plan = {"steps": [probe_step("a"), probe_step("b", depends_on=["a"]), probe_step("c", depends_on=["b"])]}
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async with Client(conductor(tmp_path, probe=probe)) as client:
        with anyio.fail_after(5):
            result = await client.call_tool("execute_chain", {"plan": plan}, progress_callback=on_progress)
    run_id = result.structured_content["run_id"]
    assert seen == [
        (0, 3, f"0/3 steps, run {run_id} started: 3 steps"),
        (1, 3, "1/3 steps, last: a succeeded"),
        (2, 3, "2/3 steps, last: b succeeded"),
        (3, 3, "3/3 steps, last: c succeeded"),
    ]


async def test_a_large_output_is_cut_and_its_full_value_is_readable_as_a_resource(tmp_path: Path):
    big = [f"item {i:04d}" for i in range(200)]
    plan = {"steps": [{"id": "big", "tool": "latency/echo", "arguments": {"value": big}}]}
    async with Client(conductor(tmp_path, latency=latency.build_server())) as client:
        with anyio.fail_after(5):
            run = await execute(client, plan, options={"output_budget_bytes": 300})
            uri = run["outputs"]["big"]["full_value"]
            read = await client.read_resource(uri)
    marker = run["outputs"]["big"]
    assert uri == f"conductor://runs/{run['run_id']}/steps/big"
    assert marker["truncated"] is True
    assert marker["size_bytes"] > 300
    assert len(json.dumps(marker).encode()) < 1000
    [contents] = read.contents
    assert isinstance(contents, TextResourceContents)
    assert json.loads(contents.text) == {"value": big, "call": 1}


# -- metrics -------------------------------------------------------------------------------------------------


def city_server(*, works: bool) -> MCPServer:
    server = MCPServer("cities")

    @server.tool(annotations=READ_ONLY)
    async def lookup_city(name: str) -> str:
        """Look up a city by name and return its country."""
        if not name:
            raise ToolError("name must not be empty")  # the caller's mistake
        if not works:
            await anyio.sleep(60)  # the tool's failure: its database hangs
        return "Norway"

    return server


async def lookup_both(client: Client, alpha_name: str, *, times: int = 4) -> None:
    """``times`` runs that call alpha's and zeta's lookup_city (alpha with ``alpha_name``, within 0.2 s)."""
    for i in range(times):
        plan = {
            "steps": [
                {
                    "id": "a",
                    "tool": "alpha/lookup_city",
                    "arguments": {"name": alpha_name},
                    "on_error": "continue",
                    "timeout_s": 0.2,
                },
                {"id": "z", "tool": "zeta/lookup_city", "arguments": {"name": f"x{i}"}},
            ]
        }
        assert (await execute(client, plan))["status"] == "partial"


async def test_call_metrics_change_the_discovery_ranking_of_two_otherwise_equal_tools(tmp_path: Path):
    query = {"query": "look up a city", "top_k": 2, "include_schemas": False, "detail": "full"}
    servers = {"alpha": city_server(works=False), "zeta": city_server(works=True)}
    async with Client(conductor(tmp_path, **servers)) as client:
        with anyio.fail_after(10):
            before = (await client.call_tool("discover_tools", query)).structured_content
            await lookup_both(client, "Oslo")
            after = (await client.call_tool("discover_tools", query)).structured_content
    assert [t["id"] for t in before["tools"]] == ["alpha/lookup_city", "zeta/lookup_city"]  # a tie, by id
    assert [t["id"] for t in after["tools"]] == ["zeta/lookup_city", "alpha/lookup_city"]
    stats = {t["id"]: t["stats"] for t in after["tools"]}
    assert (stats["zeta/lookup_city"]["calls"], stats["zeta/lookup_city"]["success_rate"]) == (4, 1.0)
    assert (stats["alpha/lookup_city"]["calls"], stats["alpha/lookup_city"]["success_rate"]) == (4, 0.0)


async def test_the_caller_s_own_mistakes_do_not_lower_a_tool_s_success_rate_or_ranking(tmp_path: Path):
    query = {"query": "look up a city", "top_k": 2, "include_schemas": False, "detail": "full"}
    servers = {"alpha": city_server(works=True), "zeta": city_server(works=True)}
    async with Client(conductor(tmp_path, **servers)) as client:
        with anyio.fail_after(10):
            for _ in range(4):  # a bad plan: alpha gets an empty name, which it refuses; zeta is never called
                bad = {"steps": [{"id": "a", "tool": "alpha/lookup_city", "arguments": {"name": ""}}]}
                assert (await execute(client, bad))["status"] == "failed"
            found = await client.call_tool("discover_tools", query)
            after = found.structured_content
    assert after is not None, found.content
    assert [t["id"] for t in after["tools"]] == ["alpha/lookup_city", "zeta/lookup_city"]  # still a tie, by id
    assert after["tools"][0]["stats"] == {"calls": 4}  # no success rate, no latency: nulls are left out
    async with RunStore.open(tmp_path / "state") as store:
        alpha = (await store.load_metrics())["alpha/lookup_city"]
    assert (alpha.calls, alpha.failures, alpha.caller_errors, alpha.histogram) == (4, 4, 4, {})


async def test_plan_chain_estimates_from_measured_latency_after_a_run(tmp_path: Path):
    plan = {
        "steps": [
            {"id": "a", "tool": "latency/echo", "arguments": {"value": 1}},
            {"id": "b", "tool": "latency/sleep", "arguments": {"ms": 0}, "depends_on": ["a"]},
        ]
    }
    default_ms = PlannerLimits().default_step_latency_ms
    async with Client(conductor(tmp_path, latency=latency.build_server())) as client:
        with anyio.fail_after(5):
            before = (await client.call_tool("plan_chain", {"plan": plan, "detail": "plan"})).structured_content
            await execute(client, {"steps": plan["steps"][:1]})
            after = (await client.call_tool("plan_chain", {"plan": plan, "detail": "plan"})).structured_content
            found = await client.call_tool("discover_tools", {"query": "echo a value", "detail": "full"})
    stats = {t["id"]: t["stats"] for t in found.structured_content["tools"]}
    assert before["estimate_basis"] == {"a": "default", "b": "default"}
    assert after["estimate_basis"] == {"a": "measured", "b": "default"}
    assert before["estimated_latency_ms"] == 2 * default_ms
    assert after["estimated_latency_ms"] == pytest.approx(stats["latency/echo"]["p50_ms"] + default_ms, abs=0.01)
    assert stats["latency/echo"]["calls"] == 1


async def test_metrics_survive_a_restart_of_the_meta_server(tmp_path: Path):
    plan = {"steps": [{"id": "a", "tool": "latency/echo", "arguments": {"value": 1}}]}
    async with Client(conductor(tmp_path, latency=latency.build_server())) as client:
        with anyio.fail_after(5):
            await execute(client, plan)
    async with Client(conductor(tmp_path, latency=latency.build_server())) as client:
        with anyio.fail_after(5):
            planned = (await client.call_tool("plan_chain", {"plan": plan, "detail": "plan"})).structured_content
    assert planned["estimate_basis"] == {"a": "measured"}


# -- logs ----------------------------------------------------------------------------------------------------


async def test_step_log_events_carry_the_run_id_and_step_id(tmp_path: Path):
    plan = {
        "steps": [
            {"id": "a", "tool": "latency/echo", "arguments": {"value": 1}},
            {"id": "b", "tool": "latency/echo", "arguments": {"value": "${steps.a.value}"}},
        ]
    }
    async with Client(conductor(tmp_path, latency=latency.build_server())) as client:
        # capture_logs replaces the configured processors; merge_contextvars is what production runs first.
        with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs, anyio.fail_after(5):
            run = await execute(client, plan)
    step_events = [
        (e["event"], e.get("run_id"), e.get("step_id"))
        for e in logs
        if e["event"] in ("chain.step_started", "chain.step_finished")
    ]
    rid = run["run_id"]
    assert step_events == [
        ("chain.step_started", rid, "a"),
        ("chain.step_finished", rid, "a"),
        ("chain.step_started", rid, "b"),
        ("chain.step_finished", rid, "b"),
    ]
    assert [e.get("run_id") for e in logs if e["event"] in ("chain.run_started", "chain.run_finished")] == [rid, rid]
