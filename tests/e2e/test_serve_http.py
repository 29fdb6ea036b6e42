"""End to end over streamable HTTP: ``mcp-conductor serve --http`` as a subprocess, behind its bearer token."""

import secrets
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO, Any

import anyio
import anyio.abc
import httpx2
import psutil
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from fixtures.cli import run_main
from fixtures.net import free_port, wait_for_port
from mcp_conductor.demo import DEMO_CONFIG_PATH

pytestmark = pytest.mark.e2e

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "probe", "version": "0"}},
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def serve_http_command(port: int, state_dir: Path, *args: str) -> list[str]:
    return [
        sys.executable, "-m", "mcp_conductor", "--log-level", "debug", "serve", "--http",
        "--port", str(port), "--config", str(DEMO_CONFIG_PATH), "--state-dir", str(state_dir), *args,
    ]  # fmt: skip


@asynccontextmanager
async def running_server(
    tmp_path: Path, serve_errlog: IO[str], wait_gone: Any, *args: str, env: dict[str, str]
) -> AsyncIterator[str]:
    """Start ``serve --http`` on a free loopback port, yield its URL once it accepts connections; on exit,
    terminate it and check that it and its downstream servers are gone."""
    port = free_port()
    process = await anyio.open_process(
        serve_http_command(port, tmp_path / "state", *args),
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=serve_errlog, env=env,
    )  # fmt: skip
    async with process:
        try:
            with anyio.fail_after(30):
                await wait_for_port(port, process)
            yield f"http://127.0.0.1:{port}/mcp"
            downstream = psutil.Process(process.pid).children()
        finally:
            process.terminate()
            with anyio.fail_after(20):
                await process.wait()
    assert process.returncode in (0, -signal.SIGTERM)  # uvicorn shuts down, then re-raises the signal
    with anyio.fail_after(10):
        for child in downstream:
            await wait_gone(child)


async def test_a_host_with_the_token_lists_the_meta_tools_and_discovers_tools(
    tmp_path: Path, serve_errlog: IO[str], serve_log: Path, wait_gone: Any, host_env: Any
):
    token = "tok-" + secrets.token_urlsafe(24)
    async with running_server(tmp_path, serve_errlog, wait_gone, "--auth-token", token, env=host_env()) as url:
        with anyio.fail_after(60):
            http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=50)  # bounded by fail_after
            async with http, Client(streamable_http_client(url, http_client=http)) as client:
                listed = await client.list_tools()
                found = await client.call_tool("discover_tools", {"query": "convert kilometers to miles"})
    assert {tool.name for tool in listed.tools} == {"discover_tools", "plan_chain", "execute_chain"}
    assert found.structured_content is not None
    assert found.structured_content["tools"][0]["id"] == "math/convert_units"
    assert found.structured_content["unavailable_servers"] == []
    log = await anyio.Path(serve_log).read_text(encoding="utf-8", errors="replace")
    assert "pool.server_connected" in log  # the log is really there, and at debug level
    assert f"mcp-conductor: serving streamable HTTP at {url}; a bearer token is required\n" in log
    assert token not in log


async def test_a_missing_or_wrong_token_gets_a_bare_401_and_a_foreign_origin_or_host_is_refused(
    tmp_path: Path, serve_errlog: IO[str], serve_log: Path, wait_gone: Any, host_env: Any
):
    token = "tok-" + secrets.token_urlsafe(24)
    env = host_env(MCP_CONDUCTOR_AUTH_TOKEN=token)
    bearer = {"Authorization": f"Bearer {token}"}
    async with running_server(tmp_path, serve_errlog, wait_gone, env=env) as url:
        with anyio.fail_after(30):
            async with httpx2.AsyncClient(headers=MCP_HEADERS, timeout=25) as http:

                async def post(headers: dict[str, str]) -> Any:
                    return await http.post(url, json=INITIALIZE, headers=headers)

                missing = await post({})
                wrong = await post({"Authorization": "Bearer not-the-token"})
                prefix = await post({"Authorization": f"Bearer {token[:-1]}"})
                basic = await post({"Authorization": f"Basic {token}"})
                evil_origin = await post({**bearer, "Origin": "http://evil.example"})
                evil_host = await post({**bearer, "Host": "evil.example"})
                ok = await post(bearer)
    for refused in (missing, wrong, prefix, basic):
        assert (refused.status_code, refused.content) == (401, b"")
        assert refused.headers["www-authenticate"] == "Bearer"
    assert evil_origin.status_code == 403
    assert evil_host.status_code == 421
    assert ok.status_code == 200
    assert token not in await anyio.Path(serve_log).read_text(encoding="utf-8", errors="replace")


@pytest.mark.parametrize("token_args", [[], ["--auth-token", ""]], ids=["no-token", "empty-token"])
def test_serving_on_a_non_loopback_address_without_a_token_refuses_to_start(tmp_path: Path, token_args: list[str]):
    # Only the refusal is tested (in this process: it comes before any bind): nothing may listen beyond loopback.
    argv = serve_http_command(free_port(), tmp_path / "state", "--host", "0.0.0.0", *token_args)[3:]
    refused = run_main(tmp_path / "home", *argv)
    stderr = refused.stderr
    assert refused.returncode == 2, stderr
    assert "refusing to serve on 0.0.0.0 without a bearer token" in stderr
    assert "--auth-token" in stderr and "MCP_CONDUCTOR_AUTH_TOKEN" in stderr
