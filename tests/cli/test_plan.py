"""``mcp-conductor plan`` through the real entry point, against the demo servers."""

from __future__ import annotations

import json

from mcp_conductor.cli.demo import DEMO_PLAN
from mcp_conductor.demo import DEMO_CONFIG_PATH

BAD_PLAN = {"steps": [
    {"id": "a", "tool": "text/word_stat", "arguments": {"text": "hi"}},
    {"id": "b", "tool": "text/keywords", "arguments": {"text": "${steps.zz.text}"}},
]}  # fmt: skip


def test_a_valid_plan_prints_levels_critical_path_and_estimate(cli, write_json, tmp_path):
    plan = write_json("plan.json", DEMO_PLAN)
    done = cli("plan", str(plan), "--config", str(DEMO_CONFIG_PATH), "--state-dir", str(tmp_path / "state"))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "plan.json: valid, 4 steps in 3 levels"
    assert lines[1].startswith("plan id        plan_")
    assert "levels         read  |  stats, kw  |  save" in lines
    assert "critical path  read -> stats -> save" in lines
    assert any(line.startswith("estimate       ~") and line.endswith("(default latencies)") for line in lines)


def test_plan_json_is_the_planner_s_result(cli, write_json, tmp_path):
    plan = write_json("plan.json", DEMO_PLAN)
    done = cli("plan", str(plan), "--json", "--config", str(DEMO_CONFIG_PATH), "--state-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["valid"] is True
    assert [sorted(level) for level in result["levels"]] == [["read"], ["kw", "stats"], ["save"]]
    assert result["critical_path"] == ["read", "stats", "save"]
    assert result["estimated_latency_ms"] > 0


def test_an_invalid_plan_lists_each_error_with_its_pointer_and_hint_and_exits_2(cli, write_json, tmp_path):
    plan = write_json("bad.json", BAD_PLAN)
    done = cli("plan", str(plan), "--config", str(DEMO_CONFIG_PATH), "--state-dir", str(tmp_path))
    assert done.returncode == 2
    assert done.stdout.startswith("bad.json: invalid plan, 2 errors")
    assert "/steps/0/tool (step a): unknown tool 'text/word_stat'" in done.stdout
    assert "hint: did you mean 'text/word_stats'" in done.stdout
    assert "/steps/1/arguments/text (step b)" in done.stdout

    as_json = cli("plan", str(plan), "--json", "--config", str(DEMO_CONFIG_PATH), "--state-dir", str(tmp_path))
    assert as_json.returncode == 2
    errors = json.loads(as_json.stdout)["errors"]
    assert {(e["field"], e["kind"]) for e in errors} == {
        ("/steps/0/tool", "unknown_tool"), ("/steps/1/arguments/text", "unknown_step_reference"),
    }  # fmt: skip


def test_an_unreadable_plan_file_is_a_two_line_error_with_exit_2(cli, tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"steps": [', encoding="utf-8")
    for path, message in [
        (tmp_path / "missing.json", "error: plan file not found"),
        (broken, "invalid JSON at line 1, column 12"),
        (tmp_path / "plan.yaml", "YAML plans are not supported"),
    ]:
        done = cli("plan", str(path), "--config", str(DEMO_CONFIG_PATH))
        assert done.returncode == 2
        assert message in done.stderr
        assert len(done.stderr.strip().splitlines()) == 2, done.stderr
        assert done.stdout == ""
