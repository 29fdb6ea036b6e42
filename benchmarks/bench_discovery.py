"""Discovery benchmark: ranking quality against the BM25 baseline, and latency at 527 and 10,000 tools.

Run ``python benchmarks/bench_discovery.py`` (``pip install -e '.[bench]'`` for the baseline's ``rank-bm25``).
The dev set (LiveMCPBench-derived, see its README) is found at ``../shared/discovery`` beside the repo, or at
``$CONDUCTOR_DISCOVERY_DIR``, or at ``--dev-dir``.

Quality: hit@1/5/10, allgold@5/10 and MRR for (a) the README's baseline, reproduced here and checked against
the README's DEV row, (b) ``ToolIndex`` and (c) what ``discover_tools`` answers (``search.rank``: the index's
ranking merged with each clause's best tools); then ours/baseline ratios (of ``ToolIndex``). Latency: index
build time and query p50/p95 over the dev queries (plus long synthetic task statements), on the real catalog
and on a synthetic 10,000-tool catalog grown from it (real tools under renamed servers with shuffled
description words).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mcp_conductor.client_pool.catalog import ServerName, ToolId, ToolInfo
from mcp_conductor.server.discovery.index import FieldWeights, ToolIndex
from mcp_conductor.server.discovery.metrics import ToolStats
from mcp_conductor.server.discovery.search import rank

README_DEV_ROW = {"hit@1": 0.211, "hit@5": 0.474, "hit@10": 0.526, "allgold@5": 0.232, "allgold@10": 0.265}
README_DEV_MRR = 0.328
METRICS = ("hit@1", "hit@5", "hit@10", "allgold@5", "allgold@10", "MRR")
TARGETS = {"hit@5": 1.3, "allgold@10": 1.3}


@dataclass(frozen=True)
class Task:
    id: str
    query: str
    gold: frozenset[str]
    gold_groups: tuple[frozenset[str], ...]


def default_dev_dir() -> Path:
    env = os.environ.get("CONDUCTOR_DISCOVERY_DIR")
    beside = Path(__file__).resolve().parents[2] / "shared" / "discovery"
    if beside.is_dir() or not env:
        return beside
    return Path(env)


def load_dev(dev_dir: Path) -> tuple[list[dict[str, Any]], list[Task]]:
    records = json.loads((dev_dir / "catalog.json").read_text(encoding="utf-8"))
    tasks = [
        Task(t["id"], t["query"], frozenset(t["gold"]), tuple(frozenset(g) for g in t["gold_groups"]))
        for t in json.loads((dev_dir / "dev_tasks.json").read_text(encoding="utf-8"))
    ]
    return records, tasks


def evaluate(rank: Callable[[str], Sequence[str]], tasks: Sequence[Task]) -> dict[str, float]:
    """Average hit@k, allgold@k and MRR of ``rank`` (query -> ranked ids, at least 10) over ``tasks``."""
    totals = dict.fromkeys(METRICS, 0.0)
    for task in tasks:
        ranked = list(rank(task.query))
        first = next((i for i, tid in enumerate(ranked) if tid in task.gold), None)
        for k in (1, 5, 10):
            totals[f"hit@{k}"] += first is not None and first < k
        for k in (5, 10):
            top = set(ranked[:k])
            totals[f"allgold@{k}"] += sum(bool(g & top) for g in task.gold_groups) / len(task.gold_groups)
        totals["MRR"] += 0.0 if first is None else 1.0 / (first + 1)
    return {m: v / len(tasks) for m, v in totals.items()}


# The README's baseline, verbatim: camelCase split (acronym-aware), lower-case, split on non-alphanumerics.
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")
_ACRONYM = re.compile(r"([A-Z]+)([A-Z][a-z])")
_NON_ALNUM = re.compile(r"[\W_]+")


def baseline_tokens(text: str) -> list[str]:
    text = _ACRONYM.sub(r"\1 \2", _CAMEL.sub(r"\1 \2", text))
    return [t for t in _NON_ALNUM.split(text.lower()) if t]


def baseline_ranker(records: Sequence[dict[str, Any]]) -> Callable[[str], list[str]]:
    from rank_bm25 import BM25Okapi

    bm25 = BM25Okapi([baseline_tokens(r["name"] + " " + r["description"]) for r in records], k1=1.5, b=0.75)
    ids = [r["id"] for r in records]

    def rank(query: str) -> list[str]:
        scores = bm25.get_scores(baseline_tokens(query))
        order = sorted(range(len(ids)), key=lambda i: -scores[i])  # stable: ties keep catalog order
        return [ids[i] for i in order]

    return rank


def ours_ranker(index: ToolIndex, k: int = 10) -> Callable[[str], list[str]]:
    return lambda query: [hit.tool.id for hit in index.search(query, top_k=k)]


def answer_ranker(index: ToolIndex, k: int = 10) -> Callable[[str], list[str]]:
    """What ``discover_tools`` answers: the index's ranking merged with each clause's best tools."""
    return lambda query: [hit.tool.id for hit in rank(index, query, top_k=k)]


def synthetic_catalog(tools: Sequence[ToolInfo], size: int, seed: int = 1) -> list[ToolInfo]:
    """``size`` tools: the real ones, then copies under renamed servers with shuffled description words."""
    rng = random.Random(seed)
    out = list(tools)
    copy = 0
    while len(out) < size:
        copy += 1
        for tool in tools:
            if len(out) >= size:
                break
            words = tool.description.split()
            rng.shuffle(words)
            out.append(
                ToolInfo(
                    server=ServerName(f"{tool.server}-{copy}"),
                    name=tool.name,
                    description=" ".join(words),
                    input_schema=tool.input_schema,
                )
            )
    return out


def long_queries(tasks: Sequence[Task], count: int = 5, seed: int = 2) -> list[str]:
    """Long multi-sentence task statements (~4-6k characters) built from the dev queries, one with a blob."""
    rng = random.Random(seed)
    queries = [" ".join(rng.sample([t.query for t in tasks], 30)) for _ in range(count)]
    blob = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") for _ in range(12000))
    queries.append(f"Describe the image data:image/png;base64,{blob} and save a caption to /root/out.md")
    return queries


def time_queries(
    index: ToolIndex, queries: Sequence[str], repeat: int, stats: Mapping[ToolId, ToolStats] | None = None
) -> list[float]:
    samples = []
    for _ in range(repeat):
        for query in queries:
            start = time.perf_counter()
            index.search(query, top_k=10, stats=stats)
            samples.append((time.perf_counter() - start) * 1000.0)
    return samples


def percentile(samples: Sequence[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Aligned text: the first column left-aligned, the others right-aligned."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([line(headers), "  ".join("-" * w for w in widths), *(line(r) for r in rows)])


ABLATIONS: dict[str, dict[str, Any]] = {
    "uniform field weights (all 1.0)": dict.fromkeys(
        ("name", "title", "description", "param_names", "param_descriptions", "server"), 1.0
    ),
    "no parameter fields": {"param_names": 0.0, "param_descriptions": 0.0},
    "no synonyms": {"synonym_weight": 0.0},
    "no file-path handling": {"path_weight": 1.0, "path_terms": ""},
    "no query-term saturation": {"query_k3": 1e9},
    "no server evidence": {"server_boost": 0.0},
}


def quality_section(records: list[dict[str, Any]], tasks: list[Task]) -> tuple[bool, bool]:
    """Print the quality tables; return (baseline reproduced, targets met)."""
    tools = [ToolInfo.from_record(r) for r in records]
    index = ToolIndex.build(tools)
    ours = evaluate(ours_ranker(index), tasks)
    answer = evaluate(answer_ranker(index), tasks)
    try:
        base: dict[str, float] | None = evaluate(baseline_ranker(records), tasks)
    except ImportError:
        base = None
        print("rank-bm25 is not installed (pip install -e '.[bench]'): baseline skipped\n")
    rows = []
    if base is not None:
        rows.append(["baseline (README BM25)", *(f"{base[m]:.3f}" for m in METRICS)])
    rows.append(["ours (ToolIndex)", *(f"{ours[m]:.3f}" for m in METRICS)])
    rows.append(["ours, as discover_tools answers", *(f"{answer[m]:.3f}" for m in METRICS)])
    print(f"Ranking quality on DEV ({len(tasks)} tasks, {len(records)} tools)")
    print(table(["ranker", *METRICS], rows))
    if base is None:
        return True, True
    reproduced = all(round(base[m], 3) == v for m, v in README_DEV_ROW.items())
    reproduced = reproduced and round(base["MRR"], 3) == README_DEV_MRR
    print(f"\nbaseline reproduces the README DEV row: {'yes' if reproduced else 'NO'}\n")
    met = True
    ratio_rows = []
    for m in METRICS:
        ratio = ours[m] / base[m] if base[m] else float("inf")
        target = TARGETS.get(m)
        verdict = "" if target is None else ("ok" if ratio >= target else "BELOW TARGET")
        ratio_rows.append([m, f"{ratio:.2f}", "" if target is None else f">= {target}", verdict])
        met = met and (target is None or ratio >= target)
    print(table(["metric", "ours/baseline", "target", "verdict"], ratio_rows))

    ablation_rows = [["ours (defaults)", *(f"{ours[m]:.3f}" for m in ("hit@5", "allgold@10", "MRR"))]]
    for label, change in ABLATIONS.items():
        result = evaluate(ours_ranker(ToolIndex.build(tools, replace(FieldWeights(), **change))), tasks)
        ablation_rows.append([label, *(f"{result[m]:.3f}" for m in ("hit@5", "allgold@10", "MRR"))])
    print("\nAblations (one knob off at a time)")
    print(table(["variant", "hit@5", "allgold@10", "MRR"], ablation_rows))
    return reproduced, met


def random_stats(tools: Sequence[ToolInfo], seed: int = 4) -> dict[ToolId, ToolStats]:
    rng = random.Random(seed)
    out = {}
    for tool in tools:
        calls = rng.randint(0, 50)
        ok = rng.randint(0, calls)
        p50 = rng.uniform(1, 3000) if calls else None
        out[tool.id] = ToolStats(calls, ok, calls - ok, 0, p50, p50)
    return out


def latency_section(records: list[dict[str, Any]], tasks: list[Task]) -> None:
    real = [ToolInfo.from_record(r) for r in records]
    dev_queries = [t.query for t in tasks]
    longs = long_queries(tasks)
    rows = []
    for size in (len(real), 10_000):
        tools = synthetic_catalog(real, size)
        builds = []
        for _ in range(3):
            start = time.perf_counter()
            index = ToolIndex.build(tools)
            builds.append(time.perf_counter() - start)
        time_queries(index, dev_queries, 1)  # warm caches
        dev = time_queries(index, dev_queries, 20)
        long = time_queries(index, longs, 20)
        with_stats = time_queries(index, dev_queries, 20, stats=random_stats(tools))
        rows.append(
            [
                f"{len(index):,}",
                f"{min(builds) * 1000:.0f}",
                f"{statistics.median(dev):.3f}",
                f"{percentile(dev, 0.95):.3f}",
                f"{statistics.median(long):.3f}",
                f"{percentile(long, 0.95):.3f}",
                f"{statistics.median(with_stats):.3f}",
            ]
        )
    print(
        f"\nLatency, top_k=10 (dev: {len(dev_queries)} queries x 20; long: {len(longs)} task statements of "
        f"{min(map(len, longs)):,}-{max(map(len, longs)):,} chars x 20; +stats: dev queries with metrics)"
    )
    headers = ["tools", "build ms", "dev p50 ms", "dev p95 ms", "long p50 ms", "long p95 ms", "+stats p50 ms"]
    print(table(headers, rows))
    print("targets at 10,000 tools: build <= 500 ms, query p50 <= 2 ms")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dev-dir", type=Path, default=default_dev_dir(), help="dir with catalog.json etc.")
    args = parser.parse_args(argv)
    records, tasks = load_dev(args.dev_dir)
    reproduced, met = quality_section(records, tasks)
    latency_section(records, tasks)
    if not reproduced:
        sys.exit("the baseline does not reproduce the README's DEV row: the metrics or the data changed")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
