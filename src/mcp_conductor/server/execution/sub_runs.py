"""A plan step that names a saved chain (``"tool": "chain/NAME[@VERSION]"``) runs it as a sub-run.

The sub-run is a run of its own, recorded with its parent's run and step (``chain_runs``), with the id
``<parent run>.<step>[.<item>]``: when the parent is resumed or the step retried, the sub-run is resumed, so only
its steps that did not succeed run again. Its value is the object of the chain's outputs. A chain that is
already running in the chain of calls above (recursion, which planning refuses but an import or an old version
could still reach) fails the step instead of running again.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import TYPE_CHECKING, Any

import structlog

from mcp_conductor.errors import CallTimeoutError, ConductorError, ToolExecutionError
from mcp_conductor.server.execution.engine import RunRequest, SubChainCall
from mcp_conductor.server.execution.results import RunOptions
from mcp_conductor.server.planning.saved_chains import CHAIN_SERVER, check_inputs
from mcp_conductor.server.store.chains import ChainRun
from mcp_conductor.server.store.records import RunStatus, StepStatus

if TYPE_CHECKING:
    from mcp_conductor.server.execution.chains import ChainService

log = structlog.get_logger(__name__)

_USABLE = frozenset({RunStatus.SUCCEEDED, RunStatus.PARTIAL})


MAX_RUN_ID = 100  # RunOptions.run_id's limit


def sub_run_id(call: SubChainCall) -> str:
    """``<parent run>.<step>[.<item>]``, or, when nesting makes that too long, the parent's id and a hash of it:
    the same for the same step, so a resume finds the sub-run again."""
    full = f"{call.parent_run_id}.{call.parent_step_id}" + ("" if call.item_index is None else f".{call.item_index}")
    if len(full) <= MAX_RUN_ID:
        return full
    return f"{call.parent_run_id[: MAX_RUN_ID - 17]}.{hashlib.sha256(full.encode()).hexdigest()[:16]}"


class SubRuns:
    """Runs the chain steps of one chain service's runs."""

    def __init__(self, service: ChainService) -> None:
        self._service = service

    async def run(self, call: SubChainCall) -> Any:
        """Run the saved chain ``call`` names with ``call.arguments`` as its inputs; its outputs by step id.

        Raises:
            ToolExecutionError: no such chain, inputs that do not fit, recursion, a plan no longer valid, or a
                sub-run that did not succeed.
            CallTimeoutError: the sub-run ran out of time.
        """
        service, library = self._service, self._service.library

        def failed(message: str) -> ToolExecutionError:
            return ToolExecutionError(message, server=CHAIN_SERVER, tool=call.chain)

        try:
            saved = await library.resolve(call.chain)
        except ConductorError as exc:
            raise failed(exc.summary()) from exc
        if saved.name in call.chain_stack:
            path = " -> ".join(f"chain/{name}" for name in (*call.chain_stack, saved.name))
            raise failed(f"chain/{saved.name} would run itself ({path}): chains cannot recurse")
        inputs = call.arguments if isinstance(call.arguments, dict) else {}
        problems = check_inputs(saved.inputs_schema, inputs)
        if problems:
            raise failed(f"chain/{saved.name}: " + "; ".join(problems[:5]))
        checked = await service.check(dict(saved.plan), inputs)
        if not checked.valid or checked.normalized_plan is None or checked.plan_id is None:
            reasons = "; ".join(issue.message for issue in checked.errors[:3])
            raise failed(f"chain/{saved.name}@{saved.version} does not plan against today's tools: {reasons}")
        run_id = sub_run_id(call)
        resume = False
        existing = await service.store.get_run(run_id)
        if existing is not None and existing.plan_id == checked.plan_id and existing.status in _USABLE:
            stored = await service.store.get_steps(run_id)
            return {s.step_id: s.output for s in stored if s.step_id in existing.outputs and s.has_output}
        if existing is not None and existing.plan_id == checked.plan_id:
            resume = True
        elif existing is not None:  # the chain changed since: a fresh sub-run
            run_id = f"{run_id}.{secrets.token_hex(3)}"
        await library.chains.record_run(
            ChainRun(run_id, saved.name, saved.version, call.parent_run_id, call.parent_step_id, call.item_index)
        )
        normalized = checked.normalized_plan
        request = RunRequest(
            plan=normalized,
            plan_id=checked.plan_id,
            inputs=normalized.inputs,
            options=RunOptions(run_id=run_id, timeout_s=call.timeout_s),
            resume=resume,
            chain_stack=(*call.chain_stack, saved.name),
        )
        log.info("chain.sub_run_started", sub_run_id=run_id, chain=f"{saved.name}@{saved.version}")
        outcome = await service.engine.execute(request)
        status = outcome.run.status
        if status in _USABLE:
            return outcome.outputs
        said = [s.error.message for s in outcome.steps if s.error is not None and s.status is not StepStatus.SKIPPED]
        problem = said[0] if said else (outcome.run.error.message if outcome.run.error else "no step said why")
        message = f"sub-run {run_id} of chain/{saved.name}@{saved.version} ended {status.value}: {problem}"
        if status is RunStatus.TIMED_OUT:
            raise CallTimeoutError(message, server=CHAIN_SERVER, tool=call.chain)
        raise failed(message)
