"""execute_chain against real stdio demo servers: a downstream killed mid-chain, and the bundled demo plan.

(The meta server itself killed mid-run and resumed is in ``test_crash_resume.py``.)
"""

import json
import sys
from pathlib import Path

import anyio
import psutil
import pytest
from structlog.testing import capture_logs

from mcp_conductor.cli.demo import DEMO_PLAN
from mcp_conductor.client_pool.config import build_config
from mcp_conductor.client_pool.config_models import ConductorConfig
from mcp_conductor.demo import DEMO_CONFIG_PATH
from mcp_conductor.server.conductor import Conductor
from mcp_conductor.server.execution.results import RunOptions

pytestmark = pytest.mark.e2e


def latency_config(counter_file: Path) -> ConductorConfig:
    return build_config(
        {
            "mcpServers": {
                "latency": {
                    "command": sys.executable,
                    "args": ["-m", "mcp_conductor.demo.latency"],
                    "env": {"LATENCY_COUNTER_FILE": str(counter_file)},
                }
            }
        }
    )


def latency_children() -> list[psutil.Process]:
    return [
        p for p in psutil.Process().children(recursive=True) if "mcp_conductor.demo.latency" in " ".join(p.cmdline())
    ]


async def wait_for_count(counter_file: Path, tool: str, count: int) -> None:
    """Wait (bounded by the caller's scope) until the latency server has counted ``count`` calls of ``tool``:
    its counters file is the only signal another process gives."""
    while True:
        try:
            calls = json.loads(await anyio.Path(counter_file).read_text())["calls"]
        except (FileNotFoundError, ValueError, KeyError):
            calls = {}
        if calls.get(tool, 0) >= count:
            return
        await anyio.sleep(0.02)


async def test_a_downstream_killed_mid_chain_reconnects_and_the_retry_succeeds(tmp_path: Path):
    counter_file = tmp_path / "c.json"
    plan = {
        "steps": [
            {
                "id": "nap",
                "tool": "latency/sleep",
                "arguments": {"ms": 1000},
                "retry": {"attempts": 3, "backoff_s": 0.1, "max_backoff_s": 0.2},
            },
            {"id": "after", "tool": "latency/echo", "arguments": {"value": "${steps.nap.slept_ms}"}},
        ]
    }
    results = []
    async with Conductor.open(latency_config(counter_file), tmp_path / "state") as conductor:
        with anyio.fail_after(30), capture_logs() as logs:
            await conductor.wait_for_startup()
            [first_child] = latency_children()

            async def run() -> None:
                results.append(await conductor.chains.execute(plan=plan, options=RunOptions(timeout_s=25)))

            async with anyio.create_task_group() as tg:
                tg.start_soon(run)
                await wait_for_count(counter_file, "sleep", 1)  # the first try is in flight
                first_child.kill()
        [second_child] = latency_children()
    [run] = results
    steps = {s.id: s for s in run.steps}
    assert run.status == "succeeded", steps
    assert steps["nap"].attempts >= 2
    assert run.outputs["after"]["value"] == 1000
    assert second_child.pid != first_child.pid
    assert json.loads(counter_file.read_text())["calls"]["sleep"] == steps["nap"].attempts
    retried = [e["kind"] for e in logs if e["event"] == "chain.step_retry_scheduled"]
    assert retried and retried[0] == "connection_lost"


async def test_the_demo_plan_runs_on_the_bundled_demo_servers(tmp_path: Path):
    raw = json.loads(DEMO_CONFIG_PATH.read_text())
    raw["mcpServers"]["notes"]["env"] = {"NOTES_FILE": str(tmp_path / "notes.json")}  # keep the notes here
    async with Conductor.open(build_config(raw), tmp_path / "state") as conductor:
        with anyio.fail_after(60):
            await conductor.wait_for_startup()
            planned = await conductor.chains.plan(DEMO_PLAN)
            run = await conductor.chains.execute(plan_id=planned.plan_id)
    assert planned.valid, planned.errors
    assert run.status == "succeeded", run.steps
    assert [s.status for s in run.steps] == ["succeeded"] * 4
    words = run.outputs["stats"]["words"]
    assert isinstance(words, int) and words > 0
    assert run.outputs["save"]["key"] == "summary"
    saved = json.loads((tmp_path / "notes.json").read_text())
    assert f"{words} words; keywords: " in json.dumps(saved)
