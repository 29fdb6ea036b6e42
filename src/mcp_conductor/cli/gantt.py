"""A text Gantt chart of a run: when each step ran, relative to the run's start. Pure; no I/O.

    read   |###                                     |     0-31 ms  done
    stats  |   ###########                          |   31-140 ms  done
    kw     |   ########                             |   31-112 ms  done
    save   |              #####                     |  140-190 ms  done

The last attempt of each step is shown (a step's ``started_at`` is that attempt's start). ASCII only, so it
survives any terminal encoding and a pipe.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from mcp_conductor.server.store.records import RunRecord, StepRun

DEFAULT_WIDTH = 40
STATE_WORDS = {"succeeded": "done", "pending": "waiting"}


@dataclass(frozen=True, slots=True)
class Span:
    """One step's bar: offsets in ms from the run's start; ``start_ms`` None means it never ran."""

    label: str
    start_ms: float | None
    end_ms: float | None
    status: str


def spans(run: RunRecord, steps: Sequence[StepRun], now: datetime | None = None) -> tuple[list[Span], float]:
    """The steps' spans and the chart's total length in ms: the run's recorded duration (the number its
    headline shows; bars are clipped to it), or up to ``now`` / the last step's end for a run still going.

    Offsets come from the wall-clock times in the records; the run's duration from the executor's monotonic
    clock, which starts a moment after the run's record is created, so a last step may end a little past it.
    """
    origin = datetime.fromisoformat(run.started_at)

    def offset(value: str | None) -> float | None:
        return None if value is None else (datetime.fromisoformat(value) - origin).total_seconds() * 1000

    out: list[Span] = []
    for step in steps:
        start = offset(step.started_at)
        end = offset(step.finished_at) if start is not None else None
        if start is not None and end is None and now is not None:
            end = (now - origin).total_seconds() * 1000
        out.append(Span(step.step_id, start, end, STATE_WORDS.get(step.status.value, step.status.value)))
    if run.duration_ms is not None:
        return out, max(run.duration_ms, 1.0)
    return out, max([*(s.end_ms for s in out if s.end_ms is not None), 1.0])


def gantt(rows: Sequence[Span], total_ms: float, width: int = DEFAULT_WIDTH) -> list[str]:
    """One line per span, plus a scale line on top: ``label |  ####   | start-end ms  status``."""
    if not rows:
        return []
    total = max(total_ms, 1.0)
    label_width = max(len(r.label) for r in rows)
    times = [_times(r) for r in rows]
    times_width = max(len(t) for t in times)
    scale = f"0 ms{' ' * max(1, width - 4 - len(_ms(total)))}{_ms(total)}"
    lines = [f"{'':<{label_width}}  {scale}"]
    for row, when in zip(rows, times, strict=True):
        lines.append(f"{row.label:<{label_width}} |{_bar(row, total, width)}| {when:>{times_width}}  {row.status}")
    return lines


def _bar(row: Span, total: float, width: int) -> str:
    if row.start_ms is None:
        return " " * width
    start = max(0.0, row.start_ms)
    end = min(total, max(start, row.end_ms if row.end_ms is not None else start))
    first = min(width - 1, math.floor(start / total * width))
    last = max(first + 1, min(width, math.ceil(end / total * width)))  # a step that ran shows at least one cell
    mark = "#" if row.status == "done" else ("=" if row.status == "running" else "x")
    return " " * first + mark * (last - first) + " " * (width - last)


def _times(row: Span) -> str:
    if row.start_ms is None:
        return "-"
    end = "..." if row.end_ms is None else f"{max(row.end_ms, row.start_ms):.0f}"
    return f"{row.start_ms:.0f}-{end} ms"


def _ms(value: float) -> str:
    return f"{value:.0f} ms"
