"""``mcp-conductor tools``: connect to every server and print its tools (or export the catalog as JSON)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from mcp_conductor.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    add_config_option,
    add_wait_option,
    announce_connecting,
    load,
    settle_wait,
)
from mcp_conductor.cli.words import plural, shorten

if TYPE_CHECKING:  # the command imports these when it runs, not when the parser is built
    from mcp_conductor.client_pool.config_models import ConductorConfig

LINE_WIDTH = 100  # a tool's line: two spaces, its id, two spaces, its description cut to fit


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "tools",
        help="list every downstream tool with its server's status",
        description="Connect to every configured server, then print each server's state and its tools.",
        epilog="examples:\n  mcp-conductor tools --config servers.json\n  mcp-conductor tools --json > catalog.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_option(p)
    p.add_argument("--json", action="store_true", help="print the catalog as a JSON list (for discover --catalog)")
    add_wait_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import anyio

    config = load(args)
    announce_connecting(config)
    return anyio.run(_run, config, settle_wait(args, config), args.json)


async def _run(config: ConductorConfig, wait: float, as_json: bool) -> int:
    from mcp_conductor.client_pool.pool import ClientPool
    from mcp_conductor.client_pool.status import ServerState

    async with ClientPool(config) as pool:
        await pool.wait_settled(wait)
        snapshot = pool.snapshot()
        statuses = pool.statuses()
    if as_json:
        json.dump([t.export() for t in sorted(snapshot.tools.values(), key=lambda t: t.id)], sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for name, status in sorted(statuses.items()):
            line = f"{name} [{status.transport}] {status.state.value}"
            if status.connect_ms is not None:
                line += f" in {status.connect_ms:.0f} ms, {plural(status.tools or 0, 'tool')}"
            if status.error:
                line += f": {status.error}"
            print(line)
            tools = snapshot.by_server(name)
            width = max((len(t.id) for t in tools), default=0)
            for tool in tools:
                summary = shorten(tool.description, max(20, LINE_WIDTH - width - 4))
                print(f"  {tool.id:<{width}}  {summary}".rstrip())
        for skipped in config.skipped:
            print(f"{skipped} skipped: it runs mcp-conductor itself")
    failed = [s for s in statuses.values() if s.state in (ServerState.FAILED, ServerState.RECONNECTING)]
    return EXIT_FAILED if failed else EXIT_OK
