from typing import Any

from inline_snapshot import snapshot

from mcp_conductor.client_pool.catalog import Catalog, CatalogSnapshot, ServerName, ToolId, ToolInfo
from mcp_conductor.server.discovery.metrics import ToolStats
from mcp_conductor.server.planning.models import Plan, PlanResult
from mcp_conductor.server.planning.planner import PlannerLimits, plan, plan_id

READ = {"readOnlyHint": True}


def obj(required: list[str] | None = None, **properties: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": required or [],
        "additionalProperties": False,
    }


STRING = {"type": "string"}
INT = {"type": "integer"}


def tool(server: str, name: str, inputs: dict[str, Any], outputs: dict[str, Any] | None, **kw: Any) -> ToolInfo:
    return ToolInfo(ServerName(server), name, input_schema=inputs, output_schema=outputs, **kw)


def demo_catalog(*extra: ToolInfo) -> CatalogSnapshot:
    tools = [
        tool(
            "text",
            "word_stats",
            obj(["text"], text=STRING),
            obj(words=INT, unique_words=INT, sentences=INT, characters=INT),
            annotations=READ,
        ),
        tool(
            "text",
            "keywords",
            obj(["text"], text=STRING, top={"type": "integer", "minimum": 1}),
            obj(keywords={"type": "array", "items": STRING}),
            annotations=READ,
        ),
        tool("notes", "put", obj(["key", "value"], key=STRING, value=STRING), obj(key=STRING, version=INT)),
        tool(
            "files",
            "read_text",
            obj(["path"], path=STRING),
            obj(path=STRING, text=STRING, bytes=INT),
            annotations=READ,
        ),
        tool(
            "latency",
            "sleep",
            obj(["ms"], ms={"type": "number"}),
            obj(slept_ms={"type": "number"}, call=INT),
            annotations=READ,
        ),
        *extra,
    ]
    catalog = Catalog()
    for server in sorted({t.server for t in tools}):
        catalog.set_server_tools(server, [t for t in tools if t.server == server])
    return catalog.snapshot()


CATALOG = demo_catalog()

ISSUE_EXAMPLE = {
    "inputs": {"path": "notes/today.md"},
    "steps": [
        {"id": "read", "tool": "files/read_text", "arguments": {"path": "${inputs.path}"}},
        {"id": "stats", "tool": "text/word_stats", "arguments": {"text": "${steps.read.text}"}},
        {"id": "kw", "tool": "text/keywords", "arguments": {"text": "${steps.read.text}", "top": 5}},
        {
            "id": "save",
            "tool": "notes/put",
            "arguments": {
                "key": "summary",
                "value": "${steps.stats.words} words; keywords: ${steps.kw.keywords}",
            },
            "timeout_s": 10,
            "retry": {"attempts": 3},
            "on_error": "fail",
        },
    ],
    "outputs": ["save", "stats"],
}


def steps(*specs: dict[str, Any], **plan_fields: Any) -> dict[str, Any]:
    return {"steps": list(specs), **plan_fields}


def kinds(result: PlanResult) -> list[tuple[str, str]]:
    return [(e.kind, e.field) for e in result.errors]


def test_the_issue_example_plans_into_levels_a_critical_path_and_an_estimate():
    result = plan(ISSUE_EXAMPLE, CATALOG)
    assert result.valid
    assert result.levels == (("read",), ("stats", "kw"), ("save",))
    assert result.critical_path == ("read", "stats", "save")
    assert result.estimated_latency_ms == 600.0
    assert result.estimate_basis == {
        "read": "default",
        "stats": "default",
        "kw": "default",
        "save": "default",
    }
    assert result.outputs == ("save", "stats")
    assert result.plan_id is not None and len(result.plan_id) == len("plan_") + 16
    assert [(w.kind, w.field) for w in result.warnings] == [("unsafe_retry", "/steps/3/retry/attempts")]


def test_the_result_dump_shows_normalized_steps_with_defaults_and_no_internal_plan():
    dumped = plan(ISSUE_EXAMPLE, CATALOG).model_dump(mode="json")
    assert "normalized_plan" not in dumped
    assert dumped["steps"][3] == snapshot(
        {
            "id": "save",
            "tool": "notes/put",
            "arguments": {
                "key": "summary",
                "value": "${steps.stats.words} words; keywords: ${steps.kw.keywords}",
            },
            "depends_on": ["stats", "kw"],
            "timeout_s": 10.0,
            "retry": {
                "attempts": 3,
                "backoff_s": 0.5,
                "max_backoff_s": 10.0,
                "on": None,
            },
            "on_error": "fail",
        }
    )
    assert dumped["steps"][0]["retry"]["attempts"] == 1
    assert dumped["steps"][0]["on_error"] is None
    assert dumped["steps"][0]["timeout_s"] is None


def test_planning_the_normalized_plan_again_gives_the_same_plan_and_id():
    first = plan(ISSUE_EXAMPLE, CATALOG)
    assert first.normalized_plan is not None
    again = plan(first.normalized_plan, CATALOG)
    assert again.plan_id == first.plan_id
    assert again.normalized_plan == first.normalized_plan
    assert plan_id(first.normalized_plan) == first.plan_id
    assert plan(first.normalized_plan.model_dump(mode="json"), CATALOG).plan_id == first.plan_id


def test_the_plan_id_ignores_spelled_out_defaults_and_bare_tool_names():
    short = steps({"id": "a", "tool": "word_stats", "arguments": {"text": "hi"}})
    spelled = steps(
        {
            "id": "a",
            "tool": "text/word_stats",
            "arguments": {"text": "hi"},
            "retry": {"attempts": 1, "on": None},
        },
        inputs={},
        outputs=["a"],
    )
    assert plan(short, CATALOG).plan_id == plan(spelled, CATALOG).plan_id
    assert plan(short, CATALOG).steps[0].tool == "text/word_stats"


def test_an_invalid_plan_has_no_id_and_no_normalized_plan():
    result = plan(steps({"id": "a", "tool": "text/nope"}), CATALOG)
    assert (result.valid, result.plan_id, result.normalized_plan) == (False, None, None)


def test_an_unknown_tool_gets_did_you_mean_suggestions():
    result = plan(steps({"id": "a", "tool": "text/wordstats", "arguments": {"text": "x"}}), CATALOG)
    [error] = result.errors
    assert (error.kind, error.field, error.step) == ("unknown_tool", "/steps/0/tool", "a")
    assert error.suggestions[0] == "text/word_stats"


def test_a_bare_name_offered_by_two_servers_is_ambiguous():
    catalog = demo_catalog(tool("backup", "put", obj(), None))
    [error] = plan(steps({"id": "a", "tool": "put", "arguments": {}}), catalog).errors
    assert error.kind == "ambiguous_tool"
    assert error.suggestions == ("backup/put", "notes/put")


def test_arguments_are_validated_against_the_input_schema():
    result = plan(
        steps(
            {"id": "a", "tool": "text/keywords", "arguments": {"txt": "x", "top": 0}},
            {"id": "b", "tool": "notes/put", "arguments": {"key": 5, "value": "v"}},
        ),
        CATALOG,
    )
    assert kinds(result) == [
        ("invalid_arguments", "/steps/0/arguments"),
        ("invalid_arguments", "/steps/0/arguments"),
        ("invalid_arguments", "/steps/0/arguments/top"),
        ("invalid_arguments", "/steps/1/arguments/key"),
    ]
    messages = [e.message for e in result.errors]
    assert "'text' is a required property" in messages
    assert "0 is less than the minimum of 1" in messages
    unexpected = next(e for e in result.errors if "unexpected" in e.message)
    assert unexpected.suggestions == ("text",)


def test_an_exact_reference_of_the_wrong_type_is_an_argument_error():
    result = plan(
        steps(
            {"id": "stats", "tool": "text/word_stats", "arguments": {"text": "a b"}},
            {"id": "kw", "tool": "text/keywords", "arguments": {"text": "${steps.stats.words}"}},
        ),
        CATALOG,
    )
    [error] = result.errors
    assert (error.kind, error.field) == ("invalid_arguments", "/steps/1/arguments/text")
    assert error.message == "expects string here, but ${steps.stats.words} is integer"


def test_an_exact_reference_of_a_compatible_type_passes():
    result = plan(
        steps(
            {"id": "stats", "tool": "text/word_stats", "arguments": {"text": "a b"}},
            {"id": "kw", "tool": "text/keywords", "arguments": {"text": "x", "top": "${steps.stats.words}"}},
            {"id": "nap", "tool": "latency/sleep", "arguments": {"ms": "${steps.stats.words}"}},
        ),
        CATALOG,
    )
    assert result.valid, result.errors


def test_the_expected_type_is_found_through_any_of_and_refs():
    nullable_int = tool(
        "x",
        "takes_optional_int",
        {
            "type": "object",
            "properties": {"n": {"anyOf": [{"$ref": "#/$defs/N"}, {"type": "null"}]}},
            "$defs": {"N": INT},
        },
        None,
    )
    result = plan(
        steps(
            {"id": "read", "tool": "files/read_text", "arguments": {"path": "p"}},
            {"id": "use", "tool": "x/takes_optional_int", "arguments": {"n": "${steps.read.text}"}},
        ),
        demo_catalog(nullable_int),
    )
    assert [e.message for e in result.errors] == ["expects integer or null here, but ${steps.read.text} is string"]


def test_interpolated_text_counts_as_a_string_of_unknown_content():
    strict = tool(
        "x",
        "strict",
        obj(["code", "n"], code={"type": "string", "pattern": "^[0-9]+$", "maxLength": 2}, n=INT),
        None,
    )
    result = plan(
        steps(
            {"id": "stats", "tool": "text/word_stats", "arguments": {"text": "a b"}},
            {
                "id": "use",
                "tool": "x/strict",
                "arguments": {"code": "n${steps.stats.words}x", "n": "${steps.stats.words}!"},
            },
        ),
        demo_catalog(strict),
    )
    [error] = result.errors
    assert (error.kind, error.field) == ("invalid_arguments", "/steps/1/arguments/n")
    assert error.message == "expects integer here, but text with references in it is a string"


def test_input_references_are_validated_with_the_input_values():
    result = plan(
        steps(
            {
                "id": "a",
                "tool": "text/keywords",
                "arguments": {"text": "about ${inputs.topic}", "top": "${inputs.top}"},
            },
            inputs={"topic": "cats", "top": "five"},
        ),
        CATALOG,
    )
    assert [(e.field, e.message) for e in result.errors] == [
        ("/steps/0/arguments/top", "'five' is not of type 'integer'")
    ]


def test_whole_value_checks_on_a_reference_are_left_to_run_time():
    picky = tool(
        "x",
        "picky",
        obj(["tags"], tags={"type": "array", "uniqueItems": True, "items": {"enum": ["a", "b"]}}),
        None,
    )
    result = plan(
        steps(
            {"id": "kw", "tool": "text/keywords", "arguments": {"text": "t"}},
            {
                "id": "use",
                "tool": "x/picky",
                "arguments": {"tags": ["${steps.kw.keywords[0]}", "${steps.kw.keywords[1]}"]},
            },
        ),
        demo_catalog(picky),
    )
    assert result.valid, result.errors


def test_a_reference_to_an_unknown_step_suggests_close_ids():
    result = plan(
        steps(
            {"id": "stats", "tool": "text/word_stats", "arguments": {"text": "a"}},
            {
                "id": "b",
                "tool": "text/keywords",
                "arguments": {"text": "${steps.stat}"},
                "depends_on": ["stas"],
            },
            outputs=["stats", "nope"],
        ),
        CATALOG,
    )
    assert kinds(result) == [
        ("unknown_step_reference", "/steps/1/arguments/text"),
        ("unknown_step_reference", "/steps/1/depends_on/0"),
        ("unknown_step_reference", "/outputs/1"),
    ]
    assert [e.suggestions for e in result.errors] == [("stats",), ("stats",), ()]


def test_a_path_missing_from_the_output_schema_is_a_bad_reference_path_with_fixes():
    result = plan(
        steps(
            {"id": "stats", "tool": "text/word_stats", "arguments": {"text": "a"}},
            {"id": "kw", "tool": "text/keywords", "arguments": {"text": "x ${steps.stats.word}"}},
        ),
        CATALOG,
    )
    [error] = result.errors
    assert (error.kind, error.field) == ("bad_reference_path", "/steps/1/arguments/text")
    assert error.message == "${steps.stats.word}: the outputSchema of text/word_stats has no 'word' at the top"
    assert error.suggestions == ("${steps.stats.words}",)


def test_a_reference_into_a_tool_without_output_schema_is_checked_at_run_time_only():
    catalog = demo_catalog(tool("x", "opaque", obj(), None))
    result = plan(
        steps(
            {"id": "o", "tool": "x/opaque"},
            {
                "id": "kw",
                "tool": "text/keywords",
                "arguments": {"text": "${steps.o.anything[3]}", "top": "${steps.o}"},
            },
        ),
        catalog,
    )
    assert result.valid
    assert [(w.kind, w.field) for w in result.warnings] == [("unchecked_reference", "/steps/1/arguments/text")]


def test_unknown_inputs_and_missing_input_paths_are_errors():
    result = plan(
        steps(
            {"id": "a", "tool": "files/read_text", "arguments": {"path": "${inputs.pth}"}},
            {"id": "b", "tool": "files/read_text", "arguments": {"path": "${inputs.cfg.dir}"}},
            inputs={"path": "x", "cfg": {"root": "/"}},
        ),
        CATALOG,
    )
    assert kinds(result) == [
        ("unknown_input", "/steps/0/arguments/path"),
        ("bad_reference_path", "/steps/1/arguments/path"),
    ]
    assert result.errors[0].suggestions == ("path",)


def test_a_duplicate_step_id_is_reported_at_the_second_step():
    result = plan(
        steps(
            {"id": "a", "tool": "latency/sleep", "arguments": {"ms": 1}},
            {"id": "a", "tool": "latency/sleep", "arguments": {"ms": 2}},
        ),
        CATALOG,
    )
    assert kinds(result) == [("duplicate_step_id", "/steps/1/id")]
    assert result.levels == ()


def test_a_cycle_is_shown_step_by_step():
    result = plan(
        steps(
            {"id": "a", "tool": "latency/sleep", "arguments": {"ms": "${steps.c.slept_ms}"}},
            {"id": "b", "tool": "latency/sleep", "arguments": {"ms": 1}, "depends_on": ["a"]},
            {"id": "c", "tool": "latency/sleep", "arguments": {"ms": "${steps.b.slept_ms}"}},
        ),
        CATALOG,
    )
    [error] = result.errors
    assert (error.kind, error.field, error.step) == ("cycle", "/steps/0", "a")
    assert error.message == "steps depend on each other in a cycle: a -> b -> c -> a"
    assert (result.levels, result.critical_path, result.estimated_latency_ms) == ((), (), None)


def test_a_step_that_references_or_depends_on_itself_is_a_self_dependency():
    result = plan(
        steps({"id": "a", "tool": "latency/sleep", "arguments": {"ms": "${steps.a.call}"}, "depends_on": ["a"]}),
        CATALOG,
    )
    assert kinds(result) == [
        ("self_dependency", "/steps/0/arguments/ms"),
        ("self_dependency", "/steps/0/depends_on/0"),
    ]


def test_limits_on_steps_bytes_and_reference_depth_are_clear_errors():
    many = steps(*({"id": f"s{i}", "tool": "latency/sleep", "arguments": {"ms": 1}} for i in range(5)))
    [error] = plan(many, CATALOG, limits=PlannerLimits(max_steps=4)).errors
    assert (error.kind, error.field, error.message) == (
        "limit_exceeded",
        "/steps",
        "the plan has 5 steps; the limit is 4",
    )

    [error] = plan(many, CATALOG, limits=PlannerLimits(max_plan_bytes=100)).errors
    assert error.kind == "limit_exceeded"
    assert error.message.endswith("bytes; the limit is 100")

    deep = steps(
        {"id": "r", "tool": "files/read_text", "arguments": {"path": "p"}},
        {"id": "w", "tool": "notes/put", "arguments": {"key": "k", "value": "${steps.r.a.b.c.d}"}},
    )
    [error] = plan(deep, CATALOG, limits=PlannerLimits(max_reference_depth=3)).errors
    assert (error.kind, error.field) == ("limit_exceeded", "/steps/1/arguments/value")


def test_input_that_is_not_a_plan_object_is_an_invalid_plan_error():
    for raw in (["not", "an", "object"], "steps", None):
        [error] = plan(raw, CATALOG).errors  # type: ignore[arg-type]
        assert (error.kind, error.field) == ("invalid_plan", "")


def test_shape_errors_carry_json_pointers_and_the_other_steps_are_still_checked():
    result = plan(
        {
            "steps": [
                {"id": "a", "tool": "text/wordstats", "arguments": {"text": "x"}},
                {"tool": "text/keywords", "args": {}},
                {"id": "bad id", "tool": 3, "retry": {"attempts": "many"}, "on_error": "explode"},
                {"id": "c", "tool": "text/keywords", "arguments": {"text": "${steps.gone}"}},
            ],
            "extra": 1,
        },
        CATALOG,
    )
    assert kinds(result) == [
        ("invalid_plan", "/steps/1/id"),
        ("invalid_plan", "/steps/1/args"),
        ("invalid_plan", "/steps/2/id"),
        ("invalid_plan", "/steps/2/tool"),
        ("invalid_plan", "/steps/2/retry/attempts"),
        ("invalid_plan", "/steps/2/on_error"),
        ("invalid_plan", "/extra"),
        ("unknown_tool", "/steps/0/tool"),
        ("unknown_step_reference", "/steps/3/arguments/text"),
    ]
    args = result.errors[1]
    assert (args.message, args.suggestions) == ("unknown field 'args' (did you mean 'arguments'?)", ("arguments",))
    assert "letters, digits" in result.errors[2].message


def test_steps_that_are_not_a_list_or_missing_are_shape_errors():
    assert kinds(plan({"steps": {"a": 1}}, CATALOG)) == [("invalid_plan", "/steps")]
    assert kinds(plan({}, CATALOG)) == [("invalid_plan", "/steps")]
    assert kinds(plan({"steps": []}, CATALOG)) == [("invalid_plan", "/steps")]


def test_malformed_reference_syntax_is_a_bad_reference_error():
    result = plan(steps({"id": "a", "tool": "notes/put", "arguments": {"key": "k", "value": "x ${steps.a"}}), CATALOG)
    [error] = result.errors
    assert (error.kind, error.field) == ("bad_reference", "/steps/0/arguments/value")
    assert "unclosed reference" in error.message


def test_chain_result_means_the_previous_step_and_is_normalized_to_a_reference():
    result = plan(
        steps(
            {"id": "read", "tool": "files/read_text", "arguments": {"path": "p"}},
            {"id": "stats", "tool": "text/word_stats", "arguments": {"text": "CHAIN_RESULT"}},
            {
                "id": "save",
                "tool": "notes/put",
                "arguments": {"key": "MY_CHAIN_RESULTS", "value": "got: CHAIN_RESULT"},
            },
        ),
        CATALOG,
    )
    assert [s.arguments for s in result.steps] == [
        {"path": "p"},
        {"text": "${steps.read}"},
        {"key": "MY_CHAIN_RESULTS", "value": "got: ${steps.stats}"},
    ]
    assert [s.depends_on for s in result.steps] == [(), ("read",), ("stats",)]
    # The whole value of read_text is an object, so the exact reference does not fit a string.
    assert kinds(result) == [("invalid_arguments", "/steps/1/arguments/text")]


def test_chain_result_in_the_first_step_is_an_error():
    result = plan(steps({"id": "a", "tool": "notes/put", "arguments": {"key": "k", "value": "CHAIN_RESULT"}}), CATALOG)
    assert kinds(result) == [("unknown_step_reference", "/steps/0/arguments/value")]


def test_chain_result_after_a_step_with_an_unusable_id_gets_that_steps_error_not_an_exception():
    # Found by tests/reliability/test_fuzz.py: rewriting to "${steps.}" used to raise ReferenceSyntaxError.
    result = plan(
        steps(
            {"id": "", "tool": "latency/sleep", "arguments": {"ms": 1}},
            {"id": "b", "tool": "notes/put", "arguments": {"key": "k", "value": "CHAIN_RESULT"}},
        ),
        CATALOG,
    )
    assert not result.valid
    assert [path for _, path in kinds(result)] == ["/steps/0/id"]


def test_a_dollar_right_before_chain_result_is_rejected_as_ambiguous():
    result = plan(
        steps(
            {"id": "a", "tool": "latency/sleep", "arguments": {"ms": 1}},
            {"id": "b", "tool": "notes/put", "arguments": {"key": "k", "value": "$CHAIN_RESULT"}},
        ),
        CATALOG,
    )
    assert kinds(result) == [("bad_reference", "/steps/1/arguments/value")]


def test_chain_result_inside_an_escape_or_a_reference_is_not_rewritten():
    result = plan(
        steps(
            {"id": "a", "tool": "latency/sleep", "arguments": {"ms": 1}},
            {"id": "b", "tool": "notes/put", "arguments": {"key": "k", "value": "$${x} CHAIN_RESULTX"}},
        ),
        CATALOG,
    )
    assert result.valid
    assert result.steps[1].arguments["value"] == "$${x} CHAIN_RESULTX"
    assert result.steps[1].depends_on == ()


def test_retries_on_a_tool_that_is_not_read_only_or_idempotent_warn():
    result = plan(
        steps(
            {
                "id": "a",
                "tool": "notes/put",
                "arguments": {"key": "k", "value": "v"},
                "retry": {"attempts": 2},
            },
            {"id": "b", "tool": "text/word_stats", "arguments": {"text": "v"}, "retry": {"attempts": 5}},
        ),
        CATALOG,
    )
    assert result.valid
    assert [(w.kind, w.step) for w in result.warnings] == [("unsafe_retry", "a")]


def test_a_step_on_an_unavailable_server_warns():
    result = plan(
        steps({"id": "a", "tool": "latency/sleep", "arguments": {"ms": 1}}),
        CATALOG,
        unavailable_servers={"latency"},
    )
    assert result.valid
    assert [(w.kind, w.field) for w in result.warnings] == [("server_unavailable", "/steps/0/tool")]


def test_a_broken_downstream_schema_is_a_warning_not_a_crash():
    catalog = demo_catalog(
        tool("x", "broken", {"type": "object", "properties": {"a": {"type": "strin"}}}, None),
        tool(
            "x",
            "bad_regex",
            {"type": "object", "properties": {"a": {"type": "string", "pattern": "("}}},
            None,
        ),
    )
    result = plan(
        steps(
            {"id": "a", "tool": "x/broken", "arguments": {"a": 1}},
            {"id": "b", "tool": "x/bad_regex", "arguments": {"a": "x"}},
        ),
        catalog,
    )
    assert result.valid
    assert [(w.kind, w.field) for w in result.warnings] == [
        ("invalid_schema", "/steps/0/tool"),
        ("invalid_schema", "/steps/1/tool"),
    ]


def test_the_schema_draft_comes_from_dollar_schema():
    draft4 = tool(
        "x",
        "old",
        {
            "$schema": "http://json-schema.org/draft-04/schema#",
            "type": "object",
            "properties": {"n": {"type": "number", "maximum": 5, "exclusiveMaximum": True}},
        },
        None,
    )
    result = plan(steps({"id": "a", "tool": "x/old", "arguments": {"n": 5}}), demo_catalog(draft4))
    assert kinds(result) == [("invalid_arguments", "/steps/0/arguments/n")]


def test_depends_on_orders_steps_without_data_flow():
    result = plan(
        steps(
            {"id": "a", "tool": "latency/sleep", "arguments": {"ms": 1}},
            {"id": "b", "tool": "latency/sleep", "arguments": {"ms": 1}, "depends_on": ["a"]},
            {"id": "c", "tool": "latency/sleep", "arguments": {"ms": 1}},
        ),
        CATALOG,
    )
    assert result.levels == (("a", "c"), ("b",))
    assert result.outputs == ("b", "c")


def test_measured_latency_drives_the_critical_path_and_the_estimate():
    stats = {
        ToolId("files/read_text"): ToolStats(calls=10, successes=10, failures=0, timeouts=0, p50_ms=50.0, p95_ms=90.0),
        ToolId("text/keywords"): ToolStats(calls=3, successes=3, failures=0, timeouts=0, p50_ms=700.0, p95_ms=900.0),
        ToolId("text/word_stats"): ToolStats(calls=0, successes=0, failures=0, timeouts=0, p50_ms=None, p95_ms=None),
    }
    result = plan(ISSUE_EXAMPLE, CATALOG, stats=stats)
    assert result.critical_path == ("read", "kw", "save")
    assert result.estimated_latency_ms == 50.0 + 700.0 + 200.0
    assert result.estimate_basis == {
        "read": "measured",
        "stats": "default",
        "kw": "measured",
        "save": "default",
    }


def test_the_default_step_latency_is_configurable():
    result = plan(ISSUE_EXAMPLE, CATALOG, limits=PlannerLimits(default_step_latency_ms=10.0))
    assert result.estimated_latency_ms == 30.0


def test_a_diamond_has_three_levels_and_the_heavier_branch_is_critical():
    stats = {
        ToolId("latency/sleep"): ToolStats(calls=1, successes=1, failures=0, timeouts=0, p50_ms=100.0, p95_ms=100.0)
    }
    result = plan(
        steps(
            {"id": "top", "tool": "latency/sleep", "arguments": {"ms": 1}},
            {"id": "left", "tool": "latency/sleep", "arguments": {"ms": "${steps.top.slept_ms}"}},
            {"id": "right", "tool": "text/word_stats", "arguments": {"text": "x"}, "depends_on": ["top"]},
            {
                "id": "bottom",
                "tool": "latency/sleep",
                "arguments": {"ms": 1},
                "depends_on": ["left", "right"],
            },
        ),
        CATALOG,
        stats=stats,
    )
    assert result.levels == (("top",), ("left", "right"), ("bottom",))
    assert result.critical_path == ("top", "right", "bottom")
    assert result.estimated_latency_ms == 400.0


def test_a_plan_model_is_accepted_as_input():
    model = Plan.model_validate(ISSUE_EXAMPLE)
    assert plan(model, CATALOG).plan_id == plan(ISSUE_EXAMPLE, CATALOG).plan_id


def test_every_problem_is_reported_at_once():
    result = plan(
        steps(
            {"id": "a", "tool": "text/wordstats", "arguments": {"text": "x"}},
            {"id": "b", "tool": "text/keywords", "arguments": {"text": "${steps.zz}", "top": "${inputs.n}"}},
            {"id": "b", "tool": "notes/put", "arguments": {"key": "k"}, "depends_on": ["b"]},
            {"id": "c", "tool": "text/word_stats", "arguments": {"text": "${steps.d.words"}},
        ),
        CATALOG,
    )
    assert sorted({e.kind for e in result.errors}) == [
        "bad_reference",
        "duplicate_step_id",
        "invalid_arguments",
        "self_dependency",
        "unknown_input",
        "unknown_step_reference",
        "unknown_tool",
    ]


def test_text_that_is_not_valid_unicode_is_an_invalid_plan_not_a_crash():
    result = plan(steps({"id": "a", "tool": "text/word_stats", "arguments": {"text": "\ud800"}}), CATALOG)
    assert result.valid is False
    assert [e.kind for e in result.errors] == ["invalid_plan"]


def test_a_misspelled_field_does_not_hide_the_steps_other_problems():
    result = plan(
        {
            "steps": [
                {"id": "read", "tool": "text/word_stats", "arguments": {"text": "x"}},
                {"id": "b", "tool": "text/keywords", "on_eror": "continue", "arguments": {"text": "${steps.red.text}"}},
            ]
        },
        CATALOG,
    )
    assert kinds(result) == [
        ("invalid_plan", "/steps/1/on_eror"),
        ("unknown_step_reference", "/steps/1/arguments/text"),
    ]
    typo, reference = result.errors
    assert typo.message == "unknown field 'on_eror' (did you mean 'on_error'?)"
    assert reference.suggestions == ("read",)
