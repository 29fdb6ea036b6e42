"""The seam between the MCP front and whatever runs validated plans.

``ChainService`` hands a ``RunRequest`` to a ``RunEngine`` and gets a ``RunOutcome`` back. The in-process anyio
executor with the SQLite store (``executor.LocalExecutor``) is the only engine today; a durable distributed one
(Temporal is the intended one) can run the same validated plans later without touching the front.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from mcp_conductor.server.planning.models import Plan
from mcp_conductor.server.store.records import RunRecord, Step

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
    steps: Sequence[Step]  # in plan order
    outputs: dict[str, Any]


class RunEngine(Protocol):
    """The seam between the MCP front and whatever runs plans (today: ``LocalExecutor``)."""

    async def execute(self, request: RunRequest, progress: ProgressFn | None = None) -> RunOutcome: ...


def new_run_id() -> str:
    return "run_" + datetime.now(UTC).strftime("%Y%m%d%H%M%S") + "_" + secrets.token_hex(4)


def now_iso() -> str:
    """The time in UTC as ISO 8601 with milliseconds, e.g. ``2026-11-25T18:00:00.123+00:00`` (what
    ``datetime.now(UTC).isoformat(timespec="milliseconds")`` gives, at a fraction of its cost: the executor
    stamps every step twice)."""
    second, micros = divmod(round(time.time() * 1_000_000), 1_000_000)
    if second != _second[0]:
        _second[:] = [second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))]
    return f"{_second[1]}.{micros // 1000:03d}+00:00"


_second: list[Any] = [None, ""]  # the last whole second seen and its formatted prefix
