"""Secrets from the config never reach a log line, however often a process loads a config."""

from __future__ import annotations

import io
import logging

import structlog

from fixtures.cli import logging_restored
from mcp_conductor.client_pool.secrets import redact_logs
from mcp_conductor.logs import configure_logging


def test_redact_logs_twice_keeps_one_mask_that_hides_both_configs_secrets() -> None:
    out = io.StringIO()
    with logging_restored():
        configure_logging("info", stream=out)
        before = len(structlog.get_config()["processors"])
        redact_logs(frozenset({"first-token-1234"}))
        redact_logs(frozenset({"second-token-5678"}))
        assert len(structlog.get_config()["processors"]) == before + 1
        assert all(len(handler.filters) == 1 for handler in logging.getLogger().handlers)

        structlog.get_logger("test").info("calling", url="https://x/?key=first-token-1234", auth="second-token-5678")
        logging.getLogger("mcp.test").warning("header Bearer second-token-5678 refused")
    text = out.getvalue()
    assert "calling" in text and "refused" in text
    assert "first-token-1234" not in text and "second-token-5678" not in text
    assert text.count("***") == 3
