"""``mcp-conductor plan``: check a plan file against the live catalog; print its levels and critical path,
or every error with its JSON pointer and a hint."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcp_conductor.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    add_config_option,
    add_state_dir_option,
    announce_connecting,
    load,
    read_json_file,
    state_dir,
)
from mcp_conductor.cli.words import plural

if TYPE_CHECKING:  # the command imports these when it runs, not when the parser is built
    from rich.console import Console

    from mcp_conductor.client_pool.config_models import ConductorConfig
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
        "  mcp-conductor plan --config servers.json chain.json\n"
        "  mcp-conductor plan chain.json --save-as notes-to-memory --description 'notes into memory'",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_option(p)
    add_state_dir_option(p)
    p.add_argument("file", metavar="FILE", help=PLAN_FILE_HELP)
    p.add_argument("--json", action="store_true", help="print the planner's result as JSON")
    p.add_argument("--save-as", metavar="NAME", help="save the valid plan as the chain chain/NAME (versioned)")
    p.add_argument("--description", default="", help="with --save-as: what the chain does (discover_tools indexes it)")
    p.add_argument("--inputs-schema", metavar="FILE", help="with --save-as: the JSON Schema of the inputs callers give")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import anyio

    from mcp_conductor.cli import console as ui
    from mcp_conductor.cli.execution import read_plan

    raw = read_plan(args.file)
    save_as = None
    if args.save_as is not None:
        schema = None if args.inputs_schema is None else read_json_file(args.inputs_schema, "inputs schema")
        if schema is not None and not isinstance(schema, dict):
            raise UsageError(f"{args.inputs_schema}: an inputs schema is a JSON object", hint='{"type": "object", ...}')
        save_as = {"name": args.save_as, "description": args.description, "inputs": schema}
    elif args.inputs_schema is not None or args.description:
        raise UsageError("--description and --inputs-schema go with --save-as NAME")
    config = load(args)
    announce_connecting(config)
    result = anyio.run(_plan, config, state_dir(args), raw, save_as)
    if args.json:
        print(json.dumps(result.model_dump(mode="json"), indent=2))
    else:
        console = ui.out()
        if result.valid:
            print_valid(console, result, Path(args.file).name)
        else:
            print_invalid(console, result, Path(args.file).name)
    return exit_code(result)


async def _plan(config: ConductorConfig, directory: Path, raw: Any, save_as: Any = None) -> PlanResult:
    from mcp_conductor.cli.execution import wait_for_servers
    from mcp_conductor.server.conductor import Conductor

    async with Conductor.open(config, directory, startup_wait_s=0) as conductor:
        await wait_for_servers(conductor.pool, raw)
        return await conductor.plan(raw, save_as=save_as)


def exit_code(result: PlanResult) -> int:
    """0 valid; 1 when only unavailable servers stand in the way (a server problem, see ``doctor``); else 2."""
    if result.valid:
        return EXIT_OK
    if result.errors and all(e.kind == "server_unavailable" for e in result.errors):
        return EXIT_FAILED
    return EXIT_USAGE


def print_valid(console: Console, result: PlanResult, name: str) -> None:
    from rich.text import Text

    from mcp_conductor.cli import console as ui

    console.print(
        Text(
            f"{name}: valid, {plural(len(result.steps), 'step')} in {plural(len(result.levels), 'level')}",
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
    if result.saved is not None:
        saved = result.saved
        console.print(f"saved          {saved.id}@{saved.version} ({saved.status.replace('_', ' ')})", markup=False)
    if result.warnings:
        console.print(f"{plural(len(result.warnings), 'warning')}:")
        print_issues(console, result.warnings)


def print_invalid(console: Console, result: PlanResult, name: str) -> None:
    from rich.text import Text

    from mcp_conductor.cli import console as ui

    console.print(Text(f"{name}: invalid plan, {plural(len(result.errors), 'error')}", style=ui.style(console, "red")))
    print_issues(console, result.errors)
    if result.warnings:
        console.print(f"{plural(len(result.warnings), 'warning')}:")
        print_issues(console, result.warnings)


def print_issues(console: Console, issues: Sequence[PlanIssue]) -> None:
    from rich.text import Text

    from mcp_conductor.cli import console as ui

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
