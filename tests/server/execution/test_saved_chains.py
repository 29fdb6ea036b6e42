"""Saved chains through the real MCP front: save_as and its versions, running a chain by name, chain steps as
sub-runs, no recursion, and discover_tools finding chains (and saying when one went stale)."""

from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations
from test_executor import conductor, execute, step_of  # type: ignore[import-not-found]

from mcp_conductor.client_pool.config import in_process_config
from mcp_conductor.demo import latency
from mcp_conductor.server.conductor import Conductor
from mcp_conductor.server.execution.engine import SubChainCall
from mcp_conductor.server.execution.results import RunOptions
from mcp_conductor.server.execution.sub_runs import MAX_RUN_ID, sub_run_id
from mcp_conductor.server.store.chains import ChainStore
from mcp_conductor.server.store.store import RunStore

GREET = {
    "inputs": {"name": "world", "punctuation": "!"},
    "steps": [
        {"id": "greet", "tool": "latency/echo", "arguments": {"value": "hello ${inputs.name}${inputs.punctuation}"}}
    ],
}
GREET_SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string", "minLength": 1}, "punctuation": {"type": "string"}},
    "required": ["name"],
    "additionalProperties": False,
}


def save_as(name: str = "greet", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "description": "Greet a person by name with a friendly hello",
        "inputs": GREET_SCHEMA,
        **extra,
    }


async def plan_chain(client: Client, plan: dict[str, Any], **arguments: Any) -> tuple[bool, dict[str, Any]]:
    result = await client.call_tool("plan_chain", {"plan": plan, **arguments})
    assert result.structured_content is not None, result.content
    return not result.is_error, result.structured_content


def greeting(plan: dict[str, Any], text: str) -> dict[str, Any]:
    step = {**plan["steps"][0], "arguments": {"value": text}}
    return {**plan, "steps": [step]}


async def test_saving_makes_versions_by_content_and_an_old_version_stays_runnable_by_name_at_version(tmp_path: Path):
    async with Client(conductor(tmp_path, latency=latency.build_server())) as client:
        with anyio.fail_after(10):
            ok, first = await plan_chain(client, GREET, save_as=save_as())
            _, again = await plan_chain(client, GREET, save_as=save_as())
            changed = greeting(GREET, "hi ${inputs.name}${inputs.punctuation}")
            _, second = await plan_chain(client, changed, save_as=save_as())
            newest = await execute(client, chain="greet", inputs={"name": "Ada"})
            old = await execute(client, chain=f"greet@{first['saved']['version']}", inputs={"name": "Ada"})
    assert ok and first["saved"]["status"] == "created" and first["saved"]["id"] == "chain/greet"
    assert again["saved"] == {**first["saved"], "status": "unchanged"}
    assert second["saved"]["status"] == "new_version"
    assert second["saved"]["version"] != first["saved"]["version"]
    assert second["saved"]["previous"] == first["saved"]["version"]
    assert newest["outputs"]["greet"]["value"] == "hi Ada!"
    assert old["outputs"]["greet"]["value"] == "hello Ada!"


async def test_only_a_valid_plan_is_saved(tmp_path: Path):
    broken = {"steps": [{"id": "a", "tool": "latency/no_such_tool"}]}
    async with Client(conductor(tmp_path, latency=latency.build_server())) as client:
        with anyio.fail_after(10):
            ok, checked = await plan_chain(client, broken, save_as={"name": "broken"})
            run = await execute(client, chain="broken")
    assert not ok and "saved" not in checked
    assert run["status"] == "invalid"
    assert run["errors"][0]["kind"] == "unknown_chain"


async def test_a_bad_name_or_an_inputs_schema_that_does_not_fit_the_plan_is_a_clear_plan_error(tmp_path: Path):
    undeclared = {**GREET_SCHEMA, "properties": {**GREET_SCHEMA["properties"], "nmae": {"type": "string"}}}
    async with Client(conductor(tmp_path, latency=latency.build_server())) as client:
        with anyio.fail_after(10):
            _, bad_name = await plan_chain(client, GREET, save_as={"name": "Notes To Memory"})
            _, bad_inputs = await plan_chain(client, GREET, save_as={"name": "greet", "inputs": undeclared})
            _, not_schema = await plan_chain(client, GREET, save_as={"name": "greet", "inputs": {"type": 5}})
            extra = await client.call_tool("plan_chain", {"plan": GREET, "save_as": {"name": "g", "nmae": "x"}})
    assert bad_name["valid"] is False
    assert bad_name["errors"][0]["kind"] == "invalid_chain_name"
    assert bad_name["errors"][0]["field"] == "/save_as/name"
    assert "lowercase letter" in bad_name["errors"][0]["message"]
    assert bad_inputs["errors"][0]["field"] == "/save_as/inputs/properties/nmae"
    assert "not one the plan declares" in bad_inputs["errors"][0]["message"]
    assert "not a valid JSON Schema" in not_schema["errors"][0]["message"]
    assert extra.is_error and "save_as.nmae is not" in extra.content[0].text  # type: ignore[union-attr]


async def test_execute_chain_checks_the_inputs_against_the_saved_schema_and_runs_nothing_when_they_do_not_fit(
    tmp_path: Path,
):
    async with Client(conductor(tmp_path, latency=latency.build_server())) as client:
        with anyio.fail_after(10):
            await plan_chain(client, GREET, save_as=save_as())
            missing = await execute(client, chain="greet", inputs={})
            wrong = await execute(client, chain="greet", inputs={"name": 7, "colour": "red"})
            count = await execute(client, {"steps": [{"id": "count", "tool": "latency/counters"}]})
    assert missing["status"] == "invalid"
    assert missing["errors"][0] == {
        "field": "/inputs",
        "kind": "invalid_inputs",
        "message": "inputs: 'name' is a required property",
        "hint": "chain/greet takes: name, punctuation (see its input_schema in discover_tools)",
        "suggestions": [],
    }
    messages = [e["message"] for e in wrong["errors"]]
    assert "inputs.name: 7 is not of type 'string'" in messages
    assert any("'colour' was unexpected" in m for m in messages)
    assert count["outputs"]["count"]["counts"].get("echo", 0) == 0


async def test_discover_tools_finds_a_saved_chain_by_its_description_and_input_names(tmp_path: Path):
    async with Client(conductor(tmp_path, latency=latency.build_server())) as client:
        with anyio.fail_after(10):
            await plan_chain(client, GREET, save_as=save_as())
            by_words = await client.call_tool("discover_tools", {"query": "friendly hello greeting", "top_k": 3})
            by_input = await client.call_tool("discover_tools", {"query": "punctuation", "top_k": 3})
            listed = await client.call_tool("discover_tools", {"servers": ["chain"]})
    hits = by_words.structured_content["tools"]  # type: ignore[index]
    assert hits[0]["id"] == "chain/greet"
    assert hits[0]["input_schema"]["required"] == ["name"]
    assert "stale" not in hits[0]
    assert by_input.structured_content["tools"][0]["id"] == "chain/greet"  # type: ignore[index]
    assert [t["id"] for t in listed.structured_content["tools"]] == ["chain/greet"]  # type: ignore[index]


def notes_server(key_schema: dict[str, Any] | None = None, with_delete: bool = True) -> MCPServer:
    """A notes server whose ``get`` takes ``key`` as a string (or ``key_schema``'s shape)."""
    server = MCPServer("notes")

    if key_schema is None:

        @server.tool()
        async def get(key: str) -> str:
            return f"note {key}"

    else:

        @server.tool()
        async def get(key: int, version: int = 1) -> str:  # the changed inputSchema
            return f"note {key} v{version}"

    if with_delete:

        @server.tool()
        async def delete(key: str) -> str:
            return f"deleted {key}"

    return server


READ_PLAN = {"inputs": {"key": "a"}, "steps": [{"id": "n", "tool": "notes/get", "arguments": {"key": "${inputs.key}"}}]}
DELETE_PLAN = {
    "inputs": {"key": "a"},
    "steps": [{"id": "d", "tool": "notes/delete", "arguments": {"key": "${inputs.key}"}}],
}


async def discover_chains(tmp_path: Path, server: MCPServer) -> dict[str, Any]:
    async with Conductor.open(in_process_config({"notes": server}), tmp_path / "state") as c:
        found = await c.discover("", servers=["chain"], top_k=10)
    return {t.id: t.stale for t in found.tools}


async def test_a_chain_is_reported_stale_when_a_tool_it_uses_is_gone_or_its_input_schema_changed(tmp_path: Path):
    async with Conductor.open(in_process_config({"notes": notes_server()}), tmp_path / "state") as c:
        with anyio.fail_after(10):
            read = await c.plan(READ_PLAN, save_as={"name": "read-note"})
            wipe = await c.plan(DELETE_PLAN, save_as={"name": "wipe-note"})
    assert read.saved is not None and wipe.saved is not None
    with anyio.fail_after(10):
        same = await discover_chains(tmp_path, notes_server())
        gone = await discover_chains(tmp_path, notes_server(with_delete=False))
        changed = await discover_chains(tmp_path, notes_server(key_schema={"type": "integer"}))
    assert same == {"chain/read-note": None, "chain/wipe-note": None}
    assert gone == {"chain/read-note": None, "chain/wipe-note": "tool notes/delete is gone"}
    assert changed["chain/read-note"] == "the input schema of notes/get changed since the chain was saved"
    assert changed["chain/wipe-note"] is None


OUTER = {
    "inputs": {"who": "Grace"},
    "steps": [
        {"id": "hello", "tool": "chain/greet", "arguments": {"name": "${inputs.who}"}},
        {"id": "shout", "tool": "latency/echo", "arguments": {"value": "${steps.hello.greet.value}"}},
    ],
}


async def test_a_chain_step_runs_as_a_linked_sub_run_whose_outputs_are_the_step_value(tmp_path: Path):
    async with Client(conductor(tmp_path, latency=latency.build_server())) as client:
        with anyio.fail_after(10):
            await plan_chain(client, GREET, save_as=save_as())
            ok, checked = await plan_chain(client, OUTER, detail="plan")
            run = await execute(client, OUTER)
    assert ok, checked
    assert checked["estimate_basis"]["hello"] == "chain"
    assert run["status"] == "succeeded"
    assert run["outputs"]["shout"]["value"] == "hello Grace!"
    assert step_of(run, "hello")["tool"] == "chain/greet"
    async with RunStore.open(tmp_path / "state") as store:
        links = await ChainStore(store).runs(parent_run_id=run["run_id"])
        sub = await store.get_run(f"{run['run_id']}.hello")
        hello = await store.get_step(run["run_id"], "hello")
    assert [(link.run_id, link.chain, link.parent_step_id) for link in links] == [
        (f"{run['run_id']}.hello", "greet", "hello")
    ]
    assert sub is not None and sub.status.value == "succeeded"
    assert hello is not None and hello.output["greet"]["value"] == "hello Grace!"


async def test_plan_chain_checks_a_chain_step_s_arguments_against_the_chain_inputs_and_that_the_chain_exists(
    tmp_path: Path,
):
    wrong = {"steps": [{"id": "h", "tool": "chain/greet", "arguments": {"name": 5}}]}
    typo = {"steps": [{"id": "h", "tool": "chain/gret", "arguments": {"name": "x"}}]}
    async with Client(conductor(tmp_path, latency=latency.build_server())) as client:
        with anyio.fail_after(10):
            await plan_chain(client, GREET, save_as=save_as())
            _, bad_arguments = await plan_chain(client, wrong)
            _, unknown = await plan_chain(client, typo)
    assert bad_arguments["errors"][0]["kind"] == "invalid_arguments"
    assert bad_arguments["errors"][0]["field"] == "/steps/0/arguments/name"
    assert unknown["errors"][0]["kind"] == "unknown_chain"
    assert unknown["errors"][0]["suggestions"] == ["chain/greet"]


async def test_a_chain_that_would_reach_itself_directly_or_through_another_is_refused(tmp_path: Path):
    uses_greet = {"steps": [{"id": "inner", "tool": "chain/greet", "arguments": {"name": "x"}}]}
    uses_wrapper = {"steps": [{"id": "inner", "tool": "chain/wrapper", "arguments": {}}]}
    async with Client(conductor(tmp_path, latency=latency.build_server())) as client:
        with anyio.fail_after(10):
            await plan_chain(client, GREET, save_as=save_as())
            _, direct = await plan_chain(client, uses_greet, save_as={"name": "greet", "inputs": {"type": "object"}})
            ok, _ = await plan_chain(client, uses_greet, save_as={"name": "wrapper"})
            _, indirect = await plan_chain(
                client, uses_wrapper, save_as={"name": "greet", "inputs": {"type": "object"}}
            )
    assert ok
    assert direct["errors"][0]["kind"] == "chain_recursion"
    assert "chain/greet is the chain being saved" in direct["errors"][0]["message"]
    assert indirect["errors"][0]["kind"] == "chain_recursion"
    assert "reaches chain/greet" in indirect["errors"][0]["message"]


async def test_a_failed_sub_run_fails_its_step_with_the_sub_run_s_reason(tmp_path: Path):
    failing = {"steps": [{"id": "boom", "tool": "latency/fail", "arguments": {"message": "disk on fire"}}]}
    outer = {"steps": [{"id": "call", "tool": "chain/fails", "arguments": {}}]}
    async with Client(conductor(tmp_path, latency=latency.build_server())) as client:
        with anyio.fail_after(10):
            ok, saved = await plan_chain(client, failing, save_as={"name": "fails"})
            run = await execute(client, outer)
    assert ok, saved
    error = step_of(run, "call")["error"]
    assert run["status"] == "failed"
    assert error["kind"] == "tool_error"
    assert f"sub-run {run['run_id']}.call of chain/fails@" in error["message"]
    assert "disk on fire" in error["message"]


async def test_a_chain_step_over_a_destructive_tool_needs_the_person_s_consent_like_the_tool_itself(tmp_path: Path):
    wipe_step = {"steps": [{"id": "wipe", "tool": "chain/wipe-note", "arguments": {"key": "b"}}]}
    async with Conductor.open(in_process_config({"notes": destructive_notes()}), tmp_path / "state") as c:
        with anyio.fail_after(10):
            saved = await c.plan(DELETE_PLAN, save_as={"name": "wipe-note"})
            checked = await c.plan(wipe_step)
            run = await c.execute(wipe_step)
            listed = await c.discover("delete a note", servers=["chain"])
    assert saved.saved is not None
    assert checked.effects == {"destructive": ["wipe"]}
    assert run.status == "consent_required"
    assert run.consent is not None and [s.tool for s in run.consent.steps] == ["chain/wipe-note"]
    assert listed.tools[0].effect == "destructive"


def destructive_notes() -> MCPServer:
    server = MCPServer("notes")

    @server.tool(annotations=ToolAnnotations(destructive_hint=True))
    async def delete(key: str) -> str:
        return f"deleted {key}"

    return server


async def test_a_foreach_chain_step_runs_one_sub_run_per_item(tmp_path: Path):
    plan = {
        "inputs": {"names": ["Ada", "Grace", "Edsger"]},
        "steps": [{"id": "each", "tool": "chain/greet", "foreach": "inputs.names", "arguments": {"name": "${item}"}}],
    }
    async with Client(conductor(tmp_path, latency=latency.build_server())) as client:
        with anyio.fail_after(10):
            await plan_chain(client, GREET, save_as=save_as())
            run = await execute(client, plan)
    assert run["status"] == "succeeded", run
    assert [v["greet"]["value"] for v in run["outputs"]["each"]] == ["hello Ada!", "hello Grace!", "hello Edsger!"]
    async with RunStore.open(tmp_path / "state") as store:
        links = await ChainStore(store).runs(parent_run_id=run["run_id"])
    assert sorted((link.run_id, link.item_index) for link in links) == [
        (f"{run['run_id']}.each.{i}", i) for i in range(3)
    ]


async def test_resuming_the_parent_resumes_the_sub_run_so_its_finished_steps_are_not_called_again(tmp_path: Path):
    flaky_chain = {
        "steps": [
            {"id": "first", "tool": "latency/echo", "arguments": {"value": 1}},
            {
                "id": "then",
                "tool": "latency/flaky",
                "arguments": {"key": "k", "fail_first": 1},
                "depends_on": ["first"],
            },
        ]
    }
    outer = {"steps": [{"id": "sub", "tool": "chain/flaky-chain", "arguments": {}}]}
    async with Client(conductor(tmp_path, latency=latency.build_server())) as client:
        with anyio.fail_after(10):
            await plan_chain(client, flaky_chain, save_as={"name": "flaky-chain"})
            failed = await execute(client, outer)
            resumed = await execute(client, options={"resume_run_id": failed["run_id"]})
            count = await execute(client, {"steps": [{"id": "count", "tool": "latency/counters"}]})
    assert failed["status"] == "failed"
    assert resumed["status"] == "succeeded", resumed
    assert resumed["outputs"]["sub"]["then"]["ok"] is True
    assert count["outputs"]["count"]["counts"]["echo"] == 1  # the sub-run's finished step ran once
    assert count["outputs"]["count"]["counts"]["flaky"] == 2


async def test_a_stored_cycle_between_chains_is_a_plan_error_before_anything_runs(tmp_path: Path):
    async with Conductor.open(in_process_config({"latency": latency.build_server()}), tmp_path / "state") as c:
        with anyio.fail_after(10):
            await c.plan(GREET, save_as={"name": "b"})
            ok = await c.plan(
                {"steps": [{"id": "x", "tool": "chain/b", "arguments": {"name": "n"}}]}, save_as={"name": "a"}
            )
            # b's new version calls a, written straight to the store as an import of a crafted file could
            a = await c.chains.library.resolve("a")
            b = await c.chains.library.resolve("b")
            cyclic = replace(b, version="0000cafe", chains=("a",), plan={"steps": [{"id": "y", "tool": "chain/a"}]})
            await c.chains.library.chains.save(cyclic)
            run = await c.execute(chain="a", inputs={})
    assert ok.valid and a.chains == ("b",)
    assert run.status == "invalid"
    assert run.errors[0].kind == "chain_recursion"
    assert "reaches itself" in run.errors[0].message


def test_a_sub_run_id_too_long_for_a_run_id_is_shortened_the_same_way_each_time():
    parent = "run_20261202162227_5a382079" + ".a_very_long_step_identifier_that_goes_on" * 2
    call = SubChainCall("greet", {}, parent, "s" * 40, 7, (), None)
    short = SubChainCall("greet", {}, "run_1", "step", None, (), None)
    assert sub_run_id(short) == "run_1.step"
    assert len(sub_run_id(call)) == MAX_RUN_ID
    assert sub_run_id(call) == sub_run_id(call) and sub_run_id(call).startswith(parent[:40])
    assert RunOptions(run_id=sub_run_id(call)).run_id == sub_run_id(call)


async def test_listing_only_saved_chains_works_before_any_is_saved_and_sees_a_new_description(tmp_path: Path):
    async with Client(conductor(tmp_path, latency=latency.build_server())) as client:
        with anyio.fail_after(10):
            empty = await client.call_tool("discover_tools", {"servers": ["chain"]})
            await plan_chain(client, GREET, save_as=save_as())
            await plan_chain(client, GREET, save_as=save_as(description="Say hello to someone"))
            listed = await client.call_tool("discover_tools", {"servers": ["chain"]})
    assert not empty.is_error and empty.structured_content["tools"] == []  # type: ignore[index]
    assert listed.structured_content["tools"][0]["description"] == "Say hello to someone"  # type: ignore[index]


async def test_a_chain_and_a_plan_in_one_call_is_refused_before_anything_runs(tmp_path: Path):
    async with Client(conductor(tmp_path, latency=latency.build_server())) as client:
        with anyio.fail_after(10):
            await plan_chain(client, GREET, save_as=save_as())
            both = await execute(client, GREET, chain="greet", inputs={"name": "x"})
    assert both["status"] == "invalid"
    assert both["errors"][0]["message"] == "chain and plan both given"
