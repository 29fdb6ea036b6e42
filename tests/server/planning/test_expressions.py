"""The CEL adapter: compile errors with columns, evaluation errors as values, exact conversion back to JSON."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_conductor.server.planning.expressions import (
    MAX_NESTING,
    ExpressionCompileError,
    ExpressionEvalError,
    compile_expression,
    to_json,
)

# Text as MCP carries it: no lone surrogates (not UTF-8) and no NUL (refused, see the test at the end).
TEXT = st.characters(exclude_characters="\x00", exclude_categories=("Cs",))
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(TEXT, max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(TEXT, max_size=8), inner, max_size=4),
    max_leaves=20,
)


def evaluate(source: str, steps=None, inputs=None, **loop):
    expr = compile_expression(source, loop=bool(loop))
    return expr.evaluate(steps or {}, inputs or {}, **loop)


def test_the_custom_functions_each_do_what_the_readme_says():
    steps = {"cfg": {"content": '{"version": 3, "name": "x"}'}, "log": "fix: a\nfeat: b\n", "ver": "v1.22.3"}
    assert evaluate("json(steps.cfg.content).version > 2", steps) is True
    assert evaluate("lines(steps.log)", steps) == ["fix: a", "feat: b"]
    assert evaluate(r"extract(steps.ver, 'v(\\d+)\\.(\\d+)')", steps) == "1"
    assert evaluate(r"extract(steps.ver, '\\d+')", steps) == "1"
    assert evaluate("extract(steps.ver, 'zzz')", steps) is None
    assert evaluate(r"extract_all(steps.log, '(\\w+):')", steps) == ["fix", "feat"]
    assert evaluate("'a,b'.split(',').map(s, s.upperAscii()).join('-')") == "A-B"


def test_values_come_back_as_exact_json_types():
    value = evaluate("[1, 2.0, -0.5, true, null, 'é', {'k': [9223372036854775807]}, 3u]")
    assert value == [1, 2.0, -0.5, True, None, "é", {"k": [2**63 - 1]}, 3]
    assert [type(v) for v in value[:5]] == [int, float, float, bool, type(None)]


@pytest.mark.parametrize(
    ("source", "column", "words"),
    [
        ("steps.a +", 10, "Syntax error"),
        ("nosuch.x > 1", 7, "undeclared reference to 'nosuch.x'"),
        ("lines(3)", 6, "no matching overload"),
        ("item.name", 5, "undeclared reference to 'item.name'"),
        ("steps['a']", 1, "steps must be followed by .NAME"),
    ],
)
def test_compile_errors_carry_the_column_and_a_hint(source, column, words):
    with pytest.raises(ExpressionCompileError) as caught:
        compile_expression(source)
    assert caught.value.kind == "invalid_expression"
    assert caught.value.column == column
    assert words in caught.value.message
    assert caught.value.hint


def test_comprehensions_nested_too_deep_are_refused_at_compile_time():
    nested = "steps.a.map(x, steps.a.map(y, steps.a.map(z, 1)))"
    assert MAX_NESTING == 2
    with pytest.raises(ExpressionCompileError, match="nested more than 2"):
        compile_expression(nested)
    assert compile_expression("steps.a.filter(x, x.tags.exists(t, t == 'a')).map(x, x.name)").steps == ("a",)


def test_an_evaluation_error_names_the_expression_the_part_and_a_preview_of_the_value():
    with pytest.raises(ExpressionEvalError) as caught:
        evaluate("steps.cfg.version > 2", {"cfg": {"content": "{}"}})
    message = caught.value.message
    assert caught.value.kind == "expression_error"
    assert "'steps.cfg.version > 2'" in message
    assert "at 'steps.cfg.version'" in message
    assert '{"content": "{}"}' in message


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("1 / 0", "divide by zero"),
        ("json('{')", "Expecting property name"),
        ("json('NaN')", "NaN is not JSON"),
        ("json('123456789012345678901234567890')", "does not fit"),
        ("b'abc'", "bytes value"),
        ("duration('1s')", "duration"),
        ("{1: 'a'}", "map keys must be strings"),
        ("extract('aaaa', '(a+)+$')", "refused"),
        ("extract('a', '[')", "invalid regular expression"),
    ],
)
def test_runtime_failures_are_expression_errors(source, words):
    with pytest.raises(ExpressionEvalError, match=words.replace("(", r"\(").replace("[", r"\[")):
        evaluate(source)


def test_only_the_steps_an_expression_names_are_handed_to_it():
    expr = compile_expression("steps.a + size(inputs.xs)")
    assert (expr.steps, expr.inputs) == (("a",), ("xs",))
    assert expr.evaluate({"a": 1, "b": object()}, {"xs": [1, 2]}) == 3


def test_a_result_over_the_size_limit_is_refused():
    with pytest.raises(ValueError, match="larger than 100 bytes"):
        to_json(["x" * 60, "y" * 60], budget=100)
    assert math.isclose(to_json(1.5), 1.5)


@settings(max_examples=150, deadline=None)
@given(value=JSON)
def test_any_json_value_goes_through_cel_unchanged(value):
    assert evaluate("steps.v", {"v": value}) == value


@settings(max_examples=300, deadline=None)
@given(source=st.text(max_size=40), value=JSON)
def test_any_text_either_compiles_or_fails_with_a_compile_error_and_evaluation_never_raises_otherwise(source, value):
    try:
        expr = compile_expression(source, loop=True)
    except ExpressionCompileError as exc:
        assert exc.kind == "invalid_expression"
        return
    try:
        expr.evaluate({}, {}, item=value, index=0)
    except ExpressionEvalError as exc:
        assert exc.kind == "expression_error"


@settings(max_examples=200, deadline=None)
@given(
    op=st.sampled_from(["item.a", "item[0]", "size(item)", "item + 1", "item.a.b > 2", "json(item)", "lines(item)"]),
    value=JSON,
)
def test_operations_on_arbitrary_values_give_a_value_or_an_expression_error(op, value):
    try:
        evaluate(op, item=value, index=0)
    except ExpressionEvalError as exc:
        assert exc.message.startswith(repr(op))


def test_a_nul_character_in_a_value_is_an_error_not_a_silently_cut_string():
    # cel-expr-python 0.1.3 cuts Python strings at U+0000 when it converts them
    with pytest.raises(ExpressionEvalError, match="NUL"):
        evaluate("steps.v", {"v": {"k": "a\x00b"}})
