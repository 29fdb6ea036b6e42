"""``mcp-conductor serve``: run the meta server over stdio (default) or streamable HTTP."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcp_conductor.cli.common import EXIT_OK, TOKEN_ENV, add_config_option, add_state_dir_option, load, state_dir
from mcp_conductor.cli.engine_options import add_engine_options, with_engine

if TYPE_CHECKING:  # the command imports these when it runs, not when the parser is built
    import anyio
    from mcp.server.mcpserver import MCPServer

    from mcp_conductor.client_pool.config_models import ConductorConfig

# The pool stops a downstream server within about 4.5 s (2 s for it to exit on EOF, then SIGTERM, then SIGKILL
# 2 s later): the most a signalled server waits before it leaves regardless.
SIGNAL_EXIT_GRACE_S = 6.0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "serve",
        help="run the meta MCP server (stdio by default, --http for streamable HTTP)",
        description="Run mcp-conductor as an MCP server for a host such as Claude Desktop.",
        epilog=(
            "examples:\n"
            "  mcp-conductor serve --config servers.json\n"
            "  mcp-conductor serve --config servers.json --http --port 8765\n"
            f"  {TOKEN_ENV}=secret mcp-conductor serve --http --host 0.0.0.0\n"
            "  mcp-conductor serve --config servers.json --engine temporal --temporal-address 127.0.0.1:7233"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_option(p)
    add_state_dir_option(p)
    add_engine_options(p)
    p.add_argument("--http", action="store_true", help="serve streamable HTTP instead of stdio")
    p.add_argument("--host", default="127.0.0.1", help="HTTP bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="HTTP port (default 8765)")
    p.add_argument(
        "--auth-token",
        default=None,
        help=f"bearer token required on every HTTP request (default: ${TOKEN_ENV}); required for a non-loopback --host",
    )
    p.add_argument(
        "--allowed-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="an extra allowed Origin header value for browser clients (repeatable)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import anyio

    from mcp_conductor.server.app import build_server
    from mcp_conductor.server.http import HttpOptions, serve_http

    config = with_engine(load(args), args)
    directory = state_dir(args)
    anyio.run(_check_store, directory)  # fail here, with a clear message, not inside the host's handshake
    if config.engine.kind == "temporal":
        anyio.run(_check_temporal, config)
    server = build_server(config, state_dir=directory)
    if not args.http:
        anyio.run(_serve_stdio, server)
        return _exit(config)
    options = HttpOptions(
        host=args.host,
        port=args.port,
        auth_token=args.auth_token or os.environ.get(TOKEN_ENV) or None,
        allowed_origins=tuple(args.allowed_origin),
    )
    anyio.run(serve_http, server, options, _say_listening)
    return _exit(config)


def _exit(config: ConductorConfig) -> int:
    """EXIT_OK; with the Temporal engine, the process leaves at once: the SDK's runtime threads can hang or crash
    the interpreter's exit (temporalio/sdk-python#300)."""
    if config.engine.kind == "temporal":
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_OK)
    return EXIT_OK


def _say_listening(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


async def _serve_stdio(server: MCPServer[Any]) -> None:
    """Serve stdio until the host closes stdin, or until SIGTERM/SIGHUP.

    A host that disconnects closes our stdin and, if we are not gone 2 s later, sends SIGTERM to our process
    group. The downstream servers run in sessions of their own (the SDK starts each one that way), so dying
    at once on SIGTERM would orphan them, and one that ignores stdin would live forever. On a signal the
    server stops like on EOF: the pool's shutdown terminates every downstream process.
    """
    import anyio

    async with anyio.create_task_group() as tg:
        if sys.platform != "win32":
            tg.start_soon(_stop_on_signal, tg.cancel_scope)
        await server.run_stdio_async()
        tg.cancel_scope.cancel()


async def _stop_on_signal(scope: anyio.CancelScope) -> None:
    import anyio
    import structlog

    log = structlog.get_logger(__name__)
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGHUP) as signals:
        async for signum in signals:
            log.info("serve.stopping", signal=signal.Signals(signum).name)
            scope.cancel()
            # The SDK reads stdin in a worker thread that cancellation cannot reach, so with stdin still open
            # the process would wait for the host forever; leave once the pool has had time to stop.
            timer = threading.Timer(SIGNAL_EXIT_GRACE_S, os._exit, args=(128 + signum,))
            timer.daemon = True
            timer.start()
            return


async def _check_store(directory: Path) -> None:
    """Raises:
    StoreError: the state directory or its database cannot be used.
    """
    from mcp_conductor.server.store.store import RunStore

    async with RunStore.open(directory) as store:
        # Opening an up-to-date store only reads it; the lifespan's first write would meet another process's
        # lock only after the handshake began (and with stdin open the process cannot leave before the host
        # writes). Take the write lock here, doing what the lifespan does first anyway.
        await store.mark_interrupted()


async def _check_temporal(config: ConductorConfig) -> None:
    """Raises:
    ConfigError: the temporal extra is not installed.
    ConductorError: the cluster cannot be reached (``engine_unavailable``).
    """
    from mcp_conductor.errors import ConfigError

    try:
        from mcp_conductor.server.execution.temporal.engine import TemporalSettings, connect
    except ImportError as exc:
        raise ConfigError(
            f"the temporal engine needs the temporal extra ({exc.name or exc} is not installed)",
            hint="pip install 'mcp-conductor[temporal]', or use the local engine (--engine local)",
        ) from exc
    engine = config.engine
    assert engine.address is not None
    await connect(TemporalSettings(engine.address, engine.namespace, engine.task_queue))
