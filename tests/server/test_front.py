"""What a model reads from the three tools: small definitions, compact answers, details on request, errors it
can act on in one more call."""

import json
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from mcp.server.mcpserver import MCPServer
from pydantic import BaseModel

from mcp_conductor.client_pool.config import in_process_config
from mcp_conductor.demo import latency
from mcp_conductor.server.app import build_server
from mcp_conductor.server.discovery.results import DESCRIPTION_CHARS


class Weather(BaseModel):
    city: str
    celsius: float
    tags: list[str]


def tools_server() -> MCPServer:
    server = MCPServer("tools")

    @server.tool(description="Look up the weather of a city. " + "Lots of detail. " * 60)
    async def weather(city: str) -> Weather:
        return Weather(city=city, celsius=21.5, tags=["sunny"])

    @server.tool(description="Read a note; answers plain JSON text, no output schema.", structured_output=False)
    async def read_note(key: str) -> str:
        return json.dumps({"key": key, "content": "buy milk", "size": 8})

    return server


def conductor(tmp_path: Path) -> MCPServer[Any]:
    servers = {"tools": tools_server(), "latency": latency.build_server()}
    return build_server(in_process_config(servers), state_dir=tmp_path / "state")


async def call(client: Client, tool: str, arguments: dict[str, Any]) -> tuple[bool, dict[str, Any], str]:
    result = await client.call_tool(tool, arguments)
    text = result.content[0].text if result.content and hasattr(result.content[0], "text") else ""
    return bool(result.is_error), result.structured_content or {}, text


async def test_the_text_content_is_compact_json_equal_to_the_structured_content(tmp_path: Path):
    async with Client(conductor(tmp_path)) as client:
        with anyio.fail_after(10):
            _, found, text = await call(client, "discover_tools", {"query": "weather of a city"})
    assert json.loads(text) == found
    assert "\n" not in text and ": " not in text.split('"description"')[0]


async def test_a_compact_hit_has_a_cut_description_a_lean_schema_and_the_shape_of_its_value(tmp_path: Path):
    async with Client(conductor(tmp_path)) as client:
        with anyio.fail_after(10):
            _, found, _ = await call(client, "discover_tools", {"query": "weather of a city", "top_k": 1})
            _, full, _ = await call(
                client, "discover_tools", {"query": "weather of a city", "top_k": 1, "detail": "full"}
            )
    (hit,) = found["tools"]
    assert set(hit) == {"id", "description", "input_schema", "returns", "effect", "score"}
    assert hit["id"] == "tools/weather"
    assert len(hit["description"]) <= DESCRIPTION_CHARS and hit["description"].endswith("…")
    assert hit["input_schema"] == {"properties": {"city": {"type": "string"}}, "required": ["city"]}
    assert hit["returns"] == {"city": "string", "celsius": "number", "tags": ["string"]}
    (entry,) = full["tools"]
    assert {"server", "name", "output_schema"} <= set(entry)  # (annotations too, when the tool has some)
    assert len(json.dumps(hit)) < len(json.dumps(entry)) / 2


async def test_returns_is_learned_from_calls_of_a_tool_without_an_output_schema(tmp_path: Path):
    plan = {"steps": [{"id": "n", "tool": "tools/read_note", "arguments": {"key": "k"}}]}
    query = {"query": "read a note", "top_k": 1}
    async with Client(conductor(tmp_path)) as client:
        with anyio.fail_after(10):
            _, before, _ = await call(client, "discover_tools", query)
            is_error, run, _ = await call(client, "execute_chain", {"plan": plan})
            _, after, _ = await call(client, "discover_tools", query)
    assert "returns" not in before["tools"][0]
    assert not is_error and run["status"] == "succeeded"
    assert after["tools"][0]["returns"] == {"key": "string", "content": "string", "size": "integer"}


async def test_plan_chain_warns_when_a_path_is_not_in_the_learned_shape(tmp_path: Path):
    first = {"steps": [{"id": "n", "tool": "tools/read_note", "arguments": {"key": "k"}}]}
    typo = {
        "steps": [
            {"id": "n", "tool": "tools/read_note", "arguments": {"key": "k"}},
            {"id": "e", "tool": "latency/echo", "arguments": {"value": "${steps.n.contents}"}},
        ]
    }
    async with Client(conductor(tmp_path)) as client:
        with anyio.fail_after(10):
            _, unknown, _ = await call(client, "plan_chain", {"plan": typo})
            await call(client, "execute_chain", {"plan": first})
            _, learned, _ = await call(client, "plan_chain", {"plan": typo})
    assert [w["kind"] for w in unknown["warnings"]] == ["unchecked_reference"]
    (warning,) = learned["warnings"]
    assert warning["kind"] == "unexpected_reference_path"
    assert "it had key, content, size" in warning["message"]
    assert warning["suggestions"] == ["${steps.n.content}"]
    assert learned["valid"] is True


async def test_execute_chain_is_compact_by_default_and_lists_only_the_problems(tmp_path: Path):
    plan = {
        "steps": [
            {"id": "a", "tool": "latency/echo", "arguments": {"value": 1}},
            {"id": "b", "tool": "latency/fail", "arguments": {"message": "boom"}, "on_error": "continue"},
            {"id": "c", "tool": "latency/echo", "arguments": {"value": "${steps.b}"}},
            {"id": "d", "tool": "latency/echo", "arguments": {"value": "${steps.a.value}"}},
        ],
        "outputs": ["d"],
    }
    async with Client(conductor(tmp_path)) as client:
        with anyio.fail_after(10):
            is_error, run, text = await call(client, "execute_chain", {"plan": plan})
            _, detailed, _ = await call(client, "execute_chain", {"plan": plan, "options": {"detail": "steps"}})
    assert not is_error  # partial: some of the work was done
    assert set(run) == {"run_id", "status", "outputs", "problems"}
    assert run["status"] == "partial"
    assert list(run["outputs"]) == ["d"]
    assert [(p["id"], p["status"], p["error"]["kind"]) for p in run["problems"]] == [
        ("b", "failed", "tool_error"),
        ("c", "skipped", "skipped"),
    ]
    assert [s["id"] for s in detailed["steps"]] == ["a", "b", "c", "d"]
    assert detailed["duration_ms"] > 0
    assert len(text) < 400


async def test_a_failed_run_and_an_invalid_plan_are_error_results_with_the_same_shape(tmp_path: Path):
    failing = {"steps": [{"id": "a", "tool": "latency/fail", "arguments": {"message": "boom"}}]}
    invalid = {"steps": [{"id": "a", "tool": "latency/ecko"}]}
    async with Client(conductor(tmp_path)) as client:
        with anyio.fail_after(10):
            failed = await call(client, "execute_chain", {"plan": failing})
            bad_run = await call(client, "execute_chain", {"plan": invalid})
            bad_plan = await call(client, "plan_chain", {"plan": invalid})
    assert failed[0] and failed[1]["status"] == "failed"
    assert bad_run[0] and bad_run[1]["status"] == "invalid" and bad_run[1]["errors"][0]["kind"] == "unknown_tool"
    assert bad_plan[0] and bad_plan[1]["valid"] is False and "steps" not in bad_plan[1]


async def test_plan_chain_shows_the_filled_in_plan_only_on_request(tmp_path: Path):
    plan = {"steps": [{"id": "a", "tool": "echo", "arguments": {"value": 1}}]}
    async with Client(conductor(tmp_path)) as client:
        with anyio.fail_after(10):
            _, compact, _ = await call(client, "plan_chain", {"plan": plan})
            _, detailed, _ = await call(client, "plan_chain", {"plan": plan, "detail": "plan"})
    assert set(compact) == {"valid", "plan_id", "levels", "critical_path", "estimated_latency_ms"}
    assert detailed["steps"][0]["tool"] == "latency/echo"


async def test_a_wrong_argument_type_is_one_line_naming_the_argument_expected_and_given(tmp_path: Path):
    async with Client(conductor(tmp_path)) as client:
        with anyio.fail_after(10):
            is_error, _, text = await call(client, "discover_tools", {"query": "x", "top_k": "five"})
    assert is_error
    assert "\n" not in text
    expected = "expected a valid integer, unable to parse string as an integer"
    assert text == f'invalid arguments for discover_tools: top_k: {expected}, got "five"'


async def test_odd_option_keys_and_values_still_give_one_line(tmp_path: Path):
    options = {"\n": None, "a b": 1, "timeout_s": "x\ny"}
    async with Client(conductor(tmp_path)) as client:
        with anyio.fail_after(10):
            is_error, _, text = await call(client, "execute_chain", {"plan": {"steps": []}, "options": options})
    assert is_error
    assert "\n" not in text
    assert 'options["\\n"] is not an option' in text and 'options["a b"] is not an option' in text
    assert 'options.timeout_s: expected a valid number, unable to parse string as a number, got "x\\ny"' in text


async def test_the_instructions_name_the_servers_and_their_tool_counts_once_known(tmp_path: Path):
    server = conductor(tmp_path)
    async with Client(server) as client:
        with anyio.fail_after(10):
            first = client.instructions or ""
            await call(client, "discover_tools", {"query": "x"})
            later = server.instructions or ""  # what the next initialize (another HTTP session) is told
    assert "servers: tools, latency." in first
    assert "servers: tools (2 tools), latency (6 tools)." in later


async def test_the_published_schemas_carry_no_titles_null_branches_or_schema_keywords(tmp_path: Path):
    async with Client(conductor(tmp_path)) as client:
        with anyio.fail_after(10):
            tools = (await client.list_tools()).tools
    schemas = json.dumps([[t.input_schema, t.output_schema] for t in tools])
    assert '"title"' not in schemas and "$schema" not in schemas and "anyOf" not in schemas
    assert all(t.output_schema for t in tools)


async def test_an_input_the_plan_does_not_declare_is_an_invalid_plan_naming_the_declared_ones(tmp_path: Path):
    plan = {
        "inputs": {"path": "a"},
        "steps": [{"id": "a", "tool": "latency/echo", "arguments": {"value": "${inputs.path}"}}],
    }
    async with Client(conductor(tmp_path)) as client:
        with anyio.fail_after(10):
            is_error, run, _ = await call(client, "execute_chain", {"plan": plan, "inputs": {"pth": "b"}})
    assert is_error and run["status"] == "invalid"
    (issue,) = run["errors"]
    assert (issue["kind"], issue["field"], issue["suggestions"]) == ("unknown_input", "/inputs/pth", ["path"])
    assert issue["hint"] == "the plan's inputs: path"


async def test_hits_after_the_first_three_show_a_signature_and_the_first_sentence(tmp_path: Path):
    async with Client(conductor(tmp_path)) as client:
        with anyio.fail_after(10):
            _, found, _ = await call(client, "discover_tools", {"query": "", "top_k": 50})
    first, rest = found["tools"][:3], found["tools"][3:]
    assert rest and all("input_schema" in hit and "input" not in hit for hit in first)
    assert all("input" in hit and "input_schema" not in hit for hit in rest)
    weather = next(hit for hit in rest if hit["id"] == "tools/weather")
    assert weather["input"] == "city: string"
    assert weather["description"] == "Look up the weather of a city."
