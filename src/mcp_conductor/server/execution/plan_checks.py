"""Checking plans for ``ChainService``: plan ids in the store, the cache of checked plans, engine refusals.

This owns what happens to a plan before a run: it validates a plan with the pure planner against today's
catalog, keeps a valid plan in the store under its ``plan_id`` (and saves it as a chain on request), checks an
inline or stored plan with run-time inputs merged over its own (cached by content and catalog version), and
says which steps the engine cannot run.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from mcp_conductor.client_pool.pool import ClientPool
from mcp_conductor.errors import ConductorError
from mcp_conductor.server.discovery.metrics import MetricsRegistry
from mcp_conductor.server.execution.engine import RunEngine
from mcp_conductor.server.execution.executor import LocalExecutor
from mcp_conductor.server.execution.library import ChainLibrary
from mcp_conductor.server.planning.consent import effect_ids
from mcp_conductor.server.planning.models import Plan, PlanIssue, PlanResult
from mcp_conductor.server.planning.planner import PlannerLimits
from mcp_conductor.server.planning.planner import plan as check_plan
from mcp_conductor.server.planning.references import json_pointer
from mcp_conductor.server.planning.saved_chains import CHAIN_PREFIX, SaveAs
from mcp_conductor.server.store.store import RunStore
from mcp_conductor.suggest import close_matches

CHECKED_CACHE_SIZE = 256


class PlanNotFoundError(ConductorError):
    kind = "unknown_plan"


class PlanChecks:
    """Validates, stores and caches plans over one catalog, store and chain library."""

    def __init__(
        self,
        store: RunStore,
        pool: ClientPool,
        metrics: MetricsRegistry,
        library: ChainLibrary,
        *,
        limits: PlannerLimits = PlannerLimits(),
    ) -> None:
        self._store = store
        self._pool = pool
        self._metrics = metrics
        self._library = library
        self._limits = limits
        self._checked_cache: OrderedDict[tuple[str, int, frozenset[str]], PlanResult] = OrderedDict()
        self._library_generation: tuple[int, int] | None = None

    def unavailable(self) -> set[str]:
        return {s.name for s in self._pool.unavailable()}

    async def plan(self, raw: Mapping[str, Any] | Plan, save_as: SaveAs | None = None) -> PlanResult:
        """Validate ``raw``; a valid plan is stored under its ``plan_id``, and saved as a chain with ``save_as``
        (its problems, and a chain that would run itself, make the result invalid).

        Raises:
            StoreError: the store cannot be written.
        """
        chains = await self._library.chain_tools(raw)
        result = check_plan(
            raw,
            self._pool.snapshot(),
            stats=self._metrics.stats(),
            unavailable_servers=self.unavailable(),
            limits=self._limits,
            shapes=self._metrics.shapes(),
            chains=chains,
        )
        result = self._library.refuse_recursion(result, chains)
        if result.valid and result.plan_id and result.normalized_plan is not None:
            await self._store.save_plan(result.plan_id, stored_form(result.normalized_plan))
            snapshot = self._library.with_chains(self._pool.snapshot(), chains)
            effects = effect_ids(result.normalized_plan, snapshot, self._pool.config.consent)
            result = result.model_copy(update={"effects": effects})
            if save_as is not None:
                result = await self._library.save(result, save_as, chains)
        return result

    def engine_refuses(self, plan: Plan, engine: RunEngine) -> list[PlanIssue]:
        """Steps this engine cannot run: ``chain/NAME`` steps (sub-runs) run on the local engine only."""
        if isinstance(engine, LocalExecutor):
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

    async def check(self, plan: Mapping[str, Any], inputs: Mapping[str, Any]) -> PlanResult:
        """``plan`` with ``inputs`` over its own, checked against today's catalog (cached; see ``checked``).

        Raises:
            StoreError: the store cannot be used.
        """
        return await self.checked(None, plan, inputs)

    async def checked(
        self, plan_id: str | None, plan: Mapping[str, Any] | None, inputs: Mapping[str, Any]
    ) -> PlanResult:
        """Plan the inline or stored plan with ``inputs`` merged over its own, against today's catalog
        (a stored plan is checked again: a tool may have gone away since it was made).

        Validity depends only on the plan and the catalog, so a repeated execution skips the schema checks; a
        stored plan never changes (its id is its content's hash), so it is looked up by id and inputs alone.
        """
        await self._library.refresh()
        if self._library.generation != self._library_generation:  # a chain step's meaning changed
            self._checked_cache.clear()
            self._library_generation = self._library.generation
        state = (self._pool.snapshot().version, frozenset(self.unavailable()))
        by_id = None if plan is not None or plan_id is None else ("id:" + plan_id + _canonical(inputs), *state)
        if by_id is not None and (cached := self._cache_get(by_id)) is not None:
            return cached
        if plan is None:
            if plan_id is None:
                raise ConductorError("give plan_id (from plan_chain) or plan", hint="see plan_chain's description")
            plan = await self._store.get_plan(plan_id)
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
