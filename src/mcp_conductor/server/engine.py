"""The seam between the MCP front and whatever runs validated plans.

``ChainService`` hands a ``RunRequest`` to a ``RunEngine`` and gets a ``RunOutcome`` back. The in-process anyio
executor with the SQLite store (``executor.LocalExecutor``) is the only engine today; a durable distributed one
(Temporal is the intended one) can run the same validated plans later without touching the front.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from mcp_conductor.server.plan_models import Plan
from mcp_conductor.server.run_models import RunRecord, StepRecord

ProgressFn = Callable[[int, int, str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RunOptions:
    """Per-run knobs (``execute_chain``'s ``options``)."""

    max_concurrency: int | None = None
    timeout_s: float | None = None
    default_step_timeout_s: float | None = None
    on_error: Literal["fail", "continue"] | None = None  # for steps that did not set their own
    run_id: str | None = None


@dataclass(frozen=True, slots=True)
class RunRequest:
    plan: Plan
    plan_id: str
    inputs: Mapping[str, Any]
    options: RunOptions = RunOptions()
    resume: bool = False  # options.run_id names an existing run to continue


@dataclass(frozen=True, slots=True)
class RunOutcome:
    run: RunRecord
    steps: list[StepRecord]
    outputs: dict[str, Any]


class RunEngine(Protocol):
    """The seam between the MCP front and whatever runs plans (today: ``LocalExecutor``)."""

    async def execute(self, request: RunRequest, progress: ProgressFn | None = None) -> RunOutcome: ...


def new_run_id() -> str:
    return "run_" + datetime.now(UTC).strftime("%Y%m%d%H%M%S") + "_" + secrets.token_hex(4)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
