"""``mcp-conductor run`` through the real entry point on the demo servers, Ctrl-C included."""

from __future__ import annotations

import io
import json
import os
import signal
import sys
from datetime import UTC, datetime, timedelta

import anyio
import psutil
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream
from rich.console import Console

from mcp_conductor.cli.demo import DEMO_PLAN
from mcp_conductor.cli.live import RunView
from mcp_conductor.demo import DEMO_CONFIG_PATH

CONFIG = ("--config", str(DEMO_CONFIG_PATH))
LONG_PLAN = {"steps": [
    {"id": "quick", "tool": "latency/echo", "arguments": {"value": 1}},
    {"id": "nap", "tool": "latency/sleep", "arguments": {"ms": 120000}, "depends_on": ["quick"]},
    {"id": "later", "tool": "latency/echo", "arguments": {"value": "${steps.nap.slept_ms}"}},
]}  # fmt: skip


def test_run_shows_each_step_and_summarizes_the_outputs(cli, write_json, tmp_path):
    plan = write_json("plan.json", DEMO_PLAN)
    done = cli("run", str(plan), *CONFIG, "--state-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    out = done.stdout.splitlines()
    assert out[0].split() == ["step", "tool", "state", "attempts", "duration"]
    assert [line.split()[:4] for line in out[1:5]] == [
        ["read", "files/read_text", "done", "1"], ["stats", "text/word_stats", "done", "1"],
        ["kw", "text/keywords", "done", "1"], ["save", "notes/put", "done", "1"],
    ]  # fmt: skip
    headline = next(line for line in out if line.startswith("run "))
    assert headline.split()[2] == "succeeded"
    assert out[out.index("outputs:") + 1].startswith('  stats: {"words": ')
    assert "read: done in " in done.stderr  # progress goes to stderr when stdout is not a terminal


def test_run_json_is_the_execute_result_with_inputs_parsed_as_json(cli, write_json, tmp_path):
    plan = write_json(
        "echo.json",
        {"inputs": {"v": None}, "steps": [{"id": "e", "tool": "latency/echo", "arguments": {"value": "${inputs.v}"}}]},
    )
    done = cli("run", str(plan), *CONFIG, "--state-dir", str(tmp_path), "--json", "--input", 'v={"n": [1, 2]}')
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "succeeded"
    assert result["run_id"].startswith("run_")
    assert result["outputs"] == {"e": {"value": {"n": [1, 2]}, "call": 1}}
    assert [(s["id"], s["status"], s["attempts"]) for s in result["steps"]] == [("e", "succeeded", 1)]


def test_a_failed_run_exits_1_with_its_error_and_how_to_resume(cli, write_json, tmp_path):
    plan = write_json(
        "fail.json", {"steps": [{"id": "f", "tool": "latency/fail", "arguments": {"message": "on purpose"}}]}
    )
    done = cli("run", str(plan), *CONFIG, "--state-dir", str(tmp_path))
    assert done.returncode == 1
    assert "  f (latency/fail): tool_error: " in done.stdout and "on purpose" in done.stdout
    assert "resume it with: mcp-conductor runs resume run_" in done.stderr


def test_an_invalid_plan_runs_nothing_and_exits_2(cli, write_json, tmp_path):
    plan = write_json("bad.json", {"steps": [{"id": "a", "tool": "text/nope"}]})
    done = cli("run", str(plan), *CONFIG, "--state-dir", str(tmp_path))
    assert done.returncode == 2
    assert "/steps/0/tool (step a): unknown tool 'text/nope'" in done.stderr
    listed = cli("runs", "list", "--json", "--state-dir", str(tmp_path))
    assert json.loads(listed.stdout) == []


def test_bad_arguments_are_usage_errors(cli, write_json, tmp_path):
    plan = write_json("plan.json", DEMO_PLAN)
    no_name = cli("run", str(plan), *CONFIG, "--input", "nonsense")
    assert (no_name.returncode, no_name.stderr.splitlines()[0]) == (2, "error: --input 'nonsense' is not name=value")
    assert cli("run", str(plan), *CONFIG, "--timeout", "0").returncode == 2


def test_an_input_the_plan_does_not_declare_is_an_error_naming_the_declared_ones(cli, write_json, tmp_path):
    plan = write_json("plan.json", DEMO_PLAN)  # declares "path"
    done = cli("run", str(plan), *CONFIG, "--input", "pth=notes/other.md", "--state-dir", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.splitlines()[:2] == [
        "error: --input pth: the plan declares no input 'pth' (did you mean \"path\"?)",
        "hint: the plan's inputs: path",
    ]


async def test_ctrl_c_cancels_the_run_records_it_as_cancelled_and_leaves_no_child_process(cli, write_json, tmp_path):
    """A real process: SIGINT is the point."""
    plan = write_json("long.json", LONG_PLAN)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_CONDUCTOR_")}
    env |= {"NO_COLOR": "1", "HOME": str(tmp_path)}
    argv = [sys.executable, "-m", "mcp_conductor", "run", str(plan), *CONFIG, "--state-dir", str(tmp_path)]
    async with await anyio.open_process(argv, env=env) as proc:
        assert proc.stderr is not None and proc.stdout is not None
        stderr = BufferedByteReceiveStream(proc.stderr)
        seen = []
        with anyio.fail_after(60):
            while b"nap: running" not in (line := await stderr.receive_until(b"\n", 65536)):
                seen.append(line)
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 5  # the demo servers
        proc.send_signal(signal.SIGINT)
        with anyio.fail_after(30):
            code = await proc.wait()
            out = b""
            async for chunk in proc.stdout:
                out += chunk
    assert code == 130
    _, alive = psutil.wait_procs(children, timeout=5)
    assert alive == []
    assert "run_" in out.decode() and "cancelled (Ctrl-C)" in out.decode()

    state = ("--state-dir", str(tmp_path))
    listed = json.loads((await anyio.to_thread.run_sync(cli, "runs", "list", "--json", *state)).stdout)
    assert [(r["status"], r["steps"]) for r in listed] == [("cancelled", 3)]
    shown = (await anyio.to_thread.run_sync(cli, "runs", "show", listed[0]["run_id"], *state)).stdout
    lines = shown.splitlines()
    table = lines[lines.index(next(line for line in lines if line.startswith("step "))) + 1 :][:3]
    states = {line.split()[0]: line.split()[2] for line in table}
    assert states == {"quick": "done", "nap": "cancelled", "later": "skipped"}


@pytest.fixture(autouse=True)
def _no_stray_processes():
    """Every process a test started (the downstream servers of an in-process command, the Ctrl-C test's CLI) has
    exited when it ends."""
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    yield
    stray = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
    for p in stray:
        p.kill()
    assert stray == []


def test_the_summary_runs_list_runs_show_and_its_timeline_give_one_duration(cli, write_json, tmp_path):
    plan = write_json("plan.json", DEMO_PLAN)
    done = cli("run", str(plan), *CONFIG, "--state-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    headline = next(line for line in done.stdout.splitlines() if line.startswith("run "))
    run_id, duration = headline.split()[1], headline.split(" in ")[1]
    shown = cli("runs", "show", run_id, "--state-dir", str(tmp_path)).stdout.splitlines()
    assert shown[0] == f"run {run_id} succeeded in {duration}"
    scale = shown[shown.index("timeline:") + 1]
    assert scale.endswith(duration)
    listed = cli("runs", "list", "--state-dir", str(tmp_path)).stdout.splitlines()
    assert f" {duration} " in listed[1]


def test_the_live_view_ends_on_the_run_s_recorded_duration():
    view = RunView([("a", "t/a")], "run_x")
    console = Console(file=io.StringIO(), width=100)
    later = datetime.now(UTC) + timedelta(seconds=30)
    assert "30.0 s" in str(view.progress(console, later))  # still running: the time since the command started it
    view.finish(1234.5)
    assert str(view.progress(console, later)) == "0/1 steps  1234 ms  run_x"
