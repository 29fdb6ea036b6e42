"""The worker's activities: one downstream call per activity, over the worker's one pool.

A call's failure is returned as a value (``CallResult.ok`` false, with the local engine's error kinds), never
raised: the workflow decides about retries by the plan's rules, and Temporal's own retries are left for the
case where the worker itself is lost. While the call runs the activity heartbeats, so a lost worker is noticed
within the heartbeat timeout and a cancelled workflow interrupts the call.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

import anyio
import structlog
from mcp.types import CallToolResult
from temporalio import activity

from mcp_conductor.client_pool.pool import ClientPool
from mcp_conductor.errors import CallTimeoutError, ConductorError, DownstreamError
from mcp_conductor.server.execution.interrupted import IDEMPOTENCY_KEY_META, idempotency_key
from mcp_conductor.server.execution.run_state import step_error
from mcp_conductor.server.execution.temporal.blobs import BlobStore
from mcp_conductor.server.execution.temporal.protocol import (
    CALL_ACTIVITY,
    EVALUATE_ACTIVITY,
    CallInput,
    CallResult,
    EvaluateInput,
    EvaluateResult,
)
from mcp_conductor.server.execution.values import step_value
from mcp_conductor.server.planning.expressions import compile_expression
from mcp_conductor.server.planning.references import substitute
from mcp_conductor.server.store.records import now_iso

log = structlog.get_logger(__name__)


def worker_identity() -> str:
    return f"{os.getpid()}@{socket.gethostname()}"


class Activities:
    """The activities of one worker process: its pool and its blob directory."""

    def __init__(self, pool: ClientPool, blobs: BlobStore, identity: str | None = None) -> None:
        self._pool = pool
        self._blobs = blobs
        self.identity = identity or worker_identity()
        self.calls = 0  # calls this worker made (its share of the load)

    @activity.defn(name=CALL_ACTIVITY)
    async def call_tool(self, call: CallInput) -> CallResult:
        attempt = activity.info().attempt
        server, _, name = call.tool.partition("/")
        started_at, t0 = now_iso(), time.perf_counter()
        structlog.contextvars.bind_contextvars(run_id=call.run_id, step_id=call.step_id)

        def failed(exc: ConductorError, status: str = "failed", arguments: Any = None) -> CallResult:
            error = step_error(exc, server, name).model_dump(exclude_none=True)
            duration = round((time.perf_counter() - t0) * 1000, 2)
            return CallResult(
                False, None, arguments, error, status, started_at, now_iso(), duration, self.identity, attempt
            )

        try:
            steps = {sid: await self._blobs.resolve(value) for sid, value in call.steps.items()}
            loop = (call.item, call.index) if call.index is not None else None
            arguments = substitute(call.arguments, steps, call.inputs, loop)
        except ConductorError as exc:  # nothing was called
            return failed(exc)
        self.calls += 1
        log.info("chain.step_started", tool=call.tool, attempt=attempt, worker=self.identity)
        outcome = await self._call_with_heartbeat(server, name, arguments, call)
        if isinstance(outcome, DownstreamError):
            status = "timeout" if isinstance(outcome, CallTimeoutError) else "failed"
            return failed(outcome, status, await self._blobs.keep(call.run_id, _name(call) + ".args", arguments))
        if isinstance(outcome, ConductorError):  # an unknown server: the catalog changed since the plan was checked
            return failed(outcome)
        result = outcome
        duration = round((time.perf_counter() - t0) * 1000, 2)
        output = await self._blobs.keep(call.run_id, _name(call), step_value(result))
        kept_arguments = await self._blobs.keep(call.run_id, _name(call) + ".args", arguments)
        log.info("chain.step_finished", status="succeeded", duration_ms=duration)
        return CallResult(
            True, output, kept_arguments, None, "succeeded", started_at, now_iso(), duration, self.identity, attempt
        )

    async def _call_with_heartbeat(
        self, server: str, name: str, arguments: Any, call: CallInput
    ) -> CallToolResult | ConductorError:
        """The call's result or its failure, heartbeating meanwhile (a cancelled activity cancels the call)."""
        outcome: CallToolResult | ConductorError
        async with anyio.create_task_group() as tg:
            tg.start_soon(_heartbeat, call.heartbeat_s)
            try:
                key = idempotency_key(call.run_id, call.step_id, call.index)  # the same on every attempt
                meta = {IDEMPOTENCY_KEY_META: key}
                outcome = await self._pool.call_tool(server, name, arguments, timeout_s=call.timeout_s, meta=meta)
            except ConductorError as exc:
                outcome = exc
            finally:
                tg.cancel_scope.cancel()
        return outcome

    @activity.defn(name=EVALUATE_ACTIVITY)
    async def evaluate(self, call: EvaluateInput) -> EvaluateResult:
        """An expression over values that live in blobs (the workflow evaluates all others itself)."""
        steps = {sid: await self._blobs.resolve(value) for sid, value in call.steps.items()}
        item = await self._blobs.resolve(call.item)
        try:
            value = compile_expression(call.source, loop=call.loop).evaluate(steps, call.inputs, item, call.index)
        except ConductorError as exc:
            return EvaluateResult(False, None, {"kind": exc.kind, "message": exc.summary()})
        return EvaluateResult(True, await self._blobs.keep("expressions", "value", value))


async def _heartbeat(every_s: float) -> None:
    while True:
        activity.heartbeat()
        await anyio.sleep(max(0.05, every_s / 3))


def _name(call: CallInput) -> str:
    return call.step_id if call.index is None else f"{call.step_id}.{call.index}"
