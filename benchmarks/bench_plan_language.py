"""Plan-language benchmark: foreach makespan, the cost of a data step, and calls saved on five everyday tasks.

Run ``python benchmarks/bench_plan_language.py`` (needs ``npm ci --prefix tests/e2e/node`` and the dev extra for
task 3's third-party servers). One table, every number measured in this run, persistence on:

1. ``foreach`` over 100 items of ``latency/sleep`` (50 ms, the stdio demo latency server) with
   ``max_concurrency`` 10: makespan / the ideal ``ceil(100 / 10) * 50 ms``; target <= 1.15. Medians.
   Next to it, for context, the same 100 calls made 10 at a time straight to the server with ``mcp.Client``.
2. a data step's cost: what one more data step adds to a chain (a 50-step chain of data steps, each reading the
   previous one, minus a 1-step chain, over 49) against what one more empty tool call (``latency/echo``, each
   reading the previous one) to an in-memory server adds, both run by the executor with the store on; target
   < 0.1x. The run's own cost (creating and finishing it in the store) is the same for both and cancels out; the
   context rows show the per-step ratio with it included, and a bare in-memory ``mcp.Client.call_tool`` of the
   same tool (no executor, no store).
3. the five tasks of tests/fixtures/plan_language_tasks.py against server-filesystem, server-memory,
   mcp-server-git and the latency server: meta-tool calls a model makes through mcp-conductor (one
   ``execute_chain``, counted as made) against the downstream tool calls it would make calling the tools one by
   one (counted from the run's records: every call attempt of every step and foreach item).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters
from mcp.types import ElicitResult

from mcp_conductor.client_pool.config import build_config, in_process_config
from mcp_conductor.demo import latency
from mcp_conductor.logs import configure_logging
from mcp_conductor.server.app import build_server
from mcp_conductor.server.conductor import Conductor
from plans import sequential_plan
from ratio_table import Row, print_table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from fixtures.plan_language_tasks import TASKS, make_workspace  # noqa: E402

LATENCY = {"command": sys.executable, "args": ["-m", "mcp_conductor.demo.latency"]}
NODE = ROOT / "tests" / "e2e" / "node" / "node_modules" / "@modelcontextprotocol"
ITEMS, CONCURRENCY, ITEM_MS = 100, 10, 50.0
FOREACH_TARGET = 1.15
CHAIN = 50
DATA_TARGET = 0.1


async def timed(fn: Callable[[], Awaitable[Any]]) -> float:
    t0 = time.perf_counter()
    await fn()
    return (time.perf_counter() - t0) * 1000


async def plan_id_of(conductor: Conductor, plan: dict[str, Any]) -> str:
    planned = await conductor.chains.plan(plan)
    if not planned.valid or planned.plan_id is None:
        raise RuntimeError(f"invalid plan: {planned.errors}")
    return planned.plan_id


async def run_ok(conductor: Conductor, plan_id: str) -> None:
    result = await conductor.chains.execute(plan_id=plan_id)
    if result.status != "succeeded":
        raise RuntimeError(f"run {result.run_id} ended {result.status}: {result.steps}")


async def bench_foreach(state: Path, reps: int) -> list[Row]:
    plan = {
        "inputs": {"items": list(range(ITEMS))},
        "steps": [
            {
                "id": "each",
                "tool": "latency/sleep",
                "foreach": "inputs.items",
                "foreach_options": {"max_concurrency": CONCURRENCY, "max_items": ITEMS},
                "arguments": {"ms": ITEM_MS},
            }
        ],
    }
    ideal = math.ceil(ITEMS / CONCURRENCY) * ITEM_MS
    async with Conductor.open(build_config({"mcpServers": {"latency": LATENCY}}), state) as conductor:
        await conductor.wait_for_startup()
        plan_id = await plan_id_of(conductor, plan)
        await run_ok(conductor, plan_id)  # warm-up
        makespan = statistics.median([await timed(lambda: run_ok(conductor, plan_id)) for _ in range(reps)])
    async with Client(StdioServerParameters(command=LATENCY["command"], args=LATENCY["args"])) as direct:

        async def windowed_calls() -> None:  # the same 100 calls, 10 at a time, straight to the server
            slots = anyio.Semaphore(CONCURRENCY)

            async def one() -> None:
                async with slots:
                    await direct.call_tool("sleep", {"ms": ITEM_MS})

            async with anyio.create_task_group() as tg:
                for _ in range(ITEMS):
                    tg.start_soon(one)

        await windowed_calls()
        sdk = statistics.median([await timed(windowed_calls) for _ in range(reps)])
    ratio = makespan / ideal
    return [
        Row(
            f"foreach {ITEMS} x {ITEM_MS:.0f} ms sleep, concurrency {CONCURRENCY} (stdio)",
            f"{makespan:.0f} ms",
            f"ideal {ideal:.0f} ms",
            ratio,
            f"<= {FOREACH_TARGET}",
            ratio <= FOREACH_TARGET,
        ),
        Row(
            "  context: the same calls 10 at a time straight to the server (mcp.Client)",
            f"{sdk:.0f} ms",
            f"ideal {ideal:.0f} ms",
            sdk / ideal,
            "",
            None,
        ),
    ]


def data_chain(n: int) -> dict[str, Any]:
    steps = [{"id": "d0", "expr": "1"}]
    steps += [{"id": f"d{i}", "expr": f"steps.d{i - 1} + 1"} for i in range(1, n)]
    return {"steps": steps}


async def bench_data_step(state: Path, reps: int) -> list[Row]:
    async with (
        Conductor.open(in_process_config({"latency": latency.build_server()}), state) as conductor,
        Client(latency.build_server()) as direct,
    ):
        await conductor.wait_for_startup()
        ids = {
            (kind, n): await plan_id_of(conductor, make(n))
            for kind, make in (("data", data_chain), ("tool", sequential_plan))
            for n in (1, CHAIN)
        }

        async def direct_calls() -> None:
            for _ in range(CHAIN):
                await direct.call_tool("echo", {"value": 0})

        runs = {key: (lambda plan_id=plan_id: run_ok(conductor, plan_id)) for key, plan_id in ids.items()}
        for fn in (direct_calls, *runs.values()):
            await fn()  # warm-up
        call: list[float] = []
        times: dict[tuple[str, int], list[float]] = {key: [] for key in runs}
        for _ in range(reps):  # alternating, so drift hits all alike
            call.append(await timed(direct_calls) / CHAIN)
            for key, fn in runs.items():
                times[key].append(await timed(fn))
    per_call = statistics.median(call)
    run_ms = {key: statistics.median(values) for key, values in times.items()}
    # What one more step costs: a 50-step chain minus a 1-step chain, over the 49 steps between them (the run's
    # own cost, creating and finishing it in the store, is the same for both and cancels out).
    added = {kind: (run_ms[(kind, CHAIN)] - run_ms[(kind, 1)]) / (CHAIN - 1) for kind in ("data", "tool")}
    per_step = {kind: run_ms[(kind, CHAIN)] / CHAIN for kind in ("data", "tool")}
    ratio = added["data"] / added["tool"]
    return [
        Row(
            "data step vs empty tool step, cost of one more step in a chain (in-memory server, store on)",
            f"{added['data'] * 1000:.0f} us",
            f"latency/echo step {added['tool'] * 1000:.0f} us",
            ratio,
            f"< {DATA_TARGET}",
            ratio < DATA_TARGET,
        ),
        Row(
            f"  context: the same per step of {CHAIN}-step chains, the run's own cost included",
            f"{per_step['data'] * 1000:.0f} us",
            f"latency/echo step {per_step['tool'] * 1000:.0f} us",
            per_step["data"] / per_step["tool"],
            "",
            None,
        ),
        Row(
            "  context: one more data step vs a bare in-memory call_tool (no executor, no store)",
            f"{added['data'] * 1000:.0f} us",
            f"call_tool {per_call * 1000:.0f} us",
            added["data"] / per_call,
            "",
            None,
        ),
    ]


async def bench_tasks(root: Path) -> list[Row]:
    workspace = make_workspace(root / "work")
    (workspace.files / "config.json").write_text('{"name": "app", "version": 3}', encoding="utf-8")
    servers = {
        "fs": {
            "command": "node",
            "args": [str(NODE / "server-filesystem" / "dist" / "index.js"), str(workspace.files)],
        },
        "memory": {
            "command": "node",
            "args": [str(NODE / "server-memory" / "dist" / "index.js")],
            "env": {"MEMORY_FILE_PATH": str(workspace.memory)},
        },
        "git": {"command": sys.executable, "args": ["-m", "mcp_server_git", "--repository", str(workspace.repo)]},
        "latency": LATENCY,
    }
    meta = build_server(build_config({"mcpServers": servers}), state_dir=root / "state")
    rows = []
    total_meta = total_direct = 0

    async def person_approves(context: Any, params: Any) -> ElicitResult:  # consent: a person, not a meta call
        return ElicitResult(action="accept", content={"approve": True})

    async with Client(meta, elicitation_callback=person_approves) as client:
        for name, make_plan in TASKS.items():
            meta_calls = 1
            result = await client.call_tool(
                "execute_chain", {"plan": make_plan(workspace), "options": {"detail": "steps"}}
            )
            run = result.structured_content
            if run is None or run["status"] != "succeeded":
                raise RuntimeError(f"task {name}: {result.content}")
            direct = 0
            for step in run["steps"]:
                if step["tool"] == "expr" or step["status"] == "skipped":
                    continue  # a model does data steps in its head; a skipped step's call is not made
                if "items" in step:
                    direct += sum(1 + max(0, (e["attempts"] or 1) - 1) for e in step["item_errors"])
                    direct += step["items"].get("succeeded", 0)
                else:
                    direct += step["attempts"]
            total_meta += meta_calls
            total_direct += direct
            rows.append(Row(f"task {name}", f"{meta_calls} meta call", f"{direct} downstream calls", None, "", None))
    rows.append(
        Row(
            "five tasks together",
            f"{total_meta} meta calls",
            f"{total_direct} downstream calls",
            total_meta / total_direct,
            "one execute_chain per task",
            total_meta == len(TASKS),
        )
    )
    return rows


async def main(reps: int) -> None:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-plan-language-") as tmp:
        rows += await bench_foreach(Path(tmp) / "foreach", reps)
        rows += await bench_data_step(Path(tmp) / "data", reps)
        rows += await bench_tasks(Path(tmp) / "tasks")
    print_table(rows)
    print("\nPersistence on (SQLite in a temporary state directory); execute_chain driven in process.")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7, help="repetitions per measure (default 7)")
    args = parser.parse_args()
    configure_logging("warning")
    anyio.run(main, args.reps)
