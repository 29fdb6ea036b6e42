"""``mcp-conductor runs cancel``: stop a run that a server (``serve``) is running, or end an interrupted one."""

from __future__ import annotations

import argparse
from pathlib import Path

import anyio

from mcp_conductor.cli.common import EXIT_OK, add_state_dir_option, state_dir, unknown_run


def register(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = actions.add_parser(
        "cancel",
        help="stop a running run (the server that runs it stops it within a second)",
        description="Cancel a run: the process that runs it (e.g. `mcp-conductor serve`) stops it within a "
        "second and records it as cancelled; an interrupted run (its process is gone) is marked cancelled at once.",
        epilog="examples:\n  mcp-conductor runs cancel RUN_ID",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_state_dir_option(p)
    p.add_argument("run_id", metavar="RUN_ID")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print(anyio.run(cancel, state_dir(args), args.run_id))
    return EXIT_OK


async def cancel(directory: Path, run_id: str) -> str:
    """What happened, in one line.

    Raises:
        UsageError: there is no such run.
        StoreError: the store cannot be used.
    """
    from mcp_conductor.server.store.records import RunStatus
    from mcp_conductor.server.store.store import RunStore

    async with RunStore.open(directory) as store:
        record = await store.get_run(run_id)
        if record is None:
            raise unknown_run(run_id, directory)
        if record.status.finished:
            return f"run {run_id} has already ended: {record.status.value}"
        if record.status is RunStatus.INTERRUPTED:
            await store.set_run_status(run_id, RunStatus.CANCELLED)
            return f"run {run_id} was interrupted; it is now cancelled"
        await store.request_cancel(run_id)
        return f"cancel requested: the process running {run_id} (pid {record.owner_pid}) stops it within a second"
