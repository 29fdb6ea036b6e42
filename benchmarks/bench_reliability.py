"""Reliability benchmark (issue 8's report): faults survived, crashes without lost records, fuzzing, load, secrets.

Run ``python benchmarks/bench_reliability.py`` from the repository root (about two minutes on two cores). It runs a
compact version of the reliability suite and prints one table:

1. faults: the meta server (in process, over two stdio servers from ``tests/fixtures/faulty_server.py``: a
   healthy neighbour and a bad one) against crash at start, crash mid-call, hang on a call, hang on initialize and
   garbage on stdout. A fault is survived when the affected call ends with a structured error within its timeout,
   the meta server still answers, and the neighbour still serves.
2. SIGKILL: ``serve`` over stdio is killed 5 times at random points of a 30-step sequential run, then resumed;
   records lost (a step recorded succeeded that is gone or changed later) and reruns (a step called again after
   it was recorded succeeded, by the downstream's own counters) must be 0.
3. fuzzing: random JSON plans (valid, half-valid and garbage) through the pure planner; unhandled exceptions must
   be 0.
4. load: ``serve --http`` on loopback, 5 MCP clients, 100 concurrent ``execute_chain`` calls of 20 steps, twice:
   errors must be 0, RSS after the second load within 25% of after the first, and the per-server limit (4) held
   at the downstream (``tests/fixtures/peak_server.py``).
5. secrets: a config full of secrets, through ``serve --log-level debug``, ``doctor``, ``run`` of a failing plan
   and ``runs export``; every output, log and the SQLite files are searched for each secret: 0 found.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import anyio
import anyio.abc
import httpx2
import psutil
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from mcp_conductor.client_pool.catalog import Catalog, CatalogSnapshot, ServerName, ToolInfo
from mcp_conductor.client_pool.config import build_config
from mcp_conductor.demo import DEMO_SERVERS
from mcp_conductor.logs import configure_logging
from mcp_conductor.server.app import build_server
from mcp_conductor.server.planning.planner import plan as check_plan
from mcp_conductor.server.store.records import StepRun, StepStatus
from mcp_conductor.server.store.store import RunStore

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
PY = sys.executable
HOST_ENV = {k: v for k in ("PATH", "HOME") if (v := os.environ.get(k)) is not None}


@dataclass(frozen=True, slots=True)
class Row:
    area: str
    measure: str
    value: str
    target: str
    ok: bool


# -- 1. faults ---------------------------------------------------------------------------------------------------
FAULT_TIMEOUT_S = 2.0
FAULTS = [  # name, faulty_server.py mode of "bad", the affected step
    ("crash at start", "exit", {"tool": "bad/echo", "arguments": {"text": "x"}}),
    ("crash mid-call", "ok", {"tool": "bad/die"}),
    ("hang on a call", "ok", {"tool": "bad/slow", "arguments": {"seconds": 3600}}),
    ("hang on initialize", "hang_init", {"tool": "bad/echo", "arguments": {"text": "x"}}),
    ("garbage on stdout", "garbage", {"tool": "bad/echo", "arguments": {"text": "x"}}),
]


async def chain(client: Client, step: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool("execute_chain", {"plan": {"steps": [{"id": "s", **step}]}})
    assert result.structured_content is not None, result.content
    return result.structured_content


def structured_error(run: dict[str, Any]) -> str | None:
    """The error kind of a failed or invalid one-step run, or None when it did not fail with one."""
    if run["status"] == "invalid" and run.get("errors"):
        return str(run["errors"][0].get("code") or run["errors"][0].get("kind"))
    if run["status"] != "succeeded" and run["steps"] and (run["steps"][0].get("error") or {}).get("kind"):
        return str(run["steps"][0]["error"]["kind"])
    return None


async def listed(client: Client) -> set[str]:
    found = (await client.call_tool("discover_tools", {"top_k": 50})).structured_content or {}
    return {t["id"] for t in found.get("tools", [])}


async def one_fault(tmp: Path, mode: str, step: dict[str, Any]) -> tuple[bool, str]:
    script = str(FIXTURES / "faulty_server.py")
    servers = {"healthy": {"command": PY, "args": [script, "ok"]}, "bad": {"command": PY, "args": [script, mode]}}
    limits = {"timeout_s": FAULT_TIMEOUT_S, "connect_timeout_s": FAULT_TIMEOUT_S}
    config = build_config({"mcpServers": servers, "conductor": {"servers": {"bad": limits}}})
    async with Client(build_server(config, state_dir=tmp / f"fault-{mode}-{time.monotonic_ns()}")) as client:
        wanted = {"healthy/echo"} | ({step["tool"]} if mode == "ok" else set())
        with anyio.fail_after(30):
            while not wanted <= await listed(client):  # noqa: ASYNC110 - the bench has no hook into the catalog
                await anyio.sleep(0.1)
        started = time.perf_counter()
        with anyio.move_on_after(FAULT_TIMEOUT_S + 5):
            affected = await chain(client, {**step, "timeout_s": FAULT_TIMEOUT_S})
        seconds = time.perf_counter() - started
        kind = structured_error(affected) if seconds < FAULT_TIMEOUT_S + 5 else None
        answers = {t.name for t in (await client.list_tools()).tools} >= {"discover_tools", "execute_chain"}
        neighbour = await chain(client, {"tool": "healthy/echo", "arguments": {"text": "still here"}})
    served = neighbour["status"] == "succeeded" and neighbour["outputs"]["s"] == {"result": "still here"}
    return kind is not None and answers and served, f"{kind} in {seconds:.2f} s"


async def faults(tmp: Path) -> list[Row]:
    rows, survived = [], 0
    for name, mode, step in FAULTS:
        ok, detail = await one_fault(tmp, mode, step)
        survived += ok
        rows.append(Row("faults", f"  {name}", detail, f"error < {FAULT_TIMEOUT_S + 5:g} s, neighbour ok", ok))
    total = Row("faults", "injected / survived", f"{len(FAULTS)} / {survived}", "all", survived == len(FAULTS))
    return [total, *rows]


# -- 2. SIGKILL restarts -------------------------------------------------------------------------------------------
STEPS, KILLS, STEP_MS, RUN_ID = 30, 5, 40, "bench-crash"
STEP_IDS = [f"s{i:02d}" for i in range(1, STEPS + 1)]
CRASH_PLAN = {
    "steps": [
        {"id": sid, "tool": "latency/flaky", "arguments": {"fail_rate": 0, "key": sid, "ms": STEP_MS},
         **({"depends_on": [STEP_IDS[i - 1]]} if i else {})}
        for i, sid in enumerate(STEP_IDS)
    ]
}  # fmt: skip


def serve_stdio(config: Path, state: Path, *extra: str, level: str = "info", env: dict[str, str] = HOST_ENV) -> Any:
    argv = ["-m", "mcp_conductor", "--log-level", level, "serve", "--config", str(config), "--state-dir", str(state)]
    return StdioServerParameters(command=PY, args=[*argv, *extra], env=env)


def meta_server() -> psutil.Process:
    [meta] = [p for p in psutil.Process().children() if p.cmdline()[1:3] == ["-m", "mcp_conductor"]]
    return meta


async def wait_gone(processes: list[psutil.Process]) -> None:
    for p in processes:
        with suppress(psutil.NoSuchProcess):
            while p.is_running() and p.status() != psutil.STATUS_ZOMBIE:  # noqa: ASYNC110 - not our child
                await anyio.sleep(0.02)


async def one_life(params: StdioServerParameters, errlog: IO[str], target: int, delay_s: float) -> None:
    """Run (or resume) the chain; SIGKILL the server ``delay_s`` after ``target`` steps (and one more) are done."""
    reached, first = anyio.Event(), []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        first.append(done)
        if done >= max(target, first[0] + 1):
            reached.set()

    async def run(client: Client) -> None:
        with suppress(MCPError):  # the kill closes the connection
            await client.call_tool(
                "execute_chain", {"plan": CRASH_PLAN, "options": {"run_id": RUN_ID}}, progress_callback=on_progress
            )

    with anyio.fail_after(60):
        async with Client(stdio_client(params, errlog=errlog)) as client, anyio.create_task_group() as tg:
            tg.start_soon(run, client)
            await reached.wait()
            await anyio.sleep(delay_s)  # a random point inside the next step
            meta = meta_server()
            family = [meta, *meta.children(recursive=True)]
            meta.kill()
        await wait_gone(family)


async def steps_and_calls(state: Path, counter_file: Path) -> tuple[dict[str, StepRun], dict[str, int]]:
    async with RunStore.open(state) as store:
        steps = {s.step_id: s for s in await store.get_steps(RUN_ID)}
    text = await anyio.Path(counter_file).read_text(encoding="utf-8") if counter_file.exists() else "{}"  # noqa: ASYNC240
    calls = json.loads(text).get("flaky", {})
    return steps, calls


async def crash_loop(tmp: Path, seed: int = 8) -> list[Row]:
    rng = random.Random(seed)
    counter_file, state, config = tmp / "crash-counts.json", tmp / "crash-state", tmp / "crash.json"
    latency = {
        "command": PY,
        "args": ["-m", "mcp_conductor.demo.latency"],
        "env": {"LATENCY_COUNTER_FILE": str(counter_file)},
    }
    config.write_text(json.dumps({"mcpServers": {"latency": latency}}), encoding="utf-8")
    seen: dict[str, tuple[StepRun, int]] = {}
    with open(tmp / "crash-serve.log", "a", encoding="utf-8") as errlog:  # noqa: ASYNC230 - once, before any task
        for k in sorted(rng.sample(range(1, STEPS - 1), KILLS)):
            await one_life(serve_stdio(config, state), errlog, k, rng.uniform(0, STEP_MS / 1000))
            steps, calls = await steps_and_calls(state, counter_file)
            for sid, record in steps.items():
                if record.status is StepStatus.SUCCEEDED and sid not in seen:
                    seen[sid] = (record, calls.get(sid, 0))
        async with Client(stdio_client(serve_stdio(config, state), errlog=errlog)) as client:
            with anyio.fail_after(60):
                final = await client.call_tool("execute_chain", {"options": {"run_id": RUN_ID}})
    steps, calls = await steps_and_calls(state, counter_file)
    lost = sum(steps.get(sid) != record for sid, (record, _) in seen.items())
    reruns = sum(calls.get(sid, 0) != n for sid, (_, n) in seen.items())
    status = (final.structured_content or {}).get("status")
    repeats = sum(calls.values()) - STEPS
    return [
        Row(
            "SIGKILL",
            "restarts survived (run resumed)",
            f"{KILLS} / {KILLS if status == 'succeeded' else 0}",
            "all",
            status == "succeeded",
        ),
        Row("SIGKILL", "records lost", str(lost), "0", lost == 0),
        Row("SIGKILL", "succeeded steps called again", str(reruns), "0", reruns == 0),
        Row("SIGKILL", "in-flight calls repeated", str(repeats), f"<= {KILLS}", 0 <= repeats <= KILLS),
    ]


# -- 3. fuzzing ------------------------------------------------------------------------------------------------------
async def demo_catalog() -> CatalogSnapshot:
    import importlib

    catalog = Catalog()
    for module in DEMO_SERVERS:
        name = ServerName(module.rsplit(".", 1)[-1].replace("mathx", "math"))
        async with Client(importlib.import_module(module).server) as client:
            tools = (await client.list_tools()).tools
        catalog.set_server_tools(name, [
            ToolInfo(name, t.name, t.description or "", input_schema=t.input_schema, output_schema=t.output_schema,
                     annotations=t.annotations.model_dump(by_alias=True, exclude_none=True) if t.annotations else None)
            for t in tools
        ])  # fmt: skip
    return catalog.snapshot()


def random_value(rng: random.Random, ids: list[str], depth: int = 0) -> Any:
    choice = rng.randrange(12 if depth < 4 else 7)
    if choice == 0:
        return rng.choice([None, True, False, 0, -1, 2**64, 1e308, -0.0, 3.5])
    if choice == 1:
        return rng.choice(["", "x" * rng.randrange(300), "\x00\ud800", "日本語", "${", "}", "$$", "${}", "${steps}"])
    if choice in (2, 3):
        return f"${{steps.{rng.choice([*ids, 'nope', ''])}.{rng.choice(['value', 'a.b.c', '0', 'x]', ''])}}}"
    if choice == 4:
        return f"pre ${{inputs.{rng.choice(['i', 'missing', '${inputs.i}', ''])}}} post"
    if choice == 5:
        return "${steps." + "${steps." * rng.randrange(1, 5) + "a.b}" * rng.randrange(1, 3)
    if choice == 6:
        return rng.choice(ids) if ids else "a"
    if choice in (7, 8, 9):
        return {
            str(random_value(rng, ids, depth + 1))[:20]: random_value(rng, ids, depth + 1)
            for _ in range(rng.randrange(4))
        }
    return [random_value(rng, ids, depth + 1) for _ in range(rng.randrange(4))]


def echo_chain(rng: random.Random) -> dict[str, Any]:
    """A well-formed plan of echoes and sleeps whose values carry references, escaped text that looks like a
    reference (``$${...}``, data, never expanded) and odd JSON; most of these plans are valid."""
    steps: list[dict[str, Any]] = []
    field = {"latency/echo": "value", "latency/sleep": "slept_ms"}
    for n in range(rng.randrange(1, 12)):
        if rng.random() < 0.3:
            steps.append({"id": f"s{n}", "tool": "latency/sleep", "arguments": {"ms": rng.choice([0, 1, 2.5])}})
            continue
        ref = "${inputs.i}"
        if steps:
            source = rng.choice(steps)
            ref = f"${{steps.{source['id']}.{field[source['tool']]}}}"
        data = rng.choice(
            [None, 0, -1.5, 2**53, "", "日本語", "$${steps.x.value}", "a $${inputs.i} b", [[[]]], {"k": {}}]
        )
        value = rng.choice([ref, f"text {ref} and {ref}", {"nested": [ref, data]}, data])
        step: dict[str, Any] = {"id": f"s{n}", "tool": "latency/echo", "arguments": {"value": value}}
        if steps and rng.random() < 0.5:
            step["depends_on"] = [rng.choice(steps)["id"]]
        steps.append(step)
    return {"inputs": {"i": rng.randrange(10)}, "steps": steps}


def random_plan(rng: random.Random, tools: list[str]) -> Any:
    if rng.random() < 0.1:
        return random_value(rng, [])  # not even an object
    if rng.random() < 0.4:
        return echo_chain(rng)
    ids = [rng.choice([f"s{i}", "a b", "", "x" * 70, "ü", "${steps.a}", "s0"]) for i in range(rng.randrange(8))]
    steps = []
    for sid in ids:
        step: dict[str, Any] = {"id": sid, "tool": rng.choice([*tools, "nope/x", "", "a/b/c", "latency"])}
        for key, value in (
            (
                "arguments",
                lambda: {k: random_value(rng, ids) for k in rng.sample(["value", "ms", "text", "key", "x"], 2)},
            ),
            ("depends_on", lambda: rng.sample(ids, min(len(ids), rng.randrange(3))) + rng.choice([[], ["nope"], [5]])),
            ("retry", lambda: rng.choice([{"attempts": rng.randrange(-1, 5)}, {"on": ["timeout"]}, "no", None])),
            ("timeout_s", lambda: rng.choice([0, -1, 0.5, 1e9, "10", None])),
            ("on_error", lambda: rng.choice(["fail", "continue", "ignore", 3])),
            (rng.choice(["extra", "Arguments"]), lambda: 1),
        ):
            if rng.random() < 0.5:
                step[key] = value()
        steps.append(step if rng.random() < 0.95 else random_value(rng, ids))
    raw: dict[str, Any] = {"steps": steps}
    if rng.random() < 0.5:
        raw["inputs"] = {"i": random_value(rng, ids)}
    if rng.random() < 0.3:
        raw["outputs"] = rng.choice([ids[:2], ["nope"], "all", [None]])
    return raw


async def fuzz(n: int = 4000, seed: int = 8) -> list[Row]:
    rng = random.Random(seed)
    catalog = await demo_catalog()
    tools = list(catalog.tools)
    unhandled, valid = [], 0
    started = time.perf_counter()
    for _ in range(n):
        raw = random_plan(rng, tools)
        try:
            valid += check_plan(raw, catalog).valid
        except Exception as exc:  # what is counted: every exception is a bug
            unhandled.append(f"{type(exc).__name__}: {exc}"[:200])
    seconds = time.perf_counter() - started
    for problem in unhandled[:3]:
        print("fuzz:", problem, file=sys.stderr)
    return [
        Row("fuzzing", "random plans through the planner", f"{n} ({valid} valid) in {seconds:.1f} s", "-", True),
        Row("fuzzing", "unhandled exceptions", str(len(unhandled)), "0", not unhandled),
    ]


# -- 4. load -------------------------------------------------------------------------------------------------------
CLIENTS, CALLS, PEAK_LIMIT = 5, 100, 4


def load_plan(i: int) -> dict[str, Any]:
    fan, peaks, links = [f"f{n}" for n in range(8)], [f"p{n}" for n in range(4)], [f"c{n}" for n in range(6)]
    steps: list[dict[str, Any]] = [{"id": "root", "tool": "latency/echo", "arguments": {"value": "${inputs.i}"}}]
    steps += [{"id": s, "tool": "latency/sleep", "arguments": {"ms": 2}, "depends_on": ["root"]} for s in fan]
    steps += [{"id": s, "tool": "peak/work", "arguments": {"ms": 5, "tag": "r${steps.root.value}"}} for s in peaks]
    steps += [{"id": s, "tool": "latency/echo", "arguments": {"value": f"${{steps.{p}.value}}"}}
              for s, p in zip(links, ["root", *links], strict=False)]  # fmt: skip
    steps.append(
        {"id": "join", "tool": "latency/echo", "arguments": {"value": "${steps.c5.value}"}, "depends_on": fan + peaks}
    )
    return {"inputs": {"i": i}, "steps": steps, "outputs": ["join"]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def http_server(tmp: Path, errlog: IO[str]) -> AsyncIterator[tuple[str, psutil.Process]]:
    config = tmp / "load.json"
    servers = {"latency": {"command": PY, "args": ["-m", "mcp_conductor.demo.latency"]},
               "peak": {"command": PY, "args": [str(FIXTURES / "peak_server.py")]}}  # fmt: skip
    conductor = {"servers": {"peak": {"max_concurrency": PEAK_LIMIT}}}
    config.write_text(json.dumps({"mcpServers": servers, "conductor": conductor}), encoding="utf-8")
    port = free_port()  # loopback only
    command = [
        PY,
        "-m",
        "mcp_conductor",
        "serve",
        "--http",
        "--port",
        str(port),
        "--config",
        str(config),
        "--state-dir",
        str(tmp / "load-state"),
    ]
    process = await anyio.open_process(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errlog, env=HOST_ENV
    )
    async with process:
        try:
            with anyio.fail_after(30):
                while True:
                    try:
                        await (await anyio.connect_tcp("127.0.0.1", port)).aclose()
                        break
                    except OSError:
                        await anyio.sleep(0.05)
            yield f"http://127.0.0.1:{port}/mcp", psutil.Process(process.pid)
        finally:
            process.send_signal(signal.SIGTERM)
            with anyio.fail_after(20):
                await process.wait()


async def run_load(hosts: list[Client], first: int, n: int) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0

    async def one(i: int) -> None:
        nonlocal errors
        started = time.perf_counter()
        try:
            result = await hosts[i % len(hosts)].call_tool("execute_chain", {"plan": load_plan(i)})
        except Exception:  # counted
            errors += 1
            return
        latencies.append((time.perf_counter() - started) * 1000)
        run = result.structured_content or {}
        if run.get("status") != "succeeded" or run["outputs"]["join"]["value"] != i:
            errors += 1

    async with anyio.create_task_group() as tg:
        for i in range(first, first + n):
            tg.start_soon(one, i)
    return latencies, errors


async def load(tmp: Path) -> list[Row]:
    with open(tmp / "load-serve.log", "a", encoding="utf-8") as errlog:  # noqa: ASYNC230 - once, before any task
        async with http_server(tmp, errlog) as (url, server), AsyncExitStack() as stack:
            hosts = []
            for _ in range(CLIENTS):
                http = await stack.enter_async_context(httpx2.AsyncClient(timeout=httpx2.Timeout(60)))
                hosts.append(await stack.enter_async_context(Client(streamable_http_client(url, http_client=http))))
            with anyio.fail_after(30):
                await run_load(hosts, 0, 20)
            rss = [server.memory_info().rss / 2**20]
            latencies, errors, seconds = [], 0, 0.0
            for n in range(2):
                started = time.perf_counter()
                with anyio.fail_after(90):
                    more, failed = await run_load(hosts, 1000 * (n + 1), CALLS)
                seconds += time.perf_counter() - started
                latencies, errors = latencies + more, errors + failed
                rss.append(server.memory_info().rss / 2**20)
            peak = await hosts[0].call_tool("execute_chain", {"plan": {"steps": [{"id": "p", "tool": "peak/peak"}]}})
    counted = (peak.structured_content or {}).get("outputs", {}).get("p", {})
    q = statistics.quantiles(latencies, n=100)
    calls = 2 * CALLS
    return [
        Row("load", "execute_chain calls x 20 steps (2 rounds)", f"{calls} in {seconds:.1f} s", "-", True),
        Row("load", "errors", str(errors + calls - len(latencies)), "0", errors == 0 and len(latencies) == calls),
        Row("load", "client latency p50 / p95", f"{q[49]:.0f} / {q[94]:.0f} ms", "-", True),
        Row(
            "load",
            "RSS warm / load 1 / load 2",
            " / ".join(f"{r:.0f}" for r in rss) + " MB",
            "load 2 <= 1.25 x load 1",
            rss[2] <= 1.25 * rss[1],
        ),
        Row(
            "load",
            "peak in flight at a server limited to 4",
            str(counted.get("peak")),
            f"<= {PEAK_LIMIT}",
            0 < counted.get("peak", 0) <= PEAK_LIMIT,
        ),
    ]


# -- 5. secrets ------------------------------------------------------------------------------------------------------
LEAKY = """
import os, sys
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
key = os.environ["LEAKY_KEY"]
print("starting with key", key, file=sys.stderr, flush=True)
server = MCPServer("leaky")
@server.tool()
async def check() -> str:
    raise ToolError(f"invalid api key {key}")
server.run()
"""


async def secrets_check(tmp: Path) -> list[Row]:
    found = {n: f"{n}-{secrets.token_hex(10)}" for n in ("leaky", "crashy", "password", "query", "bearer", "apikey")}
    (tmp / "leaky.py").write_text(LEAKY, encoding="utf-8")
    crashy = "import os, sys; k = os.environ['K']; print(k); print(k, file=sys.stderr)"
    servers = {
        "leaky": {"command": PY, "args": [str(tmp / "leaky.py")], "env": {"LEAKY_KEY": found["leaky"]}},
        "crashy": {"command": PY, "args": ["-c", crashy], "env": {"K": found["crashy"]}},
        "remote": {"url": f"http://u:{found['password']}@127.0.0.1:{free_port()}/mcp?token={found['query']}",
                   "headers": {"Authorization": f"Bearer {found['bearer']}", "X-Key": "${REMOTE_KEY}"}},
    }  # fmt: skip
    config, state, plan = tmp / "secrets.json", tmp / "secrets-state", tmp / "plan.json"
    config.write_text(json.dumps({"mcpServers": servers, "conductor": {"defaults": {"connect_timeout_s": 5}}}))
    plan.write_text(json.dumps({"steps": [{"id": "check", "tool": "leaky/check"}]}))
    env = HOST_ENV | {"REMOTE_KEY": found["apikey"]}
    outputs: list[bytes] = []
    log = tmp / "secrets-serve.log"
    with open(log, "w", encoding="utf-8") as errlog:  # noqa: ASYNC230 - once, before any task
        async with Client(stdio_client(serve_stdio(config, state, level="debug", env=env), errlog=errlog)) as client:
            with anyio.fail_after(60):
                for call in (
                    {"plan": json.loads(plan.read_text()), "options": {"run_id": "served"}},
                    {"plan": {"steps": [{"id": "r", "tool": "remote/x"}]}},
                ):
                    outputs.append((await client.call_tool("execute_chain", call)).model_dump_json().encode())
    commands = [
        ["doctor", "--config", str(config), "--json"],
        ["tools", "--config", str(config)],
        ["run", str(plan), "--config", str(config), "--state-dir", str(state), "--json"],
        ["runs", "export", "served", "--state-dir", str(state)],
    ]
    for argv in commands:
        with anyio.fail_after(60):
            done = await anyio.run_process(
                [PY, "-m", "mcp_conductor", "--log-level", "debug", *argv], env=env, check=False
            )
        outputs += [done.stdout, done.stderr]
    outputs += [log.read_bytes(), *(p.read_bytes() for p in state.iterdir())]
    leaks = sum(value.encode() in text for value in found.values() for text in outputs)
    return [
        Row("secrets", "secrets x outputs searched", f"{len(found)} x {len(outputs)}", "-", True),
        Row("secrets", "secrets found in outputs", str(leaks), "0", leaks == 0),
    ]


# -- the table -------------------------------------------------------------------------------------------------------
def print_table(rows: list[Row]) -> None:
    header = ("area", "measure", "value", "target", "")
    cells = [header] + [(r.area, r.measure, r.value, r.target, "ok" if r.ok else "MISSED") for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    for n, c in enumerate(cells):
        print("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


async def main() -> int:
    configure_logging("error")
    rows: list[Row] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-reliability-") as where:
        tmp = Path(where)
        for part in (faults, crash_loop, load, secrets_check):
            rows += await part(tmp)
            print(f"{part.__name__} done after {time.perf_counter() - started:.0f} s", file=sys.stderr)
        rows += await fuzz()
    print_table(rows)
    print(f"\ntotal {time.perf_counter() - started:.0f} s", flush=True)
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(anyio.run(main))
