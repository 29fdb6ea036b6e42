"""The one rule for a call that was in flight when the process running it died (both engines use it).

A step (or a ``foreach`` item) whose call had started when the server, or a worker, died may or may not have
had its effect downstream: the answer was lost. On resume:

- a tool annotated read-only or idempotent (MCP ``readOnlyHint`` / ``idempotentHint``) is simply called again;
- any other tool ends in status ``unknown`` and is not called again, unless the step's ``retry.on`` lists
  ``unknown`` or the resume asks for it (``options.rerun_unknown: true``).

A run with a step (or, under ``on_item_error: fail``, an item) in status ``unknown`` ends ``failed`` (``partial``
under ``on_error: continue`` when other steps succeeded), with the run error kind ``unknown_outcome``: the model
or the person checks whether the effect happened, then resumes with ``rerun_unknown`` if it did not.

``interrupted_outcome`` is the rule itself, on plain values; the functions below it apply it to a planned step
and its stored record. All pure: no I/O, no anyio; the Temporal engine imports them as they are.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace
from enum import StrEnum
from typing import TypeVar

from pydantic import MISSING

from mcp_conductor.client_pool.catalog import CatalogSnapshot, ToolId
from mcp_conductor.server.planning.models import PlannedStep
from mcp_conductor.server.store.records import ItemRun, StepError, StepRun, StepStatus, now_iso

UNKNOWN_OUTCOME = "unknown_outcome"  # the error kind of an unknown step, item and run
IDEMPOTENCY_KEY_META = "mcp-conductor/idempotency-key"  # in the downstream call's ``_meta``


class Interrupted(StrEnum):
    """What becomes of an interrupted call on resume."""

    RERUN = "rerun"  # call it again
    UNKNOWN = "unknown"  # do not call it again; the step (or item) ends in status unknown


def interrupted_outcome(
    *, read_only: bool, idempotent: bool, retry_on: Collection[str] | None, rerun_unknown: bool
) -> Interrupted:
    """Whether a call that was in flight when its process died is called again on resume.

    ``read_only`` / ``idempotent``: the tool's annotations (False when the tool or its annotations are not known);
    ``retry_on``: the step's ``retry.on`` (None when left out); ``rerun_unknown``: the resume's option.
    """
    if read_only or idempotent or rerun_unknown or (retry_on is not None and "unknown" in retry_on):
        return Interrupted.RERUN
    return Interrupted.UNKNOWN


def unknown_message(tool: str) -> str:
    """The error message of a step or item whose call was interrupted and is not re-run."""
    return (
        f"the call to {tool} was in flight when the conductor stopped, and {tool} is not annotated read-only or "
        "idempotent: it may or may not have taken effect, so it was not called again"
    )


UNKNOWN_RUN_MESSAGE = (
    "a step's call was interrupted and may or may not have taken effect (status unknown). Check whether it did "
    "(for example with a read-only tool of the same server). If it did not, resume the run with "
    "options.rerun_unknown: true to call it again; if it did, do not re-run it: plan the remaining steps anew."
)


def idempotency_key(run_id: str, step_id: str, item: int | None = None) -> str:
    """The key sent with a step's (or an item's) downstream call: the same on every attempt and every resume."""
    return f"{run_id}/{step_id}" if item is None else f"{run_id}/{step_id}/{item}"


def interrupted_rule(step: PlannedStep, snapshot: CatalogSnapshot, rerun_unknown: bool) -> Interrupted:
    """What becomes of ``step``'s call (or its items' calls) found in flight on resume (see ``interrupted``)."""
    tool = snapshot.tools.get(ToolId(step.target))
    return interrupted_outcome(
        read_only=tool is not None and tool.read_only,
        idempotent=tool is not None and tool.idempotent,
        retry_on=step.retry.on,
        rerun_unknown=rerun_unknown,
    )


IN_FLIGHT = frozenset({StepStatus.RUNNING, StepStatus.INTERRUPTED, StepStatus.UNKNOWN})  # its call may have happened


def stays_unknown(step: PlannedStep, stored: StepRun, snapshot: CatalogSnapshot, rerun_unknown: bool) -> bool:
    """Whether a resume ends ``step`` (a tool step, stored as ``stored``) unknown instead of running it: its call
    was in flight (``running`` if its server died unnoticed) and the rule says not to repeat it. A foreach step
    decides item by item (see ``foreach.prepare_items``)."""
    return (
        stored.status in IN_FLIGHT
        and step.foreach is MISSING
        and not step.is_data
        and interrupted_rule(step, snapshot, rerun_unknown) is Interrupted.UNKNOWN
    )


Record = TypeVar("Record", StepRun, ItemRun)


def ended_unknown(old: Record, tool: str) -> Record:
    """``old`` (a step or an item whose call was in flight) ended in status unknown, its call not made again."""
    error = StepError(kind=UNKNOWN_OUTCOME, message=unknown_message(tool))
    finished_at = old.finished_at if old.status is StepStatus.UNKNOWN and old.finished_at else now_iso()
    return replace(
        old,
        status=StepStatus.UNKNOWN,
        error=error,
        finished_at=finished_at,
        duration_ms=None,  # the call's answer was lost
        output=None,
        has_output=False,
    )
