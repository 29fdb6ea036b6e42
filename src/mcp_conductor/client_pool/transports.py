"""Transports to one downstream server, with end-of-stream detection and stderr capture.

The SDK gives no callback when a stdio child dies or an HTTP stream breaks while no request is in flight, so the
read stream is wrapped: the first ``EndOfStream``/closed error sets an event the connection's owner task waits on.
A stdio child's stderr goes through a pipe into the structured log (and a short tail kept for error messages),
never into our stdout, which may be the host's stdio transport.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

import anyio
import anyio.lowlevel
import httpx2
import structlog
from mcp import StdioServerParameters
from mcp.client.sse import sse_client
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from mcp_conductor.client_pool.config_models import RemoteServer, ServerConfig, StdioServer
from mcp_conductor.client_pool.secrets import redact

log = structlog.get_logger(__name__)

# What a stdio child inherits besides the SDK's HOME/LOGNAME/PATH/SHELL/TERM/USER, so npx/uvx servers start
# as they do under Claude Desktop (locale, temp dirs, proxies, certificates, tool version managers).
_INHERITED_ENV = (
    "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TEMP", "TMP", "TZ",
    "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME", "XDG_RUNTIME_DIR",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS",
    "NVM_DIR", "NVM_BIN", "VOLTA_HOME", "PNPM_HOME", "UV_CACHE_DIR", "npm_config_cache",
    "VIRTUAL_ENV", "CONDA_PREFIX", "SYSTEMROOT", "APPDATA", "LOCALAPPDATA", "USERPROFILE", "PATHEXT",
)  # fmt: skip

STDERR_TAIL_LINES = 20


def child_environment(configured: dict[str, str]) -> dict[str, str]:
    """The environment a stdio child gets: the usual variables, then the configured ``env`` on top."""
    env = {k: v for k in _INHERITED_ENV if (v := os.environ.get(k)) is not None}
    return env | configured


class EofWatch:
    """Wraps a transport read stream; sets ``eof`` when the stream ends or breaks."""

    def __init__(self, inner: Any, eof: anyio.Event) -> None:
        self._inner = inner
        self._eof = eof

    @property
    def last_context(self) -> Any:
        return getattr(self._inner, "last_context", None)

    async def receive(self) -> Any:
        try:
            return await self._inner.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._eof.set()
            raise

    def __aiter__(self) -> EofWatch:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        await self._inner.aclose()

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        if callable(close):
            close()

    async def __aenter__(self) -> EofWatch:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class StderrTail:
    """The last lines a stdio child wrote to stderr, for error messages and ``doctor``."""

    def __init__(self, server: str, secrets: frozenset[str] = frozenset()) -> None:
        self.server = server
        self.secrets = secrets  # redacted from every line kept or logged
        self.lines: deque[str] = deque(maxlen=STDERR_TAIL_LINES)

    def text(self) -> str:
        return "\n".join(self.lines)

    async def pump(self, fd: int) -> None:
        """Read ``fd`` until EOF, logging each line; runs as a task beside the session."""
        os.set_blocking(fd, False)
        buffer = b""
        while True:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                await anyio.wait_readable(fd)
                continue
            except OSError:
                chunk = b""
            if not chunk:
                if buffer:
                    self._line(buffer)
                return
            *lines, buffer = (buffer + chunk).split(b"\n")
            for line in lines:
                self._line(line)
            if len(buffer) > 65536:  # a child writing without newlines must not grow this forever
                self._line(buffer)
                buffer = b""

    def _line(self, raw: bytes) -> None:
        line = redact(raw.decode("utf-8", errors="replace").rstrip(), self.secrets)
        if line:
            self.lines.append(line[:2000])
            log.debug("pool.server_stderr", server=self.server, line=line[:2000])


@asynccontextmanager
async def open_transport(config: ServerConfig, eof: anyio.Event, stderr: StderrTail) -> AsyncIterator[Any]:
    """Open the transport for ``config``; yields ``(read, write)`` with the read side watched for EOF.

    Raises:
        OSError: the stdio command cannot be started.
        Exception: whatever the HTTP transport raises when the server cannot be reached.
    """
    if isinstance(config, StdioServer):
        async with _stdio(config, eof, stderr) as streams:
            yield streams
    elif isinstance(config, RemoteServer):
        async with _remote(config, eof) as streams:
            yield streams
    else:
        raise TypeError(f"{config.name} runs in process; it has no transport")


@asynccontextmanager
async def _stdio(config: StdioServer, eof: anyio.Event, stderr: StderrTail) -> AsyncIterator[Any]:
    params = StdioServerParameters(
        command=config.command,
        args=list(config.args),
        env=child_environment(dict(config.env)),
        cwd=config.cwd,
        encoding_error_handler="replace",
    )
    read_fd, write_fd = os.pipe()
    errlog = os.fdopen(write_fd, "w", encoding="utf-8", errors="replace")
    pumped = anyio.Event()

    async def pump() -> None:
        try:
            await stderr.pump(read_fd)
        finally:
            pumped.set()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(pump)
            try:
                async with stdio_client(params, errlog=errlog) as (read, write):
                    yield EofWatch(read, eof), write
            finally:
                # The child is gone and our copy was the last writer, so the pump reaches EOF after draining
                # what is left; a grandchild still holding the pipe open must not delay shutdown.
                errlog.close()
                with anyio.move_on_after(1, shield=True):
                    await pumped.wait()
                tg.cancel_scope.cancel()
    finally:
        if not errlog.closed:
            errlog.close()
        with suppress(OSError):
            os.close(read_fd)


@asynccontextmanager
async def _remote(config: RemoteServer, eof: anyio.Event) -> AsyncIterator[Any]:
    headers = dict(config.headers)
    if config.transport == "sse":
        async with sse_client(config.url, headers=headers) as (read, write):
            yield EofWatch(read, eof), write
        return
    timeout = httpx2.Timeout(30.0, read=300.0)
    async with (
        httpx2.AsyncClient(headers=headers, timeout=timeout) as http,
        streamable_http_client(config.url, http_client=http) as (read, write),
    ):
        yield EofWatch(read, eof), write
