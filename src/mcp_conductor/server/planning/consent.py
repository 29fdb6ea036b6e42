"""Which steps of a plan need the person's consent, how they are shown, and the plan's effects (pure).

The chain service asks this module before anything runs; the MCP front and the CLI show ``ConsentStep`` values
to the person (``form_text``), and a refusal names the config line that would allow them (``allow_line``).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from typing import Any, Literal

from pydantic import MISSING, Field

from mcp_conductor.client_pool.catalog import CatalogSnapshot, ToolId
from mcp_conductor.client_pool.consent_policy import ConsentPolicy, Effect, allow_line
from mcp_conductor.errors import ConductorError
from mcp_conductor.models import OutModel
from mcp_conductor.server.planning.models import ForeachOptions, Plan, PlannedStep

ARGUMENT_CHARS = 80  # one argument's value in the form
ARGUMENTS_SHOWN = 6  # arguments per step in the form
FORM_STEPS_SHOWN = 20  # steps listed in one form; the rest are counted (all of them are still approved or not)


class ConsentStep(OutModel):
    """One step that needs consent, as the person sees it."""

    id: str
    tool: str
    effect: Effect
    reason: Literal["destructive", "ask"] = Field(description="destructive tool, or named by consent.ask")
    arguments: dict[str, str] = Field(default_factory=dict, description="values cut for length")
    items: int | None = Field(None, description="a foreach step's item bound: the call runs up to this often")


class ConsentReport(OutModel):
    """The consent part of ``execute_chain``'s answer when it asked, or would have had to."""

    decision: Literal["approved", "declined", "required"]
    who: str | None = Field(None, description="host, cli or python")
    steps: list[ConsentStep]
    allow: str = Field(description="the config line that would run these steps without asking")


class ConsentRequiredError(ConductorError):
    """Steps need the person's consent and nobody could be asked (no approver, no elicitation, no terminal)."""

    kind = "consent_required"


def effect_ids(plan: Plan, snapshot: CatalogSnapshot, policy: ConsentPolicy) -> dict[str, list[str]]:
    """``{"destructive": [step ids], "writes": [step ids]}`` (empty lists left out) for ``plan_chain``."""
    found: dict[str, list[str]] = {}
    for step in plan.steps:
        effect = _effect(step, snapshot, policy)
        if effect != "read_only":
            found.setdefault(effect, []).append(step.id)
    return found


def consent_steps(
    plan: Plan, snapshot: CatalogSnapshot, policy: ConsentPolicy, *, done: Collection[str] = ()
) -> list[ConsentStep]:
    """The steps of ``plan`` that need consent, in plan order; ``done`` (steps that succeeded in an earlier
    attempt of the run) are not asked about again."""
    needed = []
    for step in plan.steps:
        if step.id in done or step.tool is MISSING:  # a data step calls no tool
            continue
        effect = _effect(step, snapshot, policy)
        reason = policy.reason(step.target, effect)
        if reason is not None:
            needed.append(
                ConsentStep(
                    id=step.id,
                    tool=step.target,
                    effect=effect,
                    reason=reason,
                    arguments=shown_arguments(step.arguments),
                    items=_item_bound(step),
                )
            )
    return needed


def _effect(step: PlannedStep, snapshot: CatalogSnapshot, policy: ConsentPolicy) -> Effect:
    tool = snapshot.tools.get(ToolId(step.target))
    if tool is None:  # a valid plan names catalog tools; a step that cannot be classified counts as the worst
        return "destructive"
    return policy.effect(tool)


def _item_bound(step: PlannedStep) -> int | None:
    # A foreach step's item bound (max_items): the form says how often the call can run. Plain steps run once.
    if step.foreach is MISSING:
        return None
    options = step.foreach_options if step.foreach_options is not MISSING else ForeachOptions()
    return options.max_items


def shown_arguments(arguments: dict[str, Any]) -> dict[str, str]:
    """Each argument as short text (references such as ``${steps.a.text}`` are shown as written)."""
    shown = {}
    for name, value in list(arguments.items())[:ARGUMENTS_SHOWN]:
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
        shown[str(name)[:40]] = text if len(text) <= ARGUMENT_CHARS else text[: ARGUMENT_CHARS - 3] + "..."
    if len(arguments) > ARGUMENTS_SHOWN:
        shown["..."] = f"{len(arguments) - ARGUMENTS_SHOWN} more"
    return shown


def step_line(step: ConsentStep) -> str:
    """``del: notes/delete (destructive) key="draft"``, with the item count of a foreach step."""
    why = step.effect if step.reason == "destructive" else f"{step.effect}, asked by consent.ask"
    arguments = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in step.arguments.items())
    times = f" x up to {step.items} items" if step.items is not None else ""
    return f"{step.id}: {step.tool} ({why}){times}" + (f" {arguments}" if arguments else "")


def form_text(steps: Sequence[ConsentStep]) -> str:
    """The message of the consent form (and of the CLI's question)."""
    many = len(steps) != 1
    counted = f"{len(steps)} steps that need" if many else "1 step that needs"
    lines = [f"This chain will run {counted} your approval:"]
    lines += [f"- {step_line(step)}" for step in steps[:FORM_STEPS_SHOWN]]
    if len(steps) > FORM_STEPS_SHOWN:
        lines.append(f"- and {len(steps) - FORM_STEPS_SHOWN} more steps (see the plan)")
    lines.append("Approve to run the chain; decline and nothing runs.")
    return "\n".join(lines)


def refusal(steps: Sequence[ConsentStep], *, how: str) -> str:
    """Why nothing ran: who could not be asked (``how``), the steps, and the config line that allows them."""
    names = ", ".join(f"{s.id} ({s.tool})" for s in steps)
    return (
        f"nothing ran: steps {names} need the person's consent and {how}; to run them without asking, add to the "
        f"config: {allow_line(s.tool for s in steps)}"
    )
