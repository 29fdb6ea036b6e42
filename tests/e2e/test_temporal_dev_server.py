"""The Temporal dev server the engine's tests run on (``fixtures.temporal``): it answers a client, and a server
killed with SIGKILL and started again on the same state file still has the workflows it had."""

from __future__ import annotations

from collections.abc import Callable

import anyio
import pytest

from fixtures.temporal import DevServerProcess, require_temporalio

pytestmark = pytest.mark.e2e


async def test_the_session_server_answers_a_client(temporal_address: str, task_queue: str) -> None:
    require_temporalio()
    from temporalio.client import Client

    client = await Client.connect(temporal_address)
    with anyio.fail_after(30):
        workflows = [w async for w in client.list_workflows(f"TaskQueue = '{task_queue}'")]
    assert workflows == []  # a fresh task queue: nothing of another test's


async def test_a_killed_dev_server_restarted_on_its_state_file_keeps_its_workflows(
    temporal_servers: Callable[[], DevServerProcess], task_queue: str
) -> None:
    require_temporalio()
    from temporalio.client import Client, WorkflowExecutionStatus

    server = temporal_servers()
    client = await Client.connect(server.address)
    # No worker runs this workflow type: it stays pending, recorded in the server's SQLite file.
    handle = await client.start_workflow("NoSuchWorkflow", id=f"wf-{task_queue}", task_queue=task_queue)
    server.kill()
    assert server.process is not None and server.process.poll() is not None
    server.start()
    client = await Client.connect(server.address)
    with anyio.fail_after(30):
        described = await client.get_workflow_handle(handle.id).describe()
    assert described.status == WorkflowExecutionStatus.RUNNING
    assert described.run_id == handle.result_run_id
