"""``mcp-conductor doctor``: check the config, start every server, and say why any of them does not work."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

from mcp_conductor import __version__
from mcp_conductor.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    add_config_option,
    add_wait_option,
    announce_connecting,
    load,
    settle_wait,
)
from mcp_conductor.cli.words import plural

if TYPE_CHECKING:  # the command imports these when it runs, not when the parser is built
    from mcp_conductor.cli.hints import Diagnosis
    from mcp_conductor.client_pool.config_models import ConductorConfig, RemoteServer
    from mcp_conductor.client_pool.status import ServerStatus

PROBE_TIMEOUT_S = 5.0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "doctor",
        help="check the config and start every server; say why one does not work and how to fix it",
        description="Validate the config, start every configured server, wait for each to connect or fail "
        "(bounded by its connect timeout), and print a table of their states, with the cause and a fix hint "
        "for each failure. Exits 1 if any server failed.",
        epilog="examples:\n  mcp-conductor doctor\n  mcp-conductor doctor --config ~/claude_desktop_config.json\n"
        "  mcp-conductor doctor --json | jq '.[] | select(.ok | not)'",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_option(p)
    p.add_argument("--json", action="store_true", help="print one JSON object per server instead of a table")
    add_wait_option(p)
    p.set_defaults(func=run)


@dataclass(frozen=True, slots=True)
class Row:
    server: str
    transport: str
    state: str
    connect_ms: float | None
    tools: int | None
    ok: bool
    cause: str | None
    hint: str | None


def run(args: argparse.Namespace) -> int:
    import anyio

    from mcp_conductor.client_pool.secrets import redact, secret_values

    config = load(args)
    announce_connecting(config)
    secrets = secret_values(config)
    rows = anyio.run(check, config, settle_wait(args, config))
    rows = [
        replace(r, cause=r.cause and redact(r.cause, secrets), hint=r.hint and redact(r.hint, secrets)) for r in rows
    ]
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
    else:
        _print(rows, config)
    return EXIT_OK if all(r.ok for r in rows) else EXIT_FAILED


async def check(config: ConductorConfig, wait_s: float) -> list[Row]:
    """Start every server, wait for the first attempts to settle, and diagnose each."""
    import anyio

    from mcp_conductor.cli.hints import ServerFacts, diagnose
    from mcp_conductor.client_pool.catalog import ServerName
    from mcp_conductor.client_pool.config_models import RemoteServer, StdioServer
    from mcp_conductor.client_pool.connection import Connection
    from mcp_conductor.client_pool.pool import ClientPool
    from mcp_conductor.client_pool.status import ServerState

    statuses: dict[ServerName, ServerStatus] = {}
    async with ClientPool(config) as pool:

        async def settle(conn: Connection) -> None:
            # Stop each server after its first attempt: retries would only repeat the failure (and its log).
            await conn.wait_settled()
            statuses[conn.name] = conn.status()
            conn.stop()

        with anyio.move_on_after(wait_s):
            async with anyio.create_task_group() as tg:
                for conn in pool.connections.values():
                    tg.start_soon(settle, conn)
        for name, status in pool.statuses().items():
            statuses.setdefault(name, status)
    http_statuses: dict[str, int | None] = {}

    async def probe(name: str, server: RemoteServer) -> None:
        http_statuses[name] = await probe_http(server)

    async with anyio.create_task_group() as tg:
        for name, status in statuses.items():
            server = config.servers[name]
            if isinstance(server, RemoteServer) and status.state not in (ServerState.READY, ServerState.DISABLED):
                tg.start_soon(probe, name, server)
    rows = []
    for name, status in sorted(statuses.items()):
        server = config.servers[name]
        facts = ServerFacts(
            name=name,
            transport=status.transport,
            state=status.state.value,
            error=status.error,
            stderr_tail=status.stderr_tail,
            command=server.command if isinstance(server, StdioServer) else None,
            connect_timeout_s=config.connect_timeout_s(name),
            stdout_garbage=status.stdout_garbage,
            http_status=http_statuses.get(name),
        )
        rows.append(_row(status, diagnose(facts)))
    rows.extend(
        Row(name, "stdio", "skipped", None, None, True, "it runs mcp-conductor itself", None) for name in config.skipped
    )
    return rows


def _row(status: ServerStatus, found: Diagnosis) -> Row:
    from mcp_conductor.client_pool.status import ServerState

    ready = status.state is ServerState.READY
    return Row(
        server=status.name,
        transport=status.transport,
        state=status.state.value,
        connect_ms=status.connect_ms if ready else None,
        tools=status.tools if ready else None,
        ok=not found.failed,
        cause=found.cause,
        hint=found.hint,
    )


async def probe_http(server: RemoteServer) -> int | None:
    """The HTTP status a plain MCP request to the server's url gets (the SDK's error hides it), or None."""
    import anyio
    import httpx2

    body = {
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "mcp-conductor-doctor", "version": __version__}},
    }  # fmt: skip
    try:
        with anyio.fail_after(PROBE_TIMEOUT_S):
            async with httpx2.AsyncClient(headers=dict(server.headers), timeout=PROBE_TIMEOUT_S) as http:
                if server.transport == "sse":
                    request = http.build_request("GET", server.url, headers={"Accept": "text/event-stream"})
                else:
                    request = http.build_request(
                        "POST", server.url, json=body, headers={"Accept": "application/json, text/event-stream"}
                    )
                response = await http.send(request, stream=True)
                await response.aclose()
                return int(response.status_code)
    except Exception:  # unreachable, TLS, a timeout: the pool's own error says enough
        return None


def _print(rows: list[Row], config: ConductorConfig) -> None:
    from rich.table import Table
    from rich.text import Text

    from mcp_conductor.cli import console as ui

    console = ui.out()
    if not rows:
        console.print(f"no servers in {config.source}")
        return
    headers = ("server", "transport", "state", "connect", "tools", "problem")
    table = ui.table(console, *headers, right=("connect", "tools"), no_wrap=headers[:5])
    for row in rows:
        state_style = ui.style(console, ui.STATUS_STYLES.get(row.state, ""))
        table.add_row(
            Text(row.server),
            Text(row.transport),
            Text(row.state, style=state_style),
            "-" if row.connect_ms is None else f"{row.connect_ms:.0f} ms",
            "-" if row.tools is None else str(row.tools),
            Text(row.cause or "", style=ui.style(console, "red" if not row.ok else "yellow")),
        )
    ui.print_table(console, table)
    hinted = [r for r in rows if r.hint]
    if hinted:
        console.print()
        console.print(Text("how to fix:", style=ui.style(console, "bold")))
        hints = Table.grid(padding=(0, 1))
        hints.add_column(no_wrap=True)
        hints.add_column(overflow="fold")
        for row in hinted:
            hints.add_row(Text(f"  {row.server}:", style=ui.style(console, "bold")), Text(row.hint or ""))
        ui.print_table(console, hints)
    console.print()
    console.print(verdict(rows))


def verdict(rows: list[Row]) -> str:
    """The last line: which servers failed, or that all are fine ("all" only when none was skipped)."""
    failed = [r.server for r in rows if not r.ok]
    skipped = [r.server for r in rows if r.ok and r.state in ("skipped", "disabled")]
    if failed:
        return f"{len(failed)} of {plural(len(rows), 'server')} failed: {', '.join(failed)}"
    working = len(rows) - len(skipped)
    if not skipped:
        return "the server is fine" if working == 1 else f"all {working} servers are fine"
    not_checked = ", ".join(f"{r.server} ({r.state})" for r in rows if r.server in skipped)
    return f"{plural(working, 'server')} {'is' if working == 1 else 'are'} fine; not checked: {not_checked}"
