"""Tool search behind ``discover_tools``: a BM25F index over the catalog, stats as a tie-breaker.

Each tool is seen as six fields: its name split into words, its title, its description, its parameter names,
its parameter descriptions and its server name. A term's frequency in a document is the weighted sum of its
per-field frequencies, each normalised by that field's length (BM25F), then saturated with ``k1`` and scaled
by the term's IDF. That weight depends only on the document, so ``build`` precomputes it for every
(term, tool) pair in a flat, term-sorted array; a query is then a handful of slices added up with
``numpy.bincount``, which keeps long task statements fast on 10,000 tools.

Queries are whole task statements, so the query side is damped: a term counts by a saturated in-query
frequency (saying "file" five times is not five times the evidence), very long queries keep their most
specific terms, and a few common verbs expand to their synonyms at reduced weight. A search may carry implied
words (the action a verbless clause means, see ``clauses``), counted at ``implied_weight``.

A tool that says it is deprecated scores ``deprecated_factor`` of its text score, and stays below the tool it
names as its replacement whenever that one matches too (server-filesystem's ``read_file`` says "DEPRECATED: Use
read_text_file instead", and its short description would otherwise win "read a file").

Pure: no I/O, no anyio. Rebuild the index when the catalog snapshot's version changes.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from mcp_conductor.client_pool.catalog import ToolId, ToolInfo
from mcp_conductor.server.discovery.metrics import ToolStats
from mcp_conductor.server.discovery.text import deprecation, query_terms, split_identifier, synonym_map, tokenize

__all__ = ["FieldWeights", "ScoredTool", "ToolIndex", "split_identifier", "stats_factor", "tokenize"]

_FIELDS = ("name", "title", "description", "param_names", "param_descriptions", "server")

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class FieldWeights:
    """Ranking parameters: per-field weights, BM25's ``k1``/``b``, and the query-side knobs.

    The defaults were tuned on the LiveMCPBench-derived dev set only (``benchmarks/bench_discovery.py`` prints
    the effect of each query-side knob); the values sit on plateaus, not on peaks.
    """

    # Field weights: a word in the tool's name says more than one in its description.
    name: float = 3.0
    title: float = 2.0
    description: float = 0.5
    param_names: float = 0.5
    param_descriptions: float = 0.2
    server: float = 1.5
    k1: float = 2.0
    b: float = 0.75
    # A query term's weight saturates with its count in the query, like BM25's k3.
    query_k3: float = 1.0
    # Synonyms of a query verb ("fetch" -> get, retrieve, ...) count at this share of its weight.
    synonym_weight: float = 0.4
    # Queries with more distinct terms keep only their most specific (highest-IDF) ones.
    max_query_terms: int = 32
    # Words inside a file path in the query count this much; each path also adds ``path_terms``.
    path_weight: float = 0.25
    path_terms: str = "file path"
    # Share of the server's evidence (its tools' summed scores / sqrt(its size)) added to each matching tool.
    server_boost: float = 0.2
    # A deprecated tool's share of its score (it also stays below its named replacement).
    deprecated_factor: float = 0.6
    # The count of each word a clause implies but does not say ("a todo file" implies "get read").
    implied_weight: float = 0.6


@dataclass(frozen=True, slots=True)
class ScoredTool:
    """One search hit: the tool and its score (higher is better; comparable within one query only)."""

    tool: ToolInfo
    score: float


def _schema_fields(schema: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """Parameter names and descriptions, including one level of nested object properties."""
    names: list[str] = []
    descriptions: list[str] = []

    def visit(props: Any, depth: int) -> None:
        if not isinstance(props, Mapping):
            return
        for key, spec in props.items():
            names.append(str(key))
            if not isinstance(spec, Mapping):
                continue
            for text_key in ("description", "title"):
                text = spec.get(text_key)
                if isinstance(text, str):
                    descriptions.append(text)
            if depth == 0:
                visit(spec.get("properties"), 1)
                items = spec.get("items")
                if isinstance(items, Mapping):
                    visit(items.get("properties"), 1)

    visit(schema.get("properties"), 0)
    return names, descriptions


def _tool_fields(tool: ToolInfo, weights: list[float]) -> tuple[list[str], ...]:
    """The terms of each field of ``tool`` (in ``_FIELDS`` order; fields weighted 0 are left empty)."""
    param_names, param_descriptions = _schema_fields(tool.input_schema)
    texts = (tool.name, tool.title or "", tool.description, param_names, param_descriptions, tool.server)
    return tuple(
        tokenize(text if isinstance(text, str) else " ".join(text)) if weight else []
        for text, weight in zip(texts, weights, strict=True)
    )


_MIN_STATS_FACTOR = 0.97
# A deprecated tool at most this share of its replacement's score: below it even after the stats factors.
_BELOW_REPLACEMENT = _MIN_STATS_FACTOR - 0.02


def stats_factor(stats: ToolStats | None) -> float:
    """A multiplier in [0.97, 1.0] from call metrics; 0.995 (neutral) when nothing is known.

    Reliability is a smoothed success rate (two pseudo-calls at 90%), so one lucky call is not a perfect
    record and an untried tool sits between a reliable and a flaky one; the caller's own mistakes (bad
    arguments) do not count against it. Latency is a mild, log-scaled nudge.
    At most 3% apart, it reorders only near-ties: a clearly better text match is never buried.
    """
    prior_calls, prior_rate = 2.0, 0.9
    calls = stats.rated_calls if stats is not None else 0
    successes = stats.successes if stats is not None else 0
    reliability = (successes + prior_calls * prior_rate) / (calls + prior_calls)
    p50 = stats.p50_ms if stats is not None and calls else None
    # 10 ms -> 1.0, 1 s -> 0.5, 100 s -> 0.0; unknown sits at 1 s.
    speed = 0.5 if p50 is None else min(1.0, max(0.0, 1.0 - (math.log10(max(p50, 1e-3)) - 1.0) / 4.0))
    return 1.0 - 0.025 * (1.0 - reliability) - 0.005 * (1.0 - speed)


class ToolIndex:
    """An immutable search index over a set of tools; build once per catalog version.

    >>> index = ToolIndex.build(snapshot.tools.values())
    >>> [hit.tool.id for hit in index.search("convert text to upper case", top_k=1)]
    ['text/convert_case']
    """

    def __init__(
        self,
        tools: list[ToolInfo],
        weights: FieldWeights,
        vocabulary: dict[str, int],
        idf: FloatArray,
        offsets: IntArray,
        postings_doc: IntArray,
        postings_impact: FloatArray,
    ) -> None:
        self._tools = tools
        self._deprecated, self._replaced_by = _deprecations(tools)
        self._weights = weights
        self._vocabulary = vocabulary
        self._idf = idf
        self._offsets = offsets
        self._postings_doc = postings_doc
        self._postings_impact = postings_impact
        self._synonyms = (
            {term: tuple(vocabulary[s] for s in others if s in vocabulary) for term, others in synonym_map().items()}
            if weights.synonym_weight > 0
            else {}
        )
        servers: dict[str, list[int]] = {}
        for i, tool in enumerate(tools):
            servers.setdefault(tool.server, []).append(i)
        self._server_docs = {s: np.asarray(docs, dtype=np.int64) for s, docs in servers.items()}
        self._server_of_doc = np.zeros(len(tools), dtype=np.int64)
        for k, docs_ in enumerate(self._server_docs.values()):
            self._server_of_doc[docs_] = k
        self._server_sizes = np.sqrt([len(d) for d in self._server_docs.values()], dtype=np.float64)

    @classmethod
    def build(cls, tools: Iterable[ToolInfo], weights: FieldWeights | None = None) -> ToolIndex:
        """Index ``tools`` (later duplicates of an id replace earlier ones)."""
        w = weights or FieldWeights()
        by_id = {tool.id: tool for tool in tools}
        ordered = [by_id[tid] for tid in sorted(by_id)]  # doc number order == id order: ties break by id
        n_docs = len(ordered)
        field_weights = [getattr(w, f) for f in _FIELDS]

        field_terms = [_tool_fields(tool, field_weights) for tool in ordered]
        lengths = np.array([[len(terms) for terms in fields] for fields in field_terms], dtype=np.float64)
        lengths = lengths.reshape(n_docs, len(_FIELDS)).T
        avg = lengths.mean(axis=1) if n_docs else np.ones(len(_FIELDS))
        # BM25F: each field's tf is normalised by that field's length, weighted, then summed over fields.
        rel_len = lengths / np.where(avg > 0, avg, 1.0)[:, None]
        norm = np.maximum(1.0 - w.b + w.b * rel_len, 1e-9)  # near 0 only for empty fields, which have no tf
        scale_rows: list[list[float]] = (np.asarray(field_weights)[:, None] / norm).T.tolist()

        vocabulary: dict[str, int] = {}
        term_list: list[int] = []
        doc_list: list[int] = []
        tf_list: list[float] = []
        for d, (fields, scales) in enumerate(zip(field_terms, scale_rows, strict=True)):
            acc: dict[str, float] = {}
            for terms, s in zip(fields, scales, strict=True):
                for term in terms:
                    acc[term] = acc.get(term, 0.0) + s
            for term, tf in acc.items():
                term_list.append(vocabulary.setdefault(term, len(vocabulary)))
                doc_list.append(d)
                tf_list.append(tf)

        # Documents were appended in order, so a stable sort by term keeps each posting list sorted by doc.
        terms_arr = np.asarray(term_list, dtype=np.int64)
        order = np.argsort(terms_arr, kind="stable")
        terms_arr = terms_arr[order]
        docs_arr = np.asarray(doc_list, dtype=np.int64)[order]
        tf_arr = np.asarray(tf_list, dtype=np.float64)[order]

        df = np.bincount(terms_arr, minlength=len(vocabulary)).astype(np.float64)
        idf = np.log1p((n_docs - df + 0.5) / (df + 0.5))
        impact = idf[terms_arr] * tf_arr * (w.k1 + 1.0) / (tf_arr + w.k1)
        offsets = np.zeros(len(vocabulary) + 1, dtype=np.int64)
        np.cumsum(np.bincount(terms_arr, minlength=len(vocabulary)), out=offsets[1:])
        return cls(ordered, w, vocabulary, idf, offsets, docs_arr, impact)

    def __len__(self) -> int:
        return len(self._tools)

    def list_tools(self, *, servers: Collection[str] | None = None) -> list[ToolInfo]:
        """Every tool (of ``servers``, when given), sorted by id: the listing for an empty query."""
        if servers is None:
            return list(self._tools)
        wanted = set(servers)
        return [t for t in self._tools if t.server in wanted]

    def _query_weights(self, query: str, implied: str = "") -> dict[int, float]:
        """Term id -> query weight for ``query`` (terms unknown to the index drop out after expansion); the words
        of ``implied`` count ``implied_weight`` each unless the query says them."""
        w = self._weights
        counts = query_terms(query, path_weight=w.path_weight, path_terms=w.path_terms)
        for term in tokenize(implied):
            counts.setdefault(term, w.implied_weight)
        if len(counts) > w.max_query_terms:
            # Unknown terms have no IDF to rank by; they only matter through their synonyms.
            specific = sorted(counts, key=lambda t: (-self._term_idf(t), t))[: w.max_query_terms]
            counts = {t: counts[t] for t in specific}
        weights: dict[int, float] = {}
        expanded: dict[int, float] = {}
        for term, qtf in counts.items():
            qw = (w.query_k3 + 1.0) * qtf / (w.query_k3 + qtf)
            tid = self._vocabulary.get(term)
            if tid is not None:
                weights[tid] = qw
            for syn in self._synonyms.get(term, ()):
                expanded[syn] = max(expanded.get(syn, 0.0), w.synonym_weight * qw)
        for tid, qw in expanded.items():
            weights.setdefault(tid, qw)  # a word said outright keeps its own weight
        return weights

    def _term_idf(self, term: str) -> float:
        tid = self._vocabulary.get(term)
        return 0.0 if tid is None else float(self._idf[tid])

    def _text_scores(self, query: str, implied: str = "") -> FloatArray:
        """The BM25F score of every tool (in id order) for ``query``."""
        weights = self._query_weights(query, implied)
        n_docs = len(self._tools)
        if not weights:
            return np.zeros(n_docs, dtype=np.float64)
        doc_parts: list[IntArray] = []
        impact_parts: list[FloatArray] = []
        for tid, qw in weights.items():
            lo, hi = self._offsets[tid], self._offsets[tid + 1]
            doc_parts.append(self._postings_doc[lo:hi])
            impact_parts.append(self._postings_impact[lo:hi] * qw)
        docs = np.concatenate(doc_parts)
        impacts = np.concatenate(impact_parts)
        scores = np.bincount(docs, weights=impacts, minlength=n_docs).astype(np.float64)
        if self._weights.server_boost > 0:
            # Server evidence: the summed scores of a server's tools over sqrt(its size), shared by its tools.
            sid = self._server_of_doc
            per_server = np.bincount(sid, weights=scores, minlength=len(self._server_sizes)) / self._server_sizes
            scores += np.where(scores > 0, self._weights.server_boost * per_server[sid], 0.0)
        if self._deprecated.size:
            scores[self._deprecated] *= self._weights.deprecated_factor
            for old, new in self._replaced_by.items():
                if scores[new] > 0:
                    scores[old] = min(scores[old], scores[new] * _BELOW_REPLACEMENT)
        return scores

    def search(
        self,
        query: str,
        *,
        top_k: int = 8,
        servers: Collection[str] | None = None,
        stats: Mapping[ToolId, ToolStats] | None = None,
        implied: str = "",
    ) -> list[ScoredTool]:
        """The ``top_k`` best tools for ``query``, best first; [] for an empty or all-stop-word query.

        ``servers`` restricts the candidates; ``stats`` (per tool id) reorders near-ties by reliability and
        latency (see ``stats_factor``). ``implied`` are words the query means without saying them (a clause's
        implied action, see ``clauses``), counted at ``implied_weight``. Equal scores break by tool id.
        """
        if top_k <= 0 or not self._tools:
            return []
        scores = self._text_scores(query, implied)
        if servers is not None:
            mask = np.zeros(len(self._tools), dtype=bool)
            for server in servers:
                docs = self._server_docs.get(server)
                if docs is not None:
                    mask[docs] = True
            scores = np.where(mask, scores, 0.0)
        candidates = np.flatnonzero(scores > 0.0)
        cand_scores = scores[candidates]
        if stats:
            if candidates.size > top_k:
                # A factor is >= _MIN_STATS_FACTOR, so a tool below that share of the k-th text score cannot
                # reach the top k: only the near-top pay for the per-tool stats lookup.
                kth = _kth_largest(cand_scores, top_k)
                near = cand_scores >= kth * _MIN_STATS_FACTOR
                candidates, cand_scores = candidates[near], cand_scores[near]
            factors = [stats_factor(stats.get(self._tools[d].id)) for d in candidates.tolist()]
            cand_scores = cand_scores * np.asarray(factors, dtype=np.float64)
        if candidates.size > top_k:
            # Keep every candidate tied with the k-th score, so the id tie-break below sees all of them.
            keep = cand_scores >= _kth_largest(cand_scores, top_k)
            candidates, cand_scores = candidates[keep], cand_scores[keep]
        order = np.lexsort((candidates, -cand_scores))[:top_k]  # doc numbers follow ids: ties break by id
        return [
            ScoredTool(self._tools[d], s)
            for d, s in zip(candidates[order].tolist(), cand_scores[order].tolist(), strict=True)
        ]


def _deprecations(tools: list[ToolInfo]) -> tuple[IntArray, dict[int, int]]:
    """The doc numbers of deprecated tools, and deprecated doc -> its replacement's doc (same server)."""
    doc_of = {(tool.server, tool.name): d for d, tool in enumerate(tools)}
    deprecated: list[int] = []
    replaced_by: dict[int, int] = {}
    for d, tool in enumerate(tools):
        marked, replacement = deprecation(tool.title or "", tool.description)
        if not marked:
            continue
        deprecated.append(d)
        new = doc_of.get((tool.server, replacement.rpartition("/")[2])) if replacement else None
        if new is not None and new != d:
            replaced_by[d] = new
    return np.asarray(deprecated, dtype=np.int64), replaced_by


def _kth_largest(values: FloatArray, k: int) -> float:
    return float(np.partition(values, values.size - k)[values.size - k])
