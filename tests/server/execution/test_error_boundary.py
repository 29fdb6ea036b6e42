"""The error boundary of a run: whatever breaks inside it (the store, a library, a bug) comes back as a normal
``execute_chain`` result, the broken step recorded ``failed`` with ``internal_error``, the run ``failed``."""

import sqlite3
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from mcp_conductor.client_pool import connection
from mcp_conductor.client_pool.config import in_process_config
from mcp_conductor.demo import latency
from mcp_conductor.server.app import build_server
from mcp_conductor.server.store.records import RunStatus, StepRun, StepStatus
from mcp_conductor.server.store.store import RunStore

CHAIN = {
    "steps": [
        {"id": "a", "tool": "latency/echo", "arguments": {"value": 1}},
        {"id": "b", "tool": "latency/echo", "arguments": {"value": "${steps.a.value}"}},
        {"id": "c", "tool": "latency/echo", "arguments": {"value": "${steps.b.value}"}},
    ]
}


async def execute(tmp_path: Path, plan: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    server = build_server(in_process_config({"latency": latency.build_server()}), state_dir=tmp_path / "state")
    async with Client(server) as client:
        with anyio.fail_after(10):
            result = await client.call_tool("execute_chain", {"plan": plan, "options": {"detail": "steps"}})
    assert result.structured_content is not None, result.content
    return bool(result.is_error), result.structured_content


async def stored(tmp_path: Path, run_id: str) -> tuple[RunStatus, dict[str, StepRun]]:
    async with RunStore.open(tmp_path / "state") as store:
        run = await store.get_run(run_id)
        steps = await store.get_steps(run_id)
    assert run is not None
    return run.status, {s.step_id: s for s in steps}


async def test_a_store_write_that_fails_mid_run_fails_the_step_and_the_run_with_a_normal_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = RunStore.write_steps

    async def write_steps(self: RunStore, **kwargs: Any) -> None:
        started = kwargs.get("started")
        if started is not None and started.step_id == "b":
            raise sqlite3.OperationalError("disk I/O error")  # raw, not even a StoreError
        await original(self, **kwargs)

    monkeypatch.setattr(RunStore, "write_steps", write_steps)
    is_error, run = await execute(tmp_path, CHAIN)

    assert run["status"] == "failed"
    steps = {s["id"]: s for s in run["steps"]}
    assert steps["a"]["status"] == "succeeded"
    assert steps["b"]["status"] == "failed"
    assert steps["b"]["error"]["kind"] == "internal_error"
    assert steps["b"]["error"]["message"] == "internal error: OperationalError: disk I/O error"
    assert steps["c"]["status"] == "skipped"
    assert not is_error or "ExceptionGroup" not in str(run)
    status, records = await stored(tmp_path, run["run_id"])
    assert status is RunStatus.FAILED
    assert records["a"].status is StepStatus.SUCCEEDED and records["a"].output["value"] == 1
    assert records["c"].status is StepStatus.SKIPPED


async def test_a_downstream_translation_that_raises_fails_the_step_with_internal_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(result: Any) -> str:
        raise KeyError("content")

    monkeypatch.setattr(connection, "error_text", broken)  # runs on every isError result
    plan = {
        "steps": [
            {"id": "ok", "tool": "latency/echo", "arguments": {"value": "x"}},
            {"id": "bad", "tool": "latency/fail", "arguments": {"message": "boom"}},
        ]
    }
    _, run = await execute(tmp_path, plan)

    assert run["status"] == "failed"
    bad = next(s for s in run["steps"] if s["id"] == "bad")
    assert (bad["status"], bad["error"]["kind"]) == ("failed", "internal_error")
    assert bad["error"]["message"] == "internal error: KeyError: 'content'"
    status, records = await stored(tmp_path, run["run_id"])
    assert status is RunStatus.FAILED
    assert records["bad"].error is not None and records["bad"].error.kind == "internal_error"


async def test_a_store_that_cannot_record_the_run_end_still_gives_a_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def finish_run(self: RunStore, *args: Any, **kwargs: Any) -> Any:
        raise sqlite3.DatabaseError("database disk image is malformed")

    monkeypatch.setattr(RunStore, "finish_run", finish_run)
    _, run = await execute(tmp_path, {"steps": [{"id": "a", "tool": "latency/echo", "arguments": {"value": 2}}]})

    assert run["status"] == "failed"
    assert run["error"]["kind"] == "internal_error"
    assert "DatabaseError" in run["error"]["message"]
    assert run["outputs"]["a"]["value"] == 2  # what did finish is still returned
