"""Fixtures of the end-to-end tests that run ``mcp-conductor serve`` as a real subprocess.

The meta server always runs as a child process (``python -m mcp_conductor serve``), started the way a host
starts it, with only PATH from our environment and a temporary HOME. Its stderr goes to ``serve_log`` in the
test's temporary directory, so a test can check what it logged. (Helpers are fixtures, not imports: conftest
modules outside a package all share the module name ``conftest``.)
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from pathlib import Path
from typing import IO, Any

import anyio
import psutil
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

import fixtures.env

ServeStdio = Callable[..., AbstractAsyncContextManager[Client]]
MakeConfig = Callable[..., Path]
WaitGone = Callable[[psutil.Process], Awaitable[None]]


def serve_command(config: Path, *args: str) -> list[str]:
    """argv of the meta server, as a host would start it (info logs, so there is something to inspect)."""
    return [sys.executable, "-m", "mcp_conductor", "--log-level", "info", "serve", "--config", str(config), *args]


@pytest.fixture
def serve_argv() -> Callable[..., list[str]]:
    """``serve_argv(config, *args)``: the argv a host uses to start the meta server."""
    return serve_command


@pytest.fixture
def host_env(tmp_path: Path) -> Callable[..., dict[str, str]]:
    """``host_env(**extra)``: the little a host passes on (PATH, and HOME: a directory in the test's temporary
    directory) plus ``extra``; nothing else leaks in from the test process."""
    return functools.partial(fixtures.env.host_env, tmp_path / "home")


@pytest.fixture
def serve_log(tmp_path: Path) -> Path:
    return tmp_path / "serve.log"


def meta_servers() -> list[psutil.Process]:
    """This test process's children that run ``python -m mcp_conductor``."""
    found = []
    for child in psutil.Process().children():
        with suppress(psutil.Error):
            if child.cmdline()[1:3] == ["-m", "mcp_conductor"]:
                found.append(child)
    return found


def family(processes: list[psutil.Process]) -> list[psutil.Process]:
    """``processes`` and all their descendants."""
    found = []
    for process in processes:
        with suppress(psutil.Error):
            found += [process, *process.children(recursive=True)]
    return found


@pytest.fixture
def serve_errlog(serve_log: Path) -> Iterator[IO[str]]:
    """``serve_log``, open for the meta server's stderr."""
    with open(serve_log, "a", encoding="utf-8") as errlog:
        yield errlog


@pytest.fixture
def serve_stdio(serve_errlog: IO[str], tmp_path: Path) -> ServeStdio:
    """``serve_stdio(config, *args, env={...}, **client_options)``: a ``Client`` connected over stdio to a fresh
    ``mcp-conductor serve --config config *args`` child whose environment is ``host_env(**env)``.

    When the host disconnects, the meta server and every process it started must be gone within a few seconds:
    a leaked downstream server fails the test.
    """

    @asynccontextmanager
    async def serve(
        config: Path, *args: str, env: Mapping[str, str] | None = None, **client_options: Any
    ) -> AsyncIterator[Client]:
        command, *argv = serve_command(config, *args)
        child_env = fixtures.env.host_env(tmp_path / "home", **(env or {}))
        params = StdioServerParameters(command=command, args=argv, env=child_env)
        async with Client(stdio_client(params, errlog=serve_errlog), **client_options) as client:
            try:
                yield client
            finally:
                started = family(meta_servers())
        with anyio.fail_after(10):
            for process in started:
                await _wait_gone(process)

    return serve


@pytest.fixture
def make_config(tmp_path: Path) -> MakeConfig:
    """``make_config(servers, conductor=None)``: write an ``mcpServers`` file in the test's directory."""

    def make(servers: Mapping[str, Any], conductor: Mapping[str, Any] | None = None) -> Path:
        raw: dict[str, Any] = {"mcpServers": dict(servers)}
        if conductor is not None:
            raw["conductor"] = dict(conductor)
        path = tmp_path / "servers.json"
        path.write_text(json.dumps(raw, indent=2), encoding="utf-8")
        return path

    return make


def gone(process: psutil.Process) -> bool:
    """Exited (a zombie not yet reaped by its new parent counts as exited)."""
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def _wait_gone(process: psutil.Process) -> None:
    while not gone(process):  # noqa: ASYNC110 - no event exists for another parent's child
        await anyio.sleep(0.05)


@pytest.fixture
def wait_gone() -> WaitGone:
    """``await wait_gone(process)``, bounded by the caller's ``fail_after``: until ``process`` has exited. It is
    not our child, so there is no exit event to wait on; its state is polled."""
    return _wait_gone
