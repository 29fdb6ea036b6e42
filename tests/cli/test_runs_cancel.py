"""``mcp-conductor runs cancel``, in process: a running run gets a cancel request its owner acts on; an
interrupted one is cancelled at once; an unknown one is a usage error."""

import os
from pathlib import Path

import anyio
import pytest

from mcp_conductor.cli import main
from mcp_conductor.server.store.records import RunRecord, RunStatus, now_iso
from mcp_conductor.server.store.store import RunStore


async def stored_run(state: Path, status: RunStatus) -> None:
    async with RunStore.open(state) as store:
        run = RunRecord(run_id="r1", plan_id="p", status=status, started_at=now_iso(), owner_pid=os.getpid())
        await store.create_run(run, [])


async def status_and_request(state: Path) -> tuple[RunStatus, bool]:
    async with RunStore.open(state) as store:
        run = await store.get_run("r1")
        assert run is not None
        return run.status, await store.cancel_requested("r1")


def test_cancelling_a_running_run_asks_its_owner(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    anyio.run(stored_run, tmp_path, RunStatus.RUNNING)
    assert main(["runs", "cancel", "r1", "--state-dir", str(tmp_path)]) == 0
    assert "cancel requested" in capsys.readouterr().out
    assert anyio.run(status_and_request, tmp_path) == (RunStatus.RUNNING, True)


def test_cancelling_an_interrupted_run_ends_it_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    anyio.run(stored_run, tmp_path, RunStatus.INTERRUPTED)
    assert main(["runs", "cancel", "r1", "--state-dir", str(tmp_path)]) == 0
    assert "now cancelled" in capsys.readouterr().out
    assert anyio.run(status_and_request, tmp_path) == (RunStatus.CANCELLED, False)


def test_cancelling_an_unknown_run_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "cancel", "nope", "--state-dir", str(tmp_path)]) == 2
    assert "no run 'nope'" in capsys.readouterr().err
