"""The run store's SQLite layer: connections, transactions and the statements (rows <-> records are in
``rows``; the schema and its migrations are in ``migrations``).

Everything here is synchronous, takes the connection, and runs in the store's worker thread; ``store.py``
owns the thread and the connection's lifetime, and turns ``sqlite3`` errors and missing rows into
``StoreError``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from mcp_conductor.server.discovery.metrics import ToolMetrics
from mcp_conductor.server.store.records import ConsentRecord, ItemRun, RunRecord, RunStatus, StepRun
from mcp_conductor.server.store.rows import (
    ITEM_COLUMNS,
    RUN_COLUMNS,
    STEP_COLUMNS,
    dumps,
    error_json,
    item_from_row,
    item_row,
    loads,
    metrics_from_row,
    metrics_row,
    run_from_row,
    run_row,
    step_from_row,
    step_row,
)


def connect(path: Path, busy_timeout_ms: int) -> sqlite3.Connection:
    """A connection for one thread at a time, in autocommit mode (``transaction`` where writes span statements).

    WAL + ``synchronous=NORMAL``: a commit survives a killed process, though not a power cut.
    """
    conn = sqlite3.connect(path, timeout=busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        conn.execute("PRAGMA journal_mode = WAL")
        # Checkpoints (which fsync) run in the worker thread from RunStore, never inside a fast-path commit.
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
    except BaseException:
        conn.close()
        raise
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection, mode: Literal["IMMEDIATE", "DEFERRED"] = "IMMEDIATE") -> Iterator[None]:
    """IMMEDIATE takes the write lock up front (waiting up to busy_timeout); DEFERRED reads a snapshot."""
    conn.execute(f"BEGIN {mode}")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # SQLite rolls some failures (disk full, I/O) back by itself
            conn.execute("ROLLBACK")
        raise


def upsert_items(c: sqlite3.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Whole item rows (``item_row``), inserted or replaced."""
    if not rows:
        return
    c.executemany(f"INSERT OR REPLACE INTO step_items ({ITEM_COLUMNS}) VALUES ({', '.join('?' * 13)})", rows)


# -- statements ------------------------------------------------------------------------------------


def run_exists(c: sqlite3.Connection, run_id: str) -> bool:
    return c.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is not None


def insert_run(c: sqlite3.Connection, run: RunRecord, steps: Sequence[StepRun]) -> None:
    """The run row and its step rows, ``seq`` in list order; inside the caller's transaction."""
    c.execute(f"INSERT INTO runs ({RUN_COLUMNS}) VALUES ({', '.join('?' * 11)})", run_row(run))
    c.executemany(
        f"INSERT INTO steps (seq, {STEP_COLUMNS}) VALUES ({', '.join('?' * 13)})",
        [(seq, *step_row(step)) for seq, step in enumerate(steps)],
    )
    upsert_items(c, [item_row(step, item) for step in steps for item in step.items or ()])


def select_run(c: sqlite3.Connection, run_id: str) -> RunRecord | None:
    row = c.execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    return None if row is None else run_from_row(row)


def select_runs(c: sqlite3.Connection, limit: int, status: str | None) -> list[RunRecord]:
    where, params = ("WHERE status = ?", (status, limit)) if status else ("", (limit,))
    sql = f"SELECT {RUN_COLUMNS} FROM runs {where} ORDER BY started_at DESC, rowid DESC LIMIT ?"
    return [run_from_row(row) for row in c.execute(sql, params)]


def select_steps(c: sqlite3.Connection, run_id: str, step_id: str | None = None) -> list[StepRun]:
    """Steps in plan order, each with its foreach items (if any) in index order."""
    if step_id is None:
        rows = c.execute(f"SELECT {STEP_COLUMNS} FROM steps WHERE run_id = ? ORDER BY seq", (run_id,))
        item_rows = c.execute(
            f"SELECT step_id, {ITEM_COLUMNS.split(', ', 2)[2]} FROM step_items WHERE run_id = ? ORDER BY step_id, idx",
            (run_id,),
        )
    else:
        sql = f"SELECT {STEP_COLUMNS} FROM steps WHERE run_id = ? AND step_id = ?"
        rows = c.execute(sql, (run_id, step_id))
        item_rows = c.execute(
            f"SELECT step_id, {ITEM_COLUMNS.split(', ', 2)[2]} FROM step_items WHERE run_id = ? AND step_id = ?"
            " ORDER BY idx",
            (run_id, step_id),
        )
    steps = [step_from_row(row) for row in rows.fetchall()]
    items: dict[str, list[ItemRun]] = {}
    for sid, *rest in item_rows.fetchall():
        items.setdefault(sid, []).append(item_from_row(rest))
    for step in steps:
        step.items = items.get(step.step_id)
    return steps


def select_plan(c: sqlite3.Connection, plan_id: str) -> dict[str, Any] | None:
    row = c.execute("SELECT plan_json FROM plans WHERE plan_id = ?", (plan_id,)).fetchone()
    return None if row is None else dict(loads(row[0]))


def insert_consents(c: sqlite3.Connection, consents: Sequence[ConsentRecord]) -> None:
    c.executemany(
        "INSERT INTO consents (run_id, decided_at, who, decision, steps_json) VALUES (?, ?, ?, ?, ?)",
        [(r.run_id, r.decided_at, r.who, r.decision, dumps(r.steps)) for r in consents],
    )


def select_consents(c: sqlite3.Connection, run_id: str) -> list[ConsentRecord]:
    """The run's consent decisions, oldest first."""
    sql = "SELECT run_id, decided_at, who, decision, steps_json FROM consents WHERE run_id = ? ORDER BY rowid"
    return [
        ConsentRecord(run_id=r[0], decided_at=r[1], who=r[2], decision=r[3], steps=loads(r[4]))
        for r in c.execute(sql, (run_id,)).fetchall()
    ]


def insert_plan(c: sqlite3.Connection, plan_id: str, plan_json: str, created_at: str) -> None:
    """Keeps the first copy of an id (plan ids are content hashes)."""
    c.execute(
        "INSERT INTO plans (plan_id, plan_json, created_at) VALUES (?, ?, ?) ON CONFLICT (plan_id) DO NOTHING",
        (plan_id, plan_json, created_at),
    )


def update_run(c: sqlite3.Connection, run_id: str, **columns: Any) -> bool:
    """Set the given columns of one run; False if there is no such run."""
    sets = ", ".join(f"{name} = ?" for name in columns)
    return c.execute(f"UPDATE runs SET {sets} WHERE run_id = ?", (*columns.values(), run_id)).rowcount > 0


def start_step(c: sqlite3.Connection, step: StepRun, arguments_json: str) -> bool:
    """Mark a step running, clearing a previous attempt's end; False if there is no such step."""
    sql = (
        "UPDATE steps SET status = 'running', arguments_json = ?, started_at = ?, attempts = ?,"
        " finished_at = NULL, duration_ms = NULL, error_json = NULL, output_json = 'null', has_output = 0"
        " WHERE run_id = ? AND step_id = ?"
    )
    row = (arguments_json, step.started_at, step.attempts, step.run_id, step.step_id)
    return c.execute(sql, row).rowcount > 0


def end_step(c: sqlite3.Connection, step: StepRun) -> bool:
    """Write what a step's end changes (its start was written by ``start_step``); False if there is no such step."""
    sql = (
        "UPDATE steps SET status = ?, finished_at = ?, duration_ms = ?, error_json = ?, output_json = ?,"
        " has_output = ? WHERE run_id = ? AND step_id = ?"
    )
    row = (
        step.status.value,
        step.finished_at,
        step.duration_ms,
        error_json(step.error),
        dumps(step.output),
        int(step.has_output),
        step.run_id,
        step.step_id,
    )
    return c.execute(sql, row).rowcount > 0


def finish_run(
    c: sqlite3.Connection, run_id: str, metrics: Sequence[tuple[str, ToolMetrics]], updated_at: str, **columns: Any
) -> RunRecord | None:
    """Set a run's end columns and store its tools' metrics in one transaction; the run as stored, or None."""
    sets = ", ".join(f"{name} = ?" for name in columns)
    with transaction(c):
        row = c.execute(
            f"UPDATE runs SET {sets} WHERE run_id = ? RETURNING {RUN_COLUMNS}", (*columns.values(), run_id)
        ).fetchone()
        if metrics:
            _upsert_metrics(c, metrics, updated_at)
    return None if row is None else run_from_row(row)


def upsert_step(c: sqlite3.Connection, step: StepRun) -> None:
    """Write the whole row; a step new to the run goes after its last one. Raises IntegrityError: no run."""
    run_id, step_id, *rest = step_row(step)
    # The row nearly always exists (create_run made it), and a plain UPDATE is the cheap path.
    if c.execute(_UPDATE_STEP, (*rest, run_id, step_id)).rowcount == 0:
        c.execute(_INSERT_STEP, (run_id, step_id, run_id, *rest))


_UPDATE_STEP = """
    UPDATE steps SET
        tool = ?, status = ?, attempts = ?, arguments_json = ?, started_at = ?, finished_at = ?,
        duration_ms = ?, error_json = ?, output_json = ?, has_output = ?
    WHERE run_id = ? AND step_id = ?
"""

_INSERT_STEP = """
    INSERT INTO steps (
        run_id, step_id, seq, tool, status, attempts, arguments_json, started_at, finished_at, duration_ms,
        error_json, output_json, has_output
    )
    VALUES (
        ?, ?, COALESCE((SELECT MAX(seq) + 1 FROM steps WHERE run_id = ?), 0), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?
    )
    ON CONFLICT (run_id, step_id) DO UPDATE SET
        tool = excluded.tool, status = excluded.status, attempts = excluded.attempts,
        arguments_json = excluded.arguments_json, started_at = excluded.started_at,
        finished_at = excluded.finished_at, duration_ms = excluded.duration_ms,
        error_json = excluded.error_json, output_json = excluded.output_json, has_output = excluded.has_output
"""


def mark_interrupted(c: sqlite3.Connection, alive: Callable[[int], bool]) -> list[str]:
    """In one write transaction, so a run that finishes meanwhile is not marked. Its steps and items that were
    running (their call in flight) become ``interrupted``: the resume decides whether they run again."""
    with transaction(c):
        rows = c.execute(
            "SELECT run_id, owner_pid FROM runs WHERE status = 'running' ORDER BY started_at, rowid"
        ).fetchall()
        dead = [run_id for run_id, pid in rows if pid is None or not alive(pid)]
        for run_id in dead:
            c.execute("UPDATE runs SET status = ? WHERE run_id = ?", (RunStatus.INTERRUPTED.value, run_id))
            c.execute("UPDATE steps SET status = 'interrupted' WHERE run_id = ? AND status = 'running'", (run_id,))
            c.execute("UPDATE step_items SET status = 'interrupted' WHERE run_id = ? AND status = 'running'", (run_id,))
    return dead


def prune(c: sqlite3.Connection, keep: int) -> int:
    with transaction(c):
        deleted = c.execute(
            "DELETE FROM runs WHERE run_id NOT IN"
            " (SELECT run_id FROM runs ORDER BY started_at DESC, rowid DESC LIMIT ?)",
            (keep,),
        ).rowcount  # counts the runs only, not the steps the foreign key cascades to
        c.execute(
            "DELETE FROM plans WHERE plan_id NOT IN (SELECT plan_id FROM runs) AND plan_id NOT IN"
            " (SELECT plan_id FROM plans ORDER BY created_at DESC, rowid DESC LIMIT ?)",
            (keep,),
        )
        c.execute("DELETE FROM consents WHERE run_id NOT IN (SELECT run_id FROM runs)")
    return int(deleted)


def _upsert_metrics(c: sqlite3.Connection, items: Sequence[tuple[str, ToolMetrics]], updated_at: str) -> None:
    c.executemany(
        """
            INSERT INTO tool_metrics
                (tool_id, calls, successes, failures, timeouts, caller_errors, histogram_json, updated_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (tool_id) DO UPDATE SET
                calls = excluded.calls, successes = excluded.successes, failures = excluded.failures,
                timeouts = excluded.timeouts, caller_errors = excluded.caller_errors,
                histogram_json = excluded.histogram_json,
                updated_at = excluded.updated_at
            """,
        [metrics_row(tool_id, m, updated_at) for tool_id, m in items],
    )
    c.executemany(
        "INSERT INTO tool_shapes (tool_id, shape_json, updated_at) VALUES (?, ?, ?)"
        " ON CONFLICT (tool_id) DO UPDATE SET shape_json = excluded.shape_json, updated_at = excluded.updated_at",
        [(tool_id, dumps(m.shape), updated_at) for tool_id, m in items if m.shape is not None],
    )


def select_metrics(c: sqlite3.Connection) -> dict[str, ToolMetrics]:
    sql = (
        "SELECT m.tool_id, m.calls, m.successes, m.failures, m.timeouts, m.caller_errors, m.histogram_json,"
        " s.shape_json FROM tool_metrics m LEFT JOIN tool_shapes s ON s.tool_id = m.tool_id"
    )
    return dict(metrics_from_row(row) for row in c.execute(sql))
