"""Client pool benchmark: concurrent connect time, and call overhead against a bare ``mcp.Client``.

Run ``python benchmarks/bench_pool.py``. Everything is measured in one run, on the bundled demo servers over stdio:

1. Connect: each demo server alone through a ``ClientPool`` (from entering the pool to the server being ready),
   then 10 servers at once (two of each demo module under different names) until all are ready. The ratio is
   the concurrent time over the slowest single server. Rounds alternate singles and the concurrent start so
   drift hits both; medians over the rounds. A stdio Python server spends its connect time starting an
   interpreter and importing ``mcp`` (CPU work), so with fewer cores than servers the concurrent start is
   CPU-bound: the table also prints that floor (children's CPU time / cores).
2. Calls: sequential ``pool.call_tool`` against ``mcp.Client.call_tool`` on a second process of the same demo
   server, interleaved in blocks (alternating which side goes first) after a warm-up; p50/p95 and calls/s.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio
import psutil
from mcp import Client, StdioServerParameters

from mcp_conductor.client_pool.config import build_config
from mcp_conductor.client_pool.config_models import ConductorConfig
from mcp_conductor.client_pool.pool import ClientPool
from mcp_conductor.client_pool.status import ServerState
from mcp_conductor.client_pool.transports import child_environment
from mcp_conductor.demo import DEMO_SERVERS
from mcp_conductor.logs import configure_logging

CONNECT_TARGET = 1.5
P50_TARGET = 1.10
CALLS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "latency/echo": ("mcp_conductor.demo.latency", "echo", {"value": {"id": 7, "tags": ["a", "b"]}}),
    "text/word_stats": (
        "mcp_conductor.demo.text",
        "word_stats",
        {"text": "The pool adds a limiter and a timeout scope. Does it cost anything? Measure it."},
    ),
}


def short(module: str) -> str:
    return module.rsplit(".", 1)[-1]


def demo_config(names: dict[str, str]) -> ConductorConfig:
    """A config starting ``module`` under each ``name``."""
    entries = {name: {"command": sys.executable, "args": ["-m", module]} for name, module in names.items()}
    return build_config({"mcpServers": entries})


def children_cpu_s() -> float:
    """CPU seconds the live child processes have used so far."""
    total = 0.0
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            times = child.cpu_times()
            total += times.user + times.system
    return total


async def connect_once(names: dict[str, str]) -> tuple[float, float]:
    """Seconds from entering the pool until every server is ready, and the children's CPU seconds until then."""
    start = time.perf_counter()
    async with ClientPool(demo_config(names)) as pool:
        with anyio.fail_after(120):
            await pool.wait_settled()
        elapsed = time.perf_counter() - start
        cpu = children_cpu_s()
        failed = [s for s in pool.statuses().values() if s.state is not ServerState.READY]
        if failed:
            raise RuntimeError(f"servers did not connect: {[(s.name, s.error) for s in failed]}")
    return elapsed, cpu


async def bench_connect(rounds: int) -> list[list[str]]:
    singles: dict[str, list[float]] = {short(m): [] for m in DEMO_SERVERS}
    single_cpu: list[float] = []
    five: list[float] = []
    together: list[float] = []
    together_cpu: list[float] = []
    ten = {f"{short(m)}_{i}": m for m in DEMO_SERVERS for i in (1, 2)}
    await connect_once({"warmup": DEMO_SERVERS[0]})  # page cache and bytecode, so round 1 is not special
    for _ in range(rounds):
        for module in DEMO_SERVERS:
            elapsed, cpu = await connect_once({short(module): module})
            singles[short(module)].append(elapsed)
            single_cpu.append(cpu)
        five.append((await connect_once({short(m): m for m in DEMO_SERVERS}))[0])
        elapsed, cpu = await connect_once(ten)
        together.append(elapsed)
        together_cpu.append(cpu)

    single_medians = {name: statistics.median(times) for name, times in singles.items()}
    slowest_name, slowest = max(single_medians.items(), key=lambda kv: kv[1])
    concurrent = statistics.median(together)
    cores = os.cpu_count() or 1
    floor = statistics.median(together_cpu) / cores
    rows = [[f"{name} alone", ms(t), "", ""] for name, t in single_medians.items()]
    rows.append(["  CPU per server until ready (median)", ms(statistics.median(single_cpu)), "", ""])
    rows.append([f"slowest single ({slowest_name})", ms(slowest), "1.00", ""])
    five_median = statistics.median(five)
    rows.append(
        [f"{len(DEMO_SERVERS)} servers at once (one each)", ms(five_median), f"{five_median / slowest:.2f}", ""]
    )
    rows.append([f"{len(ten)} servers at once", ms(concurrent), f"{concurrent / slowest:.2f}", f"<= {CONNECT_TARGET}"])
    rows.append([f"  CPU floor of those 10: CPU / {cores} cores", ms(floor), f"{floor / slowest:.2f}", ""])
    rows.append(["  10 at once over its CPU floor", "", f"{concurrent / floor:.2f}", ""])
    return rows


async def timed(call: Callable[[], Awaitable[Any]], n: int, into: list[float]) -> None:
    for _ in range(n):
        start = time.perf_counter()
        await call()
        into.append(time.perf_counter() - start)


async def bench_calls(label: str, calls: int, block: int, warmup: int) -> list[list[str]]:
    module, tool, arguments = CALLS[label]
    server = label.split("/")[0]
    params = StdioServerParameters(command=sys.executable, args=["-m", module], env=child_environment({}))
    pool_times: list[float] = []
    direct_times: list[float] = []
    async with ClientPool(demo_config({server: module})) as pool, Client(params) as direct:
        with anyio.fail_after(60):
            await pool.wait_settled()

        async def via_pool() -> None:
            result = await pool.call_tool(server, tool, arguments)
            assert not result.is_error

        async def via_client() -> None:
            result = await direct.call_tool(tool, arguments)
            assert not result.is_error

        await timed(via_pool, warmup, [])
        await timed(via_client, warmup, [])
        sides = [(via_pool, pool_times), (via_client, direct_times)]
        for i in range(calls // block):
            for call, into in sides if i % 2 == 0 else sides[::-1]:
                await timed(call, block, into)

    pool_p50, pool_p95 = percentiles(pool_times)
    direct_p50, direct_p95 = percentiles(direct_times)
    return [
        [label, "mcp.Client", f"{direct_p50 * 1e3:.3f}", f"{direct_p95 * 1e3:.3f}", rate(direct_times), "1.00", ""],
        [
            label,
            "ClientPool",
            f"{pool_p50 * 1e3:.3f}",
            f"{pool_p95 * 1e3:.3f}",
            rate(pool_times),
            f"{pool_p50 / direct_p50:.3f}",
            f"<= {P50_TARGET}",
        ],
    ]


def percentiles(samples: Sequence[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return cuts[49], cuts[94]


def rate(samples: Sequence[float]) -> str:
    return f"{len(samples) / sum(samples):.0f}"


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.0f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=True)]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)), line]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(out)


async def run(args: argparse.Namespace) -> None:
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, stdio demo servers\n")
    connect_rows = await bench_connect(args.rounds)
    print(f"(1) Connect until ready (median of {args.rounds} rounds)")
    print(table(["what", "ms", "ratio", "target"], connect_rows))
    call_rows: list[list[str]] = []
    for label in CALLS:
        call_rows += await bench_calls(label, args.calls, args.block, args.warmup)
    print(f"\n(2) Sequential calls ({args.calls} per side, blocks of {args.block}, {args.warmup} warm-up)")
    print(table(["tool", "via", "p50 ms", "p95 ms", "calls/s", "p50 ratio", "target"], call_rows))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3, help="connect rounds (singles + concurrent each)")
    parser.add_argument("--calls", type=int, default=500, help="measured calls per side and tool")
    parser.add_argument("--block", type=int, default=50, help="calls per interleaved block")
    parser.add_argument("--warmup", type=int, default=50, help="unmeasured calls per side first")
    args = parser.parse_args(argv)
    configure_logging("error")
    anyio.run(run, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
