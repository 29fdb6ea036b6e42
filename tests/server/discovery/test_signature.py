from mcp_conductor.server.discovery.search import summary
from mcp_conductor.server.discovery.signature import signature


def test_a_signature_names_types_and_marks_optional_arguments():
    schema = {
        "type": "object",
        "properties": {"path": {"type": "string", "description": "Where."}, "head": {"type": "number"}},
        "required": ["path"],
    }
    assert signature(schema) == "path: string, head?: number"


def test_a_signature_shows_nested_objects_arrays_enums_and_unions():
    schema = {
        "type": "object",
        "properties": {
            "entities": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}}},
                    "required": ["name"],
                },
            },
            "mode": {"enum": ["fast", "slow"]},
            "limit": {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None},
        },
        "required": ["entities"],
    }
    assert signature(schema) == 'entities: {name: string, tags?: string[]}[], mode?: "fast"|"slow", limit?: integer'


def test_a_signature_follows_refs_it_can_inline_and_names_the_others():
    item = {"type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"]}
    once = {"type": "object", "properties": {"p": {"$ref": "#/$defs/P"}}, "$defs": {"P": item}}
    assert signature(once) == "p?: {x: number}"
    twice = {
        "type": "object",
        "properties": {"a": {"$ref": "#/$defs/P"}, "b": {"$ref": "#/$defs/P"}},
        "$defs": {"P": item},
    }
    assert signature(twice) == "a?: P, b?: P"


def test_a_tool_without_arguments_has_an_empty_signature_and_garbage_gives_no_error():
    assert signature({"type": "object"}) == ""
    assert signature({"type": "object", "properties": 5}) == ""
    assert signature(True) == ""


def test_a_summary_is_the_first_sentence_and_keeps_a_deprecation_notice():
    assert summary("Create a new directory. Can create nested ones.") == "Create a new directory."
    assert summary("Read a file as text. DEPRECATED: Use read_text_file instead.") == (
        "Read a file as text. DEPRECATED: use read_text_file instead."
    )
    assert summary("Shows a commit, or a file given as <revision>:<path>") == (
        "Shows a commit, or a file given as <revision>:<path>"
    )
