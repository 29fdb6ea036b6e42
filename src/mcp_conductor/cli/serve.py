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

if TYPE_CHECKING:  # the command imports these when it runs, not when the parser is built
    import anyio
    from mcp.server.mcpserver import MCPServer

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
            f"  {TOKEN_ENV}=secret mcp-conductor serve --http --host 0.0.0.0"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_option(p)
    add_state_dir_option(p)
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

    config = load(args)
    directory = state_dir(args)
    anyio.run(_check_store, directory)  # fail here, with a clear message, not inside the host's handshake
    server = build_server(config, state_dir=directory)
    if not args.http:
        anyio.run(_serve_stdio, server)
        return EXIT_OK
    options = HttpOptions(
        host=args.host,
        port=args.port,
        auth_token=args.auth_token or os.environ.get(TOKEN_ENV) or None,
        allowed_origins=tuple(args.allowed_origin),
    )
    anyio.run(serve_http, server, options, _say_listening)
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
