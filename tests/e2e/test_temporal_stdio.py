"""The three-process Temporal setup as a user runs it: a dev server, ``mcp-conductor worker`` and
``mcp-conductor serve --engine temporal`` over stdio, on the latency demo server (started by the worker)."""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

import fixtures.env

pytestmark = pytest.mark.e2e


@pytest.fixture
def worker(tmp_path: Path, temporal_address: str) -> Iterator[Callable[[Path, str], subprocess.Popen[bytes]]]:
    """``worker(config, task_queue)``: an ``mcp-conductor worker`` child; stopped with SIGTERM afterwards."""
    started: list[subprocess.Popen[bytes]] = []
    log = tmp_path / "worker.log"

    def start(config: Path, queue: str) -> subprocess.Popen[bytes]:
        # -m mcp_conductor.__main__, not -m mcp_conductor: serve_stdio waits for the meta servers to leave
        argv = [
            sys.executable,
            "-m",
            "mcp_conductor.__main__",
            "--log-level",
            "info",
            "worker",
            "--config",
            str(config),
        ]
        argv += ["--temporal-address", temporal_address, "--task-queue", queue, "--state-dir", str(tmp_path / "state")]
        env = fixtures.env.host_env(tmp_path / "home")
        with open(log, "ab") as errlog:
            process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=errlog)
        started.append(process)
        return process

    yield start
    for process in started:
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0, log.read_text()


async def until_ready(log: Path) -> None:
    """Until the worker says it polls its task queue (bounded by the caller): its log is the only signal."""
    path = anyio.Path(log)
    while "ready: task queue" not in (await path.read_text() if await path.exists() else ""):  # noqa: ASYNC110
        await anyio.sleep(0.05)


async def test_serve_with_the_temporal_engine_runs_a_chain_on_a_worker_and_records_it(
    tmp_path: Path,
    temporal_address: str,
    worker: Any,
    serve_stdio: Any,
    make_config: Any,
):
    counter = tmp_path / "counts.json"
    latency = {
        "command": sys.executable,
        "args": ["-m", "mcp_conductor.demo.latency"],
        "env": {"LATENCY_COUNTER_FILE": str(counter)},
    }
    config = make_config({"latency": latency})
    queue = f"e2e-{secrets.token_hex(4)}"
    worker(config, queue)
    plan = {
        "steps": [
            {"id": "a", "tool": "latency/echo", "arguments": {"value": "hi"}},
            {"id": "b", "tool": "latency/echo", "arguments": {"value": "${steps.a.value} there"}},
            {"id": "n", "expr": "size(steps.b.value)"},
        ]
    }
    flags = ("--engine", "temporal", "--temporal-address", temporal_address, "--task-queue", queue)
    with anyio.fail_after(60):
        await until_ready(tmp_path / "worker.log")
        async with serve_stdio(config, *flags, "--state-dir", str(tmp_path / "state")) as client:
            result = await client.call_tool("execute_chain", {"plan": plan, "options": {"run_id": "e2e-1"}})
            again = await client.call_tool("execute_chain", {"plan": plan, "options": {"run_id": "e2e-1"}})
    run = result.structured_content
    assert run is not None and run["status"] == "succeeded", run
    assert run["outputs"] == {"n": 8}
    assert again.structured_content is not None and again.structured_content["reused"] is True
    assert json.loads(counter.read_text())["calls"] == {"echo": 2}  # the worker's calls, once each
