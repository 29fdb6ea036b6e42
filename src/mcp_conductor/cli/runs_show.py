"""``mcp-conductor runs show``: one run's steps, a timeline of when each ran, its errors and outputs."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from mcp_conductor.cli.common import EXIT_OK, UsageError, add_state_dir_option, state_dir, unknown_run
from mcp_conductor.cli.words import shorten

if TYPE_CHECKING:  # the command imports these when it runs, not when the parser is built
    from rich.console import Console

    from mcp_conductor.server.store.records import RunRecord, StepRun


def register(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = actions.add_parser(
        "show",
        help="a run's steps, timeline, errors and outputs",
        description="Show a run: its steps with status, attempts and duration, a timeline of when each step "
        "ran (relative to the run's start), the errors, and the outputs (previews; --output prints one whole).",
        epilog="examples:\n  mcp-conductor runs show RUN_ID\n  mcp-conductor runs show RUN_ID --output stats | jq .",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_state_dir_option(p)
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--output", metavar="STEP", help="print STEP's whole output as JSON, and nothing else")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import anyio

    from mcp_conductor.cli import console as ui

    directory = state_dir(args)
    record, steps = anyio.run(_load, directory, args.run_id)
    if args.output is not None:
        print(json.dumps(step_output(steps, args.output, record.run_id), indent=2, ensure_ascii=False))
        return EXIT_OK
    show(ui.out(), record, steps, args.state_dir)
    return EXIT_OK


async def _load(directory: Path, run_id: str) -> tuple[RunRecord, list[StepRun]]:
    from mcp_conductor.server.store.store import RunStore

    async with RunStore.open(directory) as store:
        record = await store.get_run(run_id)
        if record is None:
            raise unknown_run(run_id, directory)
        return record, await store.get_steps(run_id)


def step_output(steps: list[StepRun], step_id: str, run_id: str) -> object:
    """Raises:
    UsageError: no such step, or it has no output (it did not succeed).
    """
    for step in steps:
        if step.step_id == step_id:
            if not step.has_output:
                raise UsageError(f"step {step_id!r} of run {run_id} has no output (it is {step.status.value})")
            return step.output
    raise UsageError(
        f"run {run_id} has no step {step_id!r}", hint=f"its steps: {', '.join(s.step_id for s in steps) or '(none)'}"
    )


def show(console: Console, record: RunRecord, steps: list[StepRun], state_dir: str | None) -> None:
    from rich.text import Text

    from mcp_conductor.cli import console as ui
    from mcp_conductor.cli.execution import preview, runs_command
    from mcp_conductor.cli.gantt import gantt, spans
    from mcp_conductor.cli.live import STATE_WORDS, format_ms
    from mcp_conductor.server.store.records import RunStatus

    head = Text(f"run {record.run_id} ")
    head.append(record.status.value, style=ui.style(console, "bold " + ui.STATUS_STYLES.get(record.status.value, "")))
    if record.duration_ms is not None:
        head.append(f" in {format_ms(record.duration_ms)}")
    console.print(head)
    console.print(Text(f"plan {record.plan_id}, started {record.started_at.replace('T', ' ')[:23]} UTC"))
    if record.inputs:
        console.print(Text(f"inputs {shorten(json.dumps(record.inputs, ensure_ascii=False), 300)}"))
    console.print()

    table = ui.table(console, "step", "tool", "state", "attempts", "duration", right=("attempts", "duration"))
    for step in steps:
        state = STATE_WORDS.get(step.status.value, step.status.value)
        table.add_row(
            Text(step.step_id),
            Text(step.tool),
            Text(state, style=ui.style(console, ui.STATUS_STYLES.get(state, ""))),
            str(step.attempts) if step.attempts else "-",
            format_ms(step.duration_ms),
        )
    ui.print_table(console, table)

    now = datetime.now(UTC) if record.status is RunStatus.RUNNING else None
    rows, total = spans(record, steps, now)
    if any(r.start_ms is not None for r in rows):
        console.print()
        console.print("timeline:")
        for line in gantt(rows, total):
            console.print(Text("  " + line))

    errors = [s for s in steps if s.error is not None and s.status.value != "skipped"]
    if errors or record.error is not None:
        console.print()
        console.print("errors:")
        if record.error is not None:
            console.print(Text(f"  run: {record.error.kind}: {record.error.message}"))
        for step in errors:
            assert step.error is not None
            console.print(Text(f"  {step.step_id} ({step.tool}): {step.error.kind}: {step.error.message}"))

    outputs = [s for s in steps if s.has_output and s.step_id in record.outputs]
    if outputs:
        console.print()
        console.print("outputs:")
        cut_any = False
        for step in outputs:
            text, cut = preview(step.output)
            cut_any = cut_any or cut
            console.print(Text(f"  {step.step_id}: {text}"))
        if cut_any:
            command = runs_command(state_dir, "show", record.run_id, "--output", "STEP")
            console.print(Text(f"  (whole values: {command})"))
