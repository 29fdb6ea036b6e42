import os
import random
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from mcp_conductor.server.discovery.metrics import ToolMetrics
from mcp_conductor.server.store import migrations
from mcp_conductor.server.store.connections import DB_FILENAME, StoreError
from mcp_conductor.server.store.records import (
    ConsentRecord,
    RunExport,
    RunRecord,
    RunStatus,
    StepError,
    StepRun,
    StepStatus,
)
from mcp_conductor.server.store.state_dir import STATE_DIR_ENV, default_state_dir, pid_alive, resolve_state_dir
from mcp_conductor.server.store.store import RunStore


def a_run(
    run_id: str = "run_1",
    *,
    started_at: str = "2025-01-01T00:00:00+00:00",
    status: RunStatus = RunStatus.RUNNING,
    owner_pid: int | None = 4242,
    plan_id: str = "plan_1",
) -> RunRecord:
    return RunRecord(
        run_id=run_id,
        plan_id=plan_id,
        status=status,
        inputs={"text": "héllo"},
        options={"max_concurrency": 4},
        outputs=["b"],
        started_at=started_at,
        owner_pid=owner_pid,
    )


def pending(run_id: str, *step_ids: str) -> list[StepRun]:
    return [StepRun(run_id=run_id, step_id=s, tool=f"text/{s}_tool") for s in step_ids]


def starting(run_id: str, step_id: str, arguments: Any, at: str, attempts: int = 1) -> StepRun:
    """A step as the executor hands it to a start: still pending here (the store marks it running)."""
    return StepRun(
        run_id=run_id,
        step_id=step_id,
        tool=f"text/{step_id}_tool",
        arguments=arguments,
        started_at=at,
        attempts=attempts,
    )


def succeeded(step: StepRun, output: Any, at: str = "2025-01-01T00:00:01+00:00") -> StepRun:
    return replace(step, status=StepStatus.SUCCEEDED, finished_at=at, duration_ms=1.0, output=output, has_output=True)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[RunStore]:
    async with RunStore.open(tmp_path / "state") as s:
        yield s


@pytest.fixture
def unwritable_dir(tmp_path: Path) -> Iterator[Path]:
    """A state dir the store cannot write: a 0o500 directory, or, as root (who ignores modes), a path under a
    regular file. The probe proves which one really refuses writes here."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        try:
            (locked / "probe").touch()
        except PermissionError:
            yield locked
            return
        (locked / "probe").unlink()
        (tmp_path / "file").write_text("not a directory")
        yield tmp_path / "file" / "sub"
    finally:
        locked.chmod(0o700)


async def test_a_created_run_is_listed_newest_first_and_records_its_end(store: RunStore) -> None:
    await store.create_run(a_run("old", started_at="2025-01-01T00:00:00+00:00"), pending("old", "a"))
    await store.create_run(a_run("new", started_at="2025-01-02T00:00:00+00:00"), pending("new", "a"))
    error = StepError(kind="tool_error", message="boom", server="text", tool="a_tool")

    await store.finish_run("old", RunStatus.FAILED, "2025-01-01T00:00:01+00:00", 1000.5, error)

    assert [r.run_id for r in await store.list_runs()] == ["new", "old"]
    assert [r.run_id for r in await store.list_runs(status=RunStatus.FAILED)] == ["old"]
    assert [r.run_id for r in await store.list_runs(limit=1)] == ["new"]
    assert await store.get_run("old") == a_run("old").model_copy(
        update={
            "status": RunStatus.FAILED,
            "finished_at": "2025-01-01T00:00:01+00:00",
            "duration_ms": 1000.5,
            "error": error,
        }
    )
    assert await store.get_run("missing") is None


async def test_creating_a_run_twice_raises_store_error(store: RunStore) -> None:
    await store.create_run(a_run(), pending("run_1", "a"))
    with pytest.raises(StoreError, match="exists already"):
        await store.create_run(a_run(), pending("run_1", "a"))


async def test_steps_are_stored_pending_and_come_back_in_plan_order(store: RunStore) -> None:
    await store.create_run(a_run(), pending("run_1", "z", "a", "m"))

    steps = await store.get_steps("run_1")

    assert [s.step_id for s in steps] == ["z", "a", "m"]
    assert {s.status for s in steps} == {StepStatus.PENDING}
    assert await store.get_step("run_1", "a") == pending("run_1", "a")[0]
    assert await store.get_step("run_1", "nope") is None


async def test_step_start_and_finish_are_committed_for_a_second_store_on_the_same_file(
    tmp_path: Path,
) -> None:
    async with RunStore.open(tmp_path) as writer, RunStore.open(tmp_path) as reader:
        await writer.create_run(a_run(), pending("run_1", "a", "b"))

        await writer.write_steps(started=starting("run_1", "a", {"text": "hi"}, "2025-01-01T00:00:00+00:00"))
        seen_running = await reader.get_step("run_1", "a")
        finished = StepRun(
            run_id="run_1",
            step_id="a",
            tool="text/a_tool",
            status=StepStatus.SUCCEEDED,
            attempts=1,
            arguments={"text": "hi"},
            started_at="2025-01-01T00:00:00+00:00",
            finished_at="2025-01-01T00:00:00.250000+00:00",
            duration_ms=250.0,
            output={"words": 1},
            has_output=True,
        )
        await writer.write_steps(rows=[finished])
        seen_finished = await reader.get_steps("run_1")

    assert seen_running is not None
    assert (seen_running.status, seen_running.arguments, seen_running.attempts) == (
        StepStatus.RUNNING,
        {"text": "hi"},
        1,
    )
    assert seen_finished == [finished, pending("run_1", "b")[0]]


async def test_concurrent_writes_from_many_tasks_all_land(store: RunStore) -> None:
    ids = [f"s{i}" for i in range(40)]
    await store.create_run(a_run(), pending("run_1", *ids))

    async with anyio.create_task_group() as tg:
        for step_id in ids:
            start = starting("run_1", step_id, {"id": step_id}, "2025-01-01T00:00:00+00:00")
            tg.start_soon(partial(store.write_steps, started=start))

    assert [(s.step_id, s.arguments) for s in await store.get_steps("run_1")] == [(i, {"id": i}) for i in ids]


async def test_a_restarted_step_forgets_its_previous_attempts_end(store: RunStore) -> None:
    await store.create_run(a_run(), pending("run_1", "a"))
    failed = StepRun(
        run_id="run_1",
        step_id="a",
        tool="text/a_tool",
        status=StepStatus.FAILED,
        attempts=1,
        finished_at="2025-01-01T00:00:01+00:00",
        duration_ms=3.0,
        error=StepError(kind="timeout", message="slow", retryable=True),
    )
    await store.write_steps(rows=[failed])
    assert await store.get_step("run_1", "a") == failed

    await store.write_steps(started=starting("run_1", "a", {"n": 2}, "2025-01-01T00:00:02+00:00", attempts=2))

    step = await store.get_step("run_1", "a")
    assert step is not None
    assert (step.status, step.attempts, step.arguments, step.finished_at, step.duration_ms, step.error) == (
        StepStatus.RUNNING,
        2,
        {"n": 2},
        None,
        None,
        None,
    )


async def test_steps_of_unknown_runs_or_unknown_steps_raise_store_error(store: RunStore) -> None:
    await store.create_run(a_run(), pending("run_1", "a"))
    with pytest.raises(StoreError, match="no step 'nope'"):
        await store.write_steps(started=starting("run_1", "nope", {}, "2025-01-01T00:00:00+00:00"))
    with pytest.raises(StoreError, match="no run 'ghost'"):
        await store.write_steps(rows=pending("ghost", "a"))
    with pytest.raises(StoreError, match="no run 'ghost'"):
        await store.finish_run("ghost", RunStatus.SUCCEEDED, "2025-01-01T00:00:00+00:00", 1.0)


async def test_a_step_end_keeps_its_start_and_reaches_a_reader_at_once(tmp_path: Path) -> None:
    async with RunStore.open(tmp_path / "state") as store, RunStore.open(tmp_path / "state") as reader:
        await store.create_run(a_run(), pending("run_1", "a"))
        await store.write_steps(started=starting("run_1", "a", {"text": "hi"}, "2025-01-01T00:00:00+00:00", 2))
        (live,) = await store.get_steps("run_1")
        live.status, live.finished_at, live.duration_ms = StepStatus.SUCCEEDED, "2025-01-01T00:00:01+00:00", 9.5
        live.output, live.has_output, live.arguments = {"n": 1}, True, "not written by an end"

        await store.write_steps(ended=[live])

        (got,) = await reader.get_steps("run_1")  # another connection: the end is committed
    assert got == StepRun(
        run_id="run_1",
        step_id="a",
        tool="text/a_tool",
        status=StepStatus.SUCCEEDED,
        attempts=2,
        arguments={"text": "hi"},
        started_at="2025-01-01T00:00:00+00:00",
        finished_at="2025-01-01T00:00:01+00:00",
        duration_ms=9.5,
        output={"n": 1},
        has_output=True,
    )
    assert live == replace(got, arguments="not written by an end")


async def test_ending_an_unknown_step_raises_store_error_and_writes_nothing(store: RunStore) -> None:
    await store.create_run(a_run(), pending("run_1", "a"))
    a = StepRun("run_1", "a", "text/a_tool", status=StepStatus.SUCCEEDED, output=1, has_output=True)
    ghost = StepRun("run_1", "b", "text/b_tool", status=StepStatus.FAILED)
    with pytest.raises(StoreError, match="no step 'b'"):
        await store.write_steps(ended=[ghost])
    with pytest.raises(StoreError, match="no step 'b'"):
        await store.write_steps(ended=[a, ghost])  # one transaction: a's end is rolled back with it
    with pytest.raises(StoreError, match="no step 'b'"):
        await store.write_steps(ended=[ghost], started=starting("run_1", "a", {}, "2025-01-01T00:00:00+00:00"))
    with pytest.raises(StoreError, match="no step 'b'"):  # the rows are rolled back too
        await store.write_steps(ended=[ghost], rows=[replace(a, attempts=1)])
    (stored,) = await store.get_steps("run_1")
    assert (stored.status, stored.attempts) == (StepStatus.PENDING, 0)


async def test_a_start_commits_the_ends_it_carries_in_the_same_transaction(tmp_path: Path) -> None:
    async with RunStore.open(tmp_path / "state") as store, RunStore.open(tmp_path / "state") as reader:
        await store.create_run(a_run(), pending("run_1", "a", "b"))
        await store.write_steps(started=starting("run_1", "a", {"x": 1}, "2025-01-01T00:00:00+00:00"))
        a = (await store.get_steps("run_1"))[0]
        a.status, a.output, a.has_output = StepStatus.SUCCEEDED, {"y": 2}, True

        await store.write_steps(ended=[a], started=starting("run_1", "b", {"y": 2}, "2025-01-01T00:00:01+00:00"))

        got = {s.step_id: s for s in await reader.get_steps("run_1")}
    assert (got["a"].status, got["a"].output, got["a"].arguments) == (StepStatus.SUCCEEDED, {"y": 2}, {"x": 1})
    assert (got["b"].status, got["b"].arguments) == (StepStatus.RUNNING, {"y": 2})


async def test_a_journaled_success_reaches_a_reader_with_the_next_start_or_a_sync(tmp_path: Path) -> None:
    async with RunStore.open(tmp_path / "state") as store, RunStore.open(tmp_path / "state") as reader:
        await store.create_run(a_run(), pending("run_1", "a", "b"))
        journal = store.journal("run_1")
        a = starting("run_1", "a", {"x": 1}, "2025-01-01T00:00:00+00:00")
        await journal.step_started(a)
        a_done = succeeded(a, {"y": 2})

        await journal.step_ended(a_done)

        assert journal.pending == 1
        seen_a = await reader.get_step("run_1", "a")
        assert seen_a is not None and (seen_a.status, seen_a.has_output) == (StepStatus.RUNNING, False)

        b = starting("run_1", "b", {"y": 2}, "2025-01-01T00:00:01+00:00")
        await journal.step_started(b)  # carries a's end

        assert journal.pending == 0
        seen = {s.step_id: s for s in await reader.get_steps("run_1")}
        assert seen["a"] == a_done
        assert (seen["b"].status, seen["b"].arguments) == (StepStatus.RUNNING, {"y": 2})

        b_done = succeeded(b, {"z": 3}, at="2025-01-01T00:00:02+00:00")
        await journal.step_ended(b_done)

        assert journal.pending == 1
        seen_b = await reader.get_step("run_1", "b")
        assert seen_b is not None and seen_b.status is StepStatus.RUNNING

        await journal.sync()

        assert journal.pending == 0
        assert await reader.get_step("run_1", "b") == b_done


async def test_a_journaled_failure_reaches_a_reader_as_soon_as_it_is_ended(tmp_path: Path) -> None:
    async with RunStore.open(tmp_path / "state") as store, RunStore.open(tmp_path / "state") as reader:
        await store.create_run(a_run(), pending("run_1", "a"))
        journal = store.journal("run_1")
        a = starting("run_1", "a", {"x": 1}, "2025-01-01T00:00:00+00:00")
        await journal.step_started(a)
        error = StepError(kind="timeout", message="slow", retryable=True, server="text", tool="a_tool")
        failed = replace(
            a, status=StepStatus.FAILED, finished_at="2025-01-01T00:00:01+00:00", duration_ms=1000.0, error=error
        )

        await journal.step_ended(failed)

        assert journal.pending == 0
        assert await reader.get_step("run_1", "a") == failed


async def test_a_journal_write_that_fails_keeps_its_pending_ends_for_a_later_sync(tmp_path: Path) -> None:
    async with RunStore.open(tmp_path / "state") as store, RunStore.open(tmp_path / "state") as reader:
        await store.create_run(a_run(), pending("run_1", "a"))
        journal = store.journal("run_1")
        a = starting("run_1", "a", {"x": 1}, "2025-01-01T00:00:00+00:00")
        await journal.step_started(a)
        a_done = succeeded(a, {"y": 2})
        await journal.step_ended(a_done)

        with pytest.raises(StoreError, match="no step 'nope'"):
            await journal.step_started(starting("run_1", "nope", {}, "2025-01-01T00:00:01+00:00"))

        assert journal.pending == 1
        seen_a = await reader.get_step("run_1", "a")  # rolled back with the failed start
        assert seen_a is not None and seen_a.status is StepStatus.RUNNING

        await journal.sync()

        assert journal.pending == 0
        assert await reader.get_step("run_1", "a") == a_done


async def test_a_journal_writes_a_success_it_never_started_as_a_whole_row_with_the_next_write(tmp_path: Path) -> None:
    async with RunStore.open(tmp_path / "state") as store, RunStore.open(tmp_path / "state") as reader:
        await store.create_run(a_run(), pending("run_1", "a"))
        journal = store.journal("run_1")
        # e.g. a data step, or a step carried over from an earlier run: this journal never wrote its start row
        carried = succeeded(starting("run_1", "a", {"x": 1}, "2025-01-01T00:00:00+00:00"), {"y": 2})

        await journal.step_ended(carried)
        pending_before_sync = journal.pending
        await journal.sync()

        assert pending_before_sync == 1
        assert journal.pending == 0
        assert await reader.get_step("run_1", "a") == carried  # arguments, attempts, start time included


async def test_finishing_a_run_returns_it_as_stored_and_saves_its_tools_metrics(store: RunStore) -> None:
    await store.create_run(a_run(), [])
    metrics = {"text/a": ToolMetrics(calls=2, successes=1, failures=1, histogram={3: 2})}
    error = StepError(kind="tool_error", message="boom", server="text", tool="a")

    run = await store.finish_run(
        "run_1", RunStatus.PARTIAL, "2025-01-01T00:00:02+00:00", 2000.0, error, metrics=metrics
    )

    assert run == await store.get_run("run_1")
    assert (run.status, run.finished_at, run.duration_ms, run.error) == (
        RunStatus.PARTIAL,
        "2025-01-01T00:00:02+00:00",
        2000.0,
        error,
    )
    assert await store.load_metrics() == metrics


async def test_runs_left_running_by_dead_processes_become_interrupted(store: RunStore) -> None:
    await store.create_run(a_run("live", owner_pid=111), pending("live", "a"))
    await store.create_run(
        a_run("dead", owner_pid=222, started_at="2025-01-01T00:00:01+00:00"), pending("dead", "a", "b", "c")
    )
    await store.create_run(a_run("orphan", owner_pid=None, started_at="2025-01-01T00:00:02+00:00"), [])
    await store.create_run(a_run("done", owner_pid=222, status=RunStatus.SUCCEEDED), [])
    await store.write_steps(started=starting("live", "a", {}, "2025-01-01T00:00:00+00:00"))
    await store.write_steps(started=starting("dead", "a", {}, "2025-01-01T00:00:01+00:00"))
    await store.write_steps(
        rows=[StepRun(run_id="dead", step_id="b", tool="text/b_tool", status=StepStatus.SUCCEEDED, attempts=1)]
    )

    marked = await store.mark_interrupted(alive=lambda pid: pid == 111)

    assert marked == ["dead", "orphan"]
    statuses = {r.run_id: r.status for r in await store.list_runs()}
    assert statuses == {
        "live": RunStatus.RUNNING,
        "dead": RunStatus.INTERRUPTED,
        "orphan": RunStatus.INTERRUPTED,
        "done": RunStatus.SUCCEEDED,
    }
    assert [(s.step_id, s.status) for s in await store.get_steps("dead")] == [
        ("a", StepStatus.INTERRUPTED),  # its call was in flight: the resume decides (see execution.interrupted)
        ("b", StepStatus.SUCCEEDED),
        ("c", StepStatus.PENDING),
    ]
    assert (await store.get_steps("live"))[0].status is StepStatus.RUNNING
    assert await store.mark_interrupted(alive=lambda pid: pid == 111) == []


async def test_resuming_a_run_clears_its_end_and_takes_the_new_owner(store: RunStore) -> None:
    await store.create_run(a_run(), [])
    await store.finish_run("run_1", RunStatus.FAILED, "2025-01-01T00:00:01+00:00", 5.0)

    await store.set_run_status("run_1", RunStatus.RUNNING, owner_pid=999)

    run = await store.get_run("run_1")
    assert run is not None
    assert (run.status, run.finished_at, run.duration_ms, run.owner_pid) == (
        RunStatus.RUNNING,
        None,
        None,
        999,
    )


async def test_export_then_import_into_a_fresh_store_is_lossless(store: RunStore, tmp_path: Path) -> None:
    plan = {"steps": [{"id": "a", "tool": "text/a_tool", "arguments": {"text": "${inputs.text}"}}]}
    await store.save_plan("plan_1", plan)
    await store.create_run(a_run(), pending("run_1", "a", "b", "c", "d"))
    common = {"run_id": "run_1", "attempts": 1, "started_at": "2025-01-01T00:00:00+00:00"}
    await store.write_steps(
        rows=[
            StepRun(
                **common,
                step_id="a",
                tool="text/a_tool",
                status=StepStatus.SUCCEEDED,
                arguments={"text": "héllo", "n": 1.5},
                finished_at="2025-01-01T00:00:00.100000+00:00",
                duration_ms=100.25,
                output={"words": ["héllo"], "nested": {"x": [1, None, True]}},
                has_output=True,
            ),
            # a tool that answered null: a stored null output
            StepRun(**common, step_id="b", tool="text/b_tool", status=StepStatus.SUCCEEDED, has_output=True),
            # a failed step: no output at all
            StepRun(
                **common,
                step_id="c",
                tool="text/c_tool",
                status=StepStatus.FAILED,
                error=StepError(kind="tool_error", message="bad input", server="text", tool="c_tool"),
            ),
        ]
    )
    await store.finish_run("run_1", RunStatus.PARTIAL, "2025-01-01T00:00:01+00:00", 1000.0)
    approved = ConsentRecord(
        run_id="run_1", decided_at="2025-01-01T00:00:00+00:00", who="host", decision="approved",
        steps=[{"id": "c", "tool": "text/c_tool", "effect": "destructive"}],
    )  # fmt: skip
    await store.record_consent(approved)

    exported = await store.export_run("run_1")
    assert exported is not None
    assert exported.consents == [approved]
    as_file = RunExport.model_validate_json(exported.model_dump_json())
    async with RunStore.open(tmp_path / "other") as fresh:
        await fresh.import_run(as_file)
        again = await fresh.export_run("run_1")

    assert again == exported
    assert exported.plan == plan
    by_id = {s.step_id: s for s in exported.steps}
    assert (by_id["b"].output, by_id["b"].has_output) == (None, True)
    assert (by_id["c"].output, by_id["c"].has_output) == (None, False)
    assert [s.step_id for s in exported.steps] == ["a", "b", "c", "d"]


async def test_importing_a_run_that_exists_needs_replace(store: RunStore) -> None:
    await store.create_run(a_run(), pending("run_1", "a"))
    exported = await store.export_run("run_1")
    assert exported is not None
    changed = exported.model_copy(update={"steps": pending("run_1", "x", "y")})

    with pytest.raises(StoreError, match="exists already") as raised:
        await store.import_run(changed)
    assert raised.value.hint is not None and "--replace" in raised.value.hint
    await store.import_run(changed, replace=True)

    assert [s.step_id for s in await store.get_steps("run_1")] == ["x", "y"]


async def test_replacing_an_imported_run_replaces_its_consent_decisions(store: RunStore) -> None:
    await store.create_run(a_run(), pending("run_1", "a"))
    declined = ConsentRecord(run_id="run_1", decided_at="2025-01-01T00:00:00+00:00", who="cli", decision="declined")
    await store.record_consent(declined)
    exported = await store.export_run("run_1")
    assert exported is not None and exported.consents == [declined]
    approved = declined.model_copy(update={"decision": "approved", "who": "host"})

    await store.import_run(exported.model_copy(update={"consents": [approved]}), replace=True)

    assert await store.get_consents("run_1") == [approved]


async def test_prune_keeps_the_newest_runs_and_deletes_the_rest_with_their_steps(store: RunStore) -> None:
    for i in range(5):
        await store.save_plan(f"plan_{i}", {"i": i})
        run = a_run(f"run_{i}", started_at=f"2025-01-01T00:00:0{i}+00:00", plan_id=f"plan_{i}")
        await store.create_run(run, pending(f"run_{i}", "a", "b"))

    deleted = await store.prune(keep=2)

    assert deleted == 3
    assert [r.run_id for r in await store.list_runs()] == ["run_4", "run_3"]
    assert await store.get_steps("run_0") == []
    assert len(await store.get_steps("run_4")) == 2
    assert [await store.get_plan(f"plan_{i}") for i in range(5)] == [None, None, None, {"i": 3}, {"i": 4}]
    assert await store.prune(keep=2) == 0


async def test_saving_a_plan_again_keeps_the_first_copy(store: RunStore) -> None:
    await store.save_plan("plan_1", {"steps": []})
    await store.save_plan("plan_1", {"steps": [{"id": "other"}]})

    assert await store.get_plan("plan_1") == {"steps": []}
    assert await store.get_plan("plan_2") is None


async def test_saved_metrics_load_back_equal_and_replace_older_values(store: RunStore) -> None:
    await store.create_run(a_run("run_1"), [])
    await store.create_run(a_run("run_2", started_at="2025-01-01T00:00:05+00:00"), [])
    first = {
        "text/a": ToolMetrics(calls=3, successes=2, failures=1, timeouts=1, histogram={0: 1, 37: 2}),
        "text/b": ToolMetrics(),
    }
    await store.finish_run("run_1", RunStatus.SUCCEEDED, "2025-01-01T00:00:01+00:00", 1.0, metrics=first)
    assert await store.load_metrics() == first

    newer = ToolMetrics(calls=4, successes=3, failures=1, timeouts=1, histogram={0: 1, 37: 2, 159: 1})
    await store.finish_run("run_2", RunStatus.SUCCEEDED, "2025-01-01T00:00:06+00:00", 1.0, metrics={"text/a": newer})
    assert await store.load_metrics() == {"text/a": newer, "text/b": ToolMetrics()}


async def test_caller_errors_are_stored_and_a_version_1_database_gains_the_column(tmp_path: Path) -> None:
    import sqlite3

    old = sqlite3.connect(tmp_path / "runs.db", isolation_level=None)
    old.execute("CREATE TABLE schema_version (version INTEGER NOT NULL, applied_at TEXT)")
    for statement in str(migrations.MIGRATIONS[1]).split(";"):
        old.execute(statement)
    old.execute("INSERT INTO schema_version VALUES (1, datetime('now'))")
    old.execute("INSERT INTO tool_metrics VALUES ('text/a', 2, 1, 1, 0, '{\"3\": 1}', '2025-01-01T00:00:00+00:00')")
    old.close()
    async with RunStore.open(tmp_path) as store:
        assert await store.load_metrics() == {
            "text/a": ToolMetrics(calls=2, successes=1, failures=1, histogram={3: 1}, caller_errors=0)
        }
        await store.create_run(a_run("run_1"), [])
        metrics = {"text/a": ToolMetrics(calls=3, successes=1, failures=2, histogram={3: 1}, caller_errors=1)}
        await store.finish_run("run_1", RunStatus.SUCCEEDED, "2025-01-01T00:00:01+00:00", 1.0, metrics=metrics)
        assert await store.load_metrics() == metrics
    migrations.migration_tool_metrics_caller_errors(sqlite3.connect(tmp_path / "runs.db"))  # idempotent


async def test_values_that_are_not_json_are_stored_as_their_repr(store: RunStore) -> None:
    await store.create_run(a_run(), pending("run_1", "a"))
    when = datetime(2025, 1, 1, tzinfo=UTC)

    await store.write_steps(started=starting("run_1", "a", {"when": when}, "2025-01-01T00:00:00+00:00"))

    step = await store.get_step("run_1", "a")
    assert step is not None and step.arguments == {"when": repr(when)}


async def test_an_unwritable_state_dir_raises_store_error_with_a_hint(unwritable_dir: Path) -> None:
    with pytest.raises(StoreError) as raised:
        await RunStore.connect(unwritable_dir)

    assert str(unwritable_dir) in raised.value.message
    assert raised.value.hint == f"set --state-dir or {STATE_DIR_ENV} to a writable directory"
    assert raised.value.describe()["kind"] == "store_error"


async def test_a_database_path_that_cannot_be_opened_raises_store_error_with_a_hint(tmp_path: Path) -> None:
    (tmp_path / DB_FILENAME).mkdir()  # sqlite cannot open a directory, whoever we run as

    with pytest.raises(StoreError, match="cannot write the run store") as raised:
        await RunStore.connect(tmp_path)

    assert raised.value.hint == f"set --state-dir or {STATE_DIR_ENV} to a writable directory"


async def test_a_write_blocked_by_another_connections_lock_raises_store_error(tmp_path: Path) -> None:
    async with RunStore.open(tmp_path, busy_timeout_ms=50) as store:
        other = sqlite3.connect(tmp_path / DB_FILENAME, isolation_level=None)
        try:
            other.execute("BEGIN EXCLUSIVE")
            with pytest.raises(StoreError, match="locked by another process"):
                await store.save_plan("plan_1", {})
            other.execute("ROLLBACK")
        finally:
            other.close()
        await store.save_plan("plan_1", {})  # the store is usable again once the lock is gone

        assert await store.get_plan("plan_1") == {}


async def test_opening_a_new_database_another_connection_locks_raises_store_error(tmp_path: Path) -> None:
    other = sqlite3.connect(tmp_path / DB_FILENAME, isolation_level=None)
    try:
        other.execute("CREATE TABLE squatter (x)")
        other.execute("BEGIN EXCLUSIVE")
        with pytest.raises(StoreError, match="locked"):
            await RunStore.connect(tmp_path, busy_timeout_ms=50)
    finally:
        other.close()


async def test_a_corrupt_database_file_raises_store_error(tmp_path: Path) -> None:
    (tmp_path / DB_FILENAME).write_bytes(random.Random(0).randbytes(8192))

    with pytest.raises(StoreError, match="corrupt or not a SQLite database") as raised:
        await RunStore.connect(tmp_path)

    assert raised.value.hint is not None and "move the file aside" in raised.value.hint


async def test_a_closed_store_raises_store_error(tmp_path: Path) -> None:
    async with RunStore.open(tmp_path) as store:
        pass
    await store.close()  # idempotent

    with pytest.raises(StoreError, match="closed"):
        await store.get_run("run_1")


def test_state_dir_comes_from_the_option_then_the_environment_then_the_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(STATE_DIR_ENV, raising=False)
    default = default_state_dir()
    assert default.name == "mcp-conductor" or "mcp-conductor" in default.parts
    assert resolve_state_dir(None) == default

    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path / "env"))
    assert resolve_state_dir(None) == tmp_path / "env"
    assert resolve_state_dir(str(tmp_path / "cli")) == tmp_path / "cli"


def test_pid_alive_tells_a_running_process_from_a_finished_one() -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # reaped: the pid is free (reuse within this test is vanishingly unlikely)

    assert pid_alive(os.getpid())
    assert not pid_alive(gone.pid)
    assert not pid_alive(0)
    assert not pid_alive(-1)


async def test_a_step_write_waits_in_the_thread_for_another_processes_lock_and_then_lands(tmp_path: Path) -> None:
    # The fast path (on the event loop, busy timeout 0) must hand a locked write to the worker thread, which
    # waits out the other writer instead of failing or blocking the loop.
    async with RunStore.open(tmp_path, busy_timeout_ms=10_000) as store:
        await store.create_run(a_run(), pending("run_1", "a"))
        other = sqlite3.connect(tmp_path / DB_FILENAME, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN EXCLUSIVE")
        loop_ran = anyio.Event()
        try:
            with anyio.fail_after(10):
                async with anyio.create_task_group() as tg:
                    start = starting("run_1", "a", {"x": 1}, "2025-01-01T00:00:01+00:00")
                    tg.start_soon(partial(store.write_steps, started=start))

                    async def release() -> None:
                        await anyio.lowlevel.checkpoint()  # the loop is free while the write waits: this task runs
                        loop_ran.set()
                        await anyio.to_thread.run_sync(other.execute, "ROLLBACK")

                    tg.start_soon(release)
        finally:
            other.close()
        step = await store.get_step("run_1", "a")

    assert loop_ran.is_set()
    assert step is not None and (step.status, step.attempts, step.arguments) == (StepStatus.RUNNING, 1, {"x": 1})


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="zombies are told apart through /proc")
def test_pid_alive_counts_an_unreaped_killed_process_as_dead() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        child.kill()
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # dead but not reaped: a zombie
        assert not pid_alive(child.pid)
    finally:
        child.wait()
