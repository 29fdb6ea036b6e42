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


def _color_allowed() -> bool:
    import os

    return "NO_COLOR" not in os.environ
