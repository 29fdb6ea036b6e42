"""Demo MCP server "math": arithmetic, descriptive statistics and unit conversion.

The module is ``mathx`` so that it can never be mistaken for the standard library's ``math``; the server it
serves is named "math". Run over stdio with ``python -m mcp_conductor.demo.mathx``.
"""

import math
import statistics as stats
from typing import Annotated, Literal

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field

server = MCPServer(
    "math",
    version="0.1.0",
    instructions="Arithmetic, descriptive statistics of number lists, and length/mass/temperature units.",
    log_level="WARNING",
)

_PURE = ToolAnnotations(read_only_hint=True, idempotent_hint=True, destructive_hint=False, open_world_hint=False)

Number = Annotated[float, Field(allow_inf_nan=False)]
Unit = Literal["m", "km", "cm", "mm", "mi", "ft", "in", "kg", "g", "lb", "oz", "C", "F", "K"]

# Factor to the base unit of each dimension (metre, kilogram); temperatures are affine and handled apart.
_FACTORS: dict[str, dict[str, float]] = {
    "length": {"m": 1.0, "km": 1000.0, "cm": 0.01, "mm": 0.001, "mi": 1609.344, "ft": 0.3048, "in": 0.0254},
    "mass": {"kg": 1.0, "g": 0.001, "lb": 0.45359237, "oz": 0.028349523125},
    "temperature": {"C": 1.0, "F": 1.0, "K": 1.0},
}
_DIMENSION = {unit: dim for dim, units in _FACTORS.items() for unit in units}


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class NumberResult(_Out):
    result: float = Field(description="The result of the operation.")


class Statistics(_Out):
    count: int = Field(description="How many numbers were given.")
    mean: float = Field(description="Arithmetic mean.")
    median: float = Field(description="Middle value (mean of the two middle values for an even count).")
    min: float = Field(description="Smallest number.")
    max: float = Field(description="Largest number.")
    stdev: float | None = Field(description="Sample standard deviation (n-1); null for a single number.")


class Quantity(_Out):
    value: float = Field(description="The converted value, rounded to 12 significant digits.")
    unit: str = Field(description="The unit of the value.")


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ToolError("the result is too large to represent as a 64-bit float")
    return value


@server.tool(annotations=_PURE)
async def add(
    a: Annotated[Number, Field(description="First addend.")],
    b: Annotated[Number, Field(description="Second addend.")],
) -> NumberResult:
    """Add two numbers and return a + b."""
    return NumberResult(result=_finite(a + b))


@server.tool(annotations=_PURE)
async def multiply(
    a: Annotated[Number, Field(description="First factor.")],
    b: Annotated[Number, Field(description="Second factor.")],
) -> NumberResult:
    """Multiply two numbers and return a × b."""
    return NumberResult(result=_finite(a * b))


@server.tool(annotations=_PURE)
async def statistics(
    numbers: Annotated[
        list[Number],
        Field(min_length=1, max_length=100_000, description="The numbers to describe (at least one)."),
    ],
) -> Statistics:
    """Describe a list of numbers: count, mean, median, minimum, maximum and sample standard deviation."""
    try:
        return Statistics(
            count=len(numbers),
            mean=_finite(stats.fmean(numbers)),
            median=_finite(stats.median(numbers)),
            min=min(numbers),
            max=max(numbers),
            stdev=_finite(stats.stdev(numbers)) if len(numbers) > 1 else None,
        )
    except OverflowError as exc:
        raise ToolError("the numbers are too large to describe as 64-bit floats") from exc


def _to_kelvin(value: float, unit: str) -> float:
    return {"K": value, "C": value + 273.15, "F": (value - 32) * 5 / 9 + 273.15}[unit]


def _from_kelvin(kelvin: float, unit: str) -> float:
    return {"K": kelvin, "C": kelvin - 273.15, "F": (kelvin - 273.15) * 9 / 5 + 32}[unit]


@server.tool(annotations=_PURE)
async def convert_units(
    value: Annotated[Number, Field(description="The quantity to convert, in from_unit.")],
    from_unit: Annotated[Unit, Field(description="Unit of value.")],
    to_unit: Annotated[Unit, Field(description="Unit to convert to; must measure the same thing as from_unit.")],
) -> Quantity:
    """Convert a quantity between units of the same dimension.

    Length: m, km, cm, mm, mi, ft, in. Mass: kg, g, lb, oz. Temperature: C, F, K (Celsius, Fahrenheit,
    Kelvin).
    Converting between dimensions (e.g. km to kg) is an error.
    """
    dim = _DIMENSION[from_unit]
    if _DIMENSION[to_unit] != dim:
        allowed = ", ".join(_FACTORS[dim])
        raise ToolError(
            f"cannot convert {from_unit} ({dim}) to {to_unit} ({_DIMENSION[to_unit]}); "
            f"{from_unit} converts only to {dim} units: {allowed}"
        )
    if dim == "temperature":
        converted = _from_kelvin(_to_kelvin(value, from_unit), to_unit)
    else:
        converted = value * _FACTORS[dim][from_unit] / _FACTORS[dim][to_unit]
    # 12 significant digits hide float noise such as 0.30000000000000004 while keeping the factors' precision.
    return Quantity(value=float(f"{_finite(converted):.12g}"), unit=to_unit)


if __name__ == "__main__":
    server.run()
