import sys

import anyio
import pytest
from mcp import Client, StdioServerParameters

from mcp_conductor.demo.mathx import server


async def test_add_and_multiply_return_the_result():
    async with Client(server) as c:
        added = await c.call_tool("add", {"a": 2.5, "b": -1})
        multiplied = await c.call_tool("multiply", {"a": 6, "b": 7})
    assert added.structured_content == {"result": 1.5}
    assert multiplied.structured_content == {"result": 42.0}


async def test_multiply_refuses_a_result_that_overflows():
    async with Client(server) as c:
        result = await c.call_tool("multiply", {"a": 1e308, "b": 10})
    assert result.is_error
    assert "too large" in result.content[0].text


async def test_statistics_describes_a_list_of_numbers():
    async with Client(server) as c:
        result = await c.call_tool("statistics", {"numbers": [2, 4, 4, 4, 5, 5, 7, 9]})
    assert result.structured_content == {
        "count": 8,
        "mean": 5.0,
        "median": 4.5,
        "min": 2.0,
        "max": 9.0,
        "stdev": pytest.approx(2.13808993529939),
    }


async def test_statistics_of_one_number_has_no_stdev():
    async with Client(server) as c:
        result = await c.call_tool("statistics", {"numbers": [3]})
    assert result.structured_content == {
        "count": 1,
        "mean": 3.0,
        "median": 3.0,
        "min": 3.0,
        "max": 3.0,
        "stdev": None,
    }


async def test_statistics_needs_at_least_one_number():
    async with Client(server) as c:
        result = await c.call_tool("statistics", {"numbers": []})
    assert result.is_error


@pytest.mark.parametrize(
    ("value", "from_unit", "to_unit", "expected"),
    [
        (1, "mi", "km", 1.609344),
        (250, "cm", "m", 2.5),
        (12, "in", "ft", 1.0),
        (1, "lb", "oz", 16.0),
        (1500, "g", "kg", 1.5),
        (212, "F", "C", 100.0),
        (0, "C", "K", 273.15),
        (-40, "C", "F", -40.0),
        (0.3, "km", "km", 0.3),
    ],
)
async def test_convert_units_converts_within_a_dimension(value, from_unit, to_unit, expected):
    async with Client(server) as c:
        result = await c.call_tool("convert_units", {"value": value, "from_unit": from_unit, "to_unit": to_unit})
    assert result.structured_content == {"value": expected, "unit": to_unit}


async def test_convert_units_between_dimensions_names_the_allowed_units():
    async with Client(server) as c:
        result = await c.call_tool("convert_units", {"value": 1, "from_unit": "km", "to_unit": "kg"})
    assert result.is_error
    assert result.content[0].text == (
        "Error executing tool convert_units: cannot convert km (length) to kg (mass); "
        "km converts only to length units: m, km, cm, mm, mi, ft, in"
    )


async def test_convert_units_rejects_an_unknown_unit():
    async with Client(server) as c:
        result = await c.call_tool("convert_units", {"value": 1, "from_unit": "parsec", "to_unit": "m"})
    assert result.is_error


async def test_math_server_runs_over_stdio_under_the_name_math():
    params = StdioServerParameters(command=sys.executable, args=["-m", "mcp_conductor.demo.mathx"])
    with anyio.fail_after(30):
        async with Client(params) as c:
            tools = (await c.list_tools()).tools
            result = await c.call_tool("add", {"a": 1, "b": 2})
            info = c.server_info
    assert info is not None
    assert info.name == "math"
    assert {t.name for t in tools} == {"add", "multiply", "statistics", "convert_units"}
    assert result.structured_content == {"result": 3.0}
