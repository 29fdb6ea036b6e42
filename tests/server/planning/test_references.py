import pytest

from mcp_conductor.schemas import schema_types
from mcp_conductor.server.planning.references import (
    Placeholder,
    Reference,
    ReferenceResolutionError,
    ReferenceSyntaxError,
    format_path,
    json_pointer,
    parse_template,
    substitute,
)
from mcp_conductor.server.planning.schema_paths import lookup_schema


def test_a_string_that_is_exactly_one_reference_is_exact():
    template = parse_template("${steps.read}")
    assert template.exact == Reference("steps", "read")
    assert template.parts == (Placeholder(Reference("steps", "read"), 0, 13),)


def test_paths_follow_keys_indexes_and_quoted_keys():
    template = parse_template('${steps.kw.keywords[0].x}${inputs.cfg["a b"][12]}')
    assert [p.reference for p in template.placeholders] == [
        Reference("steps", "kw", ("keywords", 0, "x")),
        Reference("inputs", "cfg", ("a b", 12)),
    ]
    assert template.exact is None


def test_a_reference_inside_a_longer_string_is_split_into_literal_parts():
    template = parse_template("n=${steps.s.words}; done")
    assert template.parts == ("n=", Placeholder(Reference("steps", "s", ("words",)), 2, 18), "; done")


def test_double_dollar_brace_is_a_literal_dollar_brace():
    template = parse_template("cost $$${x} and $${steps.a}")
    assert template.placeholders == ()
    assert template.parts == ("cost $${x} and ${steps.a}",)


def test_a_lone_dollar_is_literal_text():
    assert parse_template("costs $5, $").parts == ("costs $5, $",)


@pytest.mark.parametrize(
    ("text", "position", "problem"),
    [
        ("x ${steps.a", 2, "unclosed reference"),
        ("${stepz.a}", 2, "expected 'steps.', 'inputs.', 'item' or 'index'"),
        ("${steps}", 7, "expected '.' and a step id"),
        ("${inputs.}", 8, "expected '.' and an input name"),
        ("${steps.a b}", 9, "unexpected ' '"),
        ('${steps.a["b}', 10, "unterminated quoted key"),
        ('${steps.a["b"}', 13, "expected ']'"),
        ("${steps.a[x]}", 9, "unexpected '['"),
    ],
)
def test_malformed_references_say_what_is_wrong_and_where(text, position, problem):
    with pytest.raises(ReferenceSyntaxError) as caught:
        parse_template(text)
    assert caught.value.position == position
    assert problem in caught.value.message
    assert caught.value.kind == "bad_reference"


def test_a_reference_prints_back_as_it_parses():
    for text in ("${steps.a}", "${steps.a.b[3]}", '${inputs.x["a.b"][0].c}'):
        assert str(parse_template(text).exact) == text
    assert format_path(("a", 0, "b c", "d-e")) == '.a[0]["b c"].d-e'


def test_json_pointer_escapes_tilde_and_slash():
    assert json_pointer(("steps", 2, "arguments", "a/b~c")) == "/steps/2/arguments/a~1b~0c"


def test_an_exact_reference_keeps_the_json_type_of_the_value():
    steps = {"stats": {"words": 12, "list": [1, 2], "obj": {"a": None}}}
    arguments = {"n": "${steps.stats.words}", "l": "${steps.stats.list}", "o": ["${steps.stats.obj}"]}
    assert substitute(arguments, steps, {}) == {"n": 12, "l": [1, 2], "o": [{"a": None}]}


def test_an_interpolated_reference_becomes_text_with_json_for_non_strings():
    steps = {"s": {"words": 12, "kw": ["a", "b"], "name": "Ann", "ok": True, "none": None}}
    text = "${steps.s.words} words; ${steps.s.kw}; ${steps.s.name}; ${steps.s.ok}; ${steps.s.none}"
    assert substitute({"v": text}, steps, {}) == {"v": '12 words; ["a", "b"]; Ann; true; null'}


def test_inputs_are_substituted_like_step_values():
    assert substitute({"p": "${inputs.path}", "q": "at ${inputs.n}"}, {}, {"path": "a.md", "n": 3}) == {
        "p": "a.md",
        "q": "at 3",
    }


def test_substitute_undoes_the_escape_and_leaves_other_values_alone():
    arguments = {"a": "$${steps.x} is literal", "b": 4, "c": None, "d": "plain"}
    assert substitute(arguments, {}, {}) == {"a": "${steps.x} is literal", "b": 4, "c": None, "d": "plain"}


def test_step_outputs_are_data_and_never_expanded_again():
    steps = {"evil": {"text": "${steps.secret}"}, "secret": "leaked"}
    result = substitute({"a": "${steps.evil.text}", "b": "got ${steps.evil.text}"}, steps, {})
    assert result == {"a": "${steps.secret}", "b": "got ${steps.secret}"}


def test_a_digit_key_also_indexes_a_list():
    assert substitute({"a": "${steps.kw.keywords.1}"}, {"kw": {"keywords": ["x", "y"]}}, {}) == {"a": "y"}


def test_a_bad_path_into_a_long_value_previews_it_cut_and_lists_an_objects_keys():
    value = {"items": [{"name": f"file{i}.md", "size": i} for i in range(100)], "total": 100}
    with pytest.raises(ReferenceResolutionError) as caught:
        substitute({"t": "${steps.ls.entries}"}, {"ls": value}, {})
    message = caught.value.message
    assert "there it is an object with keys items, total: " in message
    preview = message.split("with keys items, total: ", 1)[1]
    assert preview.startswith('{"items": [{"name": "file0.md", "size": 0}')
    assert preview.endswith("…") and len(preview) <= 200
    with pytest.raises(ReferenceResolutionError) as caught:
        substitute({"t": "${steps.ls[0]}"}, {"ls": "plain text"}, {})
    assert caught.value.message.endswith('there it is a string: "plain text"')


def test_substitute_returns_a_new_structure():
    arguments = {"a": {"b": ["${steps.s}"]}}
    result = substitute(arguments, {"s": 1}, {})
    assert result == {"a": {"b": [1]}}
    assert arguments == {"a": {"b": ["${steps.s}"]}}


def test_a_missing_path_at_run_time_names_the_step_and_the_missing_part():
    with pytest.raises(ReferenceResolutionError) as caught:
        substitute({"t": "${steps.read.txt}"}, {"read": {"text": "hi"}}, {})
    assert caught.value.kind == "bad_reference_path"
    assert caught.value.message == (
        "${steps.read.txt}: the output of step 'read' has no key 'txt' at the top; there it is an object with keys"
        ' text: {"text": "hi"}'
    )
    assert caught.value.describe()["reference"] == "${steps.read.txt}"


def test_an_index_past_the_end_is_a_missing_path():
    with pytest.raises(ReferenceResolutionError, match=r"has no item 5 at \.kw; there it is a list of 2: \[1, 2\]$"):
        substitute("${steps.k.kw[5]}", {"k": {"kw": [1, 2]}}, {})


def test_a_step_without_a_value_or_a_missing_input_is_an_error():
    with pytest.raises(ReferenceResolutionError, match="step 'gone' has no value"):
        substitute("${steps.gone}", {}, {})
    with pytest.raises(ReferenceResolutionError, match="no such input"):
        substitute("x ${inputs.nope}", {}, {})


WORD_STATS_OUT = {
    "type": "object",
    "properties": {
        "words": {"type": "integer"},
        "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}},
        "pair": {"type": "array", "prefixItems": [{"type": "string"}, {"type": "number"}], "items": False},
        "maybe": {"anyOf": [{"$ref": "#/$defs/Item"}, {"type": "null"}]},
        "free": {"type": "object"},
        "tags": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "$defs": {"Item": {"type": "object", "properties": {"name": {"type": "string"}}}},
}


def test_schema_lookup_follows_properties_items_prefix_items_and_local_refs():
    assert lookup_schema(WORD_STATS_OUT, ("words",)).schema == {"type": "integer"}
    assert lookup_schema(WORD_STATS_OUT, ("items", 3, "name")).schema == {"type": "string"}
    assert lookup_schema(WORD_STATS_OUT, ("items", "0", "name")).schema == {"type": "string"}
    assert lookup_schema(WORD_STATS_OUT, ("pair", 1)).schema == {"type": "number"}
    assert lookup_schema(WORD_STATS_OUT, ("maybe", "name")).schema == {"type": "string"}
    assert lookup_schema(WORD_STATS_OUT, ("tags", "anything")).schema == {"type": "string"}
    assert lookup_schema(WORD_STATS_OUT, ()).schema == WORD_STATS_OUT


def test_schema_lookup_reports_paths_the_schema_rules_out():
    missing = lookup_schema(WORD_STATS_OUT, ("word",))
    assert (missing.schema, missing.missing_at) == (None, 0)
    assert "words" in missing.offered
    assert lookup_schema(WORD_STATS_OUT, ("items", 0, "nme")).missing_at == 2
    assert lookup_schema(WORD_STATS_OUT, ("pair", 2)).missing_at == 1
    assert lookup_schema(WORD_STATS_OUT, ("words", "x")).missing_at == 1


def test_schema_lookup_gives_unknown_where_the_schema_does_not_say():
    assert lookup_schema(WORD_STATS_OUT, ("free", "x", 0)) == lookup_schema({}, ("a",))
    assert lookup_schema(WORD_STATS_OUT, ("free", "x")).schema is None
    assert lookup_schema({"oneOf": [{"type": "string"}, {"type": "integer"}]}, ("a",)).missing_at is None
    assert lookup_schema({"$ref": "https://example.com/remote.json"}, ("a",)).schema is None


def test_schema_types_come_from_type_const_enum_or_shape():
    assert schema_types({"type": ["string", "null"]}) == ("string", "null")
    assert schema_types({"const": 3}) == ("integer",)
    assert schema_types({"enum": ["a", "b", 1.5]}) == ("string", "number")
    assert schema_types({"properties": {}}) == ("object",)
    assert schema_types({"items": {}}) == ("array",)
    assert schema_types({"description": "anything"}) == ()
