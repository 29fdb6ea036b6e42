"""What ``run`` and ``runs resume`` share: reading plans and inputs, waiting for the plan's servers, running
with a live view, cancelling cleanly on Ctrl-C, and the summary afterwards.

Ctrl-C during a run does not kill the process: a task that receives SIGINT cancels the run's scope, so the
executor records the run as ``cancelled`` (steps in flight as cancelled, the rest skipped) and the pool stops
every server before the command exits with 130.
"""

from __future__ import annotations

import json
import shlex
import signal
import sys
import threading
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.abc import TaskStatus
from rich.console import Console
from rich.text import Text

from mcp_conductor.cli import console as ui
from mcp_conductor.cli.common import SERVER_WAIT_MARGIN_S, UsageError, read_json_file
from mcp_conductor.cli.live import LiveDisplay, RunView, format_ms
from mcp_conductor.cli.words import shorten
from mcp_conductor.client_pool.pool import ClientPool
from mcp_conductor.server.conductor import Conductor
from mcp_conductor.server.execution.consent import ApproveFn
from mcp_conductor.server.execution.interrupted import UNKNOWN_OUTCOME
from mcp_conductor.server.execution.results import ExecuteResult, RunOptions
from mcp_conductor.server.planning.models import PlanResult
from mcp_conductor.server.store.connections import StoreError
from mcp_conductor.suggest import did_you_mean

PREVIEW_CHARS = 300


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a ``run`` or ``resume`` ended: an invalid plan (nothing ran), or a result, maybe interrupted."""

    result: ExecuteResult
    view: RunView | None = None
    invalid: PlanResult | None = None
    interrupted: bool = False


def read_plan(path: str) -> Any:
    """Raises:
    UsageError: the file is missing, unreadable, YAML, or not JSON.
    """
    return read_json_file(path, "plan", hint='a plan is a JSON object: {"steps": [{"id": ..., "tool": ...}]}')


def parse_inputs(pairs: Sequence[str]) -> dict[str, Any]:
    """``name=value`` pairs; a value that parses as JSON is that value (``n=5`` is 5), else the string.

    Raises:
        UsageError: a pair without ``=`` or without a name.
    """
    inputs: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--input {pair!r} is not name=value", hint="for example --input path=notes/today.md")
        try:
            inputs[name.strip()] = json.loads(text)
        except ValueError:
            inputs[name.strip()] = text
    return inputs


def with_inputs(raw: Any, inputs: Mapping[str, Any]) -> Any:
    """The raw plan with ``inputs`` merged over its own (as ``execute_chain`` merges them)."""
    if not inputs or not isinstance(raw, Mapping):
        return raw
    own = raw.get("inputs")
    declared = own if isinstance(own, Mapping) else {}
    for name in inputs:
        if name not in declared:
            raise UsageError(
                f"--input {name}: the plan declares no input {name!r}{did_you_mean(name, declared)}",
                hint=f"the plan's inputs: {', '.join(declared) or 'none'}",
            )
    return {**raw, "inputs": {**declared, **inputs}}


def plan_servers(raw: Any) -> set[str] | None:
    """The servers a raw plan's ``server/tool`` ids name; None when a step has a bare name (any server may
    offer it) or the plan has no readable steps."""
    steps = raw.get("steps") if isinstance(raw, Mapping) else None
    if not isinstance(steps, list) or not steps:
        return None
    servers = set()
    for step in steps:
        tool = step.get("tool") if isinstance(step, Mapping) else None
        if not isinstance(tool, str) or "/" not in tool:
            return None
        servers.add(tool.partition("/")[0])
    return servers


async def wait_for_servers(pool: ClientPool, raw: Any) -> None:
    """Wait (bounded by their connect timeouts) for the first connect attempt of the servers the plan uses,
    or of every server when that cannot be told from the plan."""
    named = plan_servers(raw)
    known = set(pool.connections)
    servers = sorted(named) if named is not None and named <= known else sorted(known)
    if not servers:
        return
    timeout = max(pool.config.connect_timeout_s(s) for s in servers) + SERVER_WAIT_MARGIN_S
    await pool.wait_settled(timeout, servers)


async def cancel_on_sigint(
    body: Callable[[], Awaitable[None]], *background: Callable[[], Coroutine[Any, Any, None]]
) -> bool:
    """Run ``body`` with ``background`` tasks beside it (cancelled when it ends); SIGINT cancels them all
    instead of killing the process. Returns whether SIGINT arrived. ``body``'s exceptions propagate as they
    are, not wrapped in an exception group."""
    interrupted = False
    error: Exception | None = None

    async with anyio.create_task_group() as tg:

        async def watch(*, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
            nonlocal interrupted
            with anyio.open_signal_receiver(signal.SIGINT) as signals:
                task_status.started()
                async for _ in signals:
                    interrupted = True
                    tg.cancel_scope.cancel()
                    return

        # No signal receivers on Windows (Ctrl-C raises KeyboardInterrupt instead), nor outside the main thread
        # (a caller running the command in a worker thread keeps its own SIGINT handling).
        if sys.platform != "win32" and threading.current_thread() is threading.main_thread():
            await tg.start(watch)
        for task in background:
            tg.start_soon(task)
        try:
            await body()
        except Exception as exc:
            error = _unwrap(exc)
        tg.cancel_scope.cancel()
    if error is not None:
        raise error
    return interrupted


def _unwrap(exc: Exception) -> Exception:
    while isinstance(exc, ExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


async def execute_live(
    conductor: Conductor,
    view: RunView,
    display: LiveDisplay,
    *,
    plan_id: str | None = None,
    inputs: Mapping[str, Any] | None = None,
    options: RunOptions,
    approve: ApproveFn | None = None,
) -> Outcome:
    """Run under the live view; on SIGINT, the stored (cancelled) run is the result."""
    run_id = view.run_id
    results: list[ExecuteResult] = []

    async def body() -> None:
        results.append(await conductor.execute(plan_id=plan_id, inputs=inputs, options=options, approve=approve))

    async def follow() -> None:
        while True:
            try:
                await display.follow(conductor.store, run_id)
            except StoreError:  # a busy store only delays the view
                await anyio.sleep(0.5)

    interrupted = await cancel_on_sigint(body, follow)
    if results:  # finished before any Ctrl-C took effect
        outcome = Outcome(results[0], view)
    elif (run := await conductor.store.get_run(run_id)) is None:  # interrupted before the run was created
        outcome = Outcome(ExecuteResult(run_id=None, status="cancelled"), view, interrupted=True)
    else:
        outcome = Outcome(await conductor.chains.stored_result(run, options), view, interrupted=interrupted)
    view.finish(outcome.result.duration_ms)  # the live view ends on the recorded duration, as the summary
    display.show(await conductor.store.get_steps(run_id))
    return outcome


def runs_command(state_dir: str | None, *words: str) -> str:
    """The ``mcp-conductor runs ...`` command line to suggest, with ``--state-dir`` when one was given."""
    extra = ("--state-dir", state_dir) if state_dir else ()
    return "mcp-conductor runs " + " ".join(shlex.quote(w) for w in (*words, *extra))


def preview(value: Any, limit: int = PREVIEW_CHARS) -> tuple[str, bool]:
    """A one-line JSON preview of a value, and whether it was cut (here or by the output budget)."""
    cut = False
    if isinstance(value, dict) and value.get("truncated") is True and "preview" in value:
        value, cut = value["preview"], True
        text = str(value)
    else:
        text = json.dumps(value, ensure_ascii=False)
    if len(text) > limit:
        text, cut = shorten(text, limit), True
    return text, cut


def print_summary(console: Console, outcome: Outcome, state_dir: str | None) -> None:
    """The final table (when no live view drew it), the status line, errors and output previews."""
    result = outcome.result
    if outcome.view is not None and not console.is_terminal:
        ui.print_table(console, outcome.view.table(console))
        console.print()
    status = "cancelled (Ctrl-C)" if outcome.interrupted else result.status
    headline = Text(f"run {result.run_id} {status}")
    headline.stylize(ui.style(console, "bold " + ui.STATUS_STYLES.get(result.status, "")))
    if result.duration_ms is not None:
        headline.append(f" in {format_ms(result.duration_ms)}")
    console.print(headline)
    failed = [s for s in result.steps or () if s.error is not None and s.status not in ("skipped", "succeeded")]
    if failed:
        console.print("errors:")
        for step in failed:
            assert step.error is not None
            console.print(Text(f"  {step.id} ({step.tool}): {step.error.kind}: {step.error.message}"))
    if result.outputs:
        console.print("outputs:")
        for step_id, value in result.outputs.items():
            text, cut = preview(value)
            console.print(Text(f"  {step_id}: {text}"))
            if cut and result.run_id:
                command = runs_command(state_dir, "show", result.run_id, "--output", step_id)
                console.print(Text(f"      full value: {command}"))


def print_hint_after(outcome: Outcome, state_dir: str | None) -> None:
    """On stderr: how to resume a run that did not succeed (and what to check first if a step's outcome is
    unknown)."""
    result = outcome.result
    if not result.run_id or result.status == "succeeded":
        return
    if result.error is not None and result.error.kind == UNKNOWN_OUTCOME:
        print(
            "a step's call was cut off by a crash and may or may not have taken effect: check whether it did; "
            "if not, call it again with: " + runs_command(state_dir, "resume", result.run_id, "--rerun-unknown"),
            file=sys.stderr,
        )
        return
    print(f"resume it with: {runs_command(state_dir, 'resume', result.run_id)}", file=sys.stderr)
