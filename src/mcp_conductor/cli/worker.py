"""``mcp-conductor worker``: a Temporal worker that makes the downstream calls of runs on the Temporal engine.

It owns one downstream pool (one MCP session per configured server for the whole process) and polls the task
queue until SIGTERM, SIGINT or Ctrl-C. Run several on one task queue to share the load. The front
(``serve --engine temporal``) and its workers must share the state directory's ``blobs`` folder, where values
too big for Temporal's history are kept.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from mcp_conductor.cli.common import EXIT_OK, add_config_option, add_state_dir_option, load, state_dir
from mcp_conductor.cli.engine_options import add_temporal_options, with_engine
from mcp_conductor.errors import ConfigError

if TYPE_CHECKING:  # imported when the command runs: the temporal extra may be missing
    import anyio

    from mcp_conductor.client_pool.config_models import ConductorConfig
    from mcp_conductor.server.execution.temporal.activities import Activities


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "worker",
        help="run a Temporal worker for `serve --engine temporal` (needs the temporal extra)",
        description="Run a worker that makes the downstream calls of runs on the Temporal engine.",
        epilog=(
            "examples:\n"
            "  mcp-conductor worker --config servers.json --temporal-address 127.0.0.1:7233\n"
            "  mcp-conductor worker --config servers.json --temporal-address 127.0.0.1:7233 --task-queue team-a"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_option(p)
    add_state_dir_option(p)
    add_temporal_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import anyio

    config = with_engine(load(args), args, kind="temporal")
    directory = state_dir(args)
    anyio.run(_work, config, directory)
    # A process that held a Temporal client may crash in the SDK's teardown at interpreter exit
    # (temporalio/sdk-python#300): leave at once, with the streams flushed.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_OK)


async def _work(config: ConductorConfig, directory: Path) -> None:
    import anyio

    try:
        from mcp_conductor.server.execution.temporal.worker import run_worker
    except ImportError as exc:
        raise ConfigError(
            f"the worker needs the temporal extra ({exc.name or exc} is not installed)",
            hint="pip install 'mcp-conductor[temporal]'",
        ) from exc
    engine = config.engine
    assert engine.address is not None  # with_engine requires it

    async def ready(activities: Activities) -> None:
        print(
            f"worker {activities.identity} ready: task queue {engine.task_queue} at {engine.address}",
            file=sys.stderr,
            flush=True,
        )

    async with anyio.create_task_group() as tg:
        tg.start_soon(_stop_on_signal, tg.cancel_scope)
        await run_worker(
            config,
            address=engine.address,
            namespace=engine.namespace,
            task_queue=engine.task_queue,
            state_dir=directory,
            ready=ready,
        )


async def _stop_on_signal(scope: anyio.CancelScope) -> None:
    import anyio

    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for _ in signals:
            scope.cancel()
            return
