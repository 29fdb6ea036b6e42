"""``mcp-conductor tools``: connect to every server and print its tools (or export the catalog as JSON)."""

from __future__ import annotations

import argparse
import json
import sys

import anyio

from mcp_conductor.cli.common import EXIT_FAILED, EXIT_OK, add_config_option, add_wait_option, load, settle_wait
from mcp_conductor.client_pool.config_models import ConductorConfig
from mcp_conductor.client_pool.pool import ClientPool
from mcp_conductor.client_pool.status import ServerState


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
    config = load(args)
    return anyio.run(_run, config, settle_wait(args, config), args.json)


async def _run(config: ConductorConfig, wait: float, as_json: bool) -> int:
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
                line += f" in {status.connect_ms:.0f} ms, {status.tools} tools"
            if status.error:
                line += f": {status.error}"
            print(line)
            for tool in snapshot.by_server(name):
                summary = " ".join(tool.description.split())[:100]
                print(f"  {tool.id}  {summary}")
        for skipped in config.skipped:
            print(f"{skipped} skipped: it runs mcp-conductor itself")
    failed = [s for s in statuses.values() if s.state in (ServerState.FAILED, ServerState.RECONNECTING)]
    return EXIT_FAILED if failed else EXIT_OK
