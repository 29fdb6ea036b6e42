"""The run store's schema, version by version: migration N brings a database from version N-1 to N.

Every statement is idempotent (``IF NOT EXISTS``), so a migration that a killed process left half done simply runs
again. Version 2 adds learned tool shapes and cancel requests; version 3 adds ``step_items``: a foreach step's
items, one row each, so a resume re-runs only the items that did not succeed; version 4 adds
``tool_metrics.caller_errors`` (failed calls that were the caller's mistake); version 5 adds ``consents``:
the person's decisions about the steps that needed their consent; version 6 adds ``saved_chains`` (one row per
version of a saved chain) and ``chain_runs`` (which runs ran a saved chain, and the parent run and step of a
sub-run).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

SCHEMA_VERSION = 6


def migration_tool_metrics_caller_errors(conn: sqlite3.Connection) -> None:
    """tool_metrics.caller_errors: failed calls that were the caller's mistake (see ``metrics.is_caller_error``);
    a function because SQLite has no ADD COLUMN IF NOT EXISTS."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(tool_metrics)")}
    if "caller_errors" not in columns:
        conn.execute("ALTER TABLE tool_metrics ADD COLUMN caller_errors INTEGER NOT NULL DEFAULT 0")


# Migration N brings a database from version N-1 to N: SQL statements, or a function for a step SQL cannot make
# idempotent. Every step is idempotent, so a migration that a killed process left half done simply runs again.
MIGRATIONS: dict[int, str | Callable[[sqlite3.Connection], None]] = {
    1: """
    CREATE TABLE IF NOT EXISTS plans (
        plan_id    TEXT PRIMARY KEY,
        plan_json  TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS runs (
        run_id       TEXT PRIMARY KEY,
        plan_id      TEXT NOT NULL,
        status       TEXT NOT NULL,
        inputs_json  TEXT NOT NULL,
        options_json TEXT NOT NULL,
        outputs_json TEXT NOT NULL,
        started_at   TEXT NOT NULL,
        finished_at  TEXT,
        duration_ms  REAL,
        owner_pid    INTEGER,
        error_json   TEXT
    );
    CREATE INDEX IF NOT EXISTS runs_started_at ON runs (started_at);
    CREATE INDEX IF NOT EXISTS runs_status ON runs (status);
    CREATE TABLE IF NOT EXISTS steps (
        run_id         TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
        step_id        TEXT NOT NULL,
        seq            INTEGER NOT NULL,
        tool           TEXT NOT NULL,
        status         TEXT NOT NULL,
        attempts       INTEGER NOT NULL,
        arguments_json TEXT NOT NULL,
        started_at     TEXT,
        finished_at    TEXT,
        duration_ms    REAL,
        error_json     TEXT,
        output_json    TEXT NOT NULL,
        has_output     INTEGER NOT NULL,
        PRIMARY KEY (run_id, step_id)
    );
    CREATE INDEX IF NOT EXISTS steps_run_seq ON steps (run_id, seq);
    CREATE TABLE IF NOT EXISTS tool_metrics (
        tool_id        TEXT PRIMARY KEY,
        calls          INTEGER NOT NULL,
        successes      INTEGER NOT NULL,
        failures       INTEGER NOT NULL,
        timeouts       INTEGER NOT NULL,
        histogram_json TEXT NOT NULL,
        updated_at     TEXT NOT NULL
    );
    """,
    2: """
    CREATE TABLE IF NOT EXISTS tool_shapes (
        tool_id    TEXT PRIMARY KEY,
        shape_json TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS run_cancels (
        run_id       TEXT PRIMARY KEY REFERENCES runs (run_id) ON DELETE CASCADE,
        requested_at TEXT NOT NULL
    );
    """,
    3: """
    CREATE TABLE IF NOT EXISTS step_items (
        run_id         TEXT NOT NULL,
        step_id        TEXT NOT NULL,
        idx            INTEGER NOT NULL,
        item_json      TEXT NOT NULL,
        status         TEXT NOT NULL,
        attempts       INTEGER NOT NULL,
        arguments_json TEXT NOT NULL,
        started_at     TEXT,
        finished_at    TEXT,
        duration_ms    REAL,
        error_json     TEXT,
        output_json    TEXT NOT NULL,
        has_output     INTEGER NOT NULL,
        PRIMARY KEY (run_id, step_id, idx),
        FOREIGN KEY (run_id, step_id) REFERENCES steps (run_id, step_id) ON DELETE CASCADE
    );
    """,
    4: migration_tool_metrics_caller_errors,
    5: """
    CREATE TABLE IF NOT EXISTS consents (
        run_id     TEXT NOT NULL,
        decided_at TEXT NOT NULL,
        who        TEXT NOT NULL,
        decision   TEXT NOT NULL,
        steps_json TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS consents_run ON consents (run_id);
    """,
    6: """
    CREATE TABLE IF NOT EXISTS saved_chains (
        name         TEXT NOT NULL,
        version      TEXT NOT NULL,
        description  TEXT NOT NULL,
        inputs_json  TEXT NOT NULL,
        plan_json    TEXT NOT NULL,
        tools_json   TEXT NOT NULL,
        chains_json  TEXT NOT NULL,
        estimate_ms  REAL,
        effect       TEXT NOT NULL,
        created_at   TEXT NOT NULL,
        PRIMARY KEY (name, version)
    );
    CREATE TABLE IF NOT EXISTS chain_runs (
        run_id         TEXT PRIMARY KEY,
        chain          TEXT NOT NULL,
        version        TEXT NOT NULL,
        parent_run_id  TEXT,
        parent_step_id TEXT,
        item_index     INTEGER
    );
    CREATE INDEX IF NOT EXISTS chain_runs_parent ON chain_runs (parent_run_id);
    """,
}


def _version(conn: sqlite3.Connection) -> int:
    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'")
    if not exists.fetchone():
        return 0
    return int(conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema up to ``SCHEMA_VERSION``; returns the version found (a newer one is left alone).

    An up-to-date database is only read, so opening a store does not wait for another process's writer.
    """
    found = _version(conn)
    if found >= SCHEMA_VERSION:
        return found
    conn.execute("BEGIN IMMEDIATE")  # waits up to the busy timeout for another process's writer
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, applied_at TEXT)")
        found = _version(conn)  # another process may have migrated while we waited for the lock
        for version in range(found + 1, SCHEMA_VERSION + 1):
            step = MIGRATIONS[version]
            if callable(step):
                step(conn)
            else:
                for statement in step.split(";"):
                    if statement.strip():
                        conn.execute(statement)
            conn.execute("INSERT INTO schema_version VALUES (?, datetime('now'))", (version,))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return found
