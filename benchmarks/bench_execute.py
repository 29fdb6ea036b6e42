"""execute_chain benchmark: engine overhead, fan-out, scheduling without level barriers, and memory.

Run ``python benchmarks/bench_execute.py``. Everything runs against the stdio demo latency server
(``python -m mcp_conductor.demo.latency``) with persistence on (a temporary state directory), and every ratio
is measured in this run:

1. a 50-step sequential chain (each ``latency/echo`` step references the previous one) through
   ``ChainService.execute`` in process (the meta server's own stdio hop to its host is not part of this
   comparison), against 50 awaited ``mcp.Client.call_tool`` calls to another instance of the same stdio server;
   medians of several alternating repetitions; target ratio <= 1.15. A diagnostic row runs the same chain with
   the store's per-step writes replaced by no-ops (not a product mode), to show what the commits cost;
2. 20 independent 200 ms ``latency/sleep`` steps: makespan / 200 ms, target <= 1.15, with the per-server limit
   raised to 32 (the default 16 runs 20 calls to one server in two waves; shown for information), next to 20
   concurrent direct ``call_tool`` calls (what the SDK and the server alone take);
3. an uneven DAG (a -> b: 100 ms then 1,000 ms; c -> d: 1,000 ms then 100 ms): makespan / critical path
   (1,100 ms), target <= 1.1, and against a level-barrier scheduler written here as the baseline (~2,000 ms);
4. resident memory (RSS) of this process after 1,000 small runs against after 10: no unbounded growth.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import psutil
from mcp import Client, StdioServerParameters

from mcp_conductor.client_pool.config import build_config
from mcp_conductor.client_pool.config_models import ConductorConfig
from mcp_conductor.logs import configure_logging
from mcp_conductor.server.conductor import Conductor
from mcp_conductor.server.execution.results import ExecuteResult
from plans import fan_out_plan, sequential_plan
from ratio_table import Row, print_table

LATENCY = {"command": sys.executable, "args": ["-m", "mcp_conductor.demo.latency"]}

SEQ_STEPS = 50
SEQ_TARGET = 1.15
FAN_OUT = 20
FAN_OUT_MS = 200.0
FAN_OUT_TARGET = 1.15
CRITICAL_PATH_MS = 1100.0
DAG_TARGET = 1.1
MEMORY_RUNS = (10, 1000)
MEMORY_TARGET = 1.10


def config(per_server_limit: int | None = None) -> ConductorConfig:
    raw: dict[str, Any] = {"mcpServers": {"latency": LATENCY}}
    if per_server_limit is not None:
        raw["conductor"] = {"servers": {"latency": {"max_concurrency": per_server_limit}}}
    return build_config(raw)


UNEVEN_DAG: dict[str, Any] = {
    "steps": [
        {"id": "a", "tool": "latency/sleep", "arguments": {"ms": 100}},
        {"id": "b", "tool": "latency/sleep", "arguments": {"ms": 1000}, "depends_on": ["a"]},
        {"id": "c", "tool": "latency/sleep", "arguments": {"ms": 1000}},
        {"id": "d", "tool": "latency/sleep", "arguments": {"ms": 100}, "depends_on": ["c"]},
    ]
}
UNEVEN_LEVELS = (("a", "c"), ("b", "d"))


async def timed(fn: Callable[[], Awaitable[Any]]) -> float:
    """Milliseconds that ``fn()`` takes."""
    t0 = time.perf_counter()
    await fn()
    return (time.perf_counter() - t0) * 1000


async def execute(conductor: Conductor, plan_id: str) -> ExecuteResult:
    result = await conductor.chains.execute(plan_id=plan_id)
    if result.status != "succeeded":
        raise RuntimeError(f"run {result.run_id} ended {result.status}: {result.steps}")
    return result


async def plan_id_of(conductor: Conductor, plan: dict[str, Any]) -> str:
    planned = await conductor.chains.plan(plan)
    if not planned.valid or planned.plan_id is None:
        raise RuntimeError(f"invalid plan: {planned.errors}")
    return planned.plan_id


async def bench_sequential(state_dir: Path, reps: int) -> list[Row]:
    params = StdioServerParameters(command=LATENCY["command"], args=LATENCY["args"])
    async with Conductor.open(config(), state_dir) as conductor, Client(params) as direct:
        await conductor.wait_for_startup()
        plan_id = await plan_id_of(conductor, sequential_plan(SEQ_STEPS))

        async def direct_calls() -> None:
            value: Any = 0
            for _ in range(SEQ_STEPS):
                result = await direct.call_tool("echo", {"value": value})
                value = (result.structured_content or {})["value"]

        async def chain() -> None:
            await execute(conductor, plan_id)

        async def chain_unrecorded() -> None:
            """Diagnostic, not a product mode: the same run with the per-step commits left out."""
            store: Any = conductor.chains.store
            store.step_started = store.steps_ended = _no_write
            try:
                await execute(conductor, plan_id)
            finally:
                del store.step_started, store.steps_ended

        await direct_calls()  # warm up every path (imports, caches, SQLite pages)
        await chain()
        await chain_unrecorded()
        direct_ms, chain_ms, unrecorded_ms = [], [], []
        for _ in range(reps):  # alternate, so drift of the machine hits all alike
            direct_ms.append(await timed(direct_calls))
            chain_ms.append(await timed(chain))
            unrecorded_ms.append(await timed(chain_unrecorded))
    d, c, u = statistics.median(direct_ms), statistics.median(chain_ms), statistics.median(unrecorded_ms)
    ratio = c / d
    return [
        Row(
            f"1. {SEQ_STEPS}-step sequential chain (median of {reps})",
            f"{c:.1f} ms ({c / SEQ_STEPS:.2f} ms/step)",
            f"direct calls {d:.1f} ms ({d / SEQ_STEPS:.2f} ms/call)",
            ratio,
            f"<= {SEQ_TARGET}",
            ratio <= SEQ_TARGET,
        ),
        Row(
            "1. same chain, step commits left out",
            f"{u:.1f} ms ({u / SEQ_STEPS:.2f} ms/step)",
            f"direct calls {d:.1f} ms",
            u / d,
            "(diagnostic)",
            None,
        ),
    ]


async def _no_write(*args: Any, **kwargs: Any) -> None:
    """Stands in for the store's per-step writes in the diagnostic row."""


async def bench_fan_out(state_dir: Path, reps: int) -> list[Row]:
    params = StdioServerParameters(command=LATENCY["command"], args=LATENCY["args"])
    async with Client(params) as direct:

        async def concurrent_calls() -> None:
            async with anyio.create_task_group() as tg:
                for _ in range(FAN_OUT):
                    tg.start_soon(direct.call_tool, "sleep", {"ms": FAN_OUT_MS})

        await concurrent_calls()
        direct_ms = statistics.median([await timed(concurrent_calls) for _ in range(reps)])
    rows = [
        Row(
            f"2. fan-out {FAN_OUT} x {FAN_OUT_MS:.0f} ms, direct concurrent calls",
            f"makespan {direct_ms:.1f} ms",
            f"one step {FAN_OUT_MS:.0f} ms",
            direct_ms / FAN_OUT_MS,
            "(the SDK's floor)",
            None,
        )
    ]
    for limit, label in ((None, "default per-server limit 16"), (32, "per-server limit 32")):
        async with Conductor.open(config(limit), state_dir) as conductor:
            await conductor.wait_for_startup()
            plan_id = await plan_id_of(conductor, fan_out_plan(FAN_OUT, FAN_OUT_MS))
            await execute(conductor, plan_id)
            run = partial(execute, conductor, plan_id)
            ms = statistics.median([await timed(run) for _ in range(reps)])
        ratio = ms / FAN_OUT_MS
        ok = ratio <= FAN_OUT_TARGET if limit is not None else None  # 20 > 16 needs two waves by design
        rows.append(
            Row(
                f"2. fan-out {FAN_OUT} x {FAN_OUT_MS:.0f} ms, {label}",
                f"makespan {ms:.1f} ms",
                f"one step {FAN_OUT_MS:.0f} ms",
                ratio,
                f"<= {FAN_OUT_TARGET}" if limit else "(info)",
                ok,
            )
        )
    return rows


async def level_barrier(conductor: Conductor) -> None:
    """The baseline: run the plan level by level, each level waiting for its slowest step."""
    steps = {s["id"]: s for s in UNEVEN_DAG["steps"]}
    for level in UNEVEN_LEVELS:
        async with anyio.create_task_group() as tg:
            for step_id in level:
                server, _, tool = steps[step_id]["tool"].partition("/")
                tg.start_soon(conductor.pool.call_tool, server, tool, steps[step_id]["arguments"])


async def bench_uneven_dag(state_dir: Path, reps: int) -> list[Row]:
    async with Conductor.open(config(), state_dir) as conductor:
        await conductor.wait_for_startup()
        plan_id = await plan_id_of(conductor, UNEVEN_DAG)
        await execute(conductor, plan_id)
        chain_ms, barrier_ms = [], []
        for _ in range(reps):
            chain_ms.append(await timed(partial(execute, conductor, plan_id)))
            barrier_ms.append(await timed(partial(level_barrier, conductor)))
    c, b = statistics.median(chain_ms), statistics.median(barrier_ms)
    return [
        Row(
            "3. uneven DAG vs critical path",
            f"makespan {c:.1f} ms",
            f"critical path {CRITICAL_PATH_MS:.0f} ms",
            c / CRITICAL_PATH_MS,
            f"<= {DAG_TARGET}",
            c / CRITICAL_PATH_MS <= DAG_TARGET,
        ),
        Row(
            "3. uneven DAG vs level barriers",
            f"makespan {c:.1f} ms",
            f"level-barrier scheduler {b:.1f} ms",
            c / b,
            "< 1 (info)",
            None,
        ),
    ]


def rss_mb() -> float:
    gc.collect()
    return float(psutil.Process().memory_info().rss) / 2**20


async def bench_memory(state_dir: Path) -> list[Row]:
    plan = {
        "steps": [
            {"id": "a", "tool": "latency/echo", "arguments": {"value": "x" * 200}},
            {"id": "b", "tool": "latency/echo", "arguments": {"value": "${steps.a.value}"}},
        ]
    }
    early, late = MEMORY_RUNS
    async with Conductor.open(config(), state_dir) as conductor:
        await conductor.wait_for_startup()
        plan_id = await plan_id_of(conductor, plan)
        for _ in range(early):
            await execute(conductor, plan_id)
        after_early = rss_mb()
        for _ in range(late - early):
            await execute(conductor, plan_id)
        after_late = rss_mb()
    ratio = after_late / after_early
    return [
        Row(
            f"4. RSS after {late} runs vs after {early}",
            f"{after_late:.1f} MB",
            f"{after_early:.1f} MB",
            ratio,
            f"<= {MEMORY_TARGET}",
            ratio <= MEMORY_TARGET,
        )
    ]


async def main(reps: int) -> None:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-execute-") as tmp:
        state = Path(tmp) / "state"
        rows += await bench_sequential(state, reps)
        rows += await bench_fan_out(state, max(3, reps // 2))
        rows += await bench_uneven_dag(state, max(3, reps // 2))
        rows += await bench_memory(Path(tmp) / "memory-state")
    print_table(rows)
    print(
        "\nPersistence on (SQLite in a temporary state directory); stdio demo latency server; "
        "execute_chain driven in process (the meta server's own stdio hop is not measured)."
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7, help="repetitions per measure (default 7)")
    args = parser.parse_args()
    configure_logging("warning")
    anyio.run(main, args.reps)
