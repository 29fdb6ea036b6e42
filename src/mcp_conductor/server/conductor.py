"""``Conductor``: the one object the MCP front, the CLI and Python programs call.

    async with Conductor.from_config("mcp-conductor.json") as conductor:
        hits = await conductor.discover("read a file", top_k=5)       # what discover_tools returns
        checked = await conductor.plan(plan)                            # what plan_chain returns
        run = await conductor.execute(plan, inputs={"path": "a.md"})    # what execute_chain returns

Opening it opens the run store (marking runs left ``running`` by a dead process as ``interrupted``), loads the
persisted tool metrics, and starts the pool without waiting for any downstream server; each call then gives
servers still on their first connect attempt a bounded moment (``startup_wait_s``), so the first search after
start sees their tools and a slow server cannot hold a call up for long.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Collection, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import structlog

from mcp_conductor.client_pool.catalog import ToolId
from mcp_conductor.client_pool.config import load_config
from mcp_conductor.client_pool.config_models import ConductorConfig
from mcp_conductor.client_pool.pool import ClientPool
from mcp_conductor.errors import ConfigError
from mcp_conductor.logs import configure_default
from mcp_conductor.server.discovery.metrics import MetricsRegistry
from mcp_conductor.server.discovery.results import Detail, DiscoverResult
from mcp_conductor.server.discovery.search import DEFAULT_TOP_K, ToolSearch
from mcp_conductor.server.execution.chains import ChainService
from mcp_conductor.server.execution.consent import ApproveFn
from mcp_conductor.server.execution.engine import ProgressFn, RunEngine
from mcp_conductor.server.execution.executor import LocalExecutor
from mcp_conductor.server.execution.live_runs import LiveRuns
from mcp_conductor.server.execution.results import ExecuteResult, RunOptions
from mcp_conductor.server.planning.consent import ConsentStep
from mcp_conductor.server.planning.models import PlanResult
from mcp_conductor.server.planning.saved_chains import SaveAs
from mcp_conductor.server.store.records import StepRun
from mcp_conductor.server.store.state_dir import resolve_state_dir
from mcp_conductor.server.store.store import RunStore

log = structlog.get_logger(__name__)

STARTUP_WAIT_S = 15.0


class Conductor:
    """The pool, the run store, the tool metrics and search, and the chain service, for one config.

    Build it with ``Conductor.open(config)`` or ``Conductor.from_config(path)`` (async context managers that
    start and stop everything); the constructor takes parts that are already running.
    """

    def __init__(
        self,
        config: ConductorConfig,
        pool: ClientPool,
        store: RunStore,
        metrics: MetricsRegistry,
        *,
        startup_wait_s: float = STARTUP_WAIT_S,
        live: LiveRuns | None = None,
        engine: RunEngine | None = None,
    ) -> None:
        self.config = config
        self.pool = pool
        self.store = store
        self.metrics = metrics
        self.startup_wait_s = startup_wait_s
        self.search = ToolSearch(pool, metrics)
        if engine is None:
            engine = LocalExecutor(pool, store, metrics, max_concurrency=config.max_global_concurrency)
        self.engine = engine
        self.chains = ChainService(
            store,
            engine,
            pool,
            metrics,
            output_budget_bytes=config.output_budget_bytes,
            keep_runs=config.keep_runs,
            live=live,
        )
        self.search.extra = self.chains.library.discoverable  # saved chains are found like tools

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        config: ConductorConfig,
        state_dir: str | os.PathLike[str] | None = None,
        *,
        metrics: MetricsRegistry | None = None,
        startup_wait_s: float = STARTUP_WAIT_S,
    ) -> AsyncIterator[Conductor]:
        """Start everything for ``config``; ``state_dir`` defaults to ``$MCP_CONDUCTOR_STATE_DIR``, else the
        user's state directory. If the application has not configured structlog, warnings go to stderr.

        Raises:
            StoreError: the state directory or its database cannot be used.
        """
        configure_default()
        registry = metrics or MetricsRegistry()
        async with RunStore.open(resolve_state_dir(state_dir)) as store:
            interrupted = await store.mark_interrupted()
            await store.prune(config.keep_runs)
            if interrupted:
                log.warning("chain.runs_interrupted", runs=interrupted)
            for tool, m in (await store.load_metrics()).items():
                registry.load(ToolId(tool), m)
            async with ClientPool(config) as pool, anyio.create_task_group() as runs:
                engine = await _engine(config, pool, store, registry)
                # The runs that outlive their request live in this task group; closing cancels them (recorded
                # as cancelled, resumable) before the pool stops.
                try:
                    live = LiveRuns(runs, store)
                    yield cls(config, pool, store, registry, startup_wait_s=startup_wait_s, live=live, engine=engine)
                finally:
                    runs.cancel_scope.cancel()

    @classmethod
    def from_config(
        cls, path: str | os.PathLike[str], *, state_dir: str | os.PathLike[str] | None = None
    ) -> AbstractAsyncContextManager[Conductor]:
        """``async with Conductor.from_config("mcp-conductor.json") as c:`` (see ``open``).

        Raises:
            ConfigError: the file is missing, not JSON, or not a valid config (every problem listed).
        """
        return cls.open(load_config(Path(path)), state_dir)

    async def wait_for_startup(self) -> None:
        """Give servers still on their first connect attempt a bounded moment (see the module docstring)."""
        await self.pool.wait_settled(self.startup_wait_s)

    async def discover(
        self,
        query: str = "",
        *,
        top_k: int = DEFAULT_TOP_K,
        servers: Collection[str] | None = None,
        include_schemas: bool = True,
        cursor: str | None = None,
        detail: Detail = "compact",
    ) -> DiscoverResult:
        """The tools that fit ``query`` best (an empty query lists them all, ``top_k`` per page).

        Raises:
            UnknownServerError: a name in ``servers`` is not configured.
            ConductorError: the cursor is not one an earlier listing returned.
        """
        await self.wait_for_startup()
        await self.chains.library.refresh()
        return self.search.discover(
            query, top_k=top_k, servers=servers, include_schemas=include_schemas, cursor=cursor, detail=detail
        )

    async def plan(self, plan: Mapping[str, Any], *, save_as: SaveAs | Mapping[str, Any] | None = None) -> PlanResult:
        """Check a plan without running it: every problem at once, or its ``plan_id``, levels and estimate.
        With ``save_as`` (``{"name", "description", "inputs": JSON Schema}``) a valid plan is saved as a chain
        (``result.saved`` says under which version).

        Raises:
            StoreError: the valid plan cannot be stored.
            pydantic.ValidationError: ``save_as`` given as a mapping is not valid.
        """
        await self.wait_for_startup()
        if save_as is not None and not isinstance(save_as, SaveAs):
            save_as = SaveAs.model_validate(save_as)
        return await self.chains.plan(plan, save_as)

    async def execute(
        self,
        plan: Mapping[str, Any] | None = None,
        *,
        plan_id: str | None = None,
        inputs: Mapping[str, Any] | None = None,
        options: RunOptions | Mapping[str, Any] | None = None,
        progress: ProgressFn | None = None,
        approve: ApproveFn | None = None,
        chain: str | None = None,
    ) -> ExecuteResult:
        """Run a plan (inline, by the ``plan_id`` of ``plan``, or a saved ``chain`` by ``NAME[@VERSION]``);
        ``progress(done, total, message)`` is
        awaited as steps end. An invalid plan runs nothing and comes back with status ``invalid``. With
        ``options.wait_s`` the run goes on after that many seconds (status ``running``; call again with its
        ``run_id`` to wait again, or with ``cancel`` to stop it); without, this waits until the run ends.

        Before anything runs, the steps that need the person's consent (``config.consent``: destructive tools
        and ``ask`` patterns) are put to ``approve``; declined, nothing runs and the run is recorded
        ``declined``; without ``approve`` (or when it could not ask), the answer is ``consent_required``.

        Raises:
            ConductorError: neither ``plan`` nor ``plan_id``; an unknown ``plan_id`` or ``resume_run_id``; the
                run is running elsewhere; or the store cannot be used.
            pydantic.ValidationError: ``options`` given as a mapping is not valid.
        """
        await self.wait_for_startup()
        if options is not None and not isinstance(options, RunOptions):
            options = RunOptions.model_validate(options)
        return await self.chains.execute(
            plan_id=plan_id,
            plan=plan,
            inputs=inputs or {},
            options=options,
            progress=progress,
            approve=approve,
            chain=chain,
        )

    async def consent_needed(
        self,
        plan: Mapping[str, Any] | None = None,
        *,
        plan_id: str | None = None,
        inputs: Mapping[str, Any] | None = None,
        options: RunOptions | Mapping[str, Any] | None = None,
        chain: str | None = None,
    ) -> list[ConsentStep]:
        """The steps ``execute`` with the same arguments would ask consent for (none already succeeded).

        Raises:
            ConductorError: as ``execute``.
            pydantic.ValidationError: ``options`` given as a mapping is not valid.
        """
        await self.wait_for_startup()
        if options is not None and not isinstance(options, RunOptions):
            options = RunOptions.model_validate(options)
        return await self.chains.consent_needed(
            plan_id=plan_id, plan=plan, inputs=inputs or {}, options=options, chain=chain
        )

    async def step(self, run_id: str, step_id: str) -> StepRun | None:
        """One step of a run as stored (its full output), or None.

        Raises:
            StoreError: the store cannot be read.
        """
        return await self.store.get_step(run_id, step_id)


async def _engine(config: ConductorConfig, pool: ClientPool, store: RunStore, metrics: MetricsRegistry) -> RunEngine:
    """The engine ``config.engine`` asks for: the local one, or Temporal (imported only then: it is an extra).

    Raises:
        ConfigError: the Temporal engine is asked for but the ``temporal`` extra is not installed.
        ConductorError: the Temporal cluster cannot be reached (``engine_unavailable``).
    """
    if config.engine.kind == "local":
        return LocalExecutor(pool, store, metrics, max_concurrency=config.max_global_concurrency)
    try:
        from mcp_conductor.server.execution.temporal.engine import TemporalEngine, TemporalSettings, connect
    except ImportError as exc:
        raise ConfigError(
            f"the temporal engine needs the temporal extra ({exc.name or exc} is not installed)",
            hint="pip install 'mcp-conductor[temporal]', or use the local engine (--engine local)",
        ) from exc
    assert config.engine.address is not None  # EngineSettings requires it for kind temporal
    settings = TemporalSettings(config.engine.address, config.engine.namespace, config.engine.task_queue)
    client = await connect(settings)
    log.info("chain.engine", kind="temporal", address=settings.address, task_queue=settings.task_queue)
    return TemporalEngine(
        client, pool, store, metrics, task_queue=settings.task_queue, blob_dir=store.path.parent / "blobs"
    )
