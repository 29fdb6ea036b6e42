"""The live view of a running chain: one row per step (state, attempts, duration) and the overall progress.

The executor reports only counts, so the view polls the run store (every ``POLL_INTERVAL_S``), which holds
each step's state as soon as it changes.

Durations: a finished step shows its recorded ``duration_ms``, a running one the wall-clock time since its
``started_at``. While the run goes on, the progress line shows the time since the command started it; once it
has ended, the run's recorded ``duration_ms`` (the executor's monotonic clock, from the run's start to its end),
the same number the summary, ``runs list`` and ``runs show`` print.

On a terminal the table redraws in place (rich ``Live``); otherwise each change is one line on stderr, and the
final table is printed once at the end.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

import anyio
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from mcp_conductor.cli import console as ui
from mcp_conductor.server.store.records import StepRun, StepStatus
from mcp_conductor.server.store.store import RunStore

POLL_INTERVAL_S = 0.1

STATE_WORDS = {
    "pending": "waiting", "running": "running", "succeeded": "done", "failed": "failed", "timeout": "timeout",
    "skipped": "skipped", "cancelled": "cancelled", "unknown": "unknown",
    "interrupted": "interrupted",
}  # fmt: skip
FINAL_WORDS = frozenset({"done", "failed", "timeout", "skipped", "cancelled", "unknown"})


def state_word(step: StepRun) -> str:
    return STATE_WORDS.get(step.status.value, step.status.value)


def error_text(step: StepRun) -> str | None:
    """The step's error for a person: the message, with the kind unless the state word already says it."""
    if step.error is None:
        return None
    same = step.error.kind in (state_word(step), step.status.value)
    return step.error.message if same else f"{step.error.kind}: {step.error.message}"


def duration_ms(step: StepRun, now: datetime | None = None) -> float | None:
    """How long the step took, or (running, with ``now``) has been running so far."""
    started = parse_time(step.started_at)
    if step.status is StepStatus.RUNNING:
        return None if started is None or now is None else max(0.0, (now - started).total_seconds() * 1000)
    if step.duration_ms is not None:
        return step.duration_ms
    finished = parse_time(step.finished_at)
    if started is not None and finished is not None:
        return max(0.0, (finished - started).total_seconds() * 1000)
    return None


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def format_ms(ms: float | None) -> str:
    if ms is None:
        return "-"
    return f"{ms:.0f} ms" if ms < 10_000 else f"{ms / 1000:.1f} s"


class RunView:
    """The rows of one run, updated from store records; ``update`` returns a line per change."""

    def __init__(self, steps: Sequence[tuple[str, str]], run_id: str) -> None:
        self.run_id = run_id
        self.rows = {sid: StepRun(run_id, sid, tool) for sid, tool in steps}
        self.started = datetime.now(UTC)
        self.duration_ms: float | None = None  # the run's recorded duration, once it has ended

    def finish(self, duration_ms: float | None) -> None:
        """The run has ended and took ``duration_ms`` (as recorded): the progress line shows that from now on."""
        self.duration_ms = duration_ms

    def update(self, records: Sequence[StepRun]) -> list[str]:
        changes = []
        for record in records:
            old = self.rows.get(record.step_id)
            self.rows[record.step_id] = record
            if old is None or (old.status, old.attempts) != (record.status, record.attempts):
                changes.append(_change_line(record))
        return changes

    def done(self) -> int:
        return sum(state_word(row) in FINAL_WORDS for row in self.rows.values())

    def render(self, console: Console, now: datetime | None = None) -> RenderableType:
        now = now or datetime.now(UTC)
        return Group(self.table(console, now), self.progress(console, now))

    def table(self, console: Console, now: datetime | None = None) -> Table:
        now = now or datetime.now(UTC)
        table = ui.table(console, "step", "tool", "state", "attempts", "duration", right=("attempts", "duration"))
        for row in self.rows.values():
            state = state_word(row)
            table.add_row(
                Text(row.step_id),
                Text(row.tool),
                Text(state, style=ui.style(console, ui.STATUS_STYLES.get(state, ""))),
                str(row.attempts) if row.attempts else "-",
                format_ms(duration_ms(row, now)),
            )
        return table

    def progress(self, console: Console, now: datetime) -> RenderableType:
        total, done = len(self.rows), self.done()
        elapsed = self.duration_ms if self.duration_ms is not None else (now - self.started).total_seconds() * 1000
        line = Text(f"{done}/{total} steps  {format_ms(elapsed)}  {self.run_id}")
        if ui.plain(console):
            return line
        grid = Table.grid(padding=(0, 2))
        grid.add_row(ProgressBar(total=max(total, 1), completed=done, width=30), line)
        return grid


def _change_line(row: StepRun) -> str:
    state = state_word(row)
    line = f"{row.step_id}: {state}"
    if state == "running":
        return line + (f" (attempt {row.attempts})" if row.attempts > 1 else "")
    duration = duration_ms(row)
    if duration is not None:
        line += f" in {format_ms(duration)}"
    if row.attempts > 1:
        line += f" after {row.attempts} attempts"
    error = error_text(row)
    if error and state != "done":
        line += f": {error}"
    return line


class LiveDisplay:
    """``with LiveDisplay(view, console, enabled=...)``: redraws on a terminal, prints changes on stderr
    otherwise (or nothing when ``quiet``)."""

    def __init__(self, view: RunView, console: Console, *, quiet: bool = False) -> None:
        self.view = view
        self.console = console
        self.quiet = quiet
        self.live: Live | None = None
        if not quiet and console.is_terminal:
            self.live = Live(view.render(console), console=console, auto_refresh=False, transient=False)

    def __enter__(self) -> Self:
        if self.live is not None:
            self.live.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.live is not None:
            self.live.update(self.view.render(self.console), refresh=True)
            self.live.__exit__(exc_type, exc, tb)

    def show(self, records: Sequence[StepRun]) -> None:
        changes = self.view.update(records)
        if self.live is not None:
            self.live.update(self.view.render(self.console), refresh=True)
        elif not self.quiet:
            for line in changes:
                print(line, file=sys.stderr, flush=True)

    async def follow(self, store: RunStore, run_id: str) -> None:
        """Poll the store until cancelled."""
        while True:
            self.show(await store.get_steps(run_id))
            await anyio.sleep(POLL_INTERVAL_S)
