"""A worker process's side: the Temporal worker that runs ``RunPlan`` workflows and the call activities.

``run_worker`` is what ``mcp-conductor worker`` runs: it connects to the cluster, opens ONE downstream pool
(one MCP session per server for the whole process, never one per call) and polls ``task_queue`` until it is
cancelled. Several workers on one task queue share the load. ``build_worker`` makes the worker from parts that
are already running (tests run a worker in process with the front's pool).

Deployment rule: the front and its workers share the state directory's ``blobs`` folder (one machine, or a
shared volume), where values above 256 KiB are kept out of Temporal's history; the run store itself is written
by the front only.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import anyio
import structlog
from temporalio.client import Client
from temporalio.worker import Worker

from mcp_conductor.client_pool.config_models import ConductorConfig
from mcp_conductor.client_pool.pool import ClientPool
from mcp_conductor.server.execution.temporal.activities import Activities, worker_identity
from mcp_conductor.server.execution.temporal.blobs import BlobStore
from mcp_conductor.server.execution.temporal.engine import (
    DEFAULT_NAMESPACE,
    DEFAULT_TASK_QUEUE,
    TemporalSettings,
    connect,
)
from mcp_conductor.server.execution.temporal.workflow import RunPlan
from mcp_conductor.server.store.state_dir import resolve_state_dir

log = structlog.get_logger(__name__)

STICKY_TIMEOUT_S = 3.0  # a lost worker's cached workflows move to another worker after this long


def build_worker(
    client: Client,
    pool: ClientPool,
    *,
    task_queue: str = DEFAULT_TASK_QUEUE,
    blob_dir: Path,
    identity: str | None = None,
    max_concurrent_activities: int = 100,
) -> tuple[Worker, Activities]:
    """A worker for ``task_queue`` whose activities call through ``pool`` (run it with ``await worker.run()``)."""
    activities = Activities(pool, BlobStore(blob_dir), identity)
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=[RunPlan],
        activities=[activities.call_tool, activities.evaluate],
        identity=activities.identity,
        max_concurrent_activities=max_concurrent_activities,
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=STICKY_TIMEOUT_S),
    )
    return worker, activities


async def run_worker(
    config: ConductorConfig,
    *,
    address: str,
    namespace: str = DEFAULT_NAMESPACE,
    task_queue: str = DEFAULT_TASK_QUEUE,
    state_dir: str | os.PathLike[str] | None = None,
    ready: Callable[[Activities], Awaitable[None]] | None = None,
) -> None:
    """Run a worker until cancelled: connect, open the pool, poll ``task_queue``.

    Raises:
        TemporalUnavailableError: the cluster cannot be reached at ``address``.
    """
    client = await connect(TemporalSettings(address, namespace, task_queue))
    blob_dir = resolve_state_dir(state_dir) / "blobs"
    async with ClientPool(config) as pool:
        worker, activities = build_worker(
            client, pool, task_queue=task_queue, blob_dir=blob_dir, identity=worker_identity()
        )
        log.info("worker.started", task_queue=task_queue, address=address, identity=activities.identity)
        async with worker:
            if ready is not None:
                await ready(activities)
            await anyio.sleep_forever()
