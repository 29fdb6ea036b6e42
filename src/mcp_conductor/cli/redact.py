"""Keep secret config values out of what the CLI prints.

Env and header values in a config are secrets as far as the CLI knows (API keys, tokens), and so are the
password and query values of a server's url. A server's own error text may echo them (a stderr line, an HTTP
error with the url), so everything ``doctor`` prints goes through ``redact``.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import parse_qsl, urlsplit

from mcp_conductor.client_pool.config import ConductorConfig, RemoteServer, StdioServer

MIN_SECRET_LENGTH = 4  # shorter values ("1", "on") are flags, and hiding them would garble numbers
MASK = "***"


def secret_values(config: ConductorConfig) -> frozenset[str]:
    """Every env value, header value (and its last word: ``Bearer abc`` also hides ``abc``), url password and
    url query value in ``config``, of at least ``MIN_SECRET_LENGTH`` characters."""
    found: set[str] = set()
    for server in config.servers.values():
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
