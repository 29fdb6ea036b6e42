"""``serve --engine`` and ``worker``: the engine flags, and their errors before anything starts."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from fixtures.cli import run_main


def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "servers.json"
    path.write_text(json.dumps({"mcpServers": {}}), encoding="utf-8")
    return path


async def test_serve_with_the_temporal_engine_and_no_address_says_how_to_give_one(tmp_path: Path):
    config = str(config_file(tmp_path))
    done = await anyio.to_thread.run_sync(
        lambda: run_main(tmp_path / "home", "serve", "--config", config, "--engine", "temporal")
    )
    assert done.returncode == 2
    assert "needs the address of a Temporal frontend" in done.stderr
    assert "--temporal-address HOST:PORT" in done.stderr


async def test_a_worker_with_no_address_says_how_to_give_one(tmp_path: Path):
    config = str(config_file(tmp_path))
    done = await anyio.to_thread.run_sync(lambda: run_main(tmp_path / "home", "worker", "--config", config))
    assert done.returncode == 2
    assert "--temporal-address HOST:PORT" in done.stderr


async def test_serve_with_an_unreachable_temporal_address_fails_before_the_handshake(tmp_path: Path):
    pytest.importorskip("temporalio", reason="the temporal extra is not installed")
    config = str(config_file(tmp_path))
    flags = ("--engine", "temporal", "--temporal-address", "127.0.0.1:9", "--state-dir", str(tmp_path / "state"))
    with anyio.fail_after(60):
        done = await anyio.to_thread.run_sync(lambda: run_main(tmp_path / "home", "serve", "--config", config, *flags))
    assert done.returncode == 1
    assert "cannot reach Temporal at 127.0.0.1:9" in done.stderr
