"""Rows <-> records: the column lists of the run store's tables, the conversions between SQLite rows and
the store's records (runs, steps, foreach items, tool metrics), and the compact JSON the columns hold.

Pure functions, no connection; ``schema`` runs the statements that use them.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from mcp_conductor.server.discovery.metrics import ToolMetrics
from mcp_conductor.server.store.records import ItemRun, RunRecord, RunStatus, StepError, StepRun, StepStatus

_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=repr)  # built once: it is per step


def dumps(value: Any) -> str:
    """Compact JSON; a value that is not JSON (it should be, outputs come from MCP) is stored as its repr."""
    return "null" if value is None else _ENCODER.encode(value)  # None: every pending step, three times


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def error_json(error: StepError | None) -> str | None:
    return None if error is None else dumps(error.model_dump(mode="json"))


def error_from_json(text: str | None) -> StepError | None:
    return None if text is None else StepError.model_validate_json(text)


RUN_COLUMNS = (
    "run_id, plan_id, status, inputs_json, options_json, outputs_json, started_at, finished_at, duration_ms, "
    "owner_pid, error_json"
)


def run_row(run: RunRecord) -> tuple[Any, ...]:
    return (
        run.run_id,
        run.plan_id,
        run.status.value,
        dumps(run.inputs),
        dumps(run.options),
        dumps(run.outputs),
        run.started_at,
        run.finished_at,
        run.duration_ms,
        run.owner_pid,
        error_json(run.error),
    )


def run_from_row(row: sqlite3.Row | tuple[Any, ...]) -> RunRecord:
    (run_id, plan_id, status, inputs, options, outputs, started, finished, duration, pid, error) = row
    return RunRecord(
        run_id=run_id,
        plan_id=plan_id,
        status=RunStatus(status),
        inputs=loads(inputs),
        options=loads(options),
        outputs=loads(outputs),
        started_at=started,
        finished_at=finished,
        duration_ms=duration,
        owner_pid=pid,
        error=error_from_json(error),
    )


STEP_COLUMNS = (
    "run_id, step_id, tool, status, attempts, arguments_json, started_at, finished_at, duration_ms, "
    "error_json, output_json, has_output"
)


def step_row(step: StepRun) -> tuple[Any, ...]:
    return (
        step.run_id,
        step.step_id,
        step.tool,
        step.status.value,
        step.attempts,
        dumps(step.arguments),
        step.started_at,
        step.finished_at,
        step.duration_ms,
        error_json(step.error),
        dumps(step.output),
        int(step.has_output),
    )


def step_from_row(row: sqlite3.Row | tuple[Any, ...]) -> StepRun:
    (run_id, step_id, tool, status, attempts, arguments, started, finished, duration, error, output, has) = row
    return StepRun(
        run_id=run_id,
        step_id=step_id,
        tool=tool,
        status=StepStatus(status),
        attempts=attempts,
        arguments=loads(arguments),
        started_at=started,
        finished_at=finished,
        duration_ms=duration,
        error=error_from_json(error),
        output=loads(output),
        has_output=bool(has),
    )


ITEM_COLUMNS = (
    "run_id, step_id, idx, item_json, status, attempts, arguments_json, started_at, finished_at, duration_ms, "
    "error_json, output_json, has_output"
)


def item_row(step: StepRun, item: ItemRun) -> tuple[Any, ...]:
    return (
        step.run_id,
        step.step_id,
        item.index,
        dumps(item.item),
        item.status.value,
        item.attempts,
        dumps(item.arguments),
        item.started_at,
        item.finished_at,
        item.duration_ms,
        error_json(item.error),
        dumps(item.output),
        int(item.has_output),
    )


def item_from_row(row: sqlite3.Row | tuple[Any, ...]) -> ItemRun:
    (index, item, status, attempts, arguments, started, finished, duration, error, output, has) = row
    return ItemRun(
        index=index,
        item=loads(item),
        status=StepStatus(status),
        attempts=attempts,
        arguments=loads(arguments),
        started_at=started,
        finished_at=finished,
        duration_ms=duration,
        error=error_from_json(error),
        output=loads(output),
        has_output=bool(has),
    )


def metrics_row(tool_id: str, m: ToolMetrics, updated_at: str) -> tuple[Any, ...]:
    histogram = {str(bucket): count for bucket, count in sorted(m.histogram.items())}
    return (tool_id, m.calls, m.successes, m.failures, m.timeouts, m.caller_errors, dumps(histogram), updated_at)


def metrics_from_row(row: sqlite3.Row | tuple[Any, ...]) -> tuple[str, ToolMetrics]:
    tool_id, calls, successes, failures, timeouts, caller_errors, histogram, shape = row
    buckets = {int(bucket): int(count) for bucket, count in loads(histogram).items()}
    learned = None if shape is None else loads(shape)
    return tool_id, ToolMetrics(calls, successes, failures, timeouts, buckets, caller_errors, learned)
