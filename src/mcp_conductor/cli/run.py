"""``mcp-conductor run``: execute a plan file with a live view of its steps, then summarize the outputs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcp_conductor.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    add_config_option,
    add_state_dir_option,
    announce_connecting,
    load,
    state_dir,
)
from mcp_conductor.cli.consent import add_yes_option
from mcp_conductor.cli.plan import PLAN_FILE_HELP, exit_code, print_invalid

if TYPE_CHECKING:  # the command imports these when it runs, not when the parser is built
    from mcp_conductor.cli.execution import Outcome
    from mcp_conductor.client_pool.config_models import ConductorConfig


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return value


def add_run_options(p: argparse.ArgumentParser) -> None:
    """The options ``run`` and ``runs resume`` share."""
    add_config_option(p)
    add_state_dir_option(p)
    p.add_argument(
        "--input",
        "-i",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a plan input (repeatable); the value is parsed as JSON if it can be, else a string",
    )
    p.add_argument(
        "--json", action="store_true", help="print the structured result (ExecuteResult) as JSON, without the live view"
    )
    p.add_argument(
        "--timeout",
        type=positive_float,
        default=None,
        metavar="S",
        help="deadline for the whole run in seconds (the run ends as timed_out)",
    )
    add_yes_option(p)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "run",
        help="run a plan file with a live view of its steps",
        description="Check a plan file against the servers' tools, run it (independent steps in parallel) with "
        "a live view of each step's state, attempts and duration, then print the outputs. Ctrl-C cancels the "
        "run cleanly and records it as cancelled (resume it with `runs resume`).",
        epilog="examples:\n  mcp-conductor run chain.json\n  mcp-conductor run chain.json --input path=notes/today.md "
        "--input top=5\n  mcp-conductor run chain.json --json | jq .outputs\n"
        "  mcp-conductor run chain.json --timeout 30",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", metavar="FILE", help=PLAN_FILE_HELP)
    add_run_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import anyio

    from mcp_conductor.cli.execution import parse_inputs, read_plan, with_inputs

    raw = with_inputs(read_plan(args.file), parse_inputs(args.input))  # a bad --input fails before connecting
    config = load(args)
    announce_connecting(config)
    outcome = anyio.run(_run, config, state_dir(args), raw, args.timeout, args.json, args.yes)
    return report(outcome, args, Path(args.file).name)


async def _run(
    config: ConductorConfig, directory: Path, raw: Any, timeout_s: float | None, quiet: bool, yes: bool = False
) -> Outcome:
    from mcp_conductor.cli import console as ui
    from mcp_conductor.cli.consent import ask_person
    from mcp_conductor.cli.execution import Outcome, execute_live, wait_for_servers
    from mcp_conductor.cli.live import LiveDisplay, RunView
    from mcp_conductor.server.conductor import Conductor
    from mcp_conductor.server.execution.engine import new_run_id
    from mcp_conductor.server.execution.results import ExecuteResult, RunOptions

    async with Conductor.open(config, directory, startup_wait_s=0) as conductor:
        await wait_for_servers(conductor.pool, raw)
        checked = await conductor.plan(raw)
        if not checked.valid or checked.plan_id is None:
            return Outcome(ExecuteResult(run_id=None, status="invalid", errors=list(checked.errors)), invalid=checked)
        view = RunView([(s.id, s.target) for s in checked.steps], new_run_id())
        options = RunOptions(run_id=view.run_id, timeout_s=timeout_s, detail="steps")
        approve = await ask_person(conductor, plan_id=checked.plan_id, options=options, assume_yes=yes)
        with LiveDisplay(view, ui.out(), quiet=quiet) as display:
            return await execute_live(
                conductor, view, display, plan_id=checked.plan_id, options=options, approve=approve
            )


def report(outcome: Outcome, args: argparse.Namespace, name: str) -> int:
    """Print the outcome (JSON or summary) and choose the exit code."""
    from mcp_conductor.cli import console as ui
    from mcp_conductor.cli.execution import print_hint_after, print_summary

    if outcome.invalid is not None and not args.json:
        print_invalid(ui.err(), outcome.invalid, name)
    if outcome.result.status == "consent_required":  # nothing ran: say why, and how to allow it
        if args.json:
            print(outcome.result.model_dump_json(indent=2))
        if outcome.result.error is not None:
            print(outcome.result.error.message, file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(outcome.result.model_dump_json(indent=2))
    elif outcome.invalid is None:
        print_summary(ui.out(), outcome, args.state_dir)
        print_hint_after(outcome, args.state_dir)
    if outcome.invalid is not None:
        return exit_code(outcome.invalid)
    if outcome.interrupted:
        print("interrupted: the run was cancelled", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK if outcome.result.status == "succeeded" else EXIT_FAILED
