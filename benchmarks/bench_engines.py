"""The two engines side by side: the local engine (in process) and the Temporal engine (workflows run by
``mcp-conductor worker`` processes), in one run, on the same downstream server program (the stdio demo latency
server, ``python -m mcp_conductor.demo.latency``). Needs the ``temporal`` extra; run
``python benchmarks/bench_engines.py``.

It starts a Temporal dev server as ``mcp-conductor temporal dev`` does (SQLite in a temporary directory, the
history transfer queue polled at 1,000/s instead of 20/s) and measures:

1. a 20-step sequential chain (each ``echo`` step references the previous one): per-step overhead over 20
   awaited direct ``call_tool`` calls on one stdio session, medians of alternating repetitions; the Temporal
   engine on a stock dev server too, to show what the tuning buys;
2. a fan-out of 20 independent 200 ms ``sleep`` steps: makespan / 200 ms;
3. throughput: 20 concurrent runs of 10 sequential ``echo`` steps, steps per second, with 1 and 2 workers;
4. recovery after a worker SIGKILL: a 6 x 500 ms chain with two workers; the one running the third step is
   killed; the time until the other worker's downstream receives that step again, and the run's extra makespan
   over an undisturbed run. (The local engine does not recover by itself: a restarted process resumes the run.)

The front (a ``Conductor``) runs in this process for both engines, so neither pays the host's stdio hop.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters

from mcp_conductor.cli.temporal_dev import TUNING
from mcp_conductor.client_pool.config import load_config
from mcp_conductor.logs import configure_logging
from mcp_conductor.server.conductor import Conductor
from plans import fan_out_plan, sequential_plan
from ratio_table import Row, print_table
from temporal_cluster import Worker, dev_server, temporal_conductor, workers

SEQ_STEPS = 20
FAN_OUT, FAN_OUT_MS = 20, 200.0
THROUGHPUT_RUNS, THROUGHPUT_STEPS = 20, 10
RECOVERY_STEPS, RECOVERY_MS = 6, 500
Engine = Callable[[], Awaitable[None]]
LATENCY = {
    "command": sys.executable,
    "args": ["-m", "mcp_conductor.demo.latency"],
    "env": {"LATENCY_COUNTER_FILE": "${COUNTER_FILE:-}"},
}


def write_config(directory: Path) -> Path:
    raw = {"mcpServers": {"latency": LATENCY}, "conductor": {"servers": {"latency": {"max_concurrency": 32}}}}
    path = directory / "servers.json"
    path.write_text(json.dumps(raw), encoding="utf-8")
    return path


def keyed_chain(n: int, ms: int, tag: str) -> dict[str, Any]:
    """Sequential ``flaky`` calls that never fail, each counted by the downstream under ``{tag}s{i}``."""
    return {
        "steps": [
            {
                "id": f"s{i}",
                "tool": "latency/flaky",
                "arguments": {"fail_rate": 0, "ms": ms, "key": f"{tag}s{i}"},
                **({"depends_on": [f"s{i - 1}"]} if i else {}),
            }
            for i in range(n)
        ]
    }


async def timed(fn: Callable[[], Awaitable[Any]]) -> float:
    t0 = time.perf_counter()
    await fn()
    return (time.perf_counter() - t0) * 1000


async def run(conductor: Conductor, plan: dict[str, Any]) -> None:
    result = await conductor.execute(plan)
    if result.status != "succeeded":
        raise RuntimeError(f"run {result.run_id} ended {result.status}: {result.problems}")


def queue() -> str:
    return f"bench-{uuid.uuid4().hex[:8]}"


class Bench:
    def __init__(self, directory: Path, address: str, reps: int) -> None:
        self.directory = directory
        self.config_path = write_config(directory)
        self.config = load_config(self.config_path)
        self.address = address
        self.reps = reps

    def state(self, name: str) -> Path:
        return self.directory / name

    async def sequential(self, stock_address: str | None) -> list[Row]:
        plan = sequential_plan(SEQ_STEPS)
        params = StdioServerParameters(command=sys.executable, args=["-m", "mcp_conductor.demo.latency"])
        times: dict[str, list[float]] = {"direct": [], "local": [], "temporal": [], "stock": []}
        async with Client(params) as direct, Conductor.open(self.config, self.state("local")) as local:

            async def direct_calls() -> None:
                value: Any = 0
                for _ in range(SEQ_STEPS):
                    result = await direct.call_tool("echo", {"value": value})
                    value = (result.structured_content or {})["value"]

            engines: dict[str, Engine] = {"direct": direct_calls}
            engines["local"] = lambda: run(local, plan)
            async with self._temporal(self.address) as temporal:
                engines["temporal"] = lambda: run(temporal.conductor, plan)
                if stock_address is None:
                    await self._alternate(engines, times)
                else:
                    async with self._temporal(stock_address) as stock:
                        engines["stock"] = lambda: run(stock.conductor, plan)
                        await self._alternate(engines, times)
        d = statistics.median(times["direct"])
        rows = []
        labels = {
            "local": "local engine",
            "temporal": "Temporal, tuned dev server",
            "stock": "Temporal, stock dev server",
        }
        for key, label in labels.items():
            if not times[key]:
                continue
            ms = statistics.median(times[key])
            per_step = (ms - d) / SEQ_STEPS
            rows.append(
                Row(
                    f"1. {SEQ_STEPS}-step chain, {label}",
                    f"{ms:.0f} ms; +{per_step:.2f} ms/step",
                    f"direct {d:.1f} ms ({d / SEQ_STEPS:.2f} ms/call)",
                    ms / d,
                    "(info)",
                    None,
                )
            )
        return rows

    async def _alternate(self, engines: dict[str, Engine], times: dict[str, list[float]]) -> None:
        for fn in engines.values():  # warm every path once
            await fn()
        for _ in range(self.reps):
            for key, fn in engines.items():
                times[key].append(await timed(fn))

    def _temporal(self, address: str) -> _TemporalFront:
        return _TemporalFront(self, address, n_workers=1)

    async def fan_out(self) -> list[Row]:
        plan = fan_out_plan(FAN_OUT, FAN_OUT_MS)
        rows = []
        async with Conductor.open(self.config, self.state("local")) as local, self._temporal(self.address) as temporal:
            for label, conductor in (("local engine", local), ("Temporal, 1 worker", temporal.conductor)):
                await run(conductor, plan)
                ms = statistics.median([await timed(lambda c=conductor: run(c, plan)) for _ in range(self.reps)])
                rows.append(
                    Row(
                        f"2. fan-out {FAN_OUT} x {FAN_OUT_MS:.0f} ms, {label}",
                        f"makespan {ms:.0f} ms",
                        f"one step {FAN_OUT_MS:.0f} ms",
                        ms / FAN_OUT_MS,
                        "(info)",
                        None,
                    )
                )
        return rows

    async def throughput(self) -> list[Row]:
        plan = sequential_plan(THROUGHPUT_STEPS)
        total = THROUGHPUT_RUNS * THROUGHPUT_STEPS
        rates: dict[str, float] = {}

        async def burst(conductor: Conductor) -> float:
            async def all_runs() -> None:
                async with anyio.create_task_group() as tg:
                    for _ in range(THROUGHPUT_RUNS):
                        tg.start_soon(run, conductor, plan)

            await all_runs()  # warm
            return total / (statistics.median([await timed(all_runs) for _ in range(self.reps)]) / 1000)

        async with Conductor.open(self.config, self.state("local")) as local:
            rates["local engine"] = await burst(local)
        for n in (1, 2):
            async with _TemporalFront(self, self.address, n_workers=n) as temporal:
                rates[f"Temporal, {n} worker{'s' * (n > 1)}"] = await burst(temporal.conductor)
        one = rates["Temporal, 1 worker"]
        return [
            Row(
                f"3. throughput, {THROUGHPUT_RUNS} runs x {THROUGHPUT_STEPS} steps, {label}",
                f"{rate:.0f} steps/s",
                f"Temporal, 1 worker {one:.0f} steps/s",
                rate / one,
                "(info)",
                None,
            )
            for label, rate in rates.items()
        ]

    async def recovery(self) -> list[Row]:
        counters = [self.directory / "counts-a.json", self.directory / "counts-b.json"]
        envs = [{"COUNTER_FILE": str(c)} for c in counters]
        lost, disturbed, undisturbed = [], [], []
        for rep in range(self.reps):
            async with _TemporalFront(self, self.address, n_workers=2, envs=envs) as front:
                t0 = time.perf_counter()
                await run(front.conductor, keyed_chain(RECOVERY_STEPS, RECOVERY_MS, f"u{rep}"))
                undisturbed.append((time.perf_counter() - t0) * 1000)
                tag, t0 = f"k{rep}", time.perf_counter()
                async with anyio.create_task_group() as tg:
                    tg.start_soon(run, front.conductor, keyed_chain(RECOVERY_STEPS, RECOVERY_MS, tag))
                    victim = await _first_counting(counters, f"{tag}s2")
                    front.workers[victim].kill()
                    killed = time.perf_counter()
                    await _first_counting([counters[1 - victim]], f"{tag}s2")
                    lost.append((time.perf_counter() - killed) * 1000)
                disturbed.append((time.perf_counter() - t0) * 1000)
        base = statistics.median(undisturbed)
        return [
            Row(
                "4. worker SIGKILL: until another worker re-runs the lost step",
                f"{statistics.median(lost):.0f} ms",
                "heartbeat timeout 2,000 ms",
                statistics.median(lost) / 2000,
                "(info)",
                None,
            ),
            Row(
                f"4. worker SIGKILL: {RECOVERY_STEPS} x {RECOVERY_MS} ms chain makespan",
                f"{statistics.median(disturbed):.0f} ms",
                f"undisturbed {base:.0f} ms",
                statistics.median(disturbed) / base,
                "(info)",
                None,
            ),
        ]


async def _first_counting(counters: list[Path], key: str) -> int:
    """The index of the first counter file that holds ``key`` (polled: another process writes it)."""
    with anyio.fail_after(60):
        while True:
            for i, path in enumerate(counters):
                if path.exists() and key in json.loads(path.read_text(encoding="utf-8") or "{}").get("flaky", {}):
                    return i
            await anyio.sleep(0.01)


class _TemporalFront:
    """``n_workers`` worker children on a fresh task queue, and a Conductor whose runs go to them."""

    def __init__(
        self,
        bench: Bench,
        address: str,
        n_workers: int,
        envs: list[dict[str, str]] | None = None,
    ) -> None:
        self._bench, self._address, self._n, self._envs = bench, address, n_workers, envs or [{}]
        self._stack = AsyncExitStack()
        self.workers: list[Worker] = []

    async def __aenter__(self) -> _TemporalFront:
        tq, state = queue(), self._bench.state("temporal")
        self.workers = await self._stack.enter_async_context(
            workers(self._n, self._bench.config_path, self._address, tq, state, self._envs)
        )
        self.conductor = await self._stack.enter_async_context(
            temporal_conductor(self._bench.config, state, self._address, tq)
        )
        await run(self.conductor, sequential_plan(2))  # the first workflow on a worker pays for its warm-up
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()


async def main(reps: int, stock: bool) -> None:
    configure_logging("error")
    with tempfile.TemporaryDirectory(prefix="bench-engines-") as tmp:
        directory = Path(tmp)
        (directory / "tuned").mkdir()
        (directory / "stock").mkdir()
        with dev_server(directory / "tuned") as address:
            bench = Bench(directory, address, reps)
            rows: list[Row] = []
            if stock:
                with dev_server(directory / "stock", dynamic_config=()) as stock_address:
                    rows += await bench.sequential(stock_address)
            else:
                rows += await bench.sequential(None)
            rows += await bench.fan_out()
            rows += await bench.throughput()
            rows += await bench.recovery()
    print_table(rows)
    print(f"\ntuning: dev server {', '.join(TUNING)}; worker sticky queue timeout 3 s; call heartbeat 2 s;")
    print("data steps and conditions are evaluated inside the workflow (no activity)")
    print(f"{reps} repetitions per measure (medians); load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="repetitions per measure (default 5)")
    parser.add_argument("--no-stock", action="store_true", help="skip the stock dev server's row")
    args = parser.parse_args()
    anyio.run(main, args.reps, not args.no_stock)
