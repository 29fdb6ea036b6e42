"""A local Temporal cluster for the engine benchmark: a dev server started as ``mcp-conductor temporal dev`` starts
it, ``mcp-conductor worker`` children, and a ``Conductor`` whose runs are Temporal workflows."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from pathlib import Path

import anyio

from mcp_conductor.cli.temporal_dev import TUNING, DevServer, free_port, start, stop, wait_ready
from mcp_conductor.client_pool.config_models import ConductorConfig
from mcp_conductor.server.conductor import Conductor


@contextmanager
def dev_server(directory: Path, dynamic_config: Sequence[str] = TUNING) -> Iterator[str]:
    """A dev server on SQLite in ``directory`` (its own process group); yields its address."""
    ports = free_port(), free_port()
    spec = DevServer(directory / "temporal.db", ports[0], http_port=ports[1], dynamic_config=tuple(dynamic_config))
    with open(directory / "temporal-dev.log", "ab") as log:
        process = start(spec, log, new_session=True)
        try:
            wait_ready(spec, process, 60.0)
            yield spec.address
        finally:
            stop(process)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)


def worker_argv(config: Path, address: str, task_queue: str, state_dir: Path) -> list[str]:
    return [
        sys.executable, "-m", "mcp_conductor", "worker", "--config", str(config), "--temporal-address", address,
        "--task-queue", task_queue, "--state-dir", str(state_dir),
    ]  # fmt: skip


class Worker:
    """One ``mcp-conductor worker`` child; ``env`` reaches the config's ``${VAR}`` expansion."""

    def __init__(self, config: Path, address: str, task_queue: str, state_dir: Path, env: Mapping[str, str]) -> None:
        argv = worker_argv(config, address, task_queue, state_dir)
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self.process = subprocess.Popen(
            argv, env={**os.environ, **env}, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log
        )
        self.address, self.task_queue = address, task_queue

    @property
    def identity(self) -> str:
        return f"{self.process.pid}@{socket.gethostname()}"

    async def ready(self) -> None:
        """Until the server lists this worker as a poller of both the workflow and the activity queue."""
        from temporalio.api.enums.v1 import TaskQueueType
        from temporalio.api.taskqueue.v1 import TaskQueue
        from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
        from temporalio.client import Client

        client = await Client.connect(self.address)
        kinds = (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)
        with anyio.fail_after(60):
            while True:
                if self.process.poll() is not None:
                    self._log.seek(0)
                    raise RuntimeError(f"the worker exited: {self._log.read().decode(errors='replace')[-2000:]}")
                found = 0
                for kind in kinds:
                    request = DescribeTaskQueueRequest(
                        namespace="default", task_queue=TaskQueue(name=self.task_queue), task_queue_type=kind
                    )
                    pollers = (await client.workflow_service.describe_task_queue(request)).pollers
                    found += any(p.identity == self.identity for p in pollers)
                if found == len(kinds):
                    return
                await anyio.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: a crash."""
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


@asynccontextmanager
async def workers(
    n: int, config: Path, address: str, task_queue: str, state_dir: Path, envs: Sequence[Mapping[str, str]]
) -> AsyncIterator[list[Worker]]:
    started = [Worker(config, address, task_queue, state_dir, envs[i % len(envs)]) for i in range(n)]
    try:
        for worker in started:
            await worker.ready()
        yield started
    finally:
        for worker in started:
            worker.close()


def temporal_conductor(
    config: ConductorConfig, state_dir: Path, address: str, task_queue: str
) -> AbstractAsyncContextManager[Conductor]:
    """A Conductor whose chains run as workflows on ``task_queue`` (``conductor.engine`` kind temporal), as
    ``serve --engine temporal`` builds it; the workers make the calls."""
    engine = config.engine.model_copy(update={"kind": "temporal", "address": address, "task_queue": task_queue})
    return Conductor.open(config.model_copy(update={"engine": engine}), state_dir)
