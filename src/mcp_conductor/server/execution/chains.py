"""Planning and executing chains for the MCP front and the CLI: plan ids, idempotent run ids, resume.

This sits between the tools (``tools_chain``) and the engine (``executor``): it validates plans with the pure
planner, keeps valid plans in the store under their ``plan_id``, decides whether an ``execute_chain`` call is a
new run, a repeat of a finished one (same ``run_id``) or a resume, and shapes the result.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
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
from mcp_conductor.server.execution.results import ExecuteResult, RunOptions, RunProgress, StepProblem, StepSummary
from mcp_conductor.server.execution.sub_runs import SubRuns
from mcp_conductor.server.execution.values import DEFAULT_OUTPUT_BUDGET_BYTES, budgeted, step_resource_uri
from mcp_conductor.server.planning.consent import ConsentStep, consent_steps, effect_ids
from mcp_conductor.server.planning.models import Plan, PlanIssue, PlannedStep, PlanResult
from mcp_conductor.server.planning.planner import PlannerLimits
from mcp_conductor.server.planning.planner import plan as check_plan
from mcp_conductor.server.planning.references import json_pointer
from mcp_conductor.server.planning.saved_chains import CHAIN_PREFIX, SaveAs
from mcp_conductor.server.store.chains import ChainRun
from mcp_conductor.server.store.records import RunRecord, RunStatus, StepError, StepRun, StepStatus
from mcp_conductor.server.store.state_dir import pid_alive
from mcp_conductor.server.store.store import RunStore
from mcp_conductor.suggest import close_matches

log = structlog.get_logger(__name__)

PRUNE_EVERY = 20
CHECKED_CACHE_SIZE = 256


class RunNotFoundError(ConductorError):
    kind = "unknown_run"


class PlanNotFoundError(ConductorError):
    kind = "unknown_plan"


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
        self._metrics = metrics
        self._limits = limits
        self._budget = output_budget_bytes
        self._active: set[str] = set()
        self._keep_runs = keep_runs
        self._runs_since_prune = 0
        self._checked_cache: OrderedDict[tuple[str, int, frozenset[str]], PlanResult] = OrderedDict()
        self.library = ChainLibrary(store, pool)
        self._library_generation: tuple[int, int] | None = None
        self.sub_runs = SubRuns(self)
        if isinstance(engine, LocalExecutor):
            engine.run_sub_chains_with(self.sub_runs.run)

    def _engine_refuses(self, plan: Plan) -> list[PlanIssue]:
        """Steps this engine cannot run: ``chain/NAME`` steps (sub-runs) run on the local engine only."""
        if isinstance(self.engine, LocalExecutor):
            return []
        return [
            PlanIssue(
                step=step.id,
                field=f"/steps/{index}/tool",
                kind="not_supported",
                message=f"step {step.id!r} runs the saved chain {step.target!r}: chain steps run on the local "
                "engine only, not on this one",
                hint="run the chain by itself (execute_chain with chain: NAME), or put its steps into this plan",
            )
            for index, step in enumerate(plan.steps)
            if step.target.startswith(CHAIN_PREFIX)
        ]

    def _unavailable(self) -> set[str]:
        return {s.name for s in self._pool.unavailable()}

    async def plan(self, raw: Mapping[str, Any] | Plan, save_as: SaveAs | None = None) -> PlanResult:
        """Validate ``raw``; a valid plan is stored under its ``plan_id``, and saved as a chain with ``save_as``
        (its problems, and a chain that would run itself, make the result invalid).

        Raises:
            StoreError: the store cannot be written.
        """
        chains = await self.library.chain_tools(raw)
        result = check_plan(
            raw,
            self._pool.snapshot(),
            stats=self._metrics.stats(),
            unavailable_servers=self._unavailable(),
            limits=self._limits,
            shapes=self._metrics.shapes(),
            chains=chains,
        )
        result = self.library.refuse_recursion(result, chains)
        if result.valid and result.plan_id and result.normalized_plan is not None:
            await self.store.save_plan(result.plan_id, stored_form(result.normalized_plan))
            snapshot = self.library.with_chains(self._pool.snapshot(), chains)
            effects = effect_ids(result.normalized_plan, snapshot, self._pool.config.consent)
            result = result.model_copy(update={"effects": effects})
            if save_as is not None:
                result = await self.library.save(result, save_as, chains)
        return result

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
        refused = self._engine_refuses(normalized)
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
        return resumed, await self._checked(plan_id, plan, inputs or {})

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

    async def check(self, plan: Mapping[str, Any], inputs: Mapping[str, Any]) -> PlanResult:
        """``plan`` with ``inputs`` over its own, checked against today's catalog (cached; see ``_checked``).

        Raises:
            StoreError: the store cannot be used.
        """
        return await self._checked(None, plan, inputs)

    async def _checked(
        self, plan_id: str | None, plan: Mapping[str, Any] | None, inputs: Mapping[str, Any]
    ) -> PlanResult:
        """Plan the inline or stored plan with ``inputs`` merged over its own, against today's catalog
        (a stored plan is checked again: a tool may have gone away since it was made).

        Validity depends only on the plan and the catalog, so a repeated execution skips the schema checks; a
        stored plan never changes (its id is its content's hash), so it is looked up by id and inputs alone.
        """
        await self.library.refresh()
        if self.library.generation != self._library_generation:  # a chain step's meaning changed
            self._checked_cache.clear()
            self._library_generation = self.library.generation
        state = (self._pool.snapshot().version, frozenset(self._unavailable()))
        by_id = None if plan is not None or plan_id is None else ("id:" + plan_id + _canonical(inputs), *state)
        if by_id is not None and (cached := self._cache_get(by_id)) is not None:
            return cached
        if plan is None:
            if plan_id is None:
                raise ConductorError("give plan_id (from plan_chain) or plan", hint="see plan_chain's description")
            plan = await self.store.get_plan(plan_id)
            if plan is None:
                raise PlanNotFoundError(
                    f"unknown plan_id {plan_id!r}", hint="call plan_chain again and use its plan_id"
                )
        if inputs:
            own = plan.get("inputs")
            declared = own if isinstance(own, dict) else {}
            if undeclared := [name for name in inputs if name not in declared]:
                return PlanResult(valid=False, errors=tuple(undeclared_input(n, declared) for n in undeclared))
            plan = {**plan, "inputs": {**declared, **inputs}}
        key = (_canonical(plan), *state)
        if (cached := self._cache_get(key)) is None:
            cached = await self.plan(plan)
            if not cached.valid:
                return cached
            self._cache_put(key, cached)
        if by_id is not None:
            self._cache_put(by_id, cached)
        return cached

    def _cache_get(self, key: tuple[str, int, frozenset[str]]) -> PlanResult | None:
        cached = self._checked_cache.get(key)
        if cached is not None:
            self._checked_cache.move_to_end(key)
        return cached

    def _cache_put(self, key: tuple[str, int, frozenset[str]], result: PlanResult) -> None:
        self._checked_cache[key] = result
        if len(self._checked_cache) > CHECKED_CACHE_SIZE:
            self._checked_cache.popitem(last=False)

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


def undeclared_input(name: str, declared: Mapping[str, Any]) -> PlanIssue:
    """An input given at run time that the plan does not declare (a typo would otherwise run with the default)."""
    return PlanIssue(
        field=json_pointer(("inputs", name)),
        kind="unknown_input",
        message=f"input {name!r} is not one the plan declares",
        hint=f"the plan's inputs: {', '.join(declared) or 'none'}",
        suggestions=close_matches(name, declared),
    )


def _canonical(plan: Mapping[str, Any]) -> str:
    return json.dumps(plan, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def stored_form(plan: Plan) -> dict[str, Any]:
    return plan.model_dump(mode="json")
