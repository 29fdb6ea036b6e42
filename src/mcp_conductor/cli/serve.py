"""``mcp-conductor serve``: run the meta server over stdio (default) or streamable HTTP."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import anyio

from mcp_conductor.cli.common import EXIT_OK, add_config_option, add_state_dir_option, load, state_dir
from mcp_conductor.server.app import build_server
from mcp_conductor.server.http import TOKEN_ENV, HttpOptions, serve_http
from mcp_conductor.server.store import RunStore


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
    config = load(args)
    directory = state_dir(args)
    anyio.run(_check_store, directory)  # fail here, with a clear message, not inside the host's handshake
    server = build_server(config, state_dir=directory)
    if not args.http:
        anyio.run(server.run_stdio_async)
        return EXIT_OK
    options = HttpOptions(
        host=args.host,
        port=args.port,
        auth_token=args.auth_token or os.environ.get(TOKEN_ENV) or None,
        allowed_origins=tuple(args.allowed_origin),
    )
    anyio.run(serve_http, server, options)
    return EXIT_OK


async def _check_store(directory: Path) -> None:
    """Raises:
    StoreError: the state directory or its database cannot be used.
    """
    async with RunStore.open(directory):
        pass
