"""Consent through a real host: the SDK client with (or without) an elicitation callback, and a downstream
server whose tools count their own calls, so "nothing ran" is proved by the downstream, not by our records."""

from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from mcp.client import ClientRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.types import ElicitRequestParams, ElicitResult, ToolAnnotations

from mcp_conductor.client_pool.config import in_process_config
from mcp_conductor.client_pool.consent_policy import ConsentPolicy
from mcp_conductor.server.app import build_server
from mcp_conductor.server.store.store import RunStore

DESTRUCTIVE = ToolAnnotations(read_only_hint=False, destructive_hint=True)
READ_ONLY = ToolAnnotations(read_only_hint=True)


def vault(calls: Counter[str]) -> MCPServer:
    """``erase`` is annotated destructive, ``read`` read-only, ``stamp`` not annotated (writes)."""
    server = MCPServer("vault")

    @server.tool(annotations=DESTRUCTIVE)
    async def erase(key: str) -> dict[str, str]:
        calls["erase"] += 1
        return {"erased": key}

    @server.tool(annotations=READ_ONLY)
    async def read(key: str) -> dict[str, str]:
        calls["read"] += 1
        return {"key": key, "text": f"text of {key}"}

    @server.tool()
    async def stamp(key: str, fail: bool = False) -> dict[str, str]:
        calls["stamp"] += 1
        if fail:
            raise ValueError("stamp failed")
        return {"stamped": key}

    return server


def conductor(tmp_path: Path, calls: Counter[str], policy: ConsentPolicy | None = None) -> MCPServer[Any]:
    config = in_process_config({"vault": vault(calls)}, consent=policy)
    return build_server(config, state_dir=tmp_path / "state")


PLAN = {
    "steps": [
        {"id": "get", "tool": "vault/read", "arguments": {"key": "k1"}},
        {"id": "wipe", "tool": "vault/erase", "arguments": {"key": "${steps.get.key}"}},
        {"id": "mark", "tool": "vault/stamp", "arguments": {"key": "k1"}, "depends_on": ["wipe"]},
    ]
}

ElicitFn = Callable[[ClientRequestContext, ElicitRequestParams], Awaitable[ElicitResult]]


def host(answer: str, approve: bool = True) -> tuple[ElicitFn, list[str]]:
    """An elicitation callback that answers every form the same way, and the messages it was shown."""
    shown: list[str] = []

    async def elicit(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        shown.append(params.message)
        if answer == "accept":
            return ElicitResult(action="accept", content={"approve": approve})
        return ElicitResult(action=answer)  # type: ignore[arg-type]

    return elicit, shown


async def execute(client: Client, arguments: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    with anyio.fail_after(20):
        result = await client.call_tool("execute_chain", arguments)
    return bool(result.is_error), result.structured_content or {}


async def test_an_approving_host_is_shown_exactly_the_destructive_steps_and_the_chain_runs(tmp_path: Path):
    calls: Counter[str] = Counter()
    elicit, shown = host("accept")
    async with Client(conductor(tmp_path, calls), elicitation_callback=elicit) as client:
        is_error, result = await execute(client, {"plan": PLAN})
    assert not is_error and result["status"] == "succeeded"
    assert len(shown) == 1
    listed = [line for line in shown[0].splitlines() if line.startswith("- ")]
    assert listed == ['- wipe: vault/erase (destructive) key="${steps.get.key}"']
    assert calls == Counter(read=1, erase=1, stamp=1)
    async with RunStore.open(tmp_path / "state") as store:
        (decision,) = await store.get_consents(result["run_id"])
    assert (decision.who, decision.decision, [s["id"] for s in decision.steps]) == ("host", "approved", ["wipe"])


async def test_a_declining_host_runs_nothing_and_the_run_is_recorded_declined(tmp_path: Path):
    calls: Counter[str] = Counter()
    elicit, shown = host("decline")
    async with Client(conductor(tmp_path, calls), elicitation_callback=elicit) as client:
        is_error, result = await execute(client, {"plan": PLAN})
        again_error, again = await execute(client, {"plan": PLAN, "options": {"run_id": result["run_id"]}})
    assert not is_error and result["status"] == "declined"
    assert result["error"]["kind"] == "declined" and "declined" in result["error"]["message"]
    assert calls == Counter()  # not even the read-only step: nothing runs
    assert len(shown) == 1  # the same run_id returns the recorded decision without asking again
    assert not again_error and again["status"] == "declined" and again["reused"] is True
    async with RunStore.open(tmp_path / "state") as store:
        run = await store.get_run(result["run_id"])
        (decision,) = await store.get_consents(result["run_id"])
    assert run is not None and run.status == "declined"
    assert (decision.who, decision.decision) == ("host", "declined")


async def test_accepting_the_form_without_ticking_approve_is_a_decline(tmp_path: Path):
    calls: Counter[str] = Counter()
    elicit, _ = host("accept", approve=False)
    async with Client(conductor(tmp_path, calls), elicitation_callback=elicit) as client:
        _, result = await execute(client, {"plan": PLAN})
    assert result["status"] == "declined" and calls == Counter()


async def test_a_host_that_cannot_elicit_gets_a_refusal_naming_the_config_line(tmp_path: Path):
    calls: Counter[str] = Counter()
    async with Client(conductor(tmp_path, calls)) as client:
        is_error, result = await execute(client, {"plan": PLAN})
    assert is_error and result["status"] == "consent_required"
    line = '"conductor": {"consent": {"allow": ["vault/erase"]}}'
    assert line in result["error"]["message"] and result["consent"]["allow"] == line
    assert [s["id"] for s in result["consent"]["steps"]] == ["wipe"]
    assert calls == Counter()


async def test_allow_patterns_run_without_a_form(tmp_path: Path):
    calls: Counter[str] = Counter()
    elicit, shown = host("decline")
    policy = ConsentPolicy(allow=("vault/*",))
    async with Client(conductor(tmp_path, calls, policy), elicitation_callback=elicit) as client:
        _, result = await execute(client, {"plan": PLAN})
    assert result["status"] == "succeeded" and shown == []
    assert calls == Counter(read=1, erase=1, stamp=1)


async def test_mode_allow_turns_consent_off(tmp_path: Path):
    calls: Counter[str] = Counter()
    async with Client(conductor(tmp_path, calls, ConsentPolicy(mode="allow"))) as client:
        _, result = await execute(client, {"plan": PLAN})
    assert result["status"] == "succeeded" and calls["erase"] == 1


async def test_an_ask_pattern_on_a_tool_that_only_writes_brings_a_form(tmp_path: Path):
    calls: Counter[str] = Counter()
    elicit, shown = host("accept")
    policy = ConsentPolicy(allow=("vault/erase",), ask=("vault/st*",))
    plan = {"steps": [{"id": "mark", "tool": "vault/stamp", "arguments": {"key": "k9"}}]}
    async with Client(conductor(tmp_path, calls, policy), elicitation_callback=elicit) as client:
        _, result = await execute(client, {"plan": plan})
    assert result["status"] == "succeeded"
    assert [line for line in shown[0].splitlines() if line.startswith("- ")] == [
        '- mark: vault/stamp (writes, asked by consent.ask) key="k9"'
    ]


async def test_a_chain_of_read_only_steps_asks_nothing(tmp_path: Path):
    calls: Counter[str] = Counter()
    elicit, shown = host("decline")
    plan = {"steps": [{"id": "get", "tool": "vault/read", "arguments": {"key": "k1"}}]}
    async with Client(conductor(tmp_path, calls), elicitation_callback=elicit) as client:
        _, result = await execute(client, {"plan": plan})
    assert result["status"] == "succeeded" and shown == []


async def test_a_resume_asks_again_only_for_the_steps_that_have_not_run(tmp_path: Path):
    calls: Counter[str] = Counter()
    elicit, shown = host("accept")
    policy = ConsentPolicy(ask=("vault/stamp",))
    plan = {
        "inputs": {"fail": True},
        "steps": [
            {"id": "wipe", "tool": "vault/erase", "arguments": {"key": "k1"}},
            {"id": "mark", "tool": "vault/stamp", "arguments": {"key": "k1", "fail": "${inputs.fail}"}},
        ],
    }
    async with Client(conductor(tmp_path, calls, policy), elicitation_callback=elicit) as client:
        _, first = await execute(client, {"plan": plan})
        _, resumed = await execute(client, {"inputs": {"fail": False}, "options": {"resume_run_id": first["run_id"]}})
    assert first["status"] == "failed" and resumed["status"] == "succeeded"
    assert [[line[2:6] for line in form.splitlines() if line.startswith("- ")] for form in shown] == [
        ["wipe", "mark"],
        ["mark"],
    ]
    assert calls == Counter(erase=1, stamp=2)


async def test_plan_chain_and_discover_tools_show_the_effects(tmp_path: Path):
    calls: Counter[str] = Counter()
    async with Client(conductor(tmp_path, calls)) as client:
        planned = await client.call_tool("plan_chain", {"plan": PLAN})
        found = await client.call_tool("discover_tools", {"query": ""})
    assert (planned.structured_content or {})["effects"] == {"destructive": ["wipe"], "writes": ["mark"]}
    effects = {hit["id"]: hit["effect"] for hit in (found.structured_content or {})["tools"]}
    assert effects == {"vault/erase": "destructive", "vault/read": "read_only", "vault/stamp": "writes"}


async def test_the_form_also_works_for_a_host_of_the_handshake_era(tmp_path: Path):
    calls: Counter[str] = Counter()
    elicit, shown = host("decline")
    async with Client(conductor(tmp_path, calls), elicitation_callback=elicit, mode="legacy") as client:
        _, result = await execute(client, {"plan": PLAN})
    assert result["status"] == "declined" and len(shown) == 1 and calls == Counter()
