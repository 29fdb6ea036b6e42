"""Running chains for the MCP front and the CLI: idempotent run ids, resume, live runs, cancel, results.

This sits between the tools (``tools_chain``) and the engine (``executor``): it has its plans checked and stored
by ``plan_checks``, decides whether an ``execute_chain`` call is a new run, a repeat of a finished one (same
``run_id``) or a resume, puts steps that need consent to the approver, runs the request and shapes the result.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import structlog

from mcp_conductor.client_pool.config_models import DEFAULT_KEEP_RUNS
from mcp_conductor.client_pool.pool import ClientPool
from mcp_conductor.errors import ConductorError
from mcp_conductor.server.discovery.metrics import MetricsRegistry
from mcp_conductor.server.execution.consent import ApproveFn, gate
from mcp_conductor.server.execution.engine import ProgressFn, RunEngine, RunRequest, new_run_id
from mcp_conductor.server.execution.executor import LocalExecutor
from mcp_conductor.server.execution.interrupted import stays_unknown
from mcp_conductor.server.execution.library import ChainLibrary
from mcp_conductor.server.execution.live_runs import LiveRun, LiveRuns
from mcp_conductor.server.execution.plan_checks import PlanChecks
from mcp_conductor.server.execution.results import ExecuteResult, RunOptions, RunProgress, StepProblem, StepSummary
from mcp_conductor.server.execution.sub_runs import SubRuns
from mcp_conductor.server.execution.values import DEFAULT_OUTPUT_BUDGET_BYTES, budgeted, step_resource_uri
from mcp_conductor.server.planning.consent import ConsentStep, consent_steps
from mcp_conductor.server.planning.models import Plan, PlanIssue, PlannedStep, PlanResult
from mcp_conductor.server.planning.planner import PlannerLimits
from mcp_conductor.server.planning.saved_chains import SaveAs
from mcp_conductor.server.store.chains import ChainRun
from mcp_conductor.server.store.records import RunRecord, RunStatus, StepError, StepRun, StepStatus
from mcp_conductor.server.store.state_dir import pid_alive
from mcp_conductor.server.store.store import RunStore

log = structlog.get_logger(__name__)

PRUNE_EVERY = 20


class RunNotFoundError(ConductorError):
    kind = "unknown_run"


class RunBusyError(ConductorError):
    kind = "run_busy"
    retryable = True


class ChainService:
    """Plans and runs chains over one catalog, store and engine."""

    def __init__(
        self,
        store: RunStore,
        engine: RunEngine,
        pool: ClientPool,
        metrics: MetricsRegistry,
        *,
        limits: PlannerLimits = PlannerLimits(),
        output_budget_bytes: int = DEFAULT_OUTPUT_BUDGET_BYTES,
        keep_runs: int = DEFAULT_KEEP_RUNS,
        live: LiveRuns | None = None,
    ) -> None:
        self.store = store
        self._live = live  # where runs with options.wait_s go on after their request (None: inline only)
        self.engine = engine
        self._pool = pool
        self._budget = output_budget_bytes
        self._active: set[str] = set()
        self._keep_runs = keep_runs
        self._runs_since_prune = 0
        self.library = ChainLibrary(store, pool)
        self.checks = PlanChecks(store, pool, metrics, self.library, limits=limits)
        self.sub_runs = SubRuns(self)
        if isinstance(engine, LocalExecutor):
            engine.run_sub_chains_with(self.sub_runs.run)

    async def plan(self, raw: Mapping[str, Any] | Plan, save_as: SaveAs | None = None) -> PlanResult:
        """Validate ``raw`` and store it (see ``PlanChecks.plan``).

        Raises:
            StoreError: the store cannot be written.
        """
        return await self.checks.plan(raw, save_as)

    async def check(self, plan: Mapping[str, Any], inputs: Mapping[str, Any]) -> PlanResult:
        """``plan`` with ``inputs`` over its own, checked against today's catalog (see ``PlanChecks.check``).

        Raises:
            StoreError: the store cannot be used.
        """
        return await self.checks.check(plan, inputs)

    async def execute(
        self,
        *,
        plan_id: str | None = None,
        plan: Mapping[str, Any] | None = None,
        inputs: Mapping[str, Any] | None = None,
        options: RunOptions | None = None,
        progress: ProgressFn | None = None,
        approve: ApproveFn | None = None,
        chain: str | None = None,
    ) -> ExecuteResult:
        """Run a plan (by id, inline, or a saved ``chain`` by ``NAME[@VERSION]``, its inputs checked against its
        schema), repeat a finished run, or resume an unfinished one; steps that need the person's consent are put
        to ``approve`` first (see ``consent``).

        Raises:
            PlanNotFoundError: ``plan_id`` is not in the store.
            RunNotFoundError: ``resume_run_id`` names no run.
            RunBusyError: the run is running right now.
            ConductorError: neither ``plan_id`` nor ``plan`` was given.
            StoreError: the store cannot be read or written.
        """
        options = options or RunOptions()
        attach = options.run_id or options.resume_run_id
        live = self._live.get(attach) if self._live is not None and attach else None
        if live is not None:  # a run of this process that an earlier request left running
            if options.cancel:
                live.cancel()
            return await self._wait(live, options, progress)
        if options.cancel:
            return await self._cancel(attach)
        saved = None if chain is None else await self.library.open(chain, inputs or {}, also=plan or plan_id)
        if isinstance(saved, list):
            return ExecuteResult(run_id=None, status="invalid", errors=saved)
        if saved is not None:
            plan, plan_id = dict(saved.plan), None
        target = await self._target(plan_id, plan, inputs, options)
        if isinstance(target, RunRecord):
            return await self.stored_result(target, options, reused=True)
        resumed, checked = target
        if not checked.valid or checked.normalized_plan is None or checked.plan_id is None:
            return ExecuteResult(run_id=None, status="invalid", errors=list(checked.errors))
        normalized = checked.normalized_plan
        refused = self.checks.engine_refuses(normalized, self.engine)
        if refused:
            return ExecuteResult(run_id=None, status="invalid", errors=refused)
        resume_id = resumed.run_id if resumed is not None else None
        request = RunRequest(
            plan=normalized,
            plan_id=checked.plan_id,
            inputs=normalized.inputs,
            options=options if resume_id is None else options.model_copy(update={"run_id": resume_id}),
            resume=resume_id is not None,
            chain_stack=() if saved is None else (saved.name,),
        )
        if saved is not None:
            if request.options.run_id is None:
                request = replace(request, options=request.options.model_copy(update={"run_id": new_run_id()}))
            await self.library.chains.record_run(ChainRun(str(request.options.run_id), saved.name, saved.version))
        needed = await self._consent_steps(normalized, resumed, options.rerun_unknown)
        if needed:
            if request.options.run_id is None:  # the decision is recorded under the run's id
                request = replace(request, options=request.options.model_copy(update={"run_id": new_run_id()}))
            run_id = request.options.run_id
            assert run_id is not None
            stop = await gate(
                self.store, approve, needed, run_id=run_id, plan=normalized, plan_id=checked.plan_id, resumed=resumed
            )
            if stop is not None:
                return stop
        if options.wait_s is None or self._live is None:
            return await self._run(request, options, checked.warnings, progress)
        if request.options.run_id is None:
            request = replace(request, options=request.options.model_copy(update={"run_id": new_run_id()}))
        run_id = request.options.run_id
        assert run_id is not None

        async def body(report: ProgressFn) -> ExecuteResult:
            return await self._run(request, options, checked.warnings, report)

        async def stopped() -> ExecuteResult:
            stored = await self.store.get_run(run_id)
            if stored is None:
                return ExecuteResult(run_id=run_id, status=RunStatus.CANCELLED.value)
            return await self.stored_result(stored, options)

        live = self._live.start(run_id, len(normalized.steps), body, stopped)
        return await self._wait(live, options, progress)

    async def consent_needed(
        self,
        *,
        plan_id: str | None = None,
        plan: Mapping[str, Any] | None = None,
        inputs: Mapping[str, Any] | None = None,
        options: RunOptions | None = None,
        chain: str | None = None,
    ) -> list[ConsentStep]:
        """The steps that ``execute`` with these arguments would put to its approver: none for a finished run
        repeated by ``run_id``, a live run, a cancel or an invalid plan; for a resume, only the steps that have
        not succeeded yet.

        Raises:
            the errors of ``execute`` (an unknown plan or run, a busy run, the store).
        """
        options = options or RunOptions()
        attach = options.run_id or options.resume_run_id
        if options.cancel or (self._live is not None and attach and self._live.get(attach) is not None):
            return []
        saved = None if chain is None else await self.library.open(chain, inputs or {}, also=plan or plan_id)
        if isinstance(saved, list):
            return []
        if saved is not None:
            plan, plan_id = dict(saved.plan), None
        target = await self._target(plan_id, plan, inputs, options)
        if isinstance(target, RunRecord):
            return []
        resumed, checked = target
        if not checked.valid or checked.normalized_plan is None:
            return []
        return await self._consent_steps(checked.normalized_plan, resumed, options.rerun_unknown)

    async def _consent_steps(self, plan: Plan, resumed: RunRecord | None, rerun_unknown: bool) -> list[ConsentStep]:
        """The steps to put to the approver: for a resume, not those that succeeded or will end unknown."""
        snapshot = self.library.with_chains(self._pool.snapshot(), await self.library.chain_tools(plan))
        done: set[str] = set()
        if resumed is not None:
            steps: dict[str, PlannedStep] = {s.id: s for s in plan.steps}
            for stored in await self.store.get_steps(resumed.run_id):
                step = steps.get(stored.step_id)
                if stored.status is StepStatus.SUCCEEDED or (
                    step is not None and stays_unknown(step, stored, snapshot, rerun_unknown)
                ):
                    done.add(stored.step_id)
        return consent_steps(plan, snapshot, self._pool.config.consent, done=done)

    async def _target(
        self, plan_id: str | None, plan: Mapping[str, Any] | None, inputs: Mapping[str, Any] | None, options: RunOptions
    ) -> RunRecord | tuple[RunRecord | None, PlanResult]:
        """What a call runs: a finished run that its ``run_id`` repeats, or the run it resumes (if any) and the
        checked plan.

        Raises:
            RunNotFoundError, RunBusyError, PlanNotFoundError, ConductorError, StoreError: as ``execute``.
        """
        resume_id = options.resume_run_id
        if resume_id is None and options.run_id is not None:
            existing = await self.store.get_run(options.run_id)
            if existing is not None:
                if existing.status.finished:
                    return existing
                resume_id = existing.run_id
        resumed = None
        if resume_id is not None:
            resumed = await self.store.get_run(resume_id)
            if resumed is None:
                raise RunNotFoundError(f"no run {resume_id!r}", hint="`mcp-conductor runs list` shows the runs")
            if resume_id in self._active or (
                resumed.status is RunStatus.RUNNING
                and resumed.owner_pid not in (None, os.getpid())
                and pid_alive(resumed.owner_pid or 0)
            ):
                raise RunBusyError(f"run {resume_id} is running right now", hint="wait for it to finish")
            plan_id, plan, inputs = resumed.plan_id, None, {**resumed.inputs, **(inputs or {})}
        return resumed, await self.checks.checked(plan_id, plan, inputs or {})

    async def _wait(self, live: LiveRun, options: RunOptions, progress: ProgressFn | None) -> ExecuteResult:
        result = await LiveRuns.wait(live, options.wait_s or 0.0, progress)
        if result is not None:
            return result
        if live.done.is_set():  # it ended without a result: its own failure was logged
            error = StepError(kind="internal_error", message="the run ended without a result; see the server log")
            return ExecuteResult(run_id=live.run_id, status=RunStatus.FAILED.value, error=error)
        return ExecuteResult(
            run_id=live.run_id,
            status=RunStatus.RUNNING.value,
            progress=RunProgress(done=live.finished, total=live.total),
        )

    async def _cancel(self, run_id: str | None) -> ExecuteResult:
        """``options.cancel`` for a run this process does not own: ask its owner through the store."""
        if run_id is None:
            raise ConductorError("cancel needs options.run_id", hint="pass the run_id that execute_chain returned")
        run = await self.store.get_run(run_id)
        if run is None:
            raise RunNotFoundError(f"no run {run_id!r}", hint="`mcp-conductor runs list` shows the runs")
        if run.status.finished:
            return await self.stored_result(run, RunOptions(detail=None), reused=True)
        await self.store.request_cancel(run_id)
        return ExecuteResult(run_id=run_id, status=run.status.value)

    async def _run(
        self,
        request: RunRequest,
        options: RunOptions,
        warnings: Sequence[PlanIssue],
        progress: ProgressFn | None,
    ) -> ExecuteResult:
        """Run ``request`` to its end in this task (a host's cancellation cancels the run)."""
        key = request.options.run_id
        if key is not None:
            self._active.add(key)
        try:
            outcome = await self.engine.execute(request, progress)
        except ConductorError:
            raise
        except Exception as exc:  # the engine's own boundary failed: still a result, never a traceback
            log.error("chain.engine_failed", error=str(exc), exc_info=exc)
            error = StepError(kind="internal_error", message=f"internal error: {type(exc).__name__}: {exc}"[:500])
            return ExecuteResult(run_id=key, status=RunStatus.FAILED.value, error=error)
        finally:
            if key is not None:
                self._active.discard(key)
        await self._maybe_prune()
        return self._result(outcome.run, outcome.steps, outcome.outputs, options, warnings=warnings)

    async def _maybe_prune(self) -> None:
        """Retention: every ``PRUNE_EVERY`` runs, delete all but the newest ``keep_runs``."""
        self._runs_since_prune += 1
        if self._runs_since_prune >= PRUNE_EVERY:
            self._runs_since_prune = 0
            await self.store.prune(self._keep_runs)

    async def stored_result(
        self, run: RunRecord, options: RunOptions | None = None, *, reused: bool = False
    ) -> ExecuteResult:
        steps = await self.store.get_steps(run.run_id)
        outputs = {s.step_id: s.output for s in steps if s.step_id in run.outputs and s.has_output}
        return self._result(run, steps, outputs, options or RunOptions(), reused=reused)

    def _result(
        self,
        run: RunRecord,
        steps: Sequence[StepRun],
        outputs: Mapping[str, Any],
        options: RunOptions,
        *,
        warnings: Sequence[PlanIssue] = (),
        reused: bool = False,
    ) -> ExecuteResult:
        limit = options.output_budget_bytes or self._budget
        full = options.detail == "steps"
        return ExecuteResult(
            run_id=run.run_id,
            status=run.status.value,
            outputs={
                sid: budgeted(value, budget_bytes=limit, resource_uri=step_resource_uri(run.run_id, sid))
                for sid, value in outputs.items()
            },
            problems=[problem for s in steps if (problem := StepProblem.of(s)) is not None],
            warnings=list(warnings),
            steps=[StepSummary.of(s) for s in steps] if full else None,
            duration_ms=run.duration_ms if full else None,
            error=run.error,
            reused=reused,
        )
