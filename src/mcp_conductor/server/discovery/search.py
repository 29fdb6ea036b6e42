"""What ``discover_tools`` answers: the catalog's tools ranked for a query (or listed, page by page), with
their schemas, measured stats, and the servers that cannot be searched right now."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Hashable, Mapping, Sequence
from typing import Literal, Protocol

from mcp_conductor.client_pool.catalog import ToolId, ToolInfo
from mcp_conductor.client_pool.pool import ClientPool
from mcp_conductor.clip import clip
from mcp_conductor.errors import ConductorError
from mcp_conductor.schemas import lean_input_schema
from mcp_conductor.server.discovery.clauses import clauses
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
from mcp_conductor.server.discovery.signature import signature
from mcp_conductor.server.discovery.text import deprecation
from mcp_conductor.shapes import Shape, schema_shape

DEFAULT_TOP_K = 8
MAX_TOP_K = 50
SPREAD_POOL = 3  # rank this many times top_k before spreading the hits over servers
SCHEMA_HITS = 3  # a compact answer's first hits show their input schema, the rest a one-line signature
CLAUSE_HITS = 2  # each clause of a task gets this many of its best tools into the answer (as many as fit)


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
            hits = [(h.tool, h.score) for h in rank(index, query, top_k=top_k, servers=filter_, stats=stats)]
        else:
            start = _decode_cursor(cursor, len(listing))
            page = listing[start : start + top_k]
            hits = [(tool, 0.0) for tool in page]
            if start + top_k < len(listing):
                next_cursor = str(start + top_k)
        shapes = self._metrics.shapes()
        return DiscoverResult(
            tools=[
                _describe(
                    tool,
                    score,
                    stats.get(tool.id),
                    shapes.get(tool.id),
                    ("schema" if place < SCHEMA_HITS else "signature") if include_schemas else "none",
                    detail,
                ).model_copy(
                    update={
                        "effect": self._pool.config.consent.effect(tool),
                        "stale": extra.stale.get(tool.id) if extra is not None else None,
                    }
                )
                for place, (tool, score) in enumerate(hits)
            ],
            unavailable_servers=self.unavailable(filter_),
            total_tools=len(listing),
            next_cursor=next_cursor,
        )


def rank(
    index: ToolIndex,
    query: str,
    *,
    top_k: int = DEFAULT_TOP_K,
    servers: Collection[str] | None = None,
    stats: Mapping[ToolId, ToolStats] | None = None,
) -> list[ScoredTool]:
    """The ``top_k`` hits ``discover_tools`` shows for ``query``.

    Every clause of the task (see ``clauses``: searched with the action it implies) gets its ``CLAUSE_HITS``
    best tools in, as many as fit; the whole query's ranking (spread over servers) fills the rest. The list is
    in round-robin order: the whole query's best, each clause's best, the whole query's second, and so on, so
    the first hit is the one the whole task matches best and each capability shows up early.
    """
    overall = spread(index.search(query, top_k=top_k * SPREAD_POOL, servers=servers, stats=stats), top_k)
    per_clause = [
        index.search(c.text, top_k=top_k, servers=servers, stats=stats, implied=c.implied)
        for c in clauses(query)[:top_k]  # the first top_k clauses' best hits fill the list: later ones never show
    ]
    members = {hit.tool.id for hit in interleave(per_clause, top_k, depth=CLAUSE_HITS)}
    for hit in overall:
        if len(members) < top_k:
            members.add(hit.tool.id)
    return [
        hit
        for hit in interleave([overall, *per_clause], len(overall) + top_k * len(per_clause))
        if hit.tool.id in members
    ]


def interleave(lists: Sequence[Sequence[ScoredTool]], limit: int, *, depth: int | None = None) -> list[ScoredTool]:
    """Round robin over ``lists`` (each one's first hit, then each one's second, ...; ``depth`` places at most),
    a tool once, at most ``limit`` hits."""
    chosen: dict[str, ScoredTool] = {}
    longest = max((len(hits) for hits in lists), default=0)
    for place in range(longest if depth is None else min(depth, longest)):
        for hits in lists:
            if len(chosen) < limit and place < len(hits):
                chosen.setdefault(hits[place].tool.id, hits[place])
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
    tool: ToolInfo,
    score: float,
    stats: ToolStats | None,
    learned: Shape | None,
    inputs: Literal["schema", "signature", "none"],
    detail: Detail,
) -> DiscoveredTool:
    returns = schema_shape(tool.output_schema) if tool.output_schema else learned
    include_schemas = inputs != "none"
    if detail == "compact":
        return DiscoveredTool(
            id=tool.id,
            description=clip(tool.description if inputs == "schema" else summary(tool.description), DESCRIPTION_CHARS),
            input_schema=lean_input_schema(tool.input_schema) if inputs == "schema" else None,
            input=signature(tool.input_schema) if inputs == "signature" else None,
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


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(`'\"])")


def summary(description: str) -> str:
    """The first sentence of a tool's description (what the lower hits of a compact answer show), plus the
    deprecation notice when a later sentence has it."""
    first = _SENTENCE_END.split(description.strip(), maxsplit=1)[0]
    deprecated, replacement = deprecation(description)
    if deprecated and not deprecation(first)[0]:
        first += f" DEPRECATED: use {replacement} instead." if replacement else " DEPRECATED."
    return first


def _decode_cursor(cursor: str | None, total: int) -> int:
    if cursor is None:
        return 0
    if not cursor.isdigit() or int(cursor) > total:
        raise ConductorError(f"invalid cursor {cursor!r}", hint="pass the next_cursor of the previous result")
    return int(cursor)
