"""``mcp-conductor runs resume``: run again the steps of a stored run that did not succeed, with the live view."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcp_conductor.cli.common import UsageError, announce_connecting, load, state_dir, unknown_run
from mcp_conductor.cli.run import add_run_options, report

if TYPE_CHECKING:  # the command imports these when it runs, not when the parser is built
    from mcp_conductor.cli.execution import Outcome
    from mcp_conductor.client_pool.config_models import ConductorConfig


def register(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = actions.add_parser(
        "resume",
        help="re-run the steps of a run that did not succeed",
        description="Resume a failed, cancelled, timed-out or interrupted run: steps that succeeded keep their "
        "outputs, the others run again, with the same live view as `run`. A step whose call was in flight when "
        "the server died, to a tool not annotated read-only or idempotent, ends `unknown` (it may or may not have "
        "taken effect) and is not called again: check its effect, then resume with --rerun-unknown if it did not "
        "happen.",
        epilog="examples:\n  mcp-conductor runs resume RUN_ID\n"
        "  mcp-conductor runs resume RUN_ID --input path=other.md\n"
        "  mcp-conductor runs resume RUN_ID --rerun-unknown",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument(
        "--rerun-unknown",
        action="store_true",
        help="call again the steps whose outcome is unknown (their call was cut off when the server died)",
    )
    add_run_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import anyio

    from mcp_conductor.cli.execution import parse_inputs

    inputs = parse_inputs(args.input)
    config = load(args)
    announce_connecting(config)
    outcome = anyio.run(
        _resume, config, state_dir(args), args.run_id, inputs, args.timeout, args.json, args.yes, args.rerun_unknown
    )
    return report(outcome, args, args.run_id)


async def _resume(
    config: ConductorConfig,
    directory: Path,
    run_id: str,
    inputs: dict[str, Any],
    timeout_s: float | None,
    quiet: bool,
    yes: bool = False,
    rerun_unknown: bool = False,
) -> Outcome:
    from mcp_conductor.cli import console as ui
    from mcp_conductor.cli.consent import ask_person
    from mcp_conductor.cli.execution import Outcome, execute_live, wait_for_servers
    from mcp_conductor.cli.live import LiveDisplay, RunView
    from mcp_conductor.server.conductor import Conductor
    from mcp_conductor.server.execution.results import ExecuteResult, RunOptions
    from mcp_conductor.server.planning.models import PlanResult

    async with Conductor.open(config, directory, startup_wait_s=0) as conductor:
        store = conductor.store
        record = await store.get_run(run_id)
        if record is None:
            raise unknown_run(run_id, directory)
        plan = await store.get_plan(record.plan_id)
        if plan is None:
            raise UsageError(
                f"the plan {record.plan_id} of run {run_id} is not in the store",
                hint="import the run with its plan (`runs export` includes it)",
            )
        await wait_for_servers(conductor.pool, plan)
        steps = await store.get_steps(run_id)
        view = RunView([(s.step_id, s.tool) for s in steps], run_id)
        view.update(steps)
        options = RunOptions(resume_run_id=run_id, timeout_s=timeout_s, detail="steps", rerun_unknown=rerun_unknown)
        approve = await ask_person(conductor, inputs=inputs, options=options, assume_yes=yes)
        with LiveDisplay(view, ui.out(), quiet=quiet) as display:
            outcome = await execute_live(conductor, view, display, inputs=inputs, options=options, approve=approve)
        if outcome.result.status == "invalid":
            checked = PlanResult(valid=False, errors=tuple(outcome.result.errors))
            return Outcome(
                ExecuteResult(run_id=run_id, status="invalid", errors=outcome.result.errors), invalid=checked
            )
        return outcome
