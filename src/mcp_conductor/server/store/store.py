"""The embedded run store: plans, runs, step records, consent decisions and tool metrics in one SQLite file.

``RunStore`` is the records API on top of ``StoreConnections`` (the two connections, the worker thread and the
error translation, in ``connections``). WAL mode with ``synchronous=NORMAL``: every write is committed before
its method returns, and a commit survives a killed process. Several processes may share a state directory; a
writer waits ``busy_timeout_ms`` for another.

    async with RunStore.open(resolve_state_dir(None)) as store:
        await store.create_run(run, steps)
        journal = store.journal(run.run_id)       # a run's step writes, committed as the journal decides
        await journal.step_started(steps[0])

Every ``sqlite3`` or file-system failure surfaces as ``StoreError`` with a hint, never as a raw traceback.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from mcp_conductor.server.discovery.metrics import ToolMetrics
from mcp_conductor.server.store import schema
from mcp_conductor.server.store.connections import DB_FILENAME, StoreConnections, StoreError
from mcp_conductor.server.store.journal import RunJournal
from mcp_conductor.server.store.records import (
    ConsentRecord,
    ItemRun,
    RunExport,
    RunRecord,
    RunStatus,
    StepError,
    StepRun,
)
from mcp_conductor.server.store.rows import dumps, error_json, item_row
from mcp_conductor.server.store.state_dir import pid_alive

# RunJournal lives in journal.py, DB_FILENAME and StoreError in connections.py
__all__ = ["DB_FILENAME", "RunJournal", "RunStore", "StoreError"]

EXPORT_FORMAT = "mcp-conductor.run/1"

K = TypeVar("K", bound=str)  # tool ids: str or a NewType of it (Mapping keys are invariant)


def _now() -> str:
    return datetime.now(UTC).isoformat()


class RunStore(StoreConnections):
    """Plans, runs, steps and metrics in ``<state_dir>/runs.db``; see ``open`` and ``connect``."""

    # -- plans ---------------------------------------------------------------------------------------------

    async def save_plan(self, plan_id: str, plan: Mapping[str, Any]) -> None:
        """Store a plan; saving an id again keeps the first copy (ids are content hashes).

        Raises:
            StoreError: the store cannot be written.
        """
        plan_json, now = dumps(plan), _now()
        await self._run(lambda c: schema.insert_plan(c, plan_id, plan_json, now))

    async def get_plan(self, plan_id: str) -> dict[str, Any] | None:
        """The stored plan, or None.

        Raises:
            StoreError: the store cannot be read.
        """
        return await self._quick(lambda c: schema.select_plan(c, plan_id))

    # -- runs ----------------------------------------------------------------------------------------------

    async def create_run(self, run: RunRecord, steps: Sequence[StepRun]) -> None:
        """Store a new run and a row per step (``steps`` in plan order, normally pending) in one transaction.

        Raises:
            StoreError: a run with this id exists, a step belongs to another run, or the store cannot be
                written.
        """
        _check_steps(run, steps)

        def create(c: sqlite3.Connection) -> None:
            with schema.transaction(c):
                if schema.run_exists(c, run.run_id):
                    raise StoreError(f"run {run.run_id!r} exists already", hint="resume it, or use a new run id")
                schema.insert_run(c, run, steps)

        await self._quick(create)

    async def get_run(self, run_id: str) -> RunRecord | None:
        """The run, or None.

        Raises:
            StoreError: the store cannot be read.
        """
        return await self._quick(lambda c: schema.select_run(c, run_id))

    async def list_runs(self, limit: int = 50, status: RunStatus | None = None) -> list[RunRecord]:
        """The newest ``limit`` runs, newest first, optionally only those with ``status``.

        Raises:
            StoreError: the store cannot be read.
        """
        wanted = None if status is None else RunStatus(status).value
        return await self._run(lambda c: schema.select_runs(c, limit, wanted))

    async def finish_run(
        self,
        run_id: str,
        status: RunStatus,
        finished_at: str,
        duration_ms: float,
        error: StepError | None = None,
        *,
        metrics: Mapping[K, ToolMetrics] | None = None,
    ) -> RunRecord:
        """Record a run's end, and the latest metrics of the tools it called, in one transaction; returns the
        run as stored.

        Raises:
            StoreError: there is no such run, or the store cannot be written.
        """
        columns = {
            "status": RunStatus(status).value,
            "finished_at": finished_at,
            "duration_ms": duration_ms,
            "error_json": error_json(error),
        }
        items, now = list((metrics or {}).items()), _now()
        run = await self._quick(lambda c: schema.finish_run(c, run_id, items, now, **columns))
        if run is None:
            raise StoreError(f"no run {run_id!r} in the store {self.path}")
        return run

    async def set_run_status(self, run_id: str, status: RunStatus, *, owner_pid: int | None = None) -> None:
        """Change a run's status. Back to ``running`` (a resume) also clears its end; ``owner_pid`` if given.

        Raises:
            StoreError: there is no such run, or the store cannot be written.
        """
        columns: dict[str, Any] = {"status": RunStatus(status).value}
        if status == RunStatus.RUNNING:
            columns |= {"finished_at": None, "duration_ms": None, "error_json": None}
        if owner_pid is not None:
            columns["owner_pid"] = owner_pid
        await self._update_run(run_id, columns)

    async def _update_run(self, run_id: str, columns: dict[str, Any]) -> None:
        if not await self._quick(lambda c: schema.update_run(c, run_id, **columns)):
            raise StoreError(f"no run {run_id!r} in the store {self.path}")

    async def request_cancel(self, run_id: str) -> None:
        """Ask the process that runs ``run_id`` to cancel it (it checks twice a second).

        Raises:
            StoreError: there is no such run, or the store cannot be written.
        """
        sql = "INSERT INTO run_cancels (run_id, requested_at) VALUES (?, ?) ON CONFLICT (run_id) DO NOTHING"
        try:
            await self._run(lambda c: c.execute(sql, (run_id, _now())))
        except StoreError as exc:
            if await self.get_run(run_id) is None:
                raise StoreError(f"no run {run_id!r} in the store {self.path}") from exc
            raise

    async def cancel_requested(self, run_id: str) -> bool:
        """Whether someone asked for ``run_id`` to be cancelled.

        Raises:
            StoreError: the store cannot be read.
        """
        sql = "SELECT 1 FROM run_cancels WHERE run_id = ?"
        return await self._quick(lambda c: c.execute(sql, (run_id,)).fetchone() is not None)

    async def mark_interrupted(self, alive: Callable[[int], bool] = pid_alive) -> list[str]:
        """Runs left ``running`` by a dead process become ``interrupted``, and so do their running steps and items
        (their calls were in flight: a resume runs them again or ends them ``unknown``).

        Call it at startup. A run without an ``owner_pid`` counts as orphaned. Returns the run ids, oldest
        first.

        Raises:
            StoreError: the store cannot be written.
        """
        return await self._run(lambda c: schema.mark_interrupted(c, alive))

    # -- consent -------------------------------------------------------------------------------------------

    async def record_consent(self, consent: ConsentRecord) -> None:
        """Keep a consent decision with its run (the run may not exist yet: it is created after approval).

        Raises:
            StoreError: the store cannot be written.
        """
        await self._quick(lambda c: schema.insert_consents(c, [consent]))

    async def get_consents(self, run_id: str) -> list[ConsentRecord]:
        """The run's consent decisions, oldest first.

        Raises:
            StoreError: the store cannot be read.
        """
        return await self._quick(lambda c: schema.select_consents(c, run_id))

    # -- steps ---------------------------------------------------------------------------------------------

    def journal(self, run_id: str) -> RunJournal:
        """The writer of one run's step records, which decides when they are committed (see ``RunJournal``)."""
        return RunJournal(self, run_id)

    async def write_steps(
        self,
        *,
        ended: Sequence[StepRun] = (),
        rows: Sequence[StepRun] = (),
        started: StepRun | None = None,
        items: Sequence[tuple[StepRun, ItemRun]] = (),
    ) -> None:
        """In one transaction: the end columns of ``ended`` (steps whose start row was written), whole rows for
        ``rows`` (inserted after the run's last step if new), then ``started`` marked running with its
        arguments (clearing an earlier attempt's end), then whole rows of foreach ``items``. Committed when it
        returns.

        Raises:
            StoreError: a step or its run does not exist, or the store cannot be written.
        """

        def write(c: sqlite3.Connection) -> None:
            with schema.transaction(c):
                for step in ended:
                    if not schema.end_step(c, step):
                        raise StoreError(f"run {step.run_id!r} has no step {step.step_id!r}")
                for step in rows:
                    try:
                        schema.upsert_step(c, step)
                    except sqlite3.IntegrityError as exc:
                        raise StoreError(f"no run {step.run_id!r} for step {step.step_id!r}") from exc
                if started is not None and not schema.start_step(c, started, dumps(started.arguments)):
                    raise StoreError(f"run {started.run_id!r} has no step {started.step_id!r}")
                try:
                    schema.upsert_items(c, [item_row(step, item) for step, item in items])
                except sqlite3.IntegrityError as exc:
                    raise StoreError(f"no step {items[0][0].step_id!r} for its foreach items") from exc

        if ended or rows or started is not None or items:
            await self._quick(write)

    async def get_steps(self, run_id: str) -> list[StepRun]:
        """The run's steps in plan order (none for an unknown run).

        Raises:
            StoreError: the store cannot be read.
        """
        return await self._run(lambda c: schema.select_steps(c, run_id))

    async def get_step(self, run_id: str, step_id: str) -> StepRun | None:
        """One step, or None.

        Raises:
            StoreError: the store cannot be read.
        """
        found = await self._quick(lambda c: schema.select_steps(c, run_id, step_id))
        return found[0] if found else None

    # -- metrics -------------------------------------------------------------------------------------------

    async def load_metrics(self) -> dict[str, ToolMetrics]:
        """Every tool's stored metrics.

        Raises:
            StoreError: the store cannot be read.
        """
        return await self._run(schema.select_metrics)

    # -- export, import, retention -------------------------------------------------------------------------

    async def export_run(self, run_id: str) -> RunExport | None:
        """The run's whole state (run, steps in plan order, plan, consent decisions) from one snapshot, or None.

        Raises:
            StoreError: the store cannot be read.
        """

        def read(c: sqlite3.Connection) -> RunExport | None:
            with schema.transaction(c, "DEFERRED"):
                run = schema.select_run(c, run_id)
                if run is None:
                    return None
                steps = schema.select_steps(c, run_id)
                plan = schema.select_plan(c, run.plan_id)
                consents = schema.select_consents(c, run_id)
            return RunExport(format=EXPORT_FORMAT, run=run, steps=steps, plan=plan, consents=consents)

        return await self._run(read)

    async def import_run(self, export: RunExport, *, replace: bool = False) -> None:
        """Store an exported run (and its plan, unless that plan id is stored already) in one transaction.

        Raises:
            StoreError: the run exists and ``replace`` is false, the export has another format or a step of
                another run, or the store cannot be written.
        """
        if export.format != EXPORT_FORMAT:
            raise StoreError(f"unsupported export format {export.format!r}", hint=f"expected {EXPORT_FORMAT!r}")
        run, steps = export.run, export.steps
        _check_steps(run, steps)
        plan_json = None if export.plan is None else dumps(export.plan)
        now = _now()

        def write(c: sqlite3.Connection) -> None:
            with schema.transaction(c):
                if schema.run_exists(c, run.run_id):
                    if not replace:
                        hint = "import with --replace to overwrite it"
                        raise StoreError(f"run {run.run_id!r} exists already", hint=hint)
                    c.execute("DELETE FROM runs WHERE run_id = ?", (run.run_id,))  # its steps cascade
                    c.execute("DELETE FROM consents WHERE run_id = ?", (run.run_id,))
                schema.insert_run(c, run, steps)
                schema.insert_consents(
                    c, [consent.model_copy(update={"run_id": run.run_id}) for consent in export.consents]
                )
                if plan_json is not None:
                    schema.insert_plan(c, run.plan_id, plan_json, now)

        await self._run(write)

    async def prune(self, keep: int) -> int:
        """Delete all but the newest ``keep`` runs with their steps; returns how many runs were deleted.

        Plans that no remaining run uses and that are not among the newest ``keep`` plans go too.

        Raises:
            ValueError: ``keep`` is negative.
            StoreError: the store cannot be written.
        """
        if keep < 0:
            raise ValueError(f"keep must be >= 0, not {keep}")
        return await self._run(lambda c: schema.prune(c, keep))


def _check_steps(run: RunRecord, steps: Sequence[StepRun]) -> None:
    strays = [step.step_id for step in steps if step.run_id != run.run_id]
    if strays:
        raise StoreError(f"steps {strays} belong to another run than {run.run_id!r}")
