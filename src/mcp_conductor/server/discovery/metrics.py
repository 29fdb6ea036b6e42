"""Per-tool call metrics: counts and a bounded latency histogram good for p50/p95.

The histogram has fixed log-spaced buckets (about 10% wide), so memory per tool is constant however many calls
are recorded, and two histograms merge by adding their counts. ``ToolStats`` is the read-only summary that
discovery ranks with and the planner estimates latency from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from mcp_conductor.client_pool.catalog import ToolId
from mcp_conductor.shapes import Shape, merge_shapes, value_shape

_BUCKET_GROWTH = 1.1
_MIN_MS = 0.1
_BUCKETS = 160  # 0.1 ms * 1.1**159 ~ 3.8e5 s: anything slower lands in the last bucket


def _bucket(ms: float) -> int:
    if ms <= _MIN_MS:
        return 0
    return min(_BUCKETS - 1, 1 + int(math.log(ms / _MIN_MS, _BUCKET_GROWTH)))


def _bucket_upper_ms(index: int) -> float:
    return _MIN_MS * _BUCKET_GROWTH**index


@dataclass(frozen=True, slots=True)
class ToolStats:
    """What discovery shows and ranks with: ``{calls, success_rate, p50_ms, p95_ms}``."""

    calls: int
    successes: int
    failures: int
    timeouts: int
    p50_ms: float | None
    p95_ms: float | None

    @property
    def success_rate(self) -> float | None:
        return self.successes / self.calls if self.calls else None

    def public(self) -> dict[str, float | int | None]:
        return {
            "calls": self.calls,
            "success_rate": None if self.success_rate is None else round(self.success_rate, 4),
            "p50_ms": None if self.p50_ms is None else round(self.p50_ms, 2),
            "p95_ms": None if self.p95_ms is None else round(self.p95_ms, 2),
        }


@dataclass(slots=True)
class ToolMetrics:
    """Mutable counters for one tool; ``stats()`` gives the summary."""

    calls: int = 0
    successes: int = 0
    failures: int = 0
    timeouts: int = 0
    histogram: dict[int, int] = field(default_factory=dict)
    shape: Shape | None = None  # learned from successful calls' values (see ``mcp_conductor.shapes``)

    def learn(self, value: Any) -> None:
        """Merge the shape of a successful call's value into the learned shape."""
        seen = value_shape(value)
        self.shape = seen if self.shape is None else merge_shapes(self.shape, seen)

    def record(self, *, ok: bool, duration_ms: float, timed_out: bool = False) -> None:
        self.calls += 1
        if ok:
            self.successes += 1
        else:
            self.failures += 1
            if timed_out:
                self.timeouts += 1
        b = _bucket(duration_ms)
        self.histogram[b] = self.histogram.get(b, 0) + 1

    def quantile(self, q: float) -> float | None:
        total = sum(self.histogram.values())
        if not total:
            return None
        rank = q * total
        seen = 0
        for index in sorted(self.histogram):
            seen += self.histogram[index]
            if seen >= rank:
                return _bucket_upper_ms(index)
        return _bucket_upper_ms(max(self.histogram))

    def stats(self) -> ToolStats:
        return ToolStats(
            calls=self.calls,
            successes=self.successes,
            failures=self.failures,
            timeouts=self.timeouts,
            p50_ms=self.quantile(0.5),
            p95_ms=self.quantile(0.95),
        )


class MetricsRegistry:
    """Every tool's metrics in memory while the server runs; the run store persists them. ``version`` changes
    with every record, so rankings that use the stats know when they changed."""

    def __init__(self) -> None:
        self._by_tool: dict[ToolId, ToolMetrics] = {}
        self.version = 0

    def record(self, tool: ToolId, *, ok: bool, duration_ms: float, timed_out: bool = False) -> None:
        self._by_tool.setdefault(tool, ToolMetrics()).record(ok=ok, duration_ms=duration_ms, timed_out=timed_out)
        self.version += 1

    def learn(self, tool: ToolId, value: Any) -> None:
        """Learn the shape of a successful call's value (for tools without an ``outputSchema``)."""
        self._by_tool.setdefault(tool, ToolMetrics()).learn(value)

    def shapes(self) -> dict[ToolId, Shape]:
        return {tool: m.shape for tool, m in self._by_tool.items() if m.shape is not None}

    def load(self, tool: ToolId, metrics: ToolMetrics) -> None:
        self._by_tool[tool] = metrics
        self.version += 1

    def get(self, tool: ToolId) -> ToolMetrics | None:
        return self._by_tool.get(tool)

    def stats(self) -> dict[ToolId, ToolStats]:
        return {tool: m.stats() for tool, m in self._by_tool.items() if m.calls}
