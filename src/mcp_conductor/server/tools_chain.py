"""The ``plan_chain`` and ``execute_chain`` meta tools, and the resource with full step outputs."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from mcp.server.elicitation import ElicitationResult
from mcp.server.mcpserver import Context, MCPServer, Resolve
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import Field, ValidationError

from mcp_conductor.errors import ConductorError
from mcp_conductor.server.conductor import Conductor
from mcp_conductor.server.consent_front import (
    ConsentForm,
    NeededConsent,
    approver,
    consent_answer,
    steps_needing_consent,
)
from mcp_conductor.server.execution.results import ExecuteResult, RunOptions
from mcp_conductor.server.planning.models import PLAN_DETAIL, PlanResult
from mcp_conductor.server.planning.saved_chains import SaveAs
from mcp_conductor.server.replies import argument_errors, reply

HOST_WAIT_S = 50.0

PLAN_FORMAT = """\
Plan: {"inputs"?: {NAME: value}, "steps": [{"id", "tool": "server/tool", "arguments", "depends_on"?: [ids],
"timeout_s"?, "retry"?: {"attempts"}, "on_error"?: "fail"|"continue"}], "outputs"?: [ids]}. In arguments
"${steps.ID}" is a step's value (its structured content, else its text parsed as JSON, else the text),
"${steps.ID.key[0]}" a part of it, "${inputs.NAME}" an input; inside longer text a reference becomes text.
Ids: a-z0-9_. CEL (inputs, steps; json() lines() extract()): "expr" instead of "tool" computes a value;
"when" skips if false; "default"; "foreach": list to run per ${item}/${index}.
Example: {"steps": [{"id": "a", "tool": "srv/get_item", "arguments": {"key": "k1"}},
{"id": "b", "tool": "srv/save_note", "arguments": {"text": "${steps.a.title}"}}]}
"""

EXECUTE_DESCRIPTION = (
    """\
Do a whole task in one call: run a plan of tool steps, in parallel where the values they use allow.
"""
    + PLAN_FORMAT
    + """\
Returns {run_id, status, outputs (values of plan.outputs, default the last steps), problems (steps that did not
succeed)}; an error says what to do next. options: timeout_s, max_concurrency, run_id (idempotency key),
resume_run_id (re-run what did not succeed), detail: "steps", wait_s (default 50; a run not done by then
answers "running": call again with options.run_id, or cancel: true).
"""
)

PLAN_DESCRIPTION = """\
Check a plan (execute_chain's format) without running it: every problem at once, each with a JSON pointer, a
hint and suggestions; or, when valid, a plan_id for execute_chain, the levels of steps that run in parallel, the
critical path and a latency estimate. detail: "plan" adds the filled-in plan. save_as: {name, description,
inputs (JSON Schema)} saves it as tool "chain/NAME", for execute_chain {"chain": NAME} or a step.
"""


def register_chain_tools(server: MCPServer[Conductor]) -> None:
    @server.tool(
        name="plan_chain",
        title="Plan a tool chain",
        description=PLAN_DESCRIPTION,
        annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False),
    )
    async def plan_chain(
        ctx: Context[Conductor],
        plan: Annotated[dict[str, Any], Field(description="the plan: inputs, steps, outputs")],
        detail: Literal["plan"] | None = None,
        save_as: dict[str, Any] | None = None,  # its fields are in the description
    ) -> Annotated[CallToolResult, PlanResult]:
        conductor = ctx.request_context.lifespan_context
        try:
            chosen = None if save_as is None else SaveAs.model_validate(save_as)
        except ValidationError as exc:
            raise ToolError(argument_errors("plan_chain", exc, within="save_as")) from exc
        try:
            checked = await conductor.plan(plan, save_as=chosen)
        except ConductorError as exc:
            raise ToolError(exc.summary()) from exc
        return reply(checked, is_error=not checked.valid, exclude=set() if detail == "plan" else PLAN_DETAIL)

    @server.tool(
        name="execute_chain",
        title="Execute a tool chain",
        description=EXECUTE_DESCRIPTION,
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=True
        ),
    )
    async def execute_chain(
        ctx: Context[Conductor],
        # Filled before the body runs, never by the model: the steps needing consent and the person's answer.
        needed: Annotated[NeededConsent, Resolve(steps_needing_consent)],
        answer: Annotated[ElicitationResult[ConsentForm], Resolve(consent_answer)],
        plan: dict[str, Any] | None = None,
        plan_id: Annotated[str | None, Field(description="instead of plan: from plan_chain")] = None,
        chain: Annotated[str | None, Field(description="instead of plan: chain NAME[@VERSION]")] = None,
        inputs: Annotated[dict[str, Any] | None, Field(description="override the plan's inputs")] = None,
        options: Annotated[dict[str, Any] | None, Field(description="see above")] = None,
    ) -> Annotated[CallToolResult, ExecuteResult]:
        conductor = ctx.request_context.lifespan_context

        async def progress(done: float, total: int, message: str) -> None:
            await ctx.report_progress(done, total, message)

        # The options are checked here, not through the tool's schema: the description lists them, and their
        # schema would cost every conversation ~150 tokens.
        try:
            chosen = RunOptions.model_validate({"wait_s": HOST_WAIT_S, **(options or {})})
        except ValidationError as exc:  # hosts give up on a call after about a minute: hence the wait_s default
            raise ToolError(argument_errors("execute_chain", exc, within="options")) from exc
        try:
            approve = approver(needed, answer)
            result = await conductor.execute(
                plan, plan_id=plan_id, inputs=inputs, options=chosen, progress=progress, approve=approve, chain=chain
            )
        except ConductorError as exc:
            raise ToolError(exc.summary()) from exc
        return reply(result, is_error=result.failed)

    @server.resource(
        "conductor://runs/{run_id}/steps/{step_id}",
        name="step_output",
        title="Full output of a chain step",
        description="The complete, untruncated value of one step of a run, as JSON.",
        mime_type="application/json",
    )
    async def step_output(run_id: str, step_id: str, ctx: Context[Conductor]) -> str:
        conductor = ctx.request_context.lifespan_context
        record = await conductor.step(run_id, step_id)
        if record is None:
            raise ResourceError(f"no step {step_id!r} in run {run_id!r}")
        if not record.has_output:
            raise ResourceError(f"step {step_id!r} of run {run_id!r} has no output (status {record.status.value})")
        return json.dumps(record.output, ensure_ascii=False)
