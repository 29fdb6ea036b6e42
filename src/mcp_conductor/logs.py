"""Logging setup: structlog to stderr (never stdout, which may be the MCP stdio transport)."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog


def configure_logging(level: str = "info", *, json: bool = False, stream: TextIO | None = None) -> None:
    """Send structlog events and stdlib library logs at ``level`` and above to ``stream`` (stderr)."""
    out = stream or sys.stderr
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=out.isatty() and _color_allowed())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=True,  # a module's logger is bound once, not on every call (hot paths log)
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(asctime)s [%(levelname)s] %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.WARNING) if numeric > logging.DEBUG else logging.DEBUG)
    # The SDK logs a traceback per unparsable stdout line; the pool reports those itself, in one line.
    logging.getLogger("mcp.client.stdio").setLevel(logging.CRITICAL if numeric > logging.DEBUG else logging.DEBUG)
    for noisy in ("httpx2", "httpcore", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))


def configure_default() -> None:
    """For library use: if the application has not configured structlog, send mcp-conductor's warnings and
    errors to stderr (structlog's own default prints everything to stdout, which may be an MCP transport).
    The standard library's logging is left as the application set it."""
    if structlog.is_configured():
        return
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,  # tests capture logs; the CLI's configure_logging caches
    )


def _color_allowed() -> bool:
    import os

    return "NO_COLOR" not in os.environ
