"""When the executor's step records reach the store, as another process reading it sees them.

A step's start is committed before its downstream call; a success is committed with the run's next write (in a
chain: the next step's start), so it is in the store before any step that depends on it calls out, and, with
progress notifications on, before it is announced.
"""

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

from mcp_conductor.client_pool.config import in_process_config
from mcp_conductor.client_pool.pool import ClientPool
from mcp_conductor.server.discovery.metrics import MetricsRegistry
from mcp_conductor.server.execution.chains import ChainService
from mcp_conductor.server.execution.executor import LocalExecutor
from mcp_conductor.server.execution.results import RunOptions
from mcp_conductor.server.store.connections import DB_FILENAME
from mcp_conductor.server.store.store import RunStore

READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True)


def stored_statuses(state_dir: Path) -> dict[str, str]:
    """The step statuses of the newest run, read through a connection of its own (as the CLI would)."""
    with closing(sqlite3.connect(state_dir / DB_FILENAME)) as db:
        newest = "SELECT run_id FROM runs ORDER BY started_at DESC, rowid DESC LIMIT 1"
        rows = db.execute(f"SELECT step_id, status FROM steps WHERE run_id = ({newest}) ORDER BY seq").fetchall()
    return dict(rows)


def peek_server(state_dir: Path) -> MCPServer[Any]:
    server: MCPServer[Any] = MCPServer("peek")

    @server.tool(annotations=READ_ONLY)
    def statuses(after: Any = None) -> dict[str, str]:
        """The newest run's step statuses in the store while this call runs (`after`: only for ordering)."""
        return stored_statuses(state_dir)

    return server


async def run_chain(
    state_dir: Path, plan: dict[str, Any], progress: Any = None, **options: Any
) -> tuple[dict[str, Any], dict[str, str]]:
    async with (
        RunStore.open(state_dir) as store,
        ClientPool(in_process_config({"peek": peek_server(state_dir)})) as pool,
    ):
        with anyio.fail_after(5):
            await pool.wait_settled()
        metrics = MetricsRegistry()
        chains = ChainService(store, LocalExecutor(pool, store, metrics), pool, metrics)
        with anyio.fail_after(10):
            result = await chains.execute(plan=plan, options=RunOptions(**options), progress=progress)
    assert result.status == "succeeded", result.steps
    return dict(result.outputs), stored_statuses(state_dir)


CHAIN = {
    "steps": [
        {"id": "a", "tool": "peek/statuses"},
        {"id": "b", "tool": "peek/statuses", "arguments": {"after": "${steps.a}"}},
        {"id": "c", "tool": "peek/statuses", "arguments": {"after": "${steps.b}"}},
    ],
    "outputs": ["a", "b", "c"],
}


async def test_a_step_sees_its_start_and_its_dependencies_success_in_the_store(tmp_path: Path) -> None:
    outputs, final = await run_chain(tmp_path, CHAIN)

    assert outputs == {
        "a": {"a": "running", "b": "pending", "c": "pending"},
        "b": {"a": "succeeded", "b": "running", "c": "pending"},
        "c": {"a": "succeeded", "b": "succeeded", "c": "running"},
    }
    assert final == {"a": "succeeded", "b": "succeeded", "c": "succeeded"}


async def test_with_progress_on_every_end_is_in_the_store_before_it_is_announced(tmp_path: Path) -> None:
    announced: list[tuple[str, dict[str, str]]] = []

    async def progress(done: float, total: float | None, message: str | None) -> None:
        announced.append((message or "", stored_statuses(tmp_path)))

    await run_chain(tmp_path, CHAIN, progress=progress)

    ends = [(message.split("last: ")[1], seen) for message, seen in announced if "last: " in message]
    assert [end for end, _ in ends] == ["a succeeded", "b succeeded", "c succeeded"]
    for end, seen in ends:
        step = end.split()[0]
        assert seen[step] == "succeeded", (end, seen)
