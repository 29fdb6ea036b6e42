"""The pure part of saved chains: references, versions, the inputs schema a save keeps, and recursion."""

import pytest

from mcp_conductor.client_pool.catalog import ServerName, ToolInfo
from mcp_conductor.server.planning.models import Plan
from mcp_conductor.server.planning.saved_chains import (
    ChainRef,
    ChainRefError,
    ChainTool,
    SaveAs,
    chain_version,
    check_inputs,
    check_save,
    default_inputs_schema,
    parse_ref,
    recursion_issues,
)

PLAN = Plan.model_validate(
    {"inputs": {"n": 2, "tag": "x"}, "steps": [{"id": "a", "tool": "s/t", "arguments": {"v": "${inputs.n}"}}]}
)


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("notes", ChainRef("notes")),
        ("chain/notes-to-memory", ChainRef("notes-to-memory")),
        ("notes_2@0a1b2c3d", ChainRef("notes_2", "0a1b2c3d")),
        ("chain/n@ffffffff", ChainRef("n", "ffffffff")),
    ],
)
def test_a_reference_is_a_name_with_an_optional_version(text: str, ref: ChainRef):
    assert parse_ref(text) == ref
    assert parse_ref(ref.tool_id) == ref


@pytest.mark.parametrize("text", ["", "Notes", "1st", "a b", "notes@v1", "notes@0A1B2C3D", "x" * 65, "chain/"])
def test_anything_else_is_refused_with_the_rule(text: str):
    with pytest.raises(ChainRefError) as caught:
        parse_ref(text)
    assert "lowercase letter" in caught.value.message or "8 hex digits" in caught.value.message


def test_the_version_depends_on_the_content_only_not_on_key_order():
    plan = PLAN.model_dump(mode="json")
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    reordered = {"properties": {"n": {"type": "integer"}}, "type": "object"}
    assert chain_version(plan, schema) == chain_version(dict(reversed(plan.items())), reordered)
    assert chain_version(plan, schema) != chain_version(plan, {**schema, "required": ["n"]})
    assert len(chain_version(plan, schema)) == 8


def test_without_an_inputs_schema_every_plan_input_is_optional_and_typed_by_its_default():
    schema, issues = check_save(PLAN, SaveAs(name="c"))
    assert issues == []
    assert schema == default_inputs_schema(PLAN.inputs)
    assert schema["properties"] == {"n": {"type": "integer"}, "tag": {"type": "string"}}
    assert check_inputs(schema, {"n": 3}) == []
    assert check_inputs(schema, {"n": "3"}) == ["inputs.n: '3' is not of type 'integer'"]


def test_a_schema_the_plan_defaults_do_not_fit_is_refused():
    _, issues = check_save(PLAN, SaveAs(name="c", inputs={"properties": {"n": {"type": "string"}}}))
    assert [i.field for i in issues] == ["/save_as/inputs"]
    assert "does not fit the schema" in issues[0].message


def chain_tool(name: str, reaches: set[str]) -> ChainTool:
    return ChainTool(ToolInfo(ServerName("chain"), name), name, None, frozenset(reaches))


def test_recursion_is_found_directly_through_another_chain_and_in_a_stored_cycle():
    plan = Plan.model_validate({"steps": [{"id": "s", "tool": "chain/b"}]})
    assert recursion_issues(plan, {"chain/b": chain_tool("b", set())}, "a") == []
    direct = recursion_issues(plan, {"chain/b": chain_tool("b", set())}, "b")
    through = recursion_issues(plan, {"chain/b": chain_tool("b", {"c", "a"})}, "a")
    cycle = recursion_issues(plan, {"chain/b": chain_tool("b", {"c", "b"})}, None)
    assert [i.kind for i in direct + through + cycle] == ["chain_recursion"] * 3
    assert "chain/b is the chain being saved" in direct[0].message
    assert "reaches chain/a through" in through[0].message
    assert "reaches itself" in cycle[0].message
