"""The consent gate every run passes before anything executes: ask, record the decision, or refuse.

Whoever starts a run may pass an approver, an async callback given the steps that need consent (see
``planning.consent``) and answering with a ``ConsentDecision``: the MCP front answers with what the person said
in the host's form, the CLI with what they typed (or ``--yes``), a Python program with its own logic. Without
an approver, a run whose steps need consent comes back ``consent_required`` and nothing is called.

    async def approve(steps: Sequence[ConsentStep]) -> ConsentDecision:
        return ConsentDecision(approved=all(s.tool != "git/git_reset" for s in steps), who="python")

    await conductor.execute(plan, approve=approve)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import structlog

from mcp_conductor.client_pool.consent_policy import allow_line
from mcp_conductor.server.execution.results import ExecuteResult
from mcp_conductor.server.planning.consent import ConsentReport, ConsentStep, refusal
from mcp_conductor.server.planning.models import Plan
from mcp_conductor.server.store.records import ConsentRecord, RunRecord, RunStatus, StepError, StepRun, now_iso
from mcp_conductor.server.store.store import RunStore

log = structlog.get_logger(__name__)

NO_APPROVER = "no approver was given to ask the person"
DECLINED_MESSAGE = (
    "the person declined: nothing ran. Do not run these steps again unless the person asks for it; "
    "tell them what the chain would have done."
)


@dataclass(frozen=True, slots=True)
class ConsentDecision:
    """The answer to "may these steps run?": ``approved`` True or False, or None when nobody could be asked
    (``why`` says why: no terminal, a host without elicitation)."""

    approved: bool | None
    who: str = "python"
    why: str = ""


ApproveFn = Callable[[Sequence[ConsentStep]], Awaitable[ConsentDecision]]


def only_listed(listed: Sequence[ConsentStep], decision: ConsentDecision) -> ApproveFn:
    """An approver that repeats ``decision``, given after showing ``listed``, for those very steps only: a run
    that needs consent for anything else (the catalog or the run changed since) is refused, never run unasked."""
    shown = {_key(step) for step in listed}

    async def approve(steps: Sequence[ConsentStep]) -> ConsentDecision:
        if decision.approved and not {_key(step) for step in steps} <= shown:
            why = "the steps needing consent changed after the person was asked; call again to ask anew"
            return ConsentDecision(approved=None, who=decision.who, why=why)
        return decision

    return approve


def _key(step: ConsentStep) -> str:
    return step.model_dump_json()


def report(
    decision: Literal["approved", "declined", "required"], who: str | None, steps: Sequence[ConsentStep]
) -> ConsentReport:
    return ConsentReport(decision=decision, who=who, steps=list(steps), allow=allow_line(s.tool for s in steps))


async def gate(
    store: RunStore,
    approve: ApproveFn | None,
    steps: Sequence[ConsentStep],
    *,
    run_id: str,
    plan: Plan,
    plan_id: str,
    resumed: RunRecord | None,
) -> ExecuteResult | None:
    """Ask about ``steps`` (which need consent); None when the run may go on, else the answer to return.

    A decision is recorded with ``run_id`` before anything runs; a declined run is stored as ``declined``
    (a new run with its steps pending; a resumed run keeps its steps).

    Raises:
        StoreError: the store cannot be written.
    """
    decision = ConsentDecision(approved=None, why=NO_APPROVER) if approve is None else await approve(steps)
    if decision.approved is None:
        log.info("chain.consent_required", steps=[s.id for s in steps], who=decision.who)
        error = StepError(kind="consent_required", message=refusal(steps, how=decision.why or NO_APPROVER))
        return ExecuteResult(
            run_id=None, status="consent_required", error=error, consent=report("required", None, steps)
        )
    verdict = "approved" if decision.approved else "declined"
    dumped = [s.model_dump(mode="json", exclude_none=True) for s in steps]
    await store.record_consent(
        ConsentRecord(run_id=run_id, decided_at=now_iso(), who=decision.who, decision=verdict, steps=dumped)
    )
    log.info("chain.consent_decided", decision=verdict, who=decision.who, steps=[s.id for s in steps])
    if decision.approved:
        return None
    error = StepError(kind="declined", message=DECLINED_MESSAGE)
    if resumed is not None:
        await store.set_run_status(run_id, RunStatus.DECLINED)
    else:
        now = now_iso()
        record = RunRecord(
            run_id=run_id,
            plan_id=plan_id,
            status=RunStatus.DECLINED,
            inputs=dict(plan.inputs),
            outputs=list(plan.outputs or ()),
            started_at=now,
            finished_at=now,
            duration_ms=0.0,
            error=error,
        )
        await store.create_run(record, [StepRun(run_id, s.id, s.target) for s in plan.steps])
    return ExecuteResult(
        run_id=run_id, status=RunStatus.DECLINED.value, error=error, consent=report("declined", decision.who, steps)
    )
