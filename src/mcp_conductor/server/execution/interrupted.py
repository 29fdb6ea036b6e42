"""The one rule for a call that was in flight when the process running it died (both engines use it).

A step (or a ``foreach`` item) whose call had started when the server, or a worker, died may or may not have
had its effect downstream: the answer was lost. On resume:

- a tool annotated read-only or idempotent (MCP ``readOnlyHint`` / ``idempotentHint``) is simply called again;
- any other tool ends in status ``unknown`` and is not called again, unless the step's ``retry.on`` lists
  ``unknown`` or the resume asks for it (``options.rerun_unknown: true``).

A run with a step (or, under ``on_item_error: fail``, an item) in status ``unknown`` ends ``failed`` (``partial``
under ``on_error: continue`` when other steps succeeded), with the run error kind ``unknown_outcome``: the model
or the person checks whether the effect happened, then resumes with ``rerun_unknown`` if it did not.

Pure: no I/O, no anyio, no store; the Temporal engine imports it as is.
"""

from __future__ import annotations

from collections.abc import Collection
from enum import StrEnum

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
