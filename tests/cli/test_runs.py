"""``mcp-conductor runs list|show|export|import|resume`` through the real entry point."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import anyio
import pytest

from fixtures.crash import crash_during
from mcp_conductor.cli.demo import DEMO_PLAN
from mcp_conductor.demo import DEMO_CONFIG_PATH

FLAKY_PLAN = {"steps": [
    {"id": "ok", "tool": "latency/echo", "arguments": {"value": 1}},
    {"id": "flaky", "tool": "latency/flaky", "arguments": {"fail_first": 1, "key": "k"}, "depends_on": ["ok"]},
]}  # fmt: skip


@pytest.fixture(scope="module")
def store(cli, tmp_path_factory) -> tuple[Path, str]:
    """A state directory with one succeeded run of the demo plan; returns it and the run id."""
    root = tmp_path_factory.mktemp("runs")
    plan = root / "plan.json"
    plan.write_text(json.dumps(DEMO_PLAN), encoding="utf-8")
    done = cli("run", str(plan), "--config", str(DEMO_CONFIG_PATH), "--state-dir", str(root / "state"), "--json")
    assert done.returncode == 0, done.stderr
    return root / "state", json.loads(done.stdout)["run_id"]


def test_runs_list_json_has_one_record_per_run(cli, store):
    state, run_id = store
    done = cli("runs", "list", "--json", "--state-dir", str(state))
    assert done.returncode == 0, done.stderr
    [record] = json.loads(done.stdout)
    assert set(record) == {"run_id", "status", "plan_id", "started_at", "duration_ms", "steps"}
    assert (record["run_id"], record["status"], record["steps"]) == (run_id, "succeeded", 4)
    assert record["plan_id"].startswith("plan_") and record["duration_ms"] > 0


def test_runs_list_as_text_and_filtered(cli, store):
    state, run_id = store
    text = cli("runs", "list", "--state-dir", str(state)).stdout.splitlines()
    assert text[0].split() == ["run", "status", "started", "(UTC)", "duration", "steps", "plan"]
    assert text[1].split()[:2] == [run_id, "succeeded"]
    assert cli("runs", "list", "--status", "failed", "--state-dir", str(state)).stdout == "no runs with status failed\n"
    assert cli("runs", "list", "--status", "nonsense", "--state-dir", str(state)).returncode == 2


def test_runs_show_prints_steps_a_gantt_chart_and_outputs(cli, store):
    state, run_id = store
    done = cli("runs", "show", run_id, "--state-dir", str(state))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"run {run_id} succeeded in ")
    chart = lines[lines.index("timeline:") + 1 :][:5]
    assert chart[0].split()[:2] == ["0", "ms"]
    bars = {line.split("|")[0].strip(): line.split("|")[1] for line in chart[1:]}
    assert list(bars) == ["read", "stats", "kw", "save"]
    assert all(len(bar) == 40 and "#" in bar for bar in bars.values())
    assert bars["read"].index("#") <= bars["stats"].index("#") <= bars["save"].index("#")
    assert any(line.startswith('  stats: {"words": ') for line in lines)


def test_runs_show_output_prints_one_whole_output_as_json(cli, store):
    state, run_id = store
    done = cli("runs", "show", run_id, "--output", "kw", "--state-dir", str(state))
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["keywords"]) == 5
    missing = cli("runs", "show", run_id, "--output", "nope", "--state-dir", str(state))
    assert missing.returncode == 2
    assert missing.stderr.splitlines() == [
        f"error: run {run_id} has no step 'nope'",
        "hint: its steps: read, stats, kw, save",
    ]


def test_an_unknown_run_is_a_two_line_error_with_exit_2(cli, store):
    state, _ = store
    done = cli("runs", "show", "run_nope", "--state-dir", str(state))
    assert done.returncode == 2
    assert done.stderr.splitlines()[0] == f"error: no run 'run_nope' in {state}"
    assert len(done.stderr.splitlines()) == 2


def test_export_then_import_into_another_state_dir_keeps_the_whole_run(cli, store, tmp_path):
    state, run_id = store
    exported = cli("runs", "export", run_id, "--state-dir", str(state))
    assert exported.returncode == 0, exported.stderr
    data = json.loads(exported.stdout)
    assert (data["format"], data["run"]["run_id"], len(data["steps"])) == ("mcp-conductor.run/1", run_id, 4)
    assert data["plan"] is not None

    file = tmp_path / "run.json"
    assert cli("runs", "export", run_id, "-o", str(file), "--state-dir", str(state)).returncode == 0
    other = tmp_path / "other"
    imported = cli("runs", "import", str(file), "--state-dir", str(other))
    assert imported.returncode == 0, imported.stderr
    assert (
        cli("runs", "show", run_id, "--state-dir", str(other)).stdout
        == cli("runs", "show", run_id, "--state-dir", str(state)).stdout
    )

    again = cli("runs", "import", str(file), "--state-dir", str(other))
    assert again.returncode == 1
    assert "exists already" in again.stderr and "--replace" in again.stderr
    assert cli("runs", "import", str(file), "--replace", "--state-dir", str(other)).returncode == 0


def test_importing_something_that_is_not_an_export_is_a_usage_error(cli, tmp_path):
    file = tmp_path / "x.json"
    file.write_text('{"hello": 1}', encoding="utf-8")
    done = cli("runs", "import", str(file), "--state-dir", str(tmp_path))
    assert done.returncode == 2
    assert "is not a run export" in done.stderr


def test_resume_reruns_only_what_did_not_succeed(cli, write_json, tmp_path):
    latency = {"command": sys.executable, "args": ["-m", "mcp_conductor.demo.latency"],
               "env": {"LATENCY_COUNTER_FILE": str(tmp_path / "counters.json")}}  # fmt: skip
    config = write_json("servers.json", {"mcpServers": {"latency": latency}})
    plan = write_json("flaky.json", FLAKY_PLAN)
    state = ("--state-dir", str(tmp_path / "state"))
    first = cli("run", str(plan), "--config", str(config), *state, "--json")
    assert first.returncode == 1
    run_id = json.loads(first.stdout)["run_id"]

    resumed = cli("runs", "resume", run_id, "--config", str(config), *state)
    assert resumed.returncode == 0, resumed.stderr
    assert f"run {run_id} succeeded" in resumed.stdout
    rows = {line.split()[0]: line.split() for line in resumed.stdout.splitlines()[1:3]}
    assert rows["ok"][2:4] == ["done", "1"]  # kept from the first run
    assert rows["flaky"][2:4] == ["done", "2"]  # its second attempt, in the resume
    listed = json.loads(cli("runs", "list", "--json", *state).stdout)
    assert [(r["run_id"], r["status"]) for r in listed] == [(run_id, "succeeded")]


def test_runs_without_an_action_shows_its_help_and_exits_2(cli):
    done = cli("runs")
    assert done.returncode == 2
    assert "list" in done.stderr and "resume" in done.stderr


def test_resume_leaves_a_write_cut_off_by_a_crash_unknown_until_rerun_unknown(cli, write_json, tmp_path):
    latency = {"command": sys.executable, "args": ["-m", "mcp_conductor.demo.latency"],
               "env": {"LATENCY_COUNTER_FILE": str(tmp_path / "counters.json")}}  # fmt: skip
    config = write_json("servers.json", {"mcpServers": {"latency": latency}})
    write = {"id": "write", "tool": "latency/slow_write", "arguments": {"key": "k", "ms": "${inputs.ms}"}}
    plan = write_json("write.json", {"inputs": {"ms": 60_000}, "steps": [{**write, "timeout_s": 0.2}]})
    state = ("--state-dir", str(tmp_path / "state"))
    first = cli("run", str(plan), "--config", str(config), *state, "--json")
    assert first.returncode == 1
    run_id = json.loads(first.stdout)["run_id"]
    anyio.run(crash_during, tmp_path / "state", run_id, "write")

    unknown = cli("runs", "resume", run_id, "--config", str(config), *state, "--input", "ms=0")
    assert unknown.returncode == 1
    assert unknown.stdout.splitlines()[1].split()[:3] == ["write", "latency/slow_write", "unknown"], unknown.stdout
    assert "unknown_outcome" in unknown.stdout
    assert f"runs resume {run_id} --rerun-unknown" in unknown.stderr
    rerun = cli("runs", "resume", run_id, "--config", str(config), *state, "--input", "ms=0", "--rerun-unknown")
    assert rerun.returncode == 0, rerun.stderr
    assert f"run {run_id} succeeded" in rerun.stdout
    counts = json.loads((tmp_path / "counters.json").read_text(encoding="utf-8"))
    assert counts["calls"] == {"slow_write": 2}  # the first run's timed-out call and the asked-for one
