"""Hostile and wrong input (issue 8): property tests of the planner, of execute_chain and of the config loader.

Whatever comes in, the answer is a structured result or a structured error, never an unhandled exception: the pure
planner returns a ``PlanResult`` for anything; ``plan_chain`` and ``execute_chain`` through the real MCP front return
a result or an ``is_error`` message without a traceback; the config loader raises ``ConfigError`` and nothing else.
Values that come out of a downstream server are data: a ``${...}`` inside them is never expanded again.

The meta server for the hypothesis tests over MCP runs once per module, in a blocking portal, so each example is a
plain tool call (a new server per example would make the suite slow, and hypothesis needs a sync test function).
"""

import graphlib
import json
import re
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, TextContent, ToolAnnotations

from mcp_conductor.client_pool.catalog import Catalog, CatalogSnapshot, ServerName, ToolInfo
from mcp_conductor.client_pool.config import build_config, in_process_config, parse_config
from mcp_conductor.client_pool.config_models import ConductorConfig
from mcp_conductor.errors import ConfigError
from mcp_conductor.server.app import build_server
from mcp_conductor.server.execution.results import ExecuteResult
from mcp_conductor.server.planning.models import PlanResult
from mcp_conductor.server.planning.planner import plan

READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True)
EXECUTE_EXAMPLES = 60

# -- strategies ------------------------------------------------------------------------------------------------

SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=25,
)
ODD_IDS = st.sampled_from(
    ["a", "b", "c", "s-1", "s_2", "", " ", "a b", " a", "a\n", "\t", "${steps.a}", "${", "}", "$", "$${", "a.b",
     "a[0]", '["a"]', "ä", "日本", "é", "\u202e", "\x00", "a" * 65, "CHAIN_RESULT", "-", "_", "0", "a/b"]
)  # fmt: skip
STEP_IDS = ODD_IDS | st.text(max_size=12)
REFERENCE_PARTS = st.sampled_from(
    ["${steps.", "${inputs.", "}", ".", "[", "]", "0", "-1", '["k"]', '["', "$${", "$", "${", "CHAIN_RESULT", "a",
     "b", "x", "v", "value", " ", '"', "\\", "日本", "\n", "{", "$$"]
)  # fmt: skip
WELL_FORMED_REFERENCES = st.builds(
    lambda source, name, path: "${" + f"{source}.{name}{path}" + "}",
    st.sampled_from(["steps", "inputs"]),
    st.sampled_from(["a", "b", "c", "x", "missing"]),
    st.lists(st.sampled_from([".v", ".value", "[0]", '["k"]', ".0", "[99]", '["a b"]']), max_size=3).map("".join),
)
REFERENCE_TEXT = (
    st.lists(REFERENCE_PARTS, max_size=8).map("".join)
    | WELL_FORMED_REFERENCES
    | st.tuples(st.text(max_size=5), WELL_FORMED_REFERENCES, st.text(max_size=5)).map("".join)
)
ARGUMENT_VALUES = st.recursive(
    SCALARS | REFERENCE_TEXT,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6) | REFERENCE_TEXT, inner, max_size=4)
    ),
    max_leaves=15,
)
TOOLS = st.sampled_from(
    ["e/echo", "echo", "e/say", "e/secret", "e/strict", "e/broken", "e/bad_regex", "e/ref_loop", "e/missing",
     "x/echo", "", "/", "e/", "e/echo/extra", "ech0"]
) | st.text(max_size=10)  # fmt: skip
RETRY = st.fixed_dictionaries(
    {},
    optional={
        "attempts": st.integers(-2, 12) | JSON,
        "backoff_s": st.floats(-1, 5) | JSON,
        "max_backoff_s": st.floats(-1, 5) | JSON,
        "on": st.lists(st.sampled_from(["timeout", "unavailable", "tool_error", "nonsense"])) | JSON,
    },
)


@st.composite
def plan_shaped(draw: st.DrawFn) -> dict[str, Any]:
    """Something close to a plan: odd ids, odd tools, references everywhere, sometimes a field replaced by junk."""
    ids = draw(st.lists(STEP_IDS, max_size=6))
    steps: list[Any] = []
    for step_id in ids:
        step: dict[str, Any] = {"id": step_id, "tool": draw(TOOLS)}
        if draw(st.booleans()):
            step["arguments"] = draw(st.dictionaries(st.text(max_size=6), ARGUMENT_VALUES, max_size=4))
        if draw(st.booleans()):
            step["depends_on"] = draw(st.lists(st.sampled_from(ids) | STEP_IDS if ids else STEP_IDS, max_size=3))
        if draw(st.booleans()):
            step["timeout_s"] = draw(st.floats(-1, 5) | JSON)
        if draw(st.booleans()):
            step["retry"] = draw(RETRY)
        if draw(st.booleans()):
            step["on_error"] = draw(st.sampled_from(["fail", "continue", "explode"]) | JSON)
        if draw(st.integers(0, 9)) == 0:
            step[draw(st.text(max_size=8))] = draw(JSON)  # an unknown field
        steps.append(draw(JSON) if draw(st.integers(0, 9)) == 0 else step)
    raw: dict[str, Any] = {"steps": steps}
    if draw(st.booleans()):
        raw["inputs"] = draw(st.dictionaries(st.sampled_from(["x", "a", "k"]) | st.text(max_size=5), ARGUMENT_VALUES))
    if draw(st.booleans()):
        raw["outputs"] = draw(st.lists(st.sampled_from(ids) | STEP_IDS if ids else STEP_IDS, max_size=3) | JSON)
    if draw(st.integers(0, 9)) == 0:
        raw[draw(st.sampled_from(["steps", "inputs", "outputs", "extra"]))] = draw(JSON)
    return raw


PATHS = st.lists(st.sampled_from([".value", ".secret", ".k", "[0]", ".0", '["a b"]', "[7]"]), max_size=3).map("".join)


@st.composite
def runnable_plans(draw: st.DrawFn) -> dict[str, Any]:
    """Plans that mostly pass planning, so the executor runs them: references to earlier steps with paths that may
    not exist at run time, text that may not be a string, tiny timeouts, retries, both failure policies."""
    steps: list[dict[str, Any]] = []
    for j in range(draw(st.integers(1, 6))):
        earlier = [f"s{i}" for i in range(j)]
        leaves = SCALARS | st.just("${inputs.x}")
        if earlier:
            ref = st.builds(lambda s, p: "${steps." + s + p + "}", st.sampled_from(earlier), PATHS)
            leaves = leaves | ref | st.tuples(st.text(max_size=4), ref).map("".join)
        value = draw(
            st.recursive(
                leaves, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner)
            )
        )
        tool = draw(st.sampled_from(["e/echo", "e/say", "e/secret"]))
        arguments = {"e/echo": {"value": value}, "e/say": {"text": value}, "e/secret": {}}[tool]
        step: dict[str, Any] = {"id": f"s{j}", "tool": tool, "arguments": arguments}
        if draw(st.booleans()):
            step["on_error"] = draw(st.sampled_from(["fail", "continue"]))
        if draw(st.integers(0, 3)) == 0:
            step["timeout_s"] = draw(st.floats(0.0001, 2))
        if draw(st.integers(0, 3)) == 0:
            step["retry"] = {"attempts": draw(st.integers(1, 3)), "backoff_s": 0, "max_backoff_s": 0}
        steps.append(step)
    return {"inputs": {"x": draw(JSON)}, "steps": steps}


def nested(depth: int, leaf: Any = "${inputs.leaf}") -> Any:
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


# -- the pure planner -------------------------------------------------------------------------------------------


def hostile_catalog() -> CatalogSnapshot:
    """Tools with good, strict and broken schemas, as downstream servers may list them."""
    any_value = {"type": "object", "properties": {"value": {}}}
    tools = [
        ToolInfo(ServerName("e"), "echo", input_schema=any_value, output_schema=any_value),
        ToolInfo(
            ServerName("e"),
            "strict",
            input_schema={
                "type": "object",
                "properties": {
                    "n": {"type": "integer", "minimum": 0},
                    "s": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 5},
                    "e": {"enum": ["x", "y"]},
                    "l": {"type": "array", "items": {"type": "number"}, "uniqueItems": True},
                },
                "required": ["n"],
                "additionalProperties": False,
            },
            output_schema={"type": "object", "properties": {"v": {"type": "integer"}}},
        ),
        ToolInfo(ServerName("e"), "broken", input_schema={"type": "nonsense", "properties": 5}),
        ToolInfo(ServerName("e"), "bad_regex", input_schema={"type": "object", "patternProperties": {"[": {}}}),
        ToolInfo(ServerName("e"), "ref_loop", input_schema={"$ref": "#", "properties": {"a": {"$ref": "#/nowhere"}}}),
        ToolInfo(ServerName("x"), "echo", input_schema=any_value),
    ]
    catalog = Catalog()
    for server in ("e", "x"):
        catalog.set_server_tools(ServerName(server), [t for t in tools if t.server == server])
    return catalog.snapshot()


CATALOG = hostile_catalog()


def assert_structured(result: PlanResult, *, over_mcp: bool = False) -> None:
    assert isinstance(result, PlanResult)
    assert result.valid == (not result.errors) == (result.plan_id is not None)
    if not over_mcp:  # the normalized plan stays on the server side
        assert result.valid == (result.normalized_plan is not None)
    for issue in [*result.errors, *result.warnings]:
        assert issue.kind and issue.message
        assert issue.field == "" or issue.field.startswith("/")
    json.dumps(result.model_dump(mode="json"))  # what plan_chain sends must serialize


@given(JSON)
@settings(max_examples=300, deadline=None)
def test_the_planner_answers_any_json_with_a_structured_result(raw: Any):
    assert_structured(plan(raw, CATALOG))


@given(plan_shaped())
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_the_planner_answers_plan_shaped_junk_with_a_structured_result(raw: dict[str, Any]):
    assert_structured(plan(raw, CATALOG))


@given(
    depth=st.integers(1, 3000),
    width=st.integers(0, 2_000_000),
    steps=st.integers(1, 260),
    where=st.sampled_from(["arguments", "inputs"]),
)
@settings(max_examples=40, deadline=None)
def test_deeply_nested_huge_and_long_plans_are_refused_or_planned_never_crash(
    depth: int, width: int, steps: int, where: str
):
    deep = nested(depth)
    raw: dict[str, Any] = {
        "inputs": {"leaf": 1, **({"x": deep} if where == "inputs" else {})},
        "steps": [
            {
                "id": "a",
                "tool": "e/echo",
                "arguments": {"value": deep if where == "arguments" else 0, "pad": "x" * width},
            },
            *({"id": f"s{i}", "tool": "e/echo", "arguments": {"value": "${steps.a.value}"}} for i in range(steps)),
        ],
    }
    result = plan(raw, CATALOG)
    assert_structured(result)
    if width > 1_000_000 or steps + 1 > 200:
        assert "limit_exceeded" in {e.kind for e in result.errors}


@st.composite
def reference_graphs(draw: st.DrawFn) -> tuple[int, list[tuple[int, int]], list[int]]:
    """(steps, edges j -> i meaning step j references step i, how each reference is written)."""
    size = draw(st.integers(1, 7))
    edges = draw(st.lists(st.tuples(st.integers(0, size - 1), st.integers(0, size - 1)), max_size=10, unique=True))
    styles = draw(st.lists(st.integers(0, 3), min_size=len(edges), max_size=len(edges)))
    return size, edges, styles


@given(reference_graphs())
@settings(max_examples=300, deadline=None)
def test_reference_cycles_through_interpolation_are_reported_and_acyclic_plans_are_valid(
    graph: tuple[int, list[Any], list[int]],
):
    size, edges, styles = graph
    written = ["${{steps.s{}.value}}", "text ${{steps.s{}.value}} inside", "${{steps.s{}}}", '${{steps.s{}["value"]}}']
    steps: list[dict[str, Any]] = [{"id": f"s{j}", "tool": "e/echo", "arguments": {"value": {}}} for j in range(size)]
    for (j, i), style in zip(edges, styles, strict=True):
        steps[j]["arguments"]["value"][f"from_s{i}"] = written[style].format(i)
    result = plan({"steps": steps}, CATALOG)
    assert_structured(result)
    sorter = graphlib.TopologicalSorter({f"s{j}": {f"s{i}" for jj, i in edges if jj == j} for j in range(size)})
    try:
        sorter.prepare()
        cyclic = False
    except graphlib.CycleError:
        cyclic = True
    kinds = {e.kind for e in result.errors}
    assert cyclic == bool(kinds & {"cycle", "self_dependency"}), (edges, result.errors)
    assert cyclic != result.valid, result.errors


# -- config files -----------------------------------------------------------------------------------------------

VALID_CONFIG: dict[str, Any] = {
    "mcpServers": {
        "files": {"command": "npx", "args": ["-y", "server-files", "${HOME:-/tmp}/notes"], "env": {"K": "v"}},
        "remote": {"type": "http", "url": "https://example.test/mcp", "headers": {"Authorization": "Bearer x"}},
        "old": {"url": "https://example.test/sse", "type": "sse", "disabled": True},
    },
    "conductor": {
        "defaults": {"timeout_s": 60, "connect_timeout_s": 30, "max_concurrency": 16},
        "servers": {"files": {"timeout_s": 10, "tools": {"deny": ["write_file"], "allow": ["read_file"]}}},
        "max_concurrency": 8,
        "keep_runs": 100,
        "output_budget_bytes": 4096,
    },
}
CONFIG_KEYS = st.sampled_from(
    ["mcpServers", "conductor", "command", "args", "env", "cwd", "url", "type", "headers", "disabled", "defaults",
     "servers", "tools", "allow", "deny", "timeout_s", "connect_timeout_s", "max_concurrency", "keep_runs",
     "output_budget_bytes", "autoApprove", "mcpserver", "comand", "../x", "a/b", "", " "]
)  # fmt: skip
CONFIG_STRINGS = st.sampled_from(
    ["${UNSET}", "${UNSET:-default}", "${HOME}", "${", "${1}", "$${X}", "${A:-${B}}", "mcp-conductor", "-m",
     "mcp_conductor", "http://[::1", "stdio", "http", "sse", "\x00", "é", ""]
) | st.text(max_size=10)  # fmt: skip
CONFIG_VALUES = st.recursive(
    SCALARS | CONFIG_STRINGS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(CONFIG_KEYS | st.text(max_size=6), inner, max_size=4),
    max_leaves=10,
)


@st.composite
def mutated(draw: st.DrawFn, value: Any) -> Any:
    """``value`` with some nodes replaced, deleted, added or retyped."""
    if draw(st.integers(0, 6)) == 0:
        return draw(CONFIG_VALUES)
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if draw(st.integers(0, 7)) == 0:
                continue  # deleted
            out[key] = draw(mutated(item)) if draw(st.booleans()) else item
        if draw(st.integers(0, 3)) == 0:
            out[draw(CONFIG_KEYS)] = draw(CONFIG_VALUES)
        return out
    if isinstance(value, list):
        return [draw(mutated(item)) for item in value]
    if isinstance(value, str) and draw(st.booleans()):
        return draw(CONFIG_STRINGS)
    return value


def load_or_config_error(load: Any, *args: Any) -> None:
    try:
        config = load(*args, environ={"HOME": "/home/x"})
    except ConfigError as exc:
        assert exc.message and "Traceback" not in exc.message
        return
    assert isinstance(config, ConductorConfig)
    json.dumps([server.public() for server in config.servers.values()])


@given(JSON)
@settings(max_examples=300, deadline=None)
def test_any_json_config_loads_or_raises_config_error(raw: Any):
    load_or_config_error(build_config, raw)


@given(st.text() | JSON.map(json.dumps) | st.builds(json.dumps, mutated(VALID_CONFIG)).map(lambda t: t[: len(t) // 2]))
@settings(max_examples=300, deadline=None)
def test_any_config_text_loads_or_raises_config_error(text: str):
    load_or_config_error(parse_config, text)


@given(mutated(VALID_CONFIG))
@settings(max_examples=500, deadline=None)
def test_mutations_of_a_valid_config_load_or_raise_config_error(raw: Any):
    load_or_config_error(build_config, raw)


def test_the_unmutated_config_loads():
    config = build_config(VALID_CONFIG, environ={})
    assert sorted(config.servers) == ["files", "old", "remote"]


# -- through the MCP front --------------------------------------------------------------------------------------


def echo_server() -> MCPServer:
    server = MCPServer("echo")

    @server.tool(annotations=READ_ONLY)
    async def echo(value: Any = None) -> dict[str, Any]:
        """Return the value as it came."""
        return {"value": value}

    @server.tool(annotations=READ_ONLY)
    async def say(text: str) -> CallToolResult:
        """Return the text as a plain text result (no structured content)."""
        return CallToolResult(content=[TextContent(type="text", text=text)])

    @server.tool(annotations=READ_ONLY)
    async def secret() -> dict[str, Any]:
        """A value that must never appear where it was not referenced."""
        return {"secret": "TOP-SECRET"}

    return server


@pytest.fixture(scope="module")
def meta_portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BlockingPortal, Client]]:
    """The meta server over the echo server, entered once in a portal's event loop."""
    state = tmp_path_factory.mktemp("fuzz") / "state"
    server = build_server(in_process_config({"e": echo_server()}), state_dir=state)
    with start_blocking_portal() as portal, portal.wrap_async_context_manager(Client(server)) as client:
        yield portal, client


def call(meta_portal: tuple[BlockingPortal, Client], tool: str, arguments: dict[str, Any]) -> Any:
    portal, client = meta_portal

    async def bounded() -> Any:
        with anyio.fail_after(10):
            return await client.call_tool(tool, arguments)

    return portal.call(bounded)


def assert_structured_answer(tool: str, result: Any) -> None:
    """A structured result, or an error message that is not a traceback and not the SDK's bare 'unexpected' text."""
    if not result.is_error:
        assert result.structured_content is not None
        if tool == "execute_chain":
            run = ExecuteResult.model_validate(result.structured_content)
            assert run.status in {"succeeded", "failed", "partial", "timed_out", "cancelled", "invalid"}
            for step in run.steps:
                assert step.error is None or ("\n" not in step.error.message and step.error.kind)
        else:
            assert_structured(PlanResult.model_validate(result.structured_content), over_mcp=True)
        return
    text = " ".join(getattr(block, "text", "") for block in result.content)
    assert text and "Traceback" not in text, text
    assert text.strip() != f"Error executing tool {tool}", "an unhandled exception inside the tool"
    if "\n" in text:  # only the SDK's own check of the argument types answers in several lines
        assert re.search(rf"\d+ validation errors? for {tool}Arguments$", text.splitlines()[0]), text


OPTIONS = st.fixed_dictionaries(
    {},
    optional={
        "timeout_s": st.floats(0.001, 5) | JSON,
        "default_step_timeout_s": st.floats(0.001, 5) | JSON,
        "max_concurrency": st.integers(-1, 300) | JSON,
        "on_error": st.sampled_from(["fail", "continue", "panic"]) | JSON,
        "run_id": st.sampled_from(["r1", "r2", "bad id", "x" * 101]) | JSON,
        "resume_run_id": st.sampled_from(["r1", "nope"]) | JSON,
        "output_budget_bytes": st.integers(0, 5000) | JSON,
        "surprise": JSON,
    },
)
VALID_OPTIONS = st.fixed_dictionaries(
    {},
    optional={
        "timeout_s": st.floats(0.001, 5),
        "default_step_timeout_s": st.floats(0.001, 5),
        "max_concurrency": st.integers(1, 8),
        "on_error": st.sampled_from(["fail", "continue"]),
        "run_id": st.sampled_from(["r1", "r2", "r3"]),  # repeats: the stored run comes back, or is resumed
        "output_budget_bytes": st.integers(256, 5000),
    },
)
EXECUTE_ARGUMENTS = st.fixed_dictionaries(  # half runnable, half junk
    {"plan": runnable_plans()},
    optional={"options": VALID_OPTIONS, "inputs": st.fixed_dictionaries({"x": JSON})},
) | st.fixed_dictionaries(
    {},
    optional={
        "plan": plan_shaped() | JSON,
        "plan_id": st.sampled_from(["plan_0123456789abcdef", ""]) | st.text(max_size=20) | JSON,
        "inputs": st.dictionaries(st.sampled_from(["x", "a"]) | st.text(max_size=4), ARGUMENT_VALUES) | JSON,
        "options": OPTIONS | JSON,
    },
)


@given(EXECUTE_ARGUMENTS)
@settings(
    max_examples=EXECUTE_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_execute_chain_answers_any_arguments_with_a_result_or_a_structured_error(
    meta_portal: tuple[BlockingPortal, Client], arguments: dict[str, Any]
):
    result = call(meta_portal, "execute_chain", arguments)
    assert_structured_answer("execute_chain", result)
    event("error" if result.is_error else f"run {result.structured_content['status']}")  # --hypothesis-show-statistics


@given(st.fixed_dictionaries({"plan": plan_shaped() | JSON}) | JSON.map(lambda junk: {"plan": junk}))
@settings(
    max_examples=EXECUTE_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_plan_chain_answers_any_arguments_with_a_result_or_a_structured_error(
    meta_portal: tuple[BlockingPortal, Client], arguments: dict[str, Any]
):
    assert_structured_answer("plan_chain", call(meta_portal, "plan_chain", arguments))


# -- ${ injection: values from downstream results are data ------------------------------------------------------

INJECTED = "${steps.other.secret} and ${inputs.x} and $${ and ${steps.nope"


def test_references_inside_a_downstream_result_flow_on_as_literal_text(meta_portal: tuple[BlockingPortal, Client]):
    plan = {
        "inputs": {"x": "INPUT-VALUE"},
        "steps": [
            {"id": "other", "tool": "e/secret"},
            # Escaped here ("$${"), so the planner reads no reference of this plan: INJECTED must arrive as data.
            {
                "id": "evil",
                "tool": "e/echo",
                "arguments": {"value": {"text": INJECTED.replace("${", "$${"), "${inputs.x}": 1}},
            },
            {"id": "said", "tool": "e/say", "arguments": {"text": "${steps.evil.value.text}"}},
            {
                "id": "use",
                "tool": "e/echo",
                "arguments": {
                    "value": {
                        "exact": "${steps.evil.value.text}",
                        "inside": "got: ${steps.evil.value.text}",
                        "whole": "${steps.evil.value}",
                        "from_text": "${steps.said}",
                    }
                },
                "depends_on": ["other"],
            },
        ],
        "outputs": ["use", "said"],
    }
    result = call(meta_portal, "execute_chain", {"plan": plan})
    assert not result.is_error, result.content
    run = result.structured_content
    assert run["status"] == "succeeded", run
    use = run["outputs"]["use"]["value"]
    assert use == {
        "exact": INJECTED,
        "inside": f"got: {INJECTED}",
        "whole": {"text": INJECTED, "${inputs.x}": 1},
        "from_text": INJECTED,
    }
    assert run["outputs"]["said"] == INJECTED
    assert "TOP-SECRET" not in json.dumps(run) and "INPUT-VALUE" not in json.dumps(run)


def test_references_inside_inputs_given_at_run_time_are_not_expanded(meta_portal: tuple[BlockingPortal, Client]):
    plan = {
        "inputs": {"x": "declared"},
        "steps": [
            {"id": "other", "tool": "e/secret"},
            {"id": "use", "tool": "e/echo", "arguments": {"value": "${inputs.x}"}, "depends_on": ["other"]},
        ],
        "outputs": ["use"],
    }
    result = call(meta_portal, "execute_chain", {"plan": plan, "inputs": {"x": "${steps.other.secret}"}})
    assert not result.is_error, result.content
    assert result.structured_content["outputs"]["use"] == {"value": "${steps.other.secret}"}


def test_a_downstream_text_that_parses_as_json_with_references_stays_literal(
    meta_portal: tuple[BlockingPortal, Client],
):
    payload = json.dumps({"next": "${steps.other.secret}", "list": ["${inputs.x}"]})
    plan = {
        "inputs": {"x": "INPUT-VALUE"},
        "steps": [
            {"id": "other", "tool": "e/secret"},
            {"id": "said", "tool": "e/say", "arguments": {"text": payload.replace("${", "$${")}},
            {"id": "use", "tool": "e/echo", "arguments": {"value": "${steps.said.next} ${steps.said.list[0]}"}},
        ],
        "outputs": ["use"],
    }
    result = call(meta_portal, "execute_chain", {"plan": plan})
    assert not result.is_error, result.content
    assert result.structured_content["outputs"]["use"] == {"value": "${steps.other.secret} ${inputs.x}"}
