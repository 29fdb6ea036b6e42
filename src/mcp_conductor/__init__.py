"""mcp-conductor: one MCP server that discovers, plans and runs tool chains over many MCP servers.

The Python API (the same object the MCP front and the CLI call)::

    from mcp_conductor import Conductor

    async with Conductor.from_config("mcp-conductor.json") as conductor:
        hits = await conductor.discover("read a file", top_k=5)
        checked = await conductor.plan(plan)
        run = await conductor.execute(plan, inputs={"path": "notes/today.md"})

The names below are imported on first use, so ``import mcp_conductor`` (and ``mcp-conductor --help``) stays
light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mcp_conductor.errors import ConductorError

if TYPE_CHECKING:
    from mcp_conductor.client_pool.config import load_config
    from mcp_conductor.client_pool.config_models import ConductorConfig
    from mcp_conductor.server.conductor import Conductor
    from mcp_conductor.server.discovery.results import DiscoverResult
    from mcp_conductor.server.execution.consent import ConsentDecision
    from mcp_conductor.server.execution.results import ExecuteResult, RunOptions
    from mcp_conductor.server.planning.consent import ConsentStep
    from mcp_conductor.server.planning.models import PlanResult

__version__ = "0.1.0"

_LAZY = {
    "Conductor": "mcp_conductor.server.conductor",
    "ConductorConfig": "mcp_conductor.client_pool.config",
    "ConsentDecision": "mcp_conductor.server.execution.consent",
    "ConsentStep": "mcp_conductor.server.planning.consent",
    "DiscoverResult": "mcp_conductor.server.discovery.results",
    "ExecuteResult": "mcp_conductor.server.execution.results",
    "PlanResult": "mcp_conductor.server.planning.models",
    "RunOptions": "mcp_conductor.server.execution.results",
    "load_config": "mcp_conductor.client_pool.config",
}

__all__ = [
    "Conductor",
    "ConductorConfig",
    "ConductorError",
    "ConsentDecision",
    "ConsentStep",
    "DiscoverResult",
    "ExecuteResult",
    "PlanResult",
    "RunOptions",
    "__version__",
    "load_config",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mcp_conductor' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
