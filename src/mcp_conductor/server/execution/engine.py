"""The seam between the MCP front and whatever runs validated plans.

``ChainService`` hands a ``RunRequest`` to a ``RunEngine`` and gets a ``RunOutcome`` back. The in-process anyio
executor with the SQLite store (``executor.LocalExecutor``) is the only engine today; a durable distributed one
(Temporal is the intended one) can run the same validated plans later without touching the front.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from mcp_conductor.server.execution.results import RunOptions
from mcp_conductor.server.planning.models import Plan
from mcp_conductor.server.store.records import RunRecord, StepRun

ProgressFn = Callable[[float, int, str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RunRequest:
    plan: Plan
    plan_id: str
    inputs: Mapping[str, Any]
    options: RunOptions = RunOptions()
    resume: bool = False  # options.run_id names an existing run to continue
    chain_stack: tuple[str, ...] = ()  # the saved chains this run is inside, outermost first (no recursion)


@dataclass(frozen=True, slots=True)
class SubChainCall:
    """A step (or one foreach item) that runs a saved chain (``chain/NAME[@VERSION]``) as a sub-run."""

    chain: str  # NAME or NAME@VERSION
    arguments: Any  # the chain's inputs
    parent_run_id: str
    parent_step_id: str
    item_index: int | None
    chain_stack: tuple[str, ...]
    timeout_s: float | None


SubChainFn = Callable[[SubChainCall], Awaitable[Any]]  # the sub-run's outputs; raises DownstreamError if it failed


@dataclass(frozen=True, slots=True)
class RunOutcome:
    run: RunRecord
    steps: Sequence[StepRun]  # in plan order
    outputs: dict[str, Any]


class RunEngine(Protocol):
    """The seam between the MCP front and whatever runs plans (today: ``LocalExecutor``)."""

    async def execute(self, request: RunRequest, progress: ProgressFn | None = None) -> RunOutcome: ...


def new_run_id() -> str:
    return "run_" + datetime.now(UTC).strftime("%Y%m%d%H%M%S") + "_" + secrets.token_hex(4)
