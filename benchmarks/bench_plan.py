"""Planner benchmark: validation time of random DAG plans over a demo-like catalog.

Run ``python benchmarks/bench_plan.py``. For 10, 100, 200 and 1,000 steps it builds a seeded random plan whose
arguments reference earlier steps (typed and interpolated references, ``depends_on``, some ``CHAIN_RESULT``),
plans it several times and prints the median time, and the time per (steps + edges) to show that the planner
grows about linearly. Target: 200 steps in <= 20 ms.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from typing import Any

from mcp_conductor.client_pool.catalog import Catalog, CatalogSnapshot, ServerName, ToolInfo
from mcp_conductor.server.planning.planner import PlannerLimits, plan

TARGET_MS_AT_200 = 20.0
_READ = {"readOnlyHint": True, "idempotentHint": True}


def _object(properties: dict[str, Any], required: list[str], title: str) -> dict[str, Any]:
    # Shaped like the schemas pydantic generates for the demo servers' tools.
    return {"type": "object", "title": title, "properties": properties, "required": required}


def _text(description: str) -> dict[str, Any]:
    return {"type": "string", "maxLength": 1_000_000, "description": description, "title": "Text"}


def _int(description: str, **bounds: int) -> dict[str, Any]:
    return {"type": "integer", "description": description, **bounds}


def demo_catalog() -> CatalogSnapshot:
    """The demo servers' main tools with their input and output schemas."""
    tools = {
        "text": [
            ToolInfo(
                ServerName("text"),
                "word_stats",
                input_schema=_object({"text": _text("The text")}, ["text"], "word_statsArguments"),
                output_schema=_object(
                    {k: _int(k) for k in ("words", "unique_words", "sentences", "characters")},
                    ["words", "unique_words", "sentences", "characters"],
                    "WordStats",
                ),
                annotations=_READ,
            ),
            ToolInfo(
                ServerName("text"),
                "keywords",
                input_schema=_object(
                    {"text": _text("The text"), "top": _int("How many", minimum=1, maximum=100)},
                    ["text"],
                    "keywordsArguments",
                ),
                output_schema=_object(
                    {"keywords": {"type": "array", "items": {"type": "string"}}}, ["keywords"], "Keywords"
                ),
                annotations=_READ,
            ),
            ToolInfo(
                ServerName("text"),
                "convert_case",
                input_schema=_object(
                    {"text": _text("The text"), "case": {"enum": ["upper", "lower", "title", "snake"]}},
                    ["text", "case"],
                    "convert_caseArguments",
                ),
                output_schema=_object({"text": _text("Converted")}, ["text"], "ConvertedText"),
                annotations=_READ,
            ),
            ToolInfo(
                ServerName("text"),
                "summarize",
                input_schema=_object(
                    {"text": _text("The text"), "sentences": _int("How many", minimum=1)},
                    ["text"],
                    "summarizeArguments",
                ),
                output_schema=_object({"summary": _text("Summary")}, ["summary"], "Summary"),
                annotations=_READ,
            ),
        ],
        "files": [
            ToolInfo(
                ServerName("files"),
                "read_text",
                input_schema=_object({"path": _text("Relative path")}, ["path"], "read_textArguments"),
                output_schema=_object(
                    {"path": _text("Path"), "text": _text("Content"), "bytes": _int("Size")},
                    ["path", "text", "bytes"],
                    "FileText",
                ),
                annotations=_READ,
            ),
        ],
        "notes": [
            ToolInfo(
                ServerName("notes"),
                "put",
                input_schema=_object({"key": _text("Key"), "value": _text("Value")}, ["key", "value"], "putArguments"),
                output_schema=_object({"key": _text("Key"), "version": _int("Version")}, ["key", "version"], "Put"),
                annotations={"idempotentHint": True},
            ),
            ToolInfo(
                ServerName("notes"),
                "get",
                input_schema=_object({"key": _text("Key")}, ["key"], "getArguments"),
                output_schema=_object({"key": _text("Key"), "value": _text("Value")}, ["key", "value"], "Get"),
                annotations=_READ,
            ),
        ],
        "latency": [
            ToolInfo(
                ServerName("latency"),
                "sleep",
                input_schema=_object({"ms": {"type": "number", "minimum": 0}}, ["ms"], "sleepArguments"),
                output_schema=_object({"slept_ms": {"type": "number"}, "call": _int("Call")}, [], "Slept"),
                annotations=_READ,
            ),
        ],
    }
    catalog = Catalog()
    for server, infos in tools.items():
        catalog.set_server_tools(ServerName(server), infos)
    return catalog.snapshot()


_TEXT_OUT = {
    "files/read_text": "text",
    "text/convert_case": "text",
    "text/summarize": "summary",
    "notes/get": "value",
}
_INT_OUT = {"text/word_stats": "words", "notes/put": "version", "latency/sleep": "call"}


def random_plan(steps: int, seed: int) -> dict[str, Any]:
    """A random DAG: each step references up to two earlier steps and may depend on one more."""
    rng = random.Random(seed)
    tools = [
        "files/read_text",
        "text/word_stats",
        "text/keywords",
        "text/convert_case",
        "text/summarize",
        "notes/put",
        "notes/get",
        "latency/sleep",
    ]
    made: list[tuple[str, str]] = []  # (step id, tool)

    def earlier(outputs: dict[str, str]) -> str | None:
        candidates = [(i, t) for i, t in made[-50:] if t in outputs]
        if not candidates:
            return None
        step_id, tool = rng.choice(candidates)
        return f"${{steps.{step_id}.{outputs[tool]}}}"

    def text_arg() -> str:
        ref = earlier(_TEXT_OUT) if rng.random() < 0.8 else None
        if ref and rng.random() < 0.3:
            return f"{ref} (about {earlier(_INT_OUT) or 'some'} words)"
        return ref or "${inputs.seed_text}"

    out = []
    for index in range(steps):
        tool = rng.choice(tools) if index else "files/read_text"
        step_id = f"s{index}"
        args: dict[str, Any]
        if tool == "files/read_text":
            args = {"path": "${inputs.path}"}
        elif tool == "text/keywords":
            args = {"text": text_arg(), "top": rng.randint(1, 10)}
        elif tool == "text/convert_case":
            args = {"text": text_arg(), "case": "upper"}
        elif tool == "latency/sleep":
            args = {"ms": rng.choice([5, 10, 20])}
        elif tool in ("notes/put", "notes/get"):
            value = "previous: CHAIN_RESULT" if rng.random() < 0.2 else text_arg()  # interpolated as JSON
            args = {"key": f"k{index}", "value": value} if tool == "notes/put" else {"key": f"k{index}"}
        else:
            args = {"text": text_arg()}
        step: dict[str, Any] = {"id": step_id, "tool": tool, "arguments": args}
        if made and rng.random() < 0.5:
            step["depends_on"] = [rng.choice(made[-50:])[0]]
        out.append(step)
        made.append((step_id, tool))
    return {"inputs": {"path": "notes/today.md", "seed_text": "Hello world."}, "steps": out}


def measure(steps: int, runs: int, catalog: CatalogSnapshot) -> tuple[int, float]:
    raw = random_plan(steps, seed=steps)
    limits = PlannerLimits(max_steps=max(steps, 200))
    result = plan(raw, catalog, limits=limits)
    if not result.valid:
        sys.exit(f"benchmark plan of {steps} steps is invalid: {result.errors[:3]}")
    edges = sum(len(s.depends_on) for s in result.steps)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        plan(raw, catalog, limits=limits)
        times.append((time.perf_counter() - start) * 1000)
    return edges, statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="timed runs per size (median reported)")
    args = parser.parse_args()
    catalog = demo_catalog()
    plan(random_plan(50, seed=0), catalog)  # warm imports and caches of pydantic / jsonschema
    print(f"{'steps':>6} {'edges':>6} {'ms (median)':>12} {'us per (steps+edges)':>21}")
    at_200 = None
    for steps in (10, 100, 200, 1_000):
        edges, ms = measure(steps, args.runs, catalog)
        at_200 = ms if steps == 200 else at_200
        print(f"{steps:>6} {edges:>6} {ms:>12.2f} {ms * 1000 / (steps + edges):>21.1f}")
    verdict = "ok" if at_200 is not None and at_200 <= TARGET_MS_AT_200 else "MISSED"
    print(f"target: 200 steps <= {TARGET_MS_AT_200:.0f} ms -> {at_200:.2f} ms ({verdict})")


if __name__ == "__main__":
    main()
