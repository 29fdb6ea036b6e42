"""The ``plan_chain`` and ``execute_chain`` meta tools, and the resource with full step outputs."""

from __future__ import annotations

import json
from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from mcp_conductor.errors import ConductorError
from mcp_conductor.server.conductor import Conductor
from mcp_conductor.server.execution.results import ExecuteResult, RunOptions
from mcp_conductor.server.planning.models import PlanResult

PLAN_DESCRIPTION = """\
Check a multi-step tool plan without running anything: tools exist, arguments fit their schemas, references
resolve, no cycles. Returns the dependency levels (steps in one level can run in parallel), the critical path
and a latency estimate, or every problem at once (each with a JSON pointer, a hint and suggestions) so you can
fix the plan in one go. A valid plan gets a plan_id to pass to execute_chain.

Plan: {"inputs": {...}, "steps": [{"id", "tool": "server/tool", "arguments": {...}, "depends_on"?: [ids],
"timeout_s"?, "retry"?: {"attempts", "backoff_s", "max_backoff_s", "on"}, "on_error"?: "fail"|"continue"}],
"outputs"?: [step ids]}. In arguments, "${steps.ID}" is a step's whole result, "${steps.ID.field[0]}" a part
of it, "${inputs.NAME}" a plan input; a reference inside a longer string is inserted as text.
Step ids: lowercase letters, digits, '_'. CEL expressions (variables inputs, steps, item, index; plus json(),
lines(), extract(), extract_all()): "expr" instead of "tool" makes a data step (no call); "when" skips the step
when false; "default" is its value when skipped or failed; "foreach": a list expression runs the step per
element (${item}, ${item.name}, ${index} in arguments), "foreach_options": {"max_concurrency", "max_items",
"on_item_error": "fail"|"continue"}.

Example: {"plan": {"steps": [
  {"id": "read", "tool": "files/read_text", "arguments": {"path": "notes/today.md"}},
  {"id": "stats", "tool": "text/word_stats", "arguments": {"text": "${steps.read.text}"}}]}}
"""

EXECUTE_DESCRIPTION = """\
Run a tool plan in one call: steps whose dependencies are done run in parallel, and each step's result feeds
later steps through ${steps.ID.field} references, with no round trip through you. Pass either a plan_id from
plan_chain or the plan itself, in plan_chain's format with tool ids written "server/tool" (validated the same
way; an invalid plan runs nothing and returns its errors).
Returns the run status, the value of each output step, and per-step status, attempts, timing and errors.
Large outputs are cut; the full value is the resource conductor://runs/{run_id}/steps/{step_id}.
Options: timeout_s (whole chain), default_step_timeout_s, max_concurrency, on_error, run_id (an idempotency
key: repeating it returns the finished run instead of running again), resume_run_id (re-run only the steps of
an interrupted or failed run that did not succeed).

Example: {"plan_id": "plan_0123456789abcdef", "inputs": {"path": "notes/today.md"}, "options": {"timeout_s": 60}}
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
    ) -> PlanResult:
        conductor = ctx.request_context.lifespan_context
        try:
            return await conductor.plan(plan)
        except ConductorError as exc:
            raise ToolError(exc.summary()) from exc

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
        plan_id: Annotated[str | None, Field(description="id returned by plan_chain")] = None,
        plan: Annotated[dict[str, Any] | None, Field(description="an inline plan instead of plan_id")] = None,
        inputs: Annotated[dict[str, Any] | None, Field(description="values overriding the plan's inputs")] = None,
        options: Annotated[RunOptions | None, Field(description="run options")] = None,
    ) -> ExecuteResult:
        conductor = ctx.request_context.lifespan_context

        async def progress(done: float, total: int, message: str) -> None:
            await ctx.report_progress(done, total, message)

        try:
            return await conductor.execute(plan, plan_id=plan_id, inputs=inputs, options=options, progress=progress)
        except ConductorError as exc:
            raise ToolError(exc.summary()) from exc

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
