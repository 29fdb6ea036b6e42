"""``mcp-conductor plan``: check a plan file against the live catalog; print its levels and critical path,
or every error with its JSON pointer and a hint."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
from rich.console import Console
from rich.text import Text

from mcp_conductor.cli import console as ui
from mcp_conductor.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    add_config_option,
    add_state_dir_option,
    load,
    state_dir,
)
from mcp_conductor.cli.execution import read_plan, wait_for_servers
from mcp_conductor.client_pool.config_models import ConductorConfig
from mcp_conductor.server.conductor import Conductor
from mcp_conductor.server.planning.models import PlanIssue, PlanResult

PLAN_FILE_HELP = "the plan: a JSON object with steps (and optional inputs, outputs); '-' reads stdin"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "plan",
        help="check a plan file against the servers' tools; print its levels, critical path and estimate",
        description="Connect to the servers the plan uses, check the plan (tools, arguments against their "
        "schemas, references, cycles) and print its parallel levels, critical path and latency estimate, or "
        "each error with its JSON pointer and a hint. Exits 2 when the plan is invalid. Plans are JSON (YAML "
        "is not supported).",
        epilog="examples:\n  mcp-conductor plan chain.json\n  mcp-conductor plan chain.json --json | jq .levels\n"
        "  mcp-conductor plan --config servers.json chain.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_option(p)
    add_state_dir_option(p)
    p.add_argument("file", metavar="FILE", help=PLAN_FILE_HELP)
    p.add_argument("--json", action="store_true", help="print the planner's result as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raw = read_plan(args.file)
    config = load(args)
    result = anyio.run(_plan, config, state_dir(args), raw)
    if args.json:
        print(json.dumps(result.model_dump(mode="json"), indent=2))
    else:
        console = ui.out()
        if result.valid:
            print_valid(console, result, Path(args.file).name)
        else:
            print_invalid(console, result, Path(args.file).name)
    return exit_code(result)


async def _plan(config: ConductorConfig, directory: Path, raw: Any) -> PlanResult:
    async with Conductor.open(config, directory, startup_wait_s=0) as conductor:
        await wait_for_servers(conductor.pool, raw)
        return await conductor.plan(raw)


def exit_code(result: PlanResult) -> int:
    """0 valid; 1 when only unavailable servers stand in the way (a server problem, see ``doctor``); else 2."""
    if result.valid:
        return EXIT_OK
    if result.errors and all(e.kind == "server_unavailable" for e in result.errors):
        return EXIT_FAILED
    return EXIT_USAGE


def print_valid(console: Console, result: PlanResult, name: str) -> None:
    steps = len(result.steps)
    console.print(
        Text(
            f"{name}: valid, {steps} step{'s' * (steps != 1)} in {len(result.levels)} levels",
            style=ui.style(console, "green"),
        )
    )
    console.print(f"plan id        {result.plan_id}")
    console.print("levels         " + "  |  ".join(", ".join(level) for level in result.levels), markup=False)
    estimate = "-" if result.estimated_latency_ms is None else f"~{result.estimated_latency_ms:.0f} ms"
    measured = sum(1 for basis in result.estimate_basis.values() if basis == "measured")
    basis = f"measured for {measured} of {len(result.estimate_basis)} tools" if measured else "default latencies"
    console.print(f"critical path  {' -> '.join(result.critical_path)}", markup=False)
    console.print(f"estimate       {estimate} ({basis})")
    console.print(f"outputs        {', '.join(result.outputs)}", markup=False)
    if result.warnings:
        console.print(f"{len(result.warnings)} warning(s):")
        print_issues(console, result.warnings)


def print_invalid(console: Console, result: PlanResult, name: str) -> None:
    n = len(result.errors)
    console.print(Text(f"{name}: invalid plan, {n} error{'s' * (n != 1)}", style=ui.style(console, "red")))
    print_issues(console, result.errors)
    if result.warnings:
        console.print(f"{len(result.warnings)} warning(s):")
        print_issues(console, result.warnings)


def print_issues(console: Console, issues: Sequence[PlanIssue]) -> None:
    for issue in issues:
        where = issue.field or "/"
        step = f" (step {issue.step})" if issue.step else ""
        line = Text("  ")
        line.append(where, style=ui.style(console, "bold"))
        line.append(f"{step}: {issue.message}  [{issue.kind}]")
        console.print(line)
        if issue.hint:
            console.print(Text(f"      hint: {issue.hint}"))
        if issue.suggestions and not all(s in (issue.hint or "") for s in issue.suggestions):
            console.print(Text(f"      did you mean: {', '.join(issue.suggestions)}"))
