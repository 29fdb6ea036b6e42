"""Keep secret config values out of logs, errors and output.

Env and header values in a config are secrets (API keys, tokens), and so are the password and query values of
a server's url. A server's own text may echo them (a stderr line, an HTTP error with the url), so the pool
redacts what it keeps of a server's stderr and errors, and ``doctor`` redacts everything it prints.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import parse_qsl, urlsplit

from mcp_conductor.client_pool.config import ConductorConfig, RemoteServer, ServerConfig, StdioServer

MIN_SECRET_LENGTH = 4  # shorter values ("1", "on") are flags, and hiding them would garble numbers
MASK = "***"


def secret_values(config: ConductorConfig) -> frozenset[str]:
    """Every env value, header value (and its last word: ``Bearer abc`` also hides ``abc``), url password and
    url query value in ``config``, of at least ``MIN_SECRET_LENGTH`` characters."""
    return frozenset().union(*(server_secrets(server) for server in config.servers.values()))


def server_secrets(server: ServerConfig) -> frozenset[str]:
    """The secret values of one server's entry (see ``secret_values``)."""
    found: set[str] = set()
    if isinstance(server, StdioServer):
        found.update(server.env.values())
    elif isinstance(server, RemoteServer):
        for value in server.headers.values():
            found.add(value)
            found.add(value.split()[-1] if value.split() else value)  # "Bearer abc": abc, not Bearer
        parts = urlsplit(server.url)
        if parts.password:
            found.add(parts.password)
        found.update(v for _, v in parse_qsl(parts.query))
    return frozenset(v for v in found if len(v) >= MIN_SECRET_LENGTH)


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each secret replaced by ``***`` (longest first, so a value that
    contains another is hidden whole)."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
