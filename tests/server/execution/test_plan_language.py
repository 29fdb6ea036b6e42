"""Data steps, when, default and foreach, run through the real MCP front over in-process downstream servers."""

from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from test_executor import Probe, conductor, execute, statuses, step_of  # type: ignore[import-not-found]

from mcp_conductor.demo import latency
from mcp_conductor.server.planning.models import Plan


async def plan_chain(client: Client, plan: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool("plan_chain", {"plan": plan, "detail": "plan"})
    assert result.structured_content is not None, result.content
    return result.structured_content


def echo(step_id: str, value: Any, **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "tool": "latency/echo", "arguments": {"value": value}, **extra}


# -- data steps ----------------------------------------------------------------------------------------------


async def test_a_data_step_filters_a_tool_output_and_a_later_tool_step_uses_its_value(tmp_path: Path):
    notes_list = [{"name": "a", "text": "TODO: x"}, {"name": "b", "text": "done"}, {"name": "c", "text": "a TODO"}]
    plan = {
        "steps": [
            echo("notes", notes_list),
            {"id": "todo", "expr": "steps.notes.value.filter(n, n.text.contains('TODO')).map(n, n.name)"},
            echo("report", "${steps.todo}"),
        ]
    }
    async with Client(conductor(tmp_path, latency=latency.build_server())) as client:
        with anyio.fail_after(5):
            run = await execute(client, plan)
    assert run["status"] == "succeeded"
    assert run["outputs"]["report"]["value"] == ["a", "c"]
    assert step_of(run, "todo")["tool"] == "expr"
    assert step_of(run, "todo")["attempts"] == 1


async def test_a_data_step_that_fails_to_evaluate_fails_with_expression_error_showing_the_value(tmp_path: Path):
    plan = {"steps": [echo("cfg", {"content": "{}"}), {"id": "v", "expr": "json(steps.cfg.value.content).version"}]}
    async with Client(conductor(tmp_path, latency=latency.build_server())) as client:
        with anyio.fail_after(5):
            run = await execute(client, plan)
    error = step_of(run, "v")["error"]
    assert run["status"] == "failed"
    assert error["kind"] == "expression_error"
    assert "json(steps.cfg.value.content).version" in error["message"]
    assert "version" in error["message"]


# -- when and default ------------------------------------------------------------------------------------------


async def test_when_false_skips_the_step_with_reason_condition_false_and_its_dependents_too(tmp_path: Path):
    plan = {
        "inputs": {"version": 2},
        "steps": [
            echo("upgrade", "upgrade needed", when="inputs.version > 2"),
            echo("after", "${steps.upgrade.value}"),
            echo("ok", "ok", when="inputs.version <= 2"),
        ],
    }
    async with Client(conductor(tmp_path, latency=latency.build_server())) as client:
        with anyio.fail_after(5):
            run = await execute(client, plan)
    assert statuses(run) == {"upgrade": "skipped", "after": "skipped", "ok": "succeeded"}
    assert step_of(run, "upgrade")["error"]["kind"] == "condition_false"
    assert run["status"] == "succeeded"


async def test_a_skipped_step_with_a_default_lets_its_dependents_run_with_the_default(tmp_path: Path):
    plan = {
        "inputs": {"version": 2},
        "steps": [
            echo("upgrade", "upgrade needed", when="inputs.version > 2", default={"value": "n/a"}),
            echo("after", "status: ${steps.upgrade.value}"),
        ],
    }
    async with Client(conductor(tmp_path, latency=latency.build_server())) as client:
        with anyio.fail_after(5):
            run = await execute(client, plan)
    assert statuses(run) == {"upgrade": "skipped", "after": "succeeded"}
    assert run["outputs"]["after"]["value"] == "status: n/a"


async def test_a_failed_step_under_continue_with_a_default_feeds_the_default_onward(tmp_path: Path):
    plan = {
        "steps": [
            {
                "id": "bad",
                "tool": "latency/fail",
                "arguments": {"message": "no"},
                "on_error": "continue",
                "default": "fallback",
            },
            {"id": "use", "expr": "steps.bad + '!'"},
        ]
    }
    async with Client(conductor(tmp_path, latency=latency.build_server())) as client:
        with anyio.fail_after(5):
            run = await execute(client, plan)
    assert statuses(run) == {"bad": "failed", "use": "succeeded"}
    assert run["outputs"]["use"] == "fallback!"
    assert run["status"] == "partial"


async def test_a_when_that_cannot_be_evaluated_fails_the_step_and_one_that_is_not_boolean_too(tmp_path: Path):
    plan = {
        "steps": [
            echo("cfg", {"n": 1}),
            echo("a", 1, when="steps.cfg.value.missing > 1", on_error="continue"),
            echo("b", 1, when="steps.cfg.value.n", on_error="continue"),
            echo("c", 1, when="steps.cfg.value.n == 1"),
        ]
    }
    async with Client(conductor(tmp_path, latency=latency.build_server())) as client:
        with anyio.fail_after(5):
            run = await execute(client, plan)
    assert statuses(run) == {"cfg": "succeeded", "a": "failed", "b": "failed", "c": "succeeded"}
    assert step_of(run, "a")["error"]["kind"] == "expression_error"
    assert "missing" in step_of(run, "a")["error"]["message"]
    assert "not true or false" in step_of(run, "b")["error"]["message"]


# -- foreach ---------------------------------------------------------------------------------------------------


async def test_foreach_calls_the_tool_per_item_and_returns_values_in_input_order(tmp_path: Path):
    plan = {
        "steps": [
            echo("ls", [{"name": "b.md"}, {"name": "x.txt"}, {"name": "a.md"}]),
            {
                "id": "each",
                "tool": "latency/echo",
                "foreach": "steps.ls.value.filter(e, e.name.endsWith('.md'))",
                "arguments": {"value": "${index}: ${item.name}"},
            },
            {"id": "names", "expr": "steps.each.map(r, r.value)"},
        ]
    }
    async with Client(conductor(tmp_path, latency=latency.build_server())) as client:
        with anyio.fail_after(5):
            run = await execute(client, plan)
    assert run["status"] == "succeeded"
    assert run["outputs"]["names"] == ["0: b.md", "1: a.md"]
    assert step_of(run, "each")["items"] == {"succeeded": 2}
    assert step_of(run, "each")["item_errors"] == []


async def test_foreach_over_an_empty_list_succeeds_with_an_empty_list(tmp_path: Path):
    plan = {"steps": [{"id": "each", "tool": "latency/echo", "foreach": "[]", "arguments": {"value": "${item}"}}]}
    async with Client(conductor(tmp_path, latency=latency.build_server())) as client:
        with anyio.fail_after(5):
            run = await execute(client, plan)
    assert run["status"] == "succeeded"
    assert run["outputs"]["each"] == []


async def test_foreach_runs_at_most_max_concurrency_items_at_once(tmp_path: Path):
    # Every call waits inside until 3 calls are inside together: more than 3 at once would raise the peak above 3,
    # fewer would hang (fail_after).
    probe = Probe()
    plan = {
        "steps": [
            {
                "id": "each",
                "tool": "probe/gate",
                "foreach": "[1, 2, 3, 4, 5, 6, 7, 8, 9]",
                "foreach_options": {"max_concurrency": 3},
                "arguments": {"total": 9, "limit": 3},
            }
        ]
    }
    async with Client(conductor(tmp_path, probe=probe)) as client:
        with anyio.fail_after(5):
            run = await execute(client, plan)
    assert run["status"] == "succeeded"
    assert probe.peak == 3


async def test_the_run_limit_holds_across_the_items_of_a_foreach(tmp_path: Path):
    probe = Probe()
    plan = {
        "steps": [
            {
                "id": "each",
                "tool": "probe/gate",
                "foreach": "[1, 2, 3, 4, 5, 6]",
                "foreach_options": {"max_concurrency": 6},
                "arguments": {"total": 6, "limit": 2},
            }
        ]
    }
    async with Client(conductor(tmp_path, probe=probe)) as client:
        with anyio.fail_after(5):
            run = await execute(client, plan, options={"max_concurrency": 2})
    assert run["status"] == "succeeded"
    assert probe.peak == 2


async def test_under_on_item_error_continue_failed_items_are_null_and_listed_with_their_errors(tmp_path: Path):
    plan = {
        "steps": [
            {
                "id": "each",
                "tool": "probe/errors",
                "foreach": "['a', 'b', 'c', 'd']",
                "foreach_options": {"on_item_error": "continue"},
                "arguments": {"key": "${item}", "fail_first": "${index}"},  # b, c and d fail (index 1, 2, 3 >= 1)
            }
        ]
    }
    probe = Probe()
    async with Client(conductor(tmp_path, probe=probe)) as client:
        with anyio.fail_after(5):
            run = await execute(client, plan)
    each = step_of(run, "each")
    assert run["status"] == "succeeded"
    assert run["outputs"]["each"] == [{"result": 1}, None, None, None]
    assert each["items"] == {"succeeded": 1, "failed": 3}
    assert [(e["index"], e["error"]["kind"]) for e in each["item_errors"]] == [
        (1, "tool_error"),
        (2, "tool_error"),
        (3, "tool_error"),
    ]


async def test_under_on_item_error_fail_a_failed_item_fails_the_step_and_resume_reruns_only_unfinished_items(
    tmp_path: Path,
):
    probe = Probe()
    plan = {
        "inputs": {"keys": [{"k": "a", "n": 0}, {"k": "b", "n": 1}, {"k": "c", "n": 0}]},
        "steps": [
            {
                "id": "each",
                "tool": "probe/errors",
                "foreach": "inputs.keys",
                "foreach_options": {"max_concurrency": 1},
                "arguments": {"key": "${item.k}", "fail_first": "${item.n}"},
            }
        ],
    }
    async with Client(conductor(tmp_path, probe=probe)) as client:
        with anyio.fail_after(5):
            first = await execute(client, plan)
            calls_after_first = dict(probe.calls)
            second = await execute(client, options={"resume_run_id": first["run_id"]})
    assert first["status"] == "failed"
    assert step_of(first, "each")["error"]["message"].startswith("item 1 of 3:")
    assert calls_after_first == {"a": 1, "b": 1}  # c never started: the step stopped at b
    assert second["status"] == "succeeded"
    assert [v["result"] for v in second["outputs"]["each"]] == [1, 2, 1]
    assert probe.calls == {"a": 1, "b": 2, "c": 1}  # a was not called again


async def test_a_data_step_with_foreach_sees_item_and_index(tmp_path: Path):
    plan = {"steps": [{"id": "d", "expr": "string(index) + '=' + item.upperAscii()", "foreach": "['x', 'y']"}]}
    async with Client(conductor(tmp_path, latency=latency.build_server())) as client:
        with anyio.fail_after(5):
            run = await execute(client, plan)
    assert run["outputs"]["d"] == ["0=X", "1=Y"]


async def test_a_foreach_list_longer_than_max_items_fails_the_step_before_any_call(tmp_path: Path):
    probe = Probe()
    plan = {
        "steps": [
            {
                "id": "each",
                "tool": "probe/step",
                "foreach": "[1, 2, 3]",
                "foreach_options": {"max_items": 2},
                "arguments": {"name": "x${item}"},
            }
        ]
    }
    async with Client(conductor(tmp_path, probe=probe)) as client:
        with anyio.fail_after(5):
            run = await execute(client, plan)
    assert step_of(run, "each")["error"]["kind"] == "limit_exceeded"
    assert probe.calls == {}


async def test_progress_counts_the_items_of_a_foreach(tmp_path: Path):
    plan = {
        "steps": [
            {
                "id": "each",
                "tool": "latency/echo",
                "foreach": "[1, 2, 3, 4]",
                "foreach_options": {"max_concurrency": 1},
                "arguments": {"value": "${item}"},
            }
        ]
    }
    seen: list[tuple[float, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, message))

    async with Client(conductor(tmp_path, latency=latency.build_server())) as client:
        with anyio.fail_after(5):
            await client.call_tool("execute_chain", {"plan": plan}, progress_callback=on_progress)
    assert [p for p, _ in seen[1:]] == [0.25, 0.5, 0.75, 1.0, 1]
    assert seen[1][1] == "0/1 steps, each: 1/4 items"


# -- plan_chain ------------------------------------------------------------------------------------------------


async def test_plan_chain_reports_invalid_expressions_with_pointer_and_column_together_with_other_errors(
    tmp_path: Path,
):
    plan = {
        "steps": [
            echo("a", 1),
            {"id": "b", "expr": "steps.a.value +"},
            echo("c", "${item}"),
            echo("d", 1, when="steps.nosuch.x > 1"),
            {"id": "Bad-Id", "expr": "1"},
        ]
    }
    async with Client(conductor(tmp_path, latency=latency.build_server())) as client:
        result = await plan_chain(client, plan)
    errors = {(e["field"], e["kind"]): e for e in result["errors"]}
    assert not result["valid"]
    assert errors[("/steps/1/expr", "invalid_expression")]["column"] == 16
    assert ("/steps/2/arguments/value", "bad_reference") in errors
    assert ("/steps/3/when", "unknown_step_reference") in errors
    assert "use 'bad_id'" in errors[("/steps/4/id", "invalid_plan")]["message"]


async def test_plan_chain_shows_a_foreach_as_one_level_with_a_width_and_data_steps_add_no_latency(tmp_path: Path):
    plan = {
        "steps": [
            echo("ls", [1, 2]),
            {
                "id": "each",
                "tool": "latency/echo",
                "foreach": "steps.ls.value",
                "foreach_options": {"max_items": 25, "max_concurrency": 10},
                "arguments": {"value": "${item}"},
            },
            {"id": "sum", "expr": "size(steps.each)"},
        ]
    }
    async with Client(conductor(tmp_path, latency=latency.build_server())) as client:
        result = await plan_chain(client, plan)
    assert result["valid"], result["errors"]
    assert result["levels"] == [["ls"], ["each"], ["sum"]]
    assert result["fan_out"] == {"each": {"max_items": 25, "max_concurrency": 10, "waves": 3}}
    assert result["estimate_basis"]["sum"] == "in_process"
    assert result["estimated_latency_ms"] == 200.0 + 3 * 200.0  # ls, then 3 waves of each; sum costs nothing


async def test_plan_chain_refuses_foreach_options_over_the_hard_caps(tmp_path: Path):
    plan = {
        "steps": [
            {
                "id": "each",
                "tool": "latency/echo",
                "foreach": "[1]",
                "arguments": {"value": 1},
                "foreach_options": {"max_items": 5000, "max_concurrency": 51},
            }
        ]
    }
    async with Client(conductor(tmp_path, latency=latency.build_server())) as client:
        result = await plan_chain(client, plan)
    assert {e["field"] for e in result["errors"]} == {
        "/steps/0/foreach_options/max_items",
        "/steps/0/foreach_options/max_concurrency",
    }


def test_a_plan_without_the_new_fields_dumps_as_before_so_its_plan_id_is_unchanged():
    plan = Plan.model_validate({"steps": [{"id": "a", "tool": "notes/list_keys"}]})
    dumped = plan.model_dump(mode="json")["steps"][0]
    assert set(dumped) == {"id", "tool", "arguments", "depends_on", "timeout_s", "retry", "on_error"}
