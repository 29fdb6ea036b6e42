"""The plain values that cross between the engine, the workflow and the activities (Temporal payloads).

Stdlib dataclasses only: the workflow module imports this inside Temporal's sandbox, and the SDK's JSON
converter turns these into history payloads. A step's state mirrors ``store.records.StepRun`` (statuses are
their string values; ``unknown`` is a call that may or may not have happened), so the engine can write it to
the run store as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

WORKFLOW = "mcp-conductor.RunPlan"
CALL_ACTIVITY = "mcp-conductor.call_tool"
EVALUATE_ACTIVITY = "mcp-conductor.evaluate"
PROGRESS_QUERY = "progress"
BLOB_KEY = "$conductor_blob"  # a value kept out of Temporal's history: {"$conductor_blob": "run/step.json", ...}

INTERRUPTED_RERUNS = 3  # tries of a safe call whose worker was lost (Temporal's own retries)
TRANSIENT = ("timeout", "unavailable", "connection_lost")


@dataclass
class RetrySpec:
    """A step's ``retry``, with the tool's safety resolved by the engine (the catalog lives at the front)."""

    attempts: int = 1
    backoff_s: float = 0.5
    max_backoff_s: float = 10.0
    kinds: list[str] = field(default_factory=list)  # the failure kinds that get another try ([]: none)
    rerun_interrupted: bool = False  # a call whose worker was lost may run again (read-only/idempotent, or asked)


@dataclass
class StepSpec:
    """One planned step, as data."""

    id: str
    tool: str | None = None  # server/tool; None for a data step
    expr: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)
    depends_on: list[str] = field(default_factory=list)
    when: str | None = None
    foreach: str | None = None
    max_concurrency: int = 10
    max_items: int = 100
    on_item_error: str = "fail"
    has_default: bool = False
    default: Any = None
    timeout_s: float = 60.0
    retry: RetrySpec = field(default_factory=RetrySpec)
    on_error: str = "fail"

    @property
    def target(self) -> str:
        return self.tool if self.tool is not None else "expr"


@dataclass
class ItemState:
    index: int
    item: Any
    status: str = "pending"
    attempts: int = 0
    arguments: Any = None
    started_at: str | None = None
    finished_at: str | None = None
    duration_ms: float | None = None
    error: dict[str, Any] | None = None
    output: Any = None
    has_output: bool = False


@dataclass
class StepState:
    step_id: str
    tool: str
    status: str = "pending"
    attempts: int = 0
    arguments: Any = None
    started_at: str | None = None
    finished_at: str | None = None
    duration_ms: float | None = None
    error: dict[str, Any] | None = None
    output: Any = None
    has_output: bool = False
    items: list[ItemState] | None = None
    seq: int = 0  # the workflow's change counter when this state last changed (for the progress query)


@dataclass
class RunInput:
    """The workflow's input: the validated plan as data, and what an earlier execution of the run left."""

    run_id: str
    steps: list[StepSpec]
    inputs: dict[str, Any]
    timeout_s: float | None = None
    max_concurrency: int | None = None
    heartbeat_s: float = 2.0
    earlier: list[StepState] = field(default_factory=list)  # a resumed run's steps as stored


@dataclass
class RunResult:
    status: str  # succeeded, partial, failed, timed_out, cancelled
    steps: list[StepState]
    error: dict[str, Any] | None = None
    defaults: dict[str, Any] = field(default_factory=dict)  # steps that did not succeed and stand in by default


@dataclass
class Progress:
    seq: int
    finished: int
    total: int
    changed: list[StepState]


@dataclass
class CallInput:
    """One downstream call: the step's argument template and the values it may reference."""

    run_id: str
    step_id: str
    tool: str
    arguments: dict[str, Any]
    steps: dict[str, Any]  # the values of the steps the template may reference (blob refs for big ones)
    inputs: dict[str, Any]
    timeout_s: float
    heartbeat_s: float
    item: Any = None
    index: int | None = None  # a foreach item's index (None: a plain step)


@dataclass
class CallResult:
    ok: bool
    output: Any = None  # the value, or a blob ref
    arguments: Any = None  # after substitution (a blob ref when big)
    error: dict[str, Any] | None = None
    status: str = "succeeded"  # succeeded, failed, timeout
    started_at: str | None = None
    finished_at: str | None = None
    duration_ms: float | None = None
    worker: str = ""  # which worker process made the call (its identity)
    attempt: int = 1  # Temporal's attempt number of the activity (> 1: an earlier worker was lost)


@dataclass
class EvaluateInput:
    """An expression over values one of which is a blob ref: evaluated by an activity that can read blobs."""

    source: str
    steps: dict[str, Any]
    inputs: dict[str, Any]
    loop: bool = False
    item: Any = None
    index: int = 0


@dataclass
class EvaluateResult:
    ok: bool
    value: Any = None
    error: dict[str, Any] | None = None


def is_blob(value: Any) -> bool:
    return isinstance(value, dict) and BLOB_KEY in value
