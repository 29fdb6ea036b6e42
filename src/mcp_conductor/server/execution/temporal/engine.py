"""``TemporalEngine``: the front's side of the ``RunEngine`` seam when runs are Temporal workflows.

For each run it writes the run record (as the local engine does), starts the ``RunPlan`` workflow with the
run id as the workflow id (a workflow already running under that id is attached to, which is how a restarted
front resumes a run), follows it with the ``progress`` query to mirror step starts and ends into the run store
and to send progress notifications, and writes the final step records, the metrics and the run's end from the
workflow's result. So the run store stays the one place hosts and the CLI read. A host's cancellation cancels
the workflow; the run is then recorded from what the workflow reports.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import anyio
import structlog
from pydantic import MISSING
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.service import RPCError

from mcp_conductor.client_pool.catalog import ToolId
from mcp_conductor.client_pool.pool import ClientPool
from mcp_conductor.errors import ConductorError
from mcp_conductor.server.discovery.metrics import MetricsRegistry
from mcp_conductor.server.execution.engine import ProgressFn, RunOutcome, RunRequest, new_run_id
from mcp_conductor.server.execution.interrupted import UNKNOWN_OUTCOME, Interrupted, ended_unknown, interrupted_rule
from mcp_conductor.server.execution.run_state import Progress as Notify
from mcp_conductor.server.execution.temporal.blobs import BlobStore
from mcp_conductor.server.execution.temporal.convert import run_input, step_spec, to_record, to_state
from mcp_conductor.server.execution.temporal.protocol import PROGRESS_QUERY, WORKFLOW, Progress, RunResult, StepState
from mcp_conductor.server.planning.models import PlannedStep
from mcp_conductor.server.store.records import RunRecord, RunStatus, StepError, StepRun, StepStatus, now_iso
from mcp_conductor.server.store.store import RunStore

log = structlog.get_logger(__name__)

DEFAULT_TASK_QUEUE = "mcp-conductor"
DEFAULT_NAMESPACE = "default"
DEFAULT_STEP_TIMEOUT_S = 60.0
MAX_RUN_S = 24 * 3600.0  # a run without options.timeout_s: the workflow's execution timeout
POLL_S = 0.25
CANCEL_WAIT_S = 30.0
_ENDED_CALL = frozenset({"succeeded", "failed", "timeout", "unknown"})
_IN_FLIGHT = frozenset({StepStatus.RUNNING, StepStatus.INTERRUPTED, StepStatus.UNKNOWN})


class TemporalUnavailableError(ConductorError):
    kind = "engine_unavailable"
    retryable = True


@dataclass(frozen=True, slots=True)
class TemporalSettings:
    """Where the Temporal cluster is: ``conductor.engine`` in the config, or the CLI's flags."""

    address: str
    namespace: str = DEFAULT_NAMESPACE
    task_queue: str = DEFAULT_TASK_QUEUE


async def connect(settings: TemporalSettings) -> Client:
    """A client of the cluster.

    Raises:
        TemporalUnavailableError: the cluster cannot be reached at ``settings.address``.
    """
    try:
        return await Client.connect(settings.address, namespace=settings.namespace)
    except RuntimeError as exc:  # the SDK's core reports a failed connect as RuntimeError
        raise TemporalUnavailableError(
            f"cannot reach Temporal at {settings.address}: {exc}",
            hint="start it (`mcp-conductor temporal dev`) or pass --temporal-address HOST:PORT",
        ) from exc


class TemporalEngine:
    """Runs plans as ``RunPlan`` workflows on ``task_queue``; workers (``worker.run_worker``) make the calls."""

    def __init__(
        self,
        client: Client,
        pool: ClientPool,
        store: RunStore,
        metrics: MetricsRegistry,
        *,
        task_queue: str = DEFAULT_TASK_QUEUE,
        blob_dir: Path | None = None,
        default_step_timeout_s: float | None = None,
        heartbeat_s: float = 2.0,
        poll_s: float = POLL_S,
    ) -> None:
        self._client = client
        self._pool = pool
        self._store = store
        self._metrics = metrics
        self.task_queue = task_queue
        self._blobs = BlobStore(blob_dir or store.path.parent / "blobs")
        self._default_step_timeout_s = default_step_timeout_s
        self._heartbeat_s = heartbeat_s
        self._poll_s = poll_s

    async def execute(self, request: RunRequest, progress: ProgressFn | None = None) -> RunOutcome:
        """Run (or resume, or attach to) ``request``'s workflow; returns when it ends.

        Raises:
            StoreError: the run cannot be created in the store (nothing ran).
        """
        run_id, earlier, attach = await self._prepare(request)
        structlog.contextvars.bind_contextvars(run_id=run_id)
        total = len(request.plan.steps)
        notify = Notify(progress, total)
        started = time.perf_counter()
        log.info("chain.run_started", steps=total, plan_id=request.plan_id, resume=request.resume, engine="temporal")
        await notify.say(0, f"run {run_id} started: {total} steps")
        follower = _Follower(self, run_id, notify)
        result: RunResult | None = None
        try:
            handle = await self._workflow(run_id, request, earlier, attach=attach)
            async with anyio.create_task_group() as tg:
                tg.start_soon(follower.poll, handle)
                result = await handle.result()
                tg.cancel_scope.cancel()
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                result = await self._cancel(run_id)
                await self._finish(run_id, request, result, follower, started, cancelled=True)
            raise
        except ConductorError:
            raise
        except Exception as exc:  # the workflow failed or timed out as a whole, or the cluster went away
            log.error("chain.workflow_failed", error=str(exc), exc_info=exc)
            message = f"the workflow ended without a result: {type(exc).__name__}: {exc}"[:500]
            result = RunResult("failed", [], {"kind": "internal_error", "message": message})
        finally:
            structlog.contextvars.unbind_contextvars("run_id")
        return await self._finish(run_id, request, result, follower, started)

    async def start(self, request: RunRequest) -> str:
        """Start ``request``'s workflow without following it (its run id): the run goes on without this process;
        ``execute_chain`` with the run id later attaches to it.

        Raises:
            StoreError: the run cannot be created in the store.
        """
        run_id, earlier, attach = await self._prepare(request)
        await self._workflow(run_id, request, earlier, attach=attach)
        return run_id

    async def _workflow(
        self, run_id: str, request: RunRequest, earlier: list[StepState], *, attach: bool
    ) -> WorkflowHandle[object, RunResult]:
        """The run's workflow: with ``attach`` (the run was left running by a front that went away) the one
        that ended under this id, if it did; else the one running under it, or one started now."""
        if attach:
            handle = self._client.get_workflow_handle(run_id, result_type=RunResult)
            try:
                description = await handle.describe()
            except RPCError:
                description = None  # never started (or gone from the cluster's retention)
            if description is not None and description.status is WorkflowExecutionStatus.COMPLETED:
                return handle
        specs = [
            step_spec(s, self._pool.snapshot(), self._timeout(request, s.timeout_s, s.target), request)
            for s in request.plan.steps
        ]
        spec = run_input(run_id, request, specs, earlier, self._heartbeat_s)
        limit = request.options.timeout_s or MAX_RUN_S
        return await self._client.start_workflow(
            WORKFLOW,
            spec,
            id=run_id,
            task_queue=self.task_queue,
            result_type=RunResult,
            execution_timeout=timedelta(seconds=limit + 60),
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        )

    async def _cancel(self, run_id: str) -> RunResult | None:
        handle: WorkflowHandle[object, RunResult] = self._client.get_workflow_handle(run_id, result_type=RunResult)
        with anyio.move_on_after(CANCEL_WAIT_S):
            try:
                await handle.cancel()
                result: RunResult = await handle.result()
                return result
            except Exception as exc:  # the run is recorded from the store's mirror instead
                log.warning("chain.cancel_unconfirmed", error=str(exc))
        return None

    # -- the store ----------------------------------------------------------------------------------------
    async def _prepare(self, request: RunRequest) -> tuple[str, list[StepState], bool]:
        """The run's id, what an earlier execution left (resume), and whether to attach to its workflow."""
        plan = request.plan
        if request.resume and request.options.run_id:
            run_id = request.options.run_id
            before = await self._store.get_run(run_id)
            attach = before is not None and not before.status.finished  # running or interrupted: its front died
            stored = await self._store.get_steps(run_id)
            await self._store.set_run_status(run_id, RunStatus.RUNNING, owner_pid=os.getpid())
            snapshot = self._pool.snapshot()
            steps: dict[str, PlannedStep] = {s.id: s for s in plan.steps}
            earlier = []
            for old in stored:
                step = steps.get(old.step_id)
                if old.status is StepStatus.PENDING or step is None:
                    continue
                if (
                    old.status in _IN_FLIGHT
                    and step.foreach is MISSING  # a foreach step decides item by item (in the workflow)
                    and not step.is_data
                    and interrupted_rule(step, snapshot, request.options.rerun_unknown) is Interrupted.UNKNOWN
                ):
                    old = ended_unknown(old, step.target)
                    await self._store.write_steps(rows=[old])
                earlier.append(await to_state(old, self._blobs))
            return run_id, earlier, attach
        run_id = request.options.run_id or new_run_id()
        record = RunRecord(
            run_id=run_id,
            plan_id=request.plan_id,
            status=RunStatus.RUNNING,
            inputs=dict(request.inputs),
            options=request.options.stored(),
            outputs=list(plan.outputs or ()),
            started_at=now_iso(),
            owner_pid=os.getpid(),
        )
        await self._store.create_run(record, [StepRun(run_id, s.id, s.target) for s in plan.steps])
        return run_id, [], False

    async def mirror(self, run_id: str, states: list[StepState], seen: set[tuple[str, int, str]]) -> None:
        """Write ``states`` into the store, and each call that ended since into the tool metrics (once)."""
        records = [await to_record(run_id, state, self._blobs) for state in states]
        items = [(step, item) for step in records for item in step.items or ()]
        await self._store.write_steps(rows=records, items=items)
        for step in records:
            for call in [step] if step.items is None else step.items:
                key = (step.step_id, getattr(call, "index", -1), call.finished_at or "")
                if (
                    step.tool == "expr"
                    or call.status.value not in _ENDED_CALL
                    or key in seen
                    or call.started_at is None
                ):
                    continue
                seen.add(key)
                if call.error is not None and call.error.kind in (
                    UNKNOWN_OUTCOME,
                    "internal_error",
                    "expression_error",
                ):
                    continue
                tool = ToolId(step.tool)
                ok = call.status is StepStatus.SUCCEEDED
                self._metrics.record(
                    tool, ok=ok, duration_ms=call.duration_ms or 0.0, timed_out=call.status is StepStatus.TIMEOUT
                )
                if ok:
                    self._metrics.learn(tool, call.output)

    async def _finish(
        self,
        run_id: str,
        request: RunRequest,
        result: RunResult | None,
        follower: _Follower,
        started: float,
        *,
        cancelled: bool = False,
    ) -> RunOutcome:
        if result is not None and result.steps:
            await self.mirror(run_id, result.steps, follower.seen)
            await follower.ended(result)  # stored before it is announced
        stored = {s.step_id: s for s in await self._store.get_steps(run_id)}
        for step in stored.values():  # what the workflow could not report (it never ran, or was cut off)
            if step.status in (StepStatus.PENDING, StepStatus.RUNNING):
                step.status = StepStatus.CANCELLED if step.status is StepStatus.RUNNING else StepStatus.SKIPPED
                step.error = StepError(kind=step.status.value, message="the run stopped before this step ended")
                step.finished_at = now_iso()
                await self._store.write_steps(rows=[step])
        status = (
            RunStatus(result.status) if result is not None else (RunStatus.CANCELLED if cancelled else RunStatus.FAILED)
        )
        error = StepError.model_validate(result.error) if result is not None and result.error else None
        duration_ms = round((time.perf_counter() - started) * 1000, 1)
        tools = {ToolId(s.tool) for s in stored.values() if s.tool != "expr"}
        metrics = {t: m for t in tools if (m := self._metrics.get(t)) is not None}
        record = await self._store.finish_run(run_id, status, now_iso(), duration_ms, error, metrics=metrics)
        log.info("chain.run_finished", status=record.status.value, duration_ms=duration_ms, engine="temporal")
        steps = [stored[s.id] for s in request.plan.steps]
        defaults = result.defaults if result is not None else {}
        outputs = {
            s.step_id: s.output if s.has_output else defaults[s.step_id]
            for s in steps
            if s.step_id in record.outputs and (s.has_output or s.step_id in defaults)
        }
        return RunOutcome(run=record, steps=steps, outputs=outputs)

    def _timeout(self, request: RunRequest, step_timeout_s: float | None, target: str) -> float:
        if step_timeout_s is not None:
            return step_timeout_s
        if request.options.default_step_timeout_s is not None:
            return request.options.default_step_timeout_s
        if self._default_step_timeout_s is not None:
            return self._default_step_timeout_s
        try:
            return self._pool.connection(target.partition("/")[0]).call_timeout_s
        except ConductorError:
            return DEFAULT_STEP_TIMEOUT_S


class _Follower:
    """Follows a running workflow with the progress query: mirrors its changes and says the progress."""

    def __init__(self, engine: TemporalEngine, run_id: str, notify: Notify) -> None:
        self._engine = engine
        self._run_id = run_id
        self._notify = notify
        self._since = 0
        self._finished = 0
        self.seen: set[tuple[str, int, str]] = set()

    async def ended(self, result: RunResult) -> None:
        """The last progress notification, from the result (the last poll may not have seen the end)."""
        finished = sum(1 for s in result.steps if s.status not in ("pending", "running"))
        if finished != self._finished and result.steps:
            self._finished = finished
            last = max(result.steps, key=lambda s: s.seq)
            await self._notify.say(finished, f"last: {last.step_id} {last.status}")

    async def poll(self, handle: WorkflowHandle[object, RunResult]) -> None:
        while True:
            await anyio.sleep(self._engine._poll_s)
            try:
                progress: Progress = await handle.query(PROGRESS_QUERY, self._since, result_type=Progress)
            except Exception as exc:  # no worker to answer right now: the next poll tries again
                log.debug("chain.progress_query_failed", error=str(exc))
                continue
            if progress.changed:
                await self._engine.mirror(self._run_id, progress.changed, self.seen)
            self._since = progress.seq
            if progress.finished != self._finished:
                self._finished = progress.finished
                last = max(progress.changed, key=lambda s: s.seq) if progress.changed else None
                what = f"last: {last.step_id} {last.status}" if last is not None else "running"
                await self._notify.say(progress.finished, what)
