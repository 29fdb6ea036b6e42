"""Plans the benchmarks share, over the demo latency server's tools."""

from __future__ import annotations

from typing import Any


def sequential_plan(n: int) -> dict[str, Any]:
    """``n`` ``latency/echo`` steps, each reading the previous one's value."""
    steps = [{"id": "s0", "tool": "latency/echo", "arguments": {"value": 0}}]
    steps += [
        {"id": f"s{i}", "tool": "latency/echo", "arguments": {"value": f"${{steps.s{i - 1}.value}}"}}
        for i in range(1, n)
    ]
    return {"steps": steps}


def fan_out_plan(n: int, ms: float) -> dict[str, Any]:
    """``n`` independent ``latency/sleep`` steps of ``ms`` each."""
    return {"steps": [{"id": f"f{i}", "tool": "latency/sleep", "arguments": {"ms": ms}} for i in range(n)]}
