"""Serve the meta server over streamable HTTP, with a bearer token and Host/Origin checks.

Loopback binds need no token; any other bind refuses to start without one. The token is compared in constant
time, and a rejected request learns nothing but its status code. Host and Origin headers are checked against
the bound address (and any extra allowed origins) to stop DNS-rebinding attacks from a browser.
"""

from __future__ import annotations

import hmac
import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_conductor.errors import ConfigError

TOKEN_ENV = "MCP_CONDUCTOR_AUTH_TOKEN"
MAX_REQUEST_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class HttpOptions:
    host: str = "127.0.0.1"
    port: int = 8765
    path: str = "/mcp"
    auth_token: str | None = field(default=None, repr=False)
    allowed_origins: Sequence[str] = ()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(options: HttpOptions) -> None:
    """Raises:
    ConfigError: a non-loopback bind without a token.
    """
    if not is_loopback(options.host) and not options.auth_token:
        raise ConfigError(
            f"refusing to serve on {options.host} without a bearer token",
            hint=f"pass --auth-token or set {TOKEN_ENV}, or bind 127.0.0.1",
        )


class BearerAuth:
    """ASGI middleware: every HTTP request must carry ``Authorization: Bearer <token>``."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._expected = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            scheme, _, credentials = given.partition(b" ")
            # The scheme is case-insensitive (RFC 7235); the token is compared in constant time.
            valid_scheme = scheme.lower() == b"bearer"
            if not (hmac.compare_digest(credentials, self._expected) and valid_scheme):
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [(b"www-authenticate", b"Bearer"), (b"content-length", b"0")],
                    }
                )
                await send({"type": "http.response.body", "body": b""})
                return
        await self.app(scope, receive, send)


def build_http_app(server: MCPServer[Any], options: HttpOptions) -> ASGIApp:
    """The ASGI app: the SDK's streamable HTTP app behind our auth and Host/Origin checks."""
    port = options.port
    hosts = {options.host, "127.0.0.1", "localhost", "[::1]"}
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[f"{h}:{port}" for h in hosts] + sorted(hosts),
        allowed_origins=[f"http://{h}:{port}" for h in hosts] + list(options.allowed_origins),
    )
    app: ASGIApp = server.streamable_http_app(
        streamable_http_path=options.path,
        transport_security=security,
        max_request_body_size=MAX_REQUEST_BYTES,
        host=options.host,
    )
    if options.auth_token:
        app = BearerAuth(app, options.auth_token)
    return app


def listening_line(options: HttpOptions, port: int) -> str:
    """What ``serve --http`` says once it listens: the url, and whether a bearer token is required."""
    host = f"[{options.host}]" if ":" in options.host and not options.host.startswith("[") else options.host
    token = "a bearer token is required" if options.auth_token else "no token required (loopback only)"
    return f"mcp-conductor: serving streamable HTTP at http://{host}:{port}{options.path}; {token}"


async def serve_http(
    server: MCPServer[Any], options: HttpOptions, on_listening: Callable[[str], None] | None = None
) -> None:
    """Run uvicorn until cancelled; once it accepts connections (after the lifespan started the pool), call
    ``on_listening`` with ``listening_line``.

    Raises:
        ConfigError: a non-loopback bind without a token.
    """
    check_bind(options)
    config = uvicorn.Config(
        build_http_app(server, options),
        host=options.host,
        port=options.port,
        log_level="warning",
        timeout_graceful_shutdown=3,
        lifespan="on",
    )
    await _Server(config, options, on_listening).serve()


class _Server(uvicorn.Server):
    """uvicorn's server, saying where it listens once it does."""

    def __init__(
        self, config: uvicorn.Config, options: HttpOptions, on_listening: Callable[[str], None] | None
    ) -> None:
        super().__init__(config)
        self._options = options
        self._on_listening = on_listening

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self._on_listening is not None:
            bound = [sock for server in self.servers for sock in server.sockets]
            port = bound[0].getsockname()[1] if bound else self._options.port  # the real one for --port 0
            self._on_listening(listening_line(self._options, port))
