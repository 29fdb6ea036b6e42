"""The bundled demo downstream MCP servers and a config that starts them all.

Each server is a module with a module-level ``server`` (an ``MCPServer``) and runs over stdio with
``python -m <module>``:

    text     mcp_conductor.demo.text      word_stats, keywords, convert_case, summarize
    math     mcp_conductor.demo.mathx     add, multiply, statistics, convert_units
    notes    mcp_conductor.demo.notes     put, get, list_keys, delete            (NOTES_FILE persists)
    files    mcp_conductor.demo.files     read_text, list_files, search_text     (FILES_ROOT, read-only)
    latency  mcp_conductor.demo.latency   sleep, echo, flaky, fail, counters, slow_write
                                          (LATENCY_DEFAULT_MS, LATENCY_COUNTER_FILE)

``DEMO_CONFIG_PATH`` is a Claude-Desktop-style ``mcpServers`` file naming them by the server names above; its
``${CONDUCTOR_PYTHON}`` stands for the running interpreter.
"""

from pathlib import Path
from typing import Final

DEMO_CONFIG_PATH: Final = Path(__file__).parent / "demo_config.json"

DEMO_SERVERS: Final = (
    "mcp_conductor.demo.text",
    "mcp_conductor.demo.mathx",
    "mcp_conductor.demo.notes",
    "mcp_conductor.demo.files",
    "mcp_conductor.demo.latency",
)
"""The demo servers' module names, in config order; run each with ``python -m``."""

__all__ = ["DEMO_CONFIG_PATH", "DEMO_SERVERS"]
