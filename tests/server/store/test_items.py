"""Foreach items in the run store: schema version 2, the journal's item writes, export/import, interruption."""

import sqlite3
from pathlib import Path

from test_store import a_run, pending  # type: ignore[import-not-found]

from mcp_conductor.server.store import migrations, schema
from mcp_conductor.server.store.connections import DB_FILENAME
from mcp_conductor.server.store.records import ItemRun, RunExport, StepError, StepRun, StepStatus
from mcp_conductor.server.store.store import RunStore


def version_1_store(state: Path) -> None:
    """A store as mcp-conductor wrote it before foreach items existed, with one run in it."""
    state.mkdir(parents=True)
    conn = sqlite3.connect(state / DB_FILENAME, isolation_level=None)
    conn.executescript(migrations.MIGRATIONS[1])
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL, applied_at TEXT)")
    conn.execute("INSERT INTO schema_version VALUES (1, datetime('now'))")
    schema.insert_run(conn, a_run(), pending("run_1", "a"))
    conn.close()


def versions(state: Path) -> list[int]:
    conn = sqlite3.connect(state / DB_FILENAME)
    try:
        return [row[0] for row in conn.execute("SELECT version FROM schema_version ORDER BY version")]
    finally:
        conn.close()


async def test_a_version_1_store_migrates_to_the_current_version_once_and_keeps_its_runs(tmp_path: Path):
    state = tmp_path / "state"
    version_1_store(state)
    async with RunStore.open(state) as store:
        steps = await store.get_steps("run_1")
    async with RunStore.open(state):
        pass
    assert migrations.SCHEMA_VERSION == 6
    assert versions(state) == [1, 2, 3, 4, 5, 6]
    assert [s.step_id for s in steps] == ["a"]
    assert steps[0].items is None


def test_the_items_migration_can_run_again_after_a_crash_halfway(tmp_path: Path):
    conn = sqlite3.connect(tmp_path / "db", isolation_level=None)
    for version in (1, 2, 3, 3):  # the second 3: a process killed before it recorded the version runs it again
        step = migrations.MIGRATIONS[version]
        assert isinstance(step, str)
        conn.executescript(step)
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    conn.close()
    assert "step_items" in tables


def test_the_caller_errors_migration_can_run_again(tmp_path: Path):
    conn = sqlite3.connect(tmp_path / "db", isolation_level=None)
    conn.executescript(str(migrations.MIGRATIONS[1]))
    for _ in range(2):  # killed before it recorded its version: it runs again, adding nothing twice
        migrations.migration_tool_metrics_caller_errors(conn)
    columns = [row[1] for row in conn.execute("PRAGMA table_info(tool_metrics)")]
    conn.close()
    assert columns.count("caller_errors") == 1


async def test_items_are_written_one_by_one_through_the_journal_and_read_back_with_their_step(tmp_path: Path):
    async with RunStore.open(tmp_path / "state") as store, RunStore.open(tmp_path / "state") as reader:
        step = StepRun("run_1", "each", "text/each_tool", items=[ItemRun(0, "x"), ItemRun(1, {"k": 1})])
        await store.create_run(a_run(), [step])
        journal = store.journal("run_1")
        first, second = step.items or []
        first.status, first.attempts = StepStatus.RUNNING, 1
        await journal.item_started(step, first)
        seen_running = (await reader.get_step("run_1", "each")).items  # committed before its call
        first.status, first.output, first.has_output = StepStatus.SUCCEEDED, {"y": 1}, True
        await journal.item_ended(step, first)  # a success waits for the next write
        pending_success = journal.pending
        second.status, second.error = StepStatus.FAILED, StepError(kind="tool_error", message="no")
        await journal.item_ended(step, second)  # a failure is written at once, with the pending success
        stored = (await reader.get_step("run_1", "each")).items
    assert seen_running is not None and seen_running[0].status is StepStatus.RUNNING
    assert pending_success == 1
    assert journal.pending == 0
    assert stored == [first, second]


async def test_items_survive_export_and_import_and_an_interrupted_run_has_no_running_item(tmp_path: Path):
    async with RunStore.open(tmp_path / "a") as store:
        items = [
            ItemRun(0, 1, StepStatus.SUCCEEDED, 1, output=2, has_output=True),
            ItemRun(1, 2, StepStatus.RUNNING, 1),
        ]
        await store.create_run(
            a_run(owner_pid=None), [StepRun("run_1", "each", "x/y", StepStatus.RUNNING, items=items)]
        )
        exported = await store.export_run("run_1")
        interrupted = await store.mark_interrupted()
        after = (await store.get_step("run_1", "each")).items
    assert exported is not None
    async with RunStore.open(tmp_path / "b") as other:
        await other.import_run(RunExport.model_validate_json(exported.model_dump_json()))
        imported = await other.get_steps("run_1")
    assert imported[0].items == items
    assert interrupted == ["run_1"]
    # The item's call was in flight: the resume decides whether it runs again (see execution.interrupted).
    assert after is not None and [i.status for i in after] == [StepStatus.SUCCEEDED, StepStatus.INTERRUPTED]
