"""How ``execute_chain`` asks the person, through the host, before anything runs.

Two resolvers fill ``execute_chain``'s hidden parameters before its body runs (mcp's ``Resolve``, which works in
both protocol eras: an ``InputRequiredResult`` round trip on 2026-07-28, a mid-call elicitation before):

- ``steps_needing_consent`` plans the call through the conductor and returns the steps that need consent (a
  resume or a ``run_id`` re-run leaves out steps that already succeeded); a plain value, so a call that needs
  no consent makes no round trip.
- ``consent_answer`` asks one form listing those steps when the host declared form elicitation, and otherwise
  returns a plain value: the body then gets a ``consent_required`` refusal that names the config line.

The body runs the chain with ``approver(...)``, which approves only the steps the form listed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from mcp.server.elicitation import AcceptedElicitation, ElicitationResult
from mcp.server.mcpserver import Context, Elicit, Resolve
from pydantic import BaseModel, Field, ValidationError

from mcp_conductor.errors import ConductorError
from mcp_conductor.server.conductor import Conductor
from mcp_conductor.server.execution.consent import ApproveFn, ConsentDecision, only_listed
from mcp_conductor.server.execution.results import RunOptions
from mcp_conductor.server.planning.consent import ConsentStep, form_text

NO_ELICITATION = "the host cannot ask (it did not declare form elicitation)"


class ConsentForm(BaseModel):
    """The form the host shows: one yes/no."""

    approve: bool = Field(description="Run the steps listed above")


@dataclass(frozen=True, slots=True)
class NeededConsent:
    """What the first resolver found: the steps that need consent (empty: none do)."""

    steps: tuple[ConsentStep, ...] = ()


async def steps_needing_consent(
    ctx: Context[Conductor],
    plan: dict[str, Any] | None,
    plan_id: str | None,
    inputs: dict[str, Any] | None,
    options: dict[str, Any] | None,
    chain: str | None = None,
) -> NeededConsent:
    conductor = ctx.request_context.lifespan_context
    try:
        chosen = RunOptions.model_validate(options or {})
        steps = await conductor.consent_needed(plan, plan_id=plan_id, inputs=inputs, options=chosen, chain=chain)
    except (ConductorError, ValidationError):
        return NeededConsent()  # the body reports it, and runs nothing
    return NeededConsent(tuple(steps))


async def consent_answer(
    ctx: Context[Conductor], needed: Annotated[NeededConsent, Resolve(steps_needing_consent)]
) -> Elicit[ConsentForm] | NeededConsent:
    if not needed.steps or not _can_elicit(ctx):
        return needed
    return Elicit(form_text(needed.steps), ConsentForm)


def _can_elicit(ctx: Context[Conductor]) -> bool:
    # The same test the SDK applies before it sends a form (a bare `elicitation: {}` means form support).
    capabilities = ctx.client_capabilities
    elicitation = capabilities.elicitation if capabilities is not None else None
    return elicitation is not None and (elicitation.form is not None or elicitation.url is None)


def approver(needed: NeededConsent, answer: ElicitationResult[ConsentForm]) -> ApproveFn:
    """The approver for the body: the person's answer, valid for exactly the steps the form listed."""
    steps: Sequence[ConsentStep] = needed.steps
    if isinstance(answer, AcceptedElicitation) and isinstance(answer.data, ConsentForm):
        decision = ConsentDecision(approved=answer.data.approve, who="host")
    elif isinstance(answer, AcceptedElicitation):  # no form was shown: none needed, or the host cannot ask
        decision = ConsentDecision(approved=None, who="host", why=NO_ELICITATION)
    else:  # declined or cancelled the form
        decision = ConsentDecision(approved=False, who="host")
    return only_listed(steps, decision)
