"""``mcp-conductor runs``: the stored runs: ``list``, ``show``, ``resume``, ``export``, ``import``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcp_conductor.cli import runs_cancel, runs_resume, runs_show
from mcp_conductor.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    add_state_dir_option,
    read_json_file,
    state_dir,
    unknown_run,
    write_output,
)
from mcp_conductor.cli.words import plural

if TYPE_CHECKING:  # the command imports these when it runs, not when the parser is built
    from mcp_conductor.server.store.records import RunExport

_FORMATTER = argparse.RawDescriptionHelpFormatter
WIDE_ENOUGH_FOR_PLAN = 110
# The values of server.store.records.RunStatus (a test pins them), here so that building the parser imports
# no pydantic.
RUN_STATUSES = ("running", "succeeded", "failed", "partial", "timed_out", "cancelled", "interrupted", "declined")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "runs",
        help="list, show, resume, export and import stored runs",
        description="The runs kept in the state directory (see --state-dir).",
        epilog="examples:\n  mcp-conductor runs list\n  mcp-conductor runs show RUN_ID\n"
        "  mcp-conductor runs export RUN_ID -o run.json && mcp-conductor runs import run.json --state-dir other/",
        formatter_class=_FORMATTER,
    )
    p.set_defaults(func=run, runs_parser=p)
    actions = p.add_subparsers(dest="runs_command", metavar="ACTION")

    ls = actions.add_parser(
        "list",
        help="the newest runs, newest first",
        description="List the newest runs with their status, start, duration and number of steps.",
        epilog="examples:\n  mcp-conductor runs list\n  mcp-conductor runs list --status failed --limit 5\n"
        "  mcp-conductor runs list --json | jq '.[0].run_id'",
        formatter_class=_FORMATTER,
    )
    add_state_dir_option(ls)
    ls.add_argument(
        "--json",
        action="store_true",
        help="print a JSON list of {run_id, status, plan_id, started_at, duration_ms, steps}",
    )
    ls.add_argument("--limit", type=_positive_int, default=20, metavar="N", help="at most N runs (default 20)")
    ls.add_argument("--status", choices=RUN_STATUSES, help="only runs with this status")
    ls.set_defaults(func=list_runs)

    runs_show.register(actions)
    runs_resume.register(actions)
    runs_cancel.register(actions)

    ex = actions.add_parser(
        "export",
        help="write a run (plan, steps, outputs) as JSON",
        description="Write a run's whole state (run, steps with outputs, plan) as JSON, for `runs import`.",
        epilog="examples:\n  mcp-conductor runs export RUN_ID > run.json\n"
        "  mcp-conductor runs export RUN_ID -o run.json",
        formatter_class=_FORMATTER,
    )
    add_state_dir_option(ex)
    ex.add_argument("run_id", metavar="RUN_ID")
    ex.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of stdout")
    ex.set_defaults(func=export_run)

    im = actions.add_parser(
        "import",
        help="store a run exported with `runs export`",
        description="Store a run from a `runs export` file (and its plan), e.g. in another state directory.",
        epilog="examples:\n  mcp-conductor runs import run.json\n  mcp-conductor runs import run.json --replace",
        formatter_class=_FORMATTER,
    )
    add_state_dir_option(im)
    im.add_argument("file", metavar="FILE", help="a `runs export` file; '-' reads stdin")
    im.add_argument("--replace", action="store_true", help="overwrite a stored run with the same id")
    im.set_defaults(func=import_run)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {text}")
    return value


def run(args: argparse.Namespace) -> int:
    """``runs`` without an action: its help, on stderr."""
    args.runs_parser.print_help(sys.stderr)
    return EXIT_USAGE


def list_runs(args: argparse.Namespace) -> int:
    import anyio
    from rich.text import Text

    from mcp_conductor.cli import console as ui
    from mcp_conductor.cli.live import format_ms

    rows = anyio.run(_list, state_dir(args), args.limit, args.status)
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    console = ui.out()
    if not rows:
        console.print("no runs" + (f" with status {args.status}" if args.status else ""))
        return EXIT_OK
    wide = console.width >= WIDE_ENOUGH_FOR_PLAN  # on a narrow terminal the plan id would squeeze the rest
    headers = ("run", "status", "started (UTC)", "duration", "steps", *(("plan",) if wide else ()))
    table = ui.table(console, *headers, right=("duration", "steps"), no_wrap=("run", "started (UTC)", "plan"))
    for row in rows:
        cells = [
            Text(row["run_id"]),
            Text(row["status"], style=ui.style(console, ui.STATUS_STYLES.get(row["status"], ""))),
            row["started_at"].replace("T", " ")[:19],
            format_ms(row["duration_ms"]),
            str(row["steps"]),
        ]
        table.add_row(*cells, *((Text(row["plan_id"]),) if wide else ()))
    ui.print_table(console, table)
    return EXIT_OK


async def _list(directory: Path, limit: int, status: str | None) -> list[dict[str, Any]]:
    from mcp_conductor.server.store.records import RunStatus
    from mcp_conductor.server.store.store import RunStore

    async with RunStore.open(directory) as store:
        runs = await store.list_runs(limit, RunStatus(status) if status else None)
        return [
            {
                "run_id": r.run_id,
                "status": r.status.value,
                "plan_id": r.plan_id,
                "started_at": r.started_at,
                "duration_ms": r.duration_ms,
                "steps": len(await store.get_steps(r.run_id)),
            }
            for r in runs
        ]


def export_run(args: argparse.Namespace) -> int:
    import anyio

    exported = anyio.run(_export, state_dir(args), args.run_id)
    write_output(exported.model_dump_json(indent=2) + "\n", args.output, f"wrote run {args.run_id}")
    return EXIT_OK


async def _export(directory: Path, run_id: str) -> RunExport:
    from mcp_conductor.server.store.store import RunStore

    async with RunStore.open(directory) as store:
        exported = await store.export_run(run_id)
    if exported is None:
        raise unknown_run(run_id, directory)
    return exported


def import_run(args: argparse.Namespace) -> int:
    import anyio
    from pydantic import ValidationError

    from mcp_conductor.server.store.records import RunExport

    raw = read_json_file(args.file, "run export", hint="make one with `mcp-conductor runs export RUN_ID -o FILE`")
    try:
        exported = RunExport.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the top level"
        raise UsageError(
            f"{args.file} is not a run export ({where}: {first['msg']})",
            hint="make one with `mcp-conductor runs export RUN_ID -o FILE`",
        ) from exc
    directory = state_dir(args)
    anyio.run(_import, directory, exported, args.replace)
    print(
        f"imported run {exported.run.run_id} ({exported.run.status.value}, {plural(len(exported.steps), 'step')}) "
        f"into {directory}",
        file=sys.stderr,
    )
    return EXIT_OK


async def _import(directory: Path, exported: RunExport, replace: bool) -> None:
    from mcp_conductor.server.store.store import RunStore

    async with RunStore.open(directory) as store:
        await store.import_run(exported, replace=replace)
