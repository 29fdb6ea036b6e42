"""End to end over stdio: a host starts ``mcp-conductor serve`` on the demo servers and uses the three meta tools."""

import json
import signal
import subprocess
import sys
from contextlib import suppress
from pathlib import Path
from typing import Any

import anyio
import psutil
import pytest
from mcp.types import CallToolResult

from mcp_conductor.cli.demo import DEMO_PLAN
from mcp_conductor.demo import DEMO_CONFIG_PATH

pytestmark = pytest.mark.e2e

FAULTY = Path(__file__).parents[1] / "fixtures" / "faulty_server.py"
DEMO_SERVERS = json.loads(DEMO_CONFIG_PATH.read_text(encoding="utf-8"))["mcpServers"]
META_TOOLS = {"discover_tools", "plan_chain", "execute_chain"}

# query -> (the tool a person would pick, the rank it must reach at least)
PHRASINGS = {
    "how many words are in this text": ("text/word_stats", 3),
    "convert kilometers to miles": ("math/convert_units", 1),
    "store a note": ("notes/put", 3),
    "save a note under a key": ("notes/put", 3),
    "read the contents of a file": ("files/read_text", 3),
    "list the files in a folder": ("files/list_files", 1),
    "extract the keywords of a document": ("text/keywords", 1),
    "average and median of a list of numbers": ("math/statistics", 1),
    "make the text upper case": ("text/convert_case", 1),
    "wait for some milliseconds": ("latency/sleep", 1),
    "look up a saved note by its key": ("notes/get", 3),
    "what notes do I have": ("notes/list_keys", 3),
}


def spawned(marker: str) -> list[psutil.Process]:
    """Processes below this test whose command line contains ``marker``."""
    found = []
    for process in psutil.Process().children(recursive=True):
        with suppress(psutil.Error):
            if marker in " ".join(process.cmdline()):
                found.append(process)
    return found


async def until_spawned(marker: str) -> list[psutil.Process]:
    """Until a process whose command line contains ``marker`` runs below this test (bounded by the caller)."""
    while not (found := spawned(marker)):  # noqa: ASYNC110 - processes offer no event to wait on
        await anyio.sleep(0.05)
    return found


def text_of(result: CallToolResult) -> str:
    return " ".join(getattr(block, "text", "") for block in result.content)


async def test_initialize_and_tools_list_answer_while_a_downstream_server_is_still_starting(
    tmp_path: Path, serve_stdio, make_config
):
    # "stuck" never answers its handshake, and its connect timeout is far beyond this test's deadline: the host
    # only gets its answers in time if the meta server does not wait for its downstream servers.
    stuck = {"command": sys.executable, "args": [str(FAULTY), "hang_init"]}
    config = make_config({**DEMO_SERVERS, "stuck": stuck}, {"servers": {"stuck": {"connect_timeout_s": 600}}})
    with anyio.fail_after(20):
        async with serve_stdio(config, "--state-dir", str(tmp_path / "state")) as client:
            listed = await client.list_tools()
            await until_spawned("hang_init")  # so that the leak check on disconnect covers it
    tools = {tool.name: tool for tool in listed.tools}
    assert set(tools) == META_TOOLS
    for tool in tools.values():
        assert tool.input_schema["type"] == "object"
        assert tool.output_schema is not None and tool.output_schema["type"] == "object"
        assert tool.description is not None
    # The plan format is described once, in execute_chain's description; plan_chain's points to it.
    described = {name: tool.description or "" for name, tool in tools.items()}
    assert '"server/tool"' in described["discover_tools"] and '"server/tool"' in described["execute_chain"]
    assert "execute_chain's format" in described["plan_chain"]
    assert tools["plan_chain"].input_schema["required"] == ["plan"]


async def test_discover_tools_finds_the_tool_a_person_would_pick_for_plain_phrasings(tmp_path: Path, serve_stdio):
    found: dict[str, dict[str, Any]] = {}
    with anyio.fail_after(60):
        async with serve_stdio(DEMO_CONFIG_PATH, "--state-dir", str(tmp_path)) as client:
            for query in PHRASINGS:
                result = await client.call_tool("discover_tools", {"query": query, "top_k": 5, "detail": "full"})
                assert result.structured_content is not None, text_of(result)
                found[query] = result.structured_content
    assert {(f["total_tools"], len(f["tools"]) <= 5, str(f["unavailable_servers"])) for f in found.values()} == {
        (21, True, "[]")
    }
    ranked = {query: [tool["id"] for tool in f["tools"]] for query, f in found.items()}
    first = found["wait for some milliseconds"]["tools"][0]
    assert first["server"] == "latency" and first["name"] == "sleep"
    assert first["input_schema"]["properties"]["ms"]["type"] == "number"
    assert first["output_schema"]["properties"]["slept_ms"]["type"] == "number"
    misses = {
        query: ranked[query] for query, (expected, rank) in PHRASINGS.items() if expected not in ranked[query][:rank]
    }
    assert misses == {}


async def test_a_server_whose_command_does_not_exist_is_reported_unavailable_and_the_others_still_answer(
    tmp_path: Path, serve_stdio, make_config
):
    ghost = {"command": "mcp-server-that-does-not-exist", "args": ["--stdio"]}
    config = make_config({**DEMO_SERVERS, "ghost": ghost})
    with anyio.fail_after(60):
        async with serve_stdio(config, "--state-dir", str(tmp_path / "state")) as client:
            result = await client.call_tool("discover_tools", {"query": "count the words in a text", "top_k": 3})
            only_ghost = await client.call_tool("discover_tools", {"query": "anything", "servers": ["ghost"]})
    found = result.structured_content
    assert found is not None
    assert found["tools"][0]["id"] == "text/word_stats"
    [down] = found["unavailable_servers"]
    assert (down["server"], down["state"]) == ("ghost", "failed")
    assert "mcp-server-that-does-not-exist" in down["error"]
    assert only_ghost.structured_content is not None
    assert only_ghost.structured_content["tools"] == []
    assert [s["server"] for s in only_ghost.structured_content["unavailable_servers"]] == ["ghost"]


async def test_an_unknown_server_in_the_filter_is_an_error_that_lists_the_valid_names(tmp_path: Path, serve_stdio):
    with anyio.fail_after(60):
        async with serve_stdio(DEMO_CONFIG_PATH, "--state-dir", str(tmp_path)) as client:
            result = await client.call_tool("discover_tools", {"query": "add numbers", "servers": ["math", "mathz"]})
    assert result.is_error
    message = text_of(result)
    assert "unknown server 'mathz'" in message
    assert "files, latency, math, notes, text" in message


async def test_plan_chain_levels_the_demo_plan_and_execute_chain_runs_it_by_plan_id(tmp_path: Path, serve_stdio):
    with anyio.fail_after(60):
        async with serve_stdio(DEMO_CONFIG_PATH, "--state-dir", str(tmp_path)) as client:
            planned = await client.call_tool("plan_chain", {"plan": DEMO_PLAN})
            assert planned.structured_content is not None, text_of(planned)
            plan_id = planned.structured_content["plan_id"]
            executed = await client.call_tool("execute_chain", {"plan_id": plan_id, "options": {"detail": "steps"}})
            run = executed.structured_content
            assert run is not None, text_of(executed)
            full = await client.read_resource(f"conductor://runs/{run['run_id']}/steps/stats")
    plan = planned.structured_content
    assert plan["valid"] is True and "errors" not in plan and not planned.is_error
    assert plan["plan_id"].startswith("plan_")
    assert plan["levels"] == [["read"], ["stats", "kw"], ["save"]]
    assert plan["critical_path"][0] == "read" and plan["critical_path"][-1] == "save"
    assert run["status"] == "succeeded" and not executed.is_error
    assert {s["id"]: (s["status"], s["attempts"]) for s in run["steps"]} == {
        "read": ("succeeded", 1), "stats": ("succeeded", 1), "kw": ("succeeded", 1), "save": ("succeeded", 1),
    }  # fmt: skip
    assert run["outputs"]["stats"]["words"] > 0
    assert len(run["outputs"]["kw"]["keywords"]) == 5
    assert run["outputs"]["save"]["key"] == "summary"
    assert json.loads(full.contents[0].text) == run["outputs"]["stats"]


async def test_plan_chain_reports_every_problem_of_a_broken_plan_at_once(tmp_path: Path, serve_stdio):
    broken = {
        "steps": [
            {"id": "count", "tool": "text/word_stat", "arguments": {"text": "a few words"}},
            {"id": "kw", "tool": "text/keywords", "arguments": {"text": "${steps.nope.x}"}},
            {"id": "ping", "tool": "latency/echo", "arguments": {"value": "${steps.pong.value}"}},
            {"id": "pong", "tool": "latency/echo", "arguments": {"value": "${steps.ping.value}"}},
        ]
    }
    with anyio.fail_after(60):
        async with serve_stdio(DEMO_CONFIG_PATH, "--state-dir", str(tmp_path)) as client:
            result = await client.call_tool("plan_chain", {"plan": broken})
            executed = await client.call_tool("execute_chain", {"plan": broken})
    assert result.is_error is True  # an invalid plan, still structured
    checked = result.structured_content
    assert checked is not None
    assert checked["valid"] is False and "plan_id" not in checked
    errors = {e["kind"]: e for e in checked["errors"]}
    assert set(errors) == {"unknown_tool", "unknown_step_reference", "cycle"}
    assert (errors["unknown_tool"]["step"], errors["unknown_tool"]["field"]) == ("count", "/steps/0/tool")
    assert errors["unknown_tool"]["suggestions"][0] == "text/word_stats"
    assert (errors["unknown_step_reference"]["step"], errors["unknown_step_reference"]["field"]) == (
        "kw", "/steps/1/arguments/text",
    )  # fmt: skip
    assert "nope" in errors["unknown_step_reference"]["message"]
    assert errors["cycle"]["field"] in ("/steps/2", "/steps/3")
    assert "ping -> pong -> ping" in errors["cycle"]["message"] or "pong -> ping -> pong" in errors["cycle"]["message"]
    assert executed.structured_content is not None
    assert executed.structured_content["status"] == "invalid"
    assert "run_id" not in executed.structured_content
    assert executed.is_error is True
    assert executed.structured_content["errors"] == checked["errors"]


async def test_a_meta_server_sent_sigterm_stops_its_downstream_servers_before_it_exits(
    serve_argv, serve_errlog, serve_log: Path, make_config, host_env, wait_gone, tmp_path: Path
):
    # A downstream server started in its own session is out of reach of a kill aimed at the meta server's
    # process group, and "stuck" ignores its stdin closing: only the meta server can stop it.
    stuck = {"command": sys.executable, "args": [str(FAULTY), "hang_init"]}
    config = make_config({"stuck": stuck}, {"servers": {"stuck": {"connect_timeout_s": 600}}})
    argv = serve_argv(config, "--state-dir", str(tmp_path / "state"))
    meta = await anyio.open_process(
        argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=serve_errlog, env=host_env()
    )
    async with meta:
        with anyio.fail_after(20):
            [downstream] = await until_spawned("hang_init")
            meta.send_signal(signal.SIGTERM)
            await meta.wait()
            await wait_gone(downstream)
    log = await anyio.Path(serve_log).read_text(encoding="utf-8")
    assert "serve.stopping" in log and "signal=SIGTERM" in log
    assert "pool.stopped" in log
