"""End to end against third-party MCP servers installed from registries (npm and PyPI), started by our pool.

CI installs them: ``npm ci --prefix tests/e2e/node`` (pinned in ``tests/e2e/node/package-lock.json``) and the
pinned ``mcp-server-time`` from PyPI. A missing install fails these tests rather than skipping them.
"""

import importlib.metadata
import json
import sys
from pathlib import Path
from typing import Any

import anyio
import psutil
import pytest

from mcp_conductor.client_pool.config import build_config
from mcp_conductor.client_pool.pool import ClientPool
from mcp_conductor.client_pool.status import ServerState

pytestmark = pytest.mark.e2e

NODE_DIR = Path(__file__).parent / "node"
EVERYTHING = "@modelcontextprotocol/server-everything"
TIME_VERSION = "2026.10.19"


def everything_entry() -> dict[str, Any]:
    """The stdio entry for the pinned server-everything, or a failure telling how to install it."""
    pinned = json.loads((NODE_DIR / "package.json").read_text(encoding="utf-8"))["dependencies"][EVERYTHING]
    package_json = NODE_DIR / "node_modules" / EVERYTHING / "package.json"
    if not package_json.is_file():
        pytest.fail(f"{EVERYTHING} is not installed: run `npm ci --prefix tests/e2e/node`", pytrace=False)
    package = json.loads(package_json.read_text(encoding="utf-8"))
    if package["version"] != pinned:
        pytest.fail(
            f"{EVERYTHING} {package['version']} is installed but {pinned} is pinned: "
            "run `npm ci --prefix tests/e2e/node`",
            pytrace=False,
        )
    bin_path = package["bin"] if isinstance(package["bin"], str) else package["bin"]["mcp-server-everything"]
    return {"command": "node", "args": [str(package_json.parent / bin_path), "stdio"]}


def time_entry() -> dict[str, Any]:
    try:
        version = importlib.metadata.version("mcp-server-time")
    except importlib.metadata.PackageNotFoundError:
        pytest.fail(
            f"mcp-server-time is not installed: run `pip install mcp-server-time=={TIME_VERSION}`", pytrace=False
        )
    if version != TIME_VERSION:
        pytest.fail(f"mcp-server-time {version} is installed but {TIME_VERSION} is pinned", pytrace=False)
    return {"command": sys.executable, "args": ["-m", "mcp_server_time", "--local-timezone=UTC"]}


def pool_of(entries: dict[str, dict[str, Any]]) -> ClientPool:
    return ClientPool(build_config({"mcpServers": entries}))


async def test_server_everything_from_npm_lists_its_tools_and_echoes_through_the_pool():
    async with pool_of({"everything": everything_entry()}) as pool:
        with anyio.fail_after(60):
            await pool.wait_settled()
            echoed = await pool.call_tool("everything", "echo", {"message": "hello from the pool"})
            summed = await pool.call_tool("everything", "get-sum", {"a": 2, "b": 40})
        status = pool.statuses()["everything"]
        snapshot = pool.snapshot()
    assert status.state is ServerState.READY, status.error
    assert {"everything/echo", "everything/get-sum", "everything/get-tiny-image"} <= set(snapshot.tools)
    assert status.tools == len(snapshot.by_server("everything"))
    echo = snapshot.tools["everything/echo"]
    assert echo.input_schema["required"] == ["message"]
    assert echo.read_only
    assert echoed.content[0].type == "text" and echoed.content[0].text == "Echo: hello from the pool"
    assert summed.content[0].type == "text" and summed.content[0].text == "The sum of 2 and 40 is 42."


async def test_server_everything_node_process_is_gone_after_shutdown():
    with anyio.fail_after(60):
        async with pool_of({"everything": everything_entry()}) as pool:
            await pool.wait_settled()
            children = [p for p in psutil.Process().children(recursive=True) if p.name() == "node"]
            ready = pool.statuses()["everything"].state is ServerState.READY
    assert ready
    assert len(children) == 1
    assert not psutil.pid_exists(children[0].pid)


async def test_mcp_server_time_from_pypi_converts_between_fixed_offset_zones():
    async with pool_of({"time": time_entry()}) as pool:
        with anyio.fail_after(60):
            await pool.wait_settled()
            converted = await pool.call_tool(
                "time", "convert_time", {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"}
            )
        status = pool.statuses()["time"]
        tools = sorted(pool.snapshot().tools)
    assert status.state is ServerState.READY, status.error
    assert tools == ["time/convert_time", "time/get_current_time"]
    result = converted.structured_content
    assert result is not None
    assert result["source"]["datetime"].endswith("T12:00:00+00:00")
    assert result["target"]["datetime"].endswith("T21:00:00+09:00")
    assert result["time_difference"] == "+9.0h"


async def test_npm_and_pypi_servers_work_side_by_side_in_one_pool():
    async with pool_of({"everything": everything_entry(), "time": time_entry()}) as pool:
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                answers: dict[str, Any] = {}

                async def echo() -> None:
                    answers["echo"] = (await pool.call_tool("everything", "echo", {"message": "x"})).content[0]

                async def now() -> None:
                    result = await pool.call_tool("time", "get_current_time", {"timezone": "UTC"})
                    answers["now"] = result.structured_content

                tg.start_soon(echo)
                tg.start_soon(now)
    assert answers["echo"].text == "Echo: x"
    assert answers["now"]["timezone"] == "UTC" and answers["now"]["datetime"].endswith("+00:00")
