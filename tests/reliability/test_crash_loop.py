"""The meta server itself (issue 8): SIGKILLed again and again in the middle of a run, and a run store that another
process locks or that cannot be created.

The meta server runs as a real child process (``python -m mcp_conductor serve`` over stdio, as a host starts it)
over the latency demo server, whose counters live in a file (``LATENCY_COUNTER_FILE``) that outlives every process.
The run is a chain of 30 steps ``s01 -> s02 -> ... -> s30``, each ``latency/flaky`` with ``fail_rate`` 0 (it never
fails) and ``key`` set to the step id: the latency server counts flaky calls per key *when a call arrives*, so
the counter file says exactly how many times each step's call reached the downstream, whether or not it finished.
"""

import json
import os
import random
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import IO, Any

import anyio
import psutil
import pytest
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.types import CONNECTION_CLOSED

from fixtures.env import host_env
from mcp_conductor.server.store.connections import DB_FILENAME
from mcp_conductor.server.store.records import RunStatus, StepRun, StepStatus
from mcp_conductor.server.store.store import RunStore

pytestmark = pytest.mark.e2e

SEED = int(os.environ.get("CRASH_LOOP_SEED", "8"))
STEPS = 30
KILLS = 5
STEP_MS = 40
RUN_ID = "crash-loop"
STEP_IDS = [f"s{i:02d}" for i in range(1, STEPS + 1)]
PLAN = {
    "steps": [
        {
            "id": sid,
            "tool": "latency/flaky",
            "arguments": {"fail_rate": 0, "key": sid, "ms": STEP_MS},
            **({"depends_on": [STEP_IDS[i - 1]]} if i else {}),
        }
        for i, sid in enumerate(STEP_IDS)
    ],
    "outputs": [STEP_IDS[-1]],
}


@pytest.fixture
def errlog(tmp_path: Path) -> Iterator[IO[str]]:
    """The meta servers' stderr: ``serve.log`` in the test's directory."""
    with open(tmp_path / "serve.log", "a", encoding="utf-8") as log:
        yield log


def serve_params(config: Path, state_dir: Path) -> StdioServerParameters:
    argv = ["-m", "mcp_conductor", "--log-level", "info", "serve", "--config", str(config), "--state-dir", str(state_dir)]  # fmt: skip  # noqa: E501
    env = host_env(config.parent / "home")  # config is in the test's temporary directory
    return StdioServerParameters(command=sys.executable, args=argv, env=env)


def meta_server() -> psutil.Process:
    """The one child of this test process that runs ``python -m mcp_conductor ... serve``."""
    [meta] = [p for p in psutil.Process().children() if p.cmdline()[1:3] == ["-m", "mcp_conductor"]]
    return meta


def gone(process: psutil.Process) -> bool:
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def wait_gone(processes: list[psutil.Process]) -> None:
    """Until every process has exited (bounded by the caller). They are not all our children, so there is no exit
    event to wait on: their state is polled."""
    for process in processes:
        while not gone(process):  # noqa: ASYNC110
            await anyio.sleep(0.02)


@asynccontextmanager
async def serving(config: Path, state_dir: Path, errlog: IO[str]) -> AsyncIterator[Client]:
    """A host connected to a fresh meta server; on the way out, wait until it and its downstream servers are gone."""
    async with Client(stdio_client(serve_params(config, state_dir), errlog=errlog)) as client:
        family: list[psutil.Process] = []
        try:
            yield client
        finally:
            with suppress(ValueError, psutil.Error):  # none left if the test killed it (it waits for its own)
                family = [meta := meta_server(), *meta.children(recursive=True)]
    with anyio.fail_after(15):
        await wait_gone(family)


def latency_config(tmp_path: Path, counter_file: Path) -> Path:
    config = tmp_path / "servers.json"
    latency = {
        "command": sys.executable,
        "args": ["-m", "mcp_conductor.demo.latency"],
        "env": {"LATENCY_COUNTER_FILE": str(counter_file)},
    }
    config.write_text(json.dumps({"mcpServers": {"latency": latency}}), encoding="utf-8")
    return config


def flaky_calls(counter_file: Path) -> dict[str, int]:
    """Per step id: how many of its calls reached the downstream, over every life of every process."""
    if not counter_file.exists():
        return {}
    counts: dict[str, int] = json.loads(counter_file.read_text(encoding="utf-8")).get("flaky", {})
    return counts


async def stored_steps(state_dir: Path) -> tuple[Any, dict[str, StepRun]]:
    async with RunStore.open(state_dir) as store:
        run = await store.get_run(RUN_ID)
        steps = {s.step_id: s for s in await store.get_steps(RUN_ID)}
    return run, steps


def succeeded_prefix(steps: dict[str, StepRun]) -> int:
    """How many steps from s01 on succeeded; asserts that no later step did (the chain is strictly sequential)."""
    done = [steps[sid].status is StepStatus.SUCCEEDED for sid in STEP_IDS]
    n = done.index(False) if False in done else STEPS
    assert not any(done[n:]), {sid: steps[sid].status for sid in STEP_IDS}
    return n


async def live_until_killed(config: Path, state_dir: Path, errlog: IO[str], k: int, delay_s: float) -> int:
    """One life of the meta server: start (or resume) the run, SIGKILL the server ``delay_s`` after at least ``k``
    steps (and at least one more in this life) are reported done; wait until its processes are gone. Returns
    the killed server's pid."""
    reached = anyio.Event()
    started_from: list[float] = []
    lost: list[MCPError] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        if not started_from:
            started_from.append(done)  # "run ... started": the steps done before this life
        if done >= max(k, started_from[0] + 1):
            reached.set()

    async def run_chain(client: Client) -> None:
        try:
            await client.call_tool(
                "execute_chain", {"plan": PLAN, "options": {"run_id": RUN_ID}}, progress_callback=on_progress
            )
        except MCPError as exc:
            lost.append(exc)

    with anyio.fail_after(60):
        async with serving(config, state_dir, errlog) as client:
            async with anyio.create_task_group() as tg:
                tg.start_soon(run_chain, client)
                await reached.wait()
                await anyio.sleep(delay_s)
                meta = meta_server()
                family = [meta, *meta.children(recursive=True)]
                meta.kill()
    with anyio.fail_after(15):
        await wait_gone(family)  # the downstream server, its parent gone, exits by itself
    assert len(family) == 2
    assert [exc.error.code for exc in lost] == [CONNECTION_CLOSED]
    return meta.pid


async def test_a_run_killed_five_times_at_random_points_loses_no_step_and_reruns_none_that_succeeded(
    tmp_path: Path, errlog: IO[str]
) -> None:
    rng = random.Random(SEED)
    counter_file = tmp_path / "latency-counts.json"
    state_dir = tmp_path / "state"
    config = latency_config(tmp_path, counter_file)
    kill_at = sorted(rng.sample(range(1, STEPS - 1), KILLS))  # k steps succeeded, k in 1..28
    seen: dict[str, StepRun] = {}  # every step ever seen recorded succeeded, as first seen
    calls_when_seen: dict[str, int] = {}  # its downstream call count then
    in_flight_calls = 0  # calls that reached the downstream for a step that was not recorded succeeded at a kill
    previous = flaky_calls(counter_file)
    for life, k in enumerate(kill_at):
        # Not waiting for anything: a random point inside the next step (its call, its commits).
        pid = await live_until_killed(config, state_dir, errlog, k, rng.uniform(0, STEP_MS / 1000))
        run, steps = await stored_steps(state_dir)
        assert run is not None and run.status is RunStatus.RUNNING and run.owner_pid == pid
        n = succeeded_prefix(steps)
        assert n >= k, f"life {life}: step {k} was reported done, yet only {n} steps are recorded succeeded"
        for sid, first in seen.items():  # nothing recorded earlier was lost or rewritten
            assert steps[sid] == first, f"life {life}: {sid} changed after it succeeded"
        now = flaky_calls(counter_file)
        for sid in STEP_IDS[n:]:
            # Only the step after the prefix can have been in flight; nothing after it has started.
            assert now.get(sid, 0) - previous.get(sid, 0) <= (1 if sid == STEP_IDS[n] else 0), (life, sid)
            in_flight_calls += now.get(sid, 0) - previous.get(sid, 0)
        for sid in STEP_IDS[:n]:
            if sid not in seen:
                seen[sid], calls_when_seen[sid] = steps[sid], now[sid]
        previous = now

    with anyio.fail_after(60):
        async with serving(config, state_dir, errlog) as client:
            run, steps = await stored_steps(state_dir)  # the new server is up: it has marked the run
            assert run is not None and run.status is RunStatus.INTERRUPTED
            assert not [s for s in steps.values() if s.status is StepStatus.RUNNING]
            assert {sid for sid, s in steps.items() if s.status is StepStatus.SUCCEEDED} == set(seen)
            resumed = await client.call_tool("execute_chain", {"options": {"run_id": RUN_ID}})

    result = resumed.structured_content
    assert result is not None, resumed.content
    assert (result["run_id"], result["status"]) == (RUN_ID, "succeeded")
    run, steps = await stored_steps(state_dir)
    assert run is not None and run.status is RunStatus.SUCCEEDED
    assert [steps[sid].status for sid in STEP_IDS] == [StepStatus.SUCCEEDED] * STEPS
    for sid, first in seen.items():
        assert steps[sid] == first, f"{sid} was run again after it had succeeded"
    calls = flaky_calls(counter_file)
    assert set(calls) == set(STEP_IDS)
    for sid, when_seen in calls_when_seen.items():
        assert calls[sid] == when_seen, f"{sid} was called again after it had succeeded"
    for sid in STEP_IDS:
        assert steps[sid].output == {"ok": True, "call": calls[sid]}  # its stored output is its last call's
        assert 1 <= calls[sid] <= steps[sid].attempts  # a call is only made after its start is committed
    # Each kill can cost at most the one call in flight (the chain is sequential); everything else ran once.
    assert sum(calls.values()) == STEPS + in_flight_calls
    assert in_flight_calls <= KILLS
    print(f"\nseed {SEED}: killed after {kill_at} steps; {in_flight_calls} in-flight calls repeated")


def hold_write_lock(db: Path) -> sqlite3.Connection:
    """Another process's view: a connection holding SQLite's write lock on ``db`` until it is closed."""
    conn = sqlite3.connect(db, isolation_level=None, timeout=10)
    conn.execute("BEGIN EXCLUSIVE")
    return conn


async def test_serve_exits_once_with_a_clear_error_while_another_process_locks_the_store(
    tmp_path: Path, errlog: IO[str]
) -> None:
    state_dir = tmp_path / "state"
    async with RunStore.open(state_dir):
        pass
    marker = tmp_path / "downstream-started"
    touch = {"command": sys.executable, "args": ["-c", f"open({str(marker)!r}, 'w')"]}
    config = tmp_path / "servers.json"
    config.write_text(json.dumps({"mcpServers": {"touch": touch}}), encoding="utf-8")
    params = serve_params(config, state_dir)
    locker = hold_write_lock(state_dir / DB_FILENAME)
    try:
        with anyio.fail_after(30):
            # stdin stays open, as a host's does: the server must leave by itself, not on EOF
            async with await anyio.open_process(
                [params.command, *params.args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errlog,
                env=params.env,
            ) as process:  # fmt: skip
                await process.wait()
    finally:
        locker.close()
    stderr = (tmp_path / "serve.log").read_text(encoding="utf-8")
    assert process.returncode == 1, stderr
    assert f"error: the run store {state_dir / DB_FILENAME} is locked by another process" in stderr
    assert "hint: another mcp-conductor is writing to the same state directory" in stderr
    assert "Traceback" not in stderr
    assert not marker.exists()  # it stopped before starting any downstream server
    assert psutil.Process().children() == []


async def test_serve_exits_once_with_a_clear_error_when_the_state_dir_cannot_be_created(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a directory", encoding="utf-8")
    state_dir = tmp_path / "a-file" / "state"
    config = tmp_path / "servers.json"
    config.write_text(json.dumps({"mcpServers": {}}), encoding="utf-8")
    params = serve_params(config, state_dir)
    with anyio.fail_after(30):
        result = await anyio.run_process([params.command, *params.args], env=params.env, check=False)
    stderr = result.stderr.decode()
    assert result.returncode == 1, stderr
    assert stderr.splitlines() == [
        f"error: cannot create the state directory {state_dir} (Not a directory)",
        "hint: set --state-dir or MCP_CONDUCTOR_STATE_DIR to a writable directory",
    ]


async def test_a_lock_held_by_another_process_for_a_moment_does_not_fail_the_running_chain(
    tmp_path: Path, errlog: IO[str]
) -> None:
    counter_file = tmp_path / "latency-counts.json"
    state_dir = tmp_path / "state"
    config = latency_config(tmp_path, counter_file)
    plan = {"steps": PLAN["steps"][:10], "outputs": [STEP_IDS[9]]}  # type: ignore[index]
    progress: list[float] = []
    two_done = anyio.Event()

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append(done)
        if done >= 2:
            two_done.set()

    with anyio.fail_after(60):
        async with serving(config, state_dir, errlog) as client, anyio.create_task_group() as tg:
            result: list[Any] = []

            async def run_chain() -> None:
                result.append(
                    await client.call_tool(
                        "execute_chain",
                        {"plan": plan, "options": {"run_id": "locked", "detail": "steps"}},
                        progress_callback=on_progress,
                    )
                )

            tg.start_soon(run_chain)
            await two_done.wait()
            locker = hold_write_lock(state_dir / DB_FILENAME)
            try:
                committed = locker.execute(
                    "SELECT count(*) FROM steps WHERE run_id = 'locked' AND status = 'succeeded'"
                ).fetchone()[0]
                await anyio.sleep(1.5)  # holding the lock (well under the store's 5 s busy timeout) is the fault
                reported_while_locked = max(progress)
            finally:
                locker.close()
    # While we held the lock no step could commit, and progress is only reported after a step's commit.
    assert reported_while_locked <= committed < 10
    [called] = result
    assert called.structured_content is not None, called.content
    assert called.structured_content["status"] == "succeeded"
    assert [s["status"] for s in called.structured_content["steps"]] == ["succeeded"] * 10
    assert sum(flaky_calls(counter_file).values()) == 10
