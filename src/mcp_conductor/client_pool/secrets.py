"""Keep secret config values out of logs, errors and output.

Env and header values in a config are secrets (API keys, tokens), and so are the password and query values of
a server's url. A server's own text may echo them (a stderr line, a tool error, an HTTP error with the url), so
the pool redacts what it keeps of a server's stderr and errors, ``doctor`` redacts everything it prints, and every
command that loads a config masks them in its logs (``redact_logs``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import structlog

from mcp_conductor.client_pool.config_models import ConductorConfig, RemoteServer, ServerConfig, StdioServer

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


class _LogMask(logging.Filter):
    """Masks the secrets it was given in structlog events (as a processor) and stdlib records (as a filter)."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: frozenset[str] = frozenset()

    def __call__(self, logger: Any, name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        event = structlog.processors.format_exc_info(logger, name, event)
        return {k: redact(v, self.secrets) if isinstance(v, str) else v for k, v in event.items()}

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage(), self.secrets), None
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info), self.secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self.secrets)
        return True


_MASK = _LogMask()  # one for the process: calling ``redact_logs`` again adds secrets, never a second mask


def redact_logs(secrets: frozenset[str]) -> None:
    """Mask ``secrets`` in every log line from now on: structlog events (a processor just before the renderer,
    tracebacks included) and the stdlib records of the SDK, whose debug logs name urls and quote a server's bad
    stdout lines in tracebacks. Idempotent: each call adds its secrets to the one mask the process has."""
    if not secrets:
        return
    _MASK.secrets |= secrets
    processors = list(structlog.get_config()["processors"])
    if _MASK not in processors:
        structlog.configure(processors=[*processors[:-1], _MASK, processors[-1]])
    for handler in logging.getLogger().handlers:
        if _MASK not in handler.filters:
            handler.addFilter(_MASK)
