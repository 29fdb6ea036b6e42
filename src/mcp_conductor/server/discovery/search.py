"""What ``discover_tools`` answers: the catalog's tools ranked for a query (or listed, page by page), with
their schemas, measured stats, and the servers that cannot be searched right now."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Hashable, Mapping, Sequence
from typing import Protocol

from mcp_conductor.client_pool.catalog import ToolInfo
from mcp_conductor.client_pool.pool import ClientPool
from mcp_conductor.clip import clip
from mcp_conductor.errors import ConductorError
from mcp_conductor.schemas import lean_input_schema
from mcp_conductor.server.discovery.index import ScoredTool, ToolIndex
from mcp_conductor.server.discovery.metrics import MetricsRegistry, ToolStats
from mcp_conductor.server.discovery.results import (
    DESCRIPTION_CHARS,
    Detail,
    DiscoveredTool,
    DiscoverResult,
    ToolStatsOut,
    UnavailableServer,
)
from mcp_conductor.shapes import Shape, schema_shape

DEFAULT_TOP_K = 8
MAX_TOP_K = 50
SPREAD_POOL = 3  # rank this many times top_k before spreading the hits over servers


class ExtraTools(Protocol):
    """Entries searched beside the catalog (saved chains): ``key`` changes whenever ``tools`` do, and ``stale``
    says, by tool id, why an entry may no longer work."""

    @property
    def key(self) -> Hashable: ...
    @property
    def tools(self) -> Sequence[ToolInfo]: ...
    @property
    def stale(self) -> Mapping[str, str]: ...
    @property
    def servers(self) -> Collection[str]: ...  # what ``servers`` may name beside the configured servers


class ToolSearch:
    """Ranks the pool's current catalog (and the ``extra`` entries); the index is rebuilt when they change."""

    def __init__(self, pool: ClientPool, metrics: MetricsRegistry) -> None:
        self._pool = pool
        self._metrics = metrics
        self._index: ToolIndex | None = None
        self._index_version: Hashable = -1
        self.extra: Callable[[], ExtraTools] | None = None

    def index(self, extra: ExtraTools | None = None) -> ToolIndex:
        snap = self._pool.snapshot()
        key = snap.version if extra is None else (snap.version, extra.key)
        if self._index is None or self._index_version != key:
            self._index = ToolIndex.build([*snap.tools.values(), *(extra.tools if extra else ())])
            self._index_version = key
        return self._index

    def unavailable(self, servers: Collection[str] | None = None) -> list[UnavailableServer]:
        return [
            UnavailableServer(server=s.name, state=s.state.value, error=s.error)
            for s in self._pool.unavailable()
            if servers is None or s.name in servers
        ]

    def discover(
        self,
        query: str,
        *,
        top_k: int = DEFAULT_TOP_K,
        servers: Collection[str] | None = None,
        include_schemas: bool = True,
        cursor: str | None = None,
        detail: Detail = "compact",
    ) -> DiscoverResult:
        """Rank (or, for an empty query, list) the catalog's tools.

        Raises:
            UnknownServerError: a name in ``servers`` is not configured.
            ConductorError: the cursor is not one this tool returned.
        """
        extra = self.extra() if self.extra is not None else None
        for server in servers or ():
            if extra is None or server not in extra.servers:
                self._pool.connection(server)
        index = self.index(extra)
        stats = self._metrics.stats()
        filter_ = set(servers) if servers is not None else None
        listing = index.list_tools(servers=filter_)
        next_cursor: str | None = None
        if query.strip():
            ranked = index.search(query, top_k=top_k * SPREAD_POOL, servers=filter_, stats=stats)
            per_clause = [index.search(c, top_k=top_k, servers=filter_, stats=stats) for c in clauses(query)]
            hits = [(h.tool, h.score) for h in interleave(per_clause, spread(ranked, top_k), top_k)]
        else:
            start = _decode_cursor(cursor, len(listing))
            page = listing[start : start + top_k]
            hits = [(tool, 0.0) for tool in page]
            if start + top_k < len(listing):
                next_cursor = str(start + top_k)
        shapes = self._metrics.shapes()
        return DiscoverResult(
            tools=[
                _describe(tool, score, stats.get(tool.id), shapes.get(tool.id), include_schemas, detail).model_copy(
                    update={
                        "effect": self._pool.config.consent.effect(tool),
                        "stale": extra.stale.get(tool.id) if extra is not None else None,
                    }
                )
                for tool, score in hits
            ],
            unavailable_servers=self.unavailable(filter_),
            total_tools=len(listing),
            next_cursor=next_cursor,
        )


_CLAUSE_BREAK = re.compile(r"\s*(?:[,;:]|\.\s|\band then\b|\bthen\b|\band\b|\bplus\b)\s*", re.IGNORECASE)


def clauses(query: str) -> list[str]:
    """The parts of a task statement that each ask for one capability ("list a folder, read the files and
    write a summary" has three); none when the query is one part."""
    parts = [part for part in _CLAUSE_BREAK.split(query) if len(part.split()) >= 2]
    return parts if len(parts) >= 2 else []


def interleave(
    per_clause: Sequence[Sequence[ScoredTool]], overall: Sequence[ScoredTool], top_k: int
) -> list[ScoredTool]:
    """The best hit of each clause first, then each clause's second best, and so on, then the best of the whole
    query: every capability a task asks for gets its best tools into the list."""
    chosen: dict[str, ScoredTool] = {}
    depth = max((len(hits) for hits in per_clause), default=0)
    for rank in range(depth):
        for hits in per_clause:
            if len(chosen) < top_k and rank < len(hits):
                chosen.setdefault(hits[rank].tool.id, hits[rank])
    for hit in overall:
        if len(chosen) < top_k:
            chosen.setdefault(hit.tool.id, hit)
    return list(chosen.values())


def spread(ranked: Sequence[ScoredTool], top_k: int) -> list[ScoredTool]:
    """The ``top_k`` best hits, with at most ``ceil(top_k / 2)`` (and at least 2) from one server while other
    servers have hits: a task names several capabilities ("read the git log and save it to a file"), and the
    best hits of one server must not push the only matching tool of another out of the list."""
    cap = max(2, -(-top_k // 2))
    chosen: list[ScoredTool] = []
    waiting: list[ScoredTool] = []
    per_server: dict[str, int] = {}
    for hit in ranked:
        if len(chosen) == top_k:
            break
        if per_server.get(hit.tool.server, 0) < cap:
            chosen.append(hit)
            per_server[hit.tool.server] = per_server.get(hit.tool.server, 0) + 1
        else:
            waiting.append(hit)
    chosen += waiting[: top_k - len(chosen)]
    return sorted(chosen, key=lambda hit: -hit.score)


def _describe(
    tool: ToolInfo, score: float, stats: ToolStats | None, learned: Shape | None, include_schemas: bool, detail: Detail
) -> DiscoveredTool:
    returns = schema_shape(tool.output_schema) if tool.output_schema else learned
    if detail == "compact":
        return DiscoveredTool(
            id=tool.id,
            description=clip(tool.description, DESCRIPTION_CHARS),
            input_schema=lean_input_schema(tool.input_schema) if include_schemas else None,
            returns=returns,
            score=round(score, 3),
        )
    return DiscoveredTool(
        id=tool.id,
        server=tool.server,
        name=tool.name,
        title=tool.title,
        description=tool.description,
        input_schema=dict(tool.input_schema) if include_schemas else None,
        output_schema=dict(tool.output_schema) if include_schemas and tool.output_schema else None,
        returns=returns,
        annotations=dict(tool.annotations) if tool.annotations else None,
        score=round(score, 4),
        stats=ToolStatsOut(**stats.public()) if stats is not None and stats.calls else None,
    )


def _decode_cursor(cursor: str | None, total: int) -> int:
    if cursor is None:
        return 0
    if not cursor.isdigit() or int(cursor) > total:
        raise ConductorError(f"invalid cursor {cursor!r}", hint="pass the next_cursor of the previous result")
    return int(cursor)
