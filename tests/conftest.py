"""Suite-wide setup: structlog is configured once, as the CLI configures it, so library defaults (which log only
warnings) do not hide the info events tests capture with ``structlog.testing.capture_logs``."""

from mcp_conductor.logs import configure_logging

configure_logging("info")
