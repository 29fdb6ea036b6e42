"""Load over streamable HTTP (issue 8): 100 concurrent ``execute_chain`` calls of 20 steps each, twice.

``mcp-conductor serve --http`` runs as a subprocess on a loopback port over two stdio servers: the latency demo
server and ``tests/fixtures/peak_server.py``, which counts its own calls in flight. The config limits ``peak`` to
4 concurrent calls, and the limit is checked where it matters, at the downstream server. Every run must
succeed with its own values (no cross-talk between concurrent runs), and the meta server's memory after a second
equal load must stay close to what it was after the first (no growth per run).
"""

import json
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import IO, Any

import anyio
import anyio.abc
import httpx2
import psutil
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from fixtures.env import host_env
from fixtures.net import free_port, wait_for_port

pytestmark = pytest.mark.e2e

FIXTURES = Path(__file__).parents[1] / "fixtures"
CLIENTS = 5
CALLS = 100
PEAK_LIMIT = 4
GROWTH_LIMIT = 1.25


def chain_plan(i: int) -> dict[str, Any]:
    """20 steps: a root, a fan-out of 8 sleeps and 4 peak calls after it, a chain of 6 echoes, and a join.

    The run's number ``i`` goes in as an input and must come back out of the join, through two references.
    """
    fan = [f"f{n}" for n in range(1, 9)]
    peaks = [f"p{n}" for n in range(1, 5)]
    chain = [f"c{n}" for n in range(1, 7)]
    steps: list[dict[str, Any]] = [{"id": "root", "tool": "latency/echo", "arguments": {"value": "${inputs.i}"}}]
    steps += [{"id": s, "tool": "latency/sleep", "arguments": {"ms": 2}, "depends_on": ["root"]} for s in fan]
    steps += [{"id": s, "tool": "peak/work", "arguments": {"ms": 5, "tag": "run-${steps.root.value}"}} for s in peaks]
    steps += [
        {"id": s, "tool": "latency/echo", "arguments": {"value": f"${{steps.{prev}.{field}}}"}}
        for s, prev, field in zip(chain, ["f1", *chain], ["slept_ms"] + ["value"] * 5, strict=False)
    ]
    steps.append(
        {
            "id": "join",
            "tool": "latency/echo",
            "arguments": {
                "value": {"i": "${steps.root.value}", "chain": "${steps.c6.value}", "tag": "${steps.p4.result}"}
            },
            "depends_on": fan + peaks,
        }
    )
    assert len(steps) == 20
    return {"inputs": {"i": i}, "steps": steps, "outputs": ["join"]}


@pytest.fixture
def errlog(tmp_path: Path) -> Iterator[IO[str]]:
    """The meta server's stderr: ``serve.log`` in the test's directory."""
    with open(tmp_path / "serve.log", "a", encoding="utf-8") as log:
        yield log


@asynccontextmanager
async def http_server(tmp_path: Path, errlog: IO[str]) -> AsyncIterator[tuple[str, psutil.Process]]:
    """``serve --http`` on a free loopback port; yields its URL and process; stops it (and checks it stopped)."""
    config = tmp_path / "servers.json"
    servers = {
        "latency": {"command": sys.executable, "args": ["-m", "mcp_conductor.demo.latency"]},
        "peak": {"command": sys.executable, "args": [str(FIXTURES / "peak_server.py")]},
    }
    conductor = {"servers": {"peak": {"max_concurrency": PEAK_LIMIT}}}
    config.write_text(json.dumps({"mcpServers": servers, "conductor": conductor}), encoding="utf-8")
    port = free_port()
    command = [
        sys.executable, "-m", "mcp_conductor", "serve", "--http", "--port", str(port),
        "--config", str(config), "--state-dir", str(tmp_path / "state"),
    ]  # fmt: skip
    env = host_env(tmp_path / "home")
    process = await anyio.open_process(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errlog, env=env
    )
    async with process:
        try:
            with anyio.fail_after(30):
                await wait_for_port(port, process)
            server = psutil.Process(process.pid)
            yield f"http://127.0.0.1:{port}/mcp", server
            downstream = server.children()
            assert len(downstream) == 2
        finally:
            process.terminate()
            with anyio.fail_after(20):
                await process.wait()
    assert process.returncode in (0, -signal.SIGTERM)  # uvicorn shuts down, then re-raises the signal
    with anyio.fail_after(10):
        for child in downstream:
            while child.is_running() and child.status() != psutil.STATUS_ZOMBIE:  # noqa: ASYNC110 - not our child
                await anyio.sleep(0.05)


@asynccontextmanager
async def clients(url: str, n: int) -> AsyncIterator[list[Client]]:
    async with AsyncExitStack() as stack:
        connected = []
        for _ in range(n):
            http = await stack.enter_async_context(httpx2.AsyncClient(timeout=httpx2.Timeout(60)))
            connected.append(await stack.enter_async_context(Client(streamable_http_client(url, http_client=http))))
        yield connected


async def load(hosts: list[Client], first: int, calls: int) -> tuple[list[float], list[str]]:
    """``calls`` concurrent runs, spread over the hosts; returns each call's latency (ms) and every problem."""
    latencies: list[float] = []
    problems: list[str] = []

    async def one(i: int) -> None:
        started = time.perf_counter()
        try:
            result = await hosts[i % len(hosts)].call_tool(
                "execute_chain", {"plan": chain_plan(i), "options": {"detail": "steps"}}
            )
        except Exception as exc:  # counted, not raised: the test reports every failure at once
            problems.append(f"run {i}: {type(exc).__name__}: {exc}")
            return
        latencies.append((time.perf_counter() - started) * 1000)
        run = result.structured_content
        if result.is_error or run is None:
            problems.append(f"run {i}: {result.content}")
        elif run["status"] != "succeeded" or any(s["status"] != "succeeded" for s in run["steps"]):
            problems.append(f"run {i}: {run['status']} {[s for s in run['steps'] if s['status'] != 'succeeded']}")
        elif len(run["steps"]) != 20 or run["outputs"]["join"]["value"] != {"i": i, "chain": 2.0, "tag": f"run-{i}"}:
            problems.append(f"run {i}: wrong outputs {run['outputs']}")

    async with anyio.create_task_group() as tg:
        for i in range(first, first + calls):
            tg.start_soon(one, i)
    return latencies, problems


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1]


def rss_mb(process: psutil.Process) -> float:
    return process.memory_info().rss / 2**20


async def test_100_concurrent_20_step_chains_over_http_all_succeed_within_bounded_memory_and_concurrency(
    tmp_path: Path, errlog: IO[str]
) -> None:
    with anyio.fail_after(180):  # the whole session, connecting the clients included
        async with http_server(tmp_path, errlog) as (url, server), clients(url, CLIENTS) as hosts:
            with anyio.fail_after(30):
                _, problems = await load(hosts, 0, 20)  # warm-up: imports, caches, connections, SQLite pages
            assert problems == []
            baseline = rss_mb(server)
            rounds = []
            for n in range(2):
                with anyio.fail_after(60):
                    started = time.perf_counter()
                    latencies, problems = await load(hosts, 1000 * (n + 1), CALLS)
                    seconds = time.perf_counter() - started
                assert problems == [], problems[:5]
                rounds.append((latencies, seconds, rss_mb(server)))
            with anyio.fail_after(10):
                peak = await hosts[0].call_tool(
                    "execute_chain", {"plan": {"steps": [{"id": "peak", "tool": "peak/peak"}]}}
                )
    assert peak.structured_content is not None, peak.content
    counted = peak.structured_content["outputs"]["peak"]

    print(f"\nRSS of the meta server: {baseline:.1f} MB after warm-up")
    for n, (latencies, seconds, rss) in enumerate(rounds, 1):
        print(
            f"load {n}: {len(latencies)} runs x 20 steps in {seconds:.1f} s, p50 {percentile(latencies, 50):.0f} ms,"
            f" p95 {percentile(latencies, 95):.0f} ms; RSS {rss:.1f} MB"
        )
    print(f"peak in flight at the peak server: {counted['peak']} (limit {PEAK_LIMIT}) over {counted['calls']} calls")
    assert [len(latencies) for latencies, _, _ in rounds] == [CALLS, CALLS]
    first_rss, second_rss = rounds[0][2], rounds[1][2]
    assert second_rss <= first_rss * GROWTH_LIMIT, f"RSS grew from {first_rss:.1f} to {second_rss:.1f} MB"
    # The limit held at the server, and calls did overlap there (so the load really contended for it). Reaching
    # exactly the limit depends on the machine's load: on a busy one, 4 short calls rarely overlap at once.
    assert 2 <= counted["peak"] <= PEAK_LIMIT
    assert counted["calls"] == 4 * (20 + 2 * CALLS)
    assert counted["in_flight"] == 0
